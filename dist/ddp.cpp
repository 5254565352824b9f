// ddp.cpp: DistributedDataParallel's buckets and hooks, and DistributedSampler (see ddp.h).
#include "dist/ddp.h"

#include <algorithm>

#include "autograd/node.h"
#include "data/data.h"  // random_permutation: the DataLoader's shuffle
#include "tensor/error.h"
#include "tensor/random.h"

namespace heed::dist {

// ---- the reducer: buckets of gradients and their all-reduces --------------------------------------------------
struct Bucket {
  std::vector<size_t> params;   // indices into Reducer::params, in bucket order
  std::vector<int64_t> offset;  // where each one's gradient starts in `flat`
  int64_t numel = 0;
  DType dtype = float32;
  Tensor flat;                  // this backward's gradients, packed; a fresh tensor every backward
  size_t pending = 0;           // parameters whose gradient has not arrived yet in this backward
  Work work;
  bool launched = false;
};

struct DistributedDataParallel::Reducer {
  std::vector<Tensor> params;
  std::vector<std::string> names;
  std::vector<std::pair<size_t, size_t>> where;  // parameter -> (bucket, slot)
  std::vector<char> ready;                       // per parameter, in this backward
  std::vector<Bucket> buckets;
  size_t next_launch = 0, ready_count = 0;
  bool active = true;
  DDPOptions options;
  nn::Module* module = nullptr;

  void reset_for_next_backward() {
    std::fill(ready.begin(), ready.end(), 0);
    ready_count = 0, next_launch = 0;
    for (Bucket& b : buckets) b.pending = b.params.size(), b.launched = false, b.flat = Tensor();
  }

  Tensor slot(Bucket& b, size_t k) {
    if (!b.flat.defined()) b.flat = empty({b.numel}, b.dtype);  // every slot is written before it is sent
    const Tensor& p = params[b.params[k]];
    return b.flat.narrow(0, b.offset[k], p.numel()).view(p.shape());
  }

  // Buckets start strictly in index order, so that every rank issues the same collectives in the same
  // order (MPI's rule), whatever order the hooks happen to run in.
  void launch(size_t i) {
    Bucket& b = buckets[i];
    b.work = all_reduce_async(b.flat, ReduceOp::Avg);
    b.launched = true;
  }
  void launch_full_buckets() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) launch(next_launch++);
  }

  // The hook: parameter i's gradient for this backward is in params[i].grad().
  void on_gradient(size_t i) {
    if (!active || ready[i]) return;
    ready[i] = 1, ++ready_count;
    auto [bi, k] = where[i];
    Bucket& b = buckets[bi];
    {
      NoGradGuard no_grad;
      slot(b, k).copy_(params[i].grad());
    }
    --b.pending;
    if (options.overlap) {
      launch_full_buckets();
      for (size_t j = 0; j < next_launch; ++j) buckets[j].work.is_completed();  // lets MPI move them on
    }
    if (ready_count == params.size()) finish();
  }

  // Starts what has not started, waits for everything, and gives each parameter its averaged gradient.
  void finish() {
    for (Bucket& b : buckets)
      for (size_t k = 0; k < b.params.size(); ++k)
        if (!ready[b.params[k]]) slot(b, k).zero_();  // a parameter without gradient sends zeros
    for (; next_launch < buckets.size(); ++next_launch) launch(next_launch);
    for (Bucket& b : buckets) {
      b.work.wait();
      for (size_t k = 0; k < b.params.size(); ++k) params[b.params[k]].set_grad(slot(b, k));
    }
    if (options.broadcast_buffers)
      for (auto& [name, buffer] : module->named_buffers()) broadcast(buffer, 0);
    reset_for_next_backward();
  }
};

DistributedDataParallel::DistributedDataParallel(nn::Module& module, DDPOptions options) : module_(module) {
  if (!(options.bucket_cap_mb > 0))
    throw Error("DistributedDataParallel: bucket_cap_mb must be > 0, got " + std::to_string(options.bucket_cap_mb));
  if (!is_distributed()) return;  // a world of one: nothing to average, nothing to hook
  {
    NoGradGuard no_grad;  // the broadcasts write into the parameters in place
    for (auto& [name, p] : module.named_parameters()) broadcast(p, 0);
    for (auto& [name, b] : module.named_buffers()) broadcast(b, 0);
  }
  auto r = std::make_shared<Reducer>();
  r->options = options;
  r->module = &module;
  for (auto& [name, p] : module.named_parameters()) r->names.push_back(name), r->params.push_back(p);
  // Buckets, from the last parameter backwards; a new one when the cap is reached or the dtype changes.
  r->where.resize(r->params.size());
  const double cap_bytes = options.bucket_cap_mb * 1024 * 1024;
  for (size_t i = r->params.size(); i-- > 0;) {
    const Tensor& p = r->params[i];
    const double bytes = (double)p.numel() * (double)dtype_size(p.dtype());
    if (r->buckets.empty() || r->buckets.back().dtype != p.dtype() ||
        (r->buckets.back().numel > 0 && (double)r->buckets.back().numel * dtype_size(p.dtype()) + bytes > cap_bytes))
      r->buckets.emplace_back();
    Bucket& b = r->buckets.back();
    b.dtype = p.dtype();
    r->where[i] = {r->buckets.size() - 1, b.params.size()};
    b.params.push_back(i);
    b.offset.push_back(b.numel);
    b.numel += p.numel();
  }
  r->ready.assign(r->params.size(), 0);
  r->reset_for_next_backward();
  for (size_t i = 0; i < r->params.size(); ++i)
    r->params[i].register_post_accumulate_grad_hook([r, i](const Tensor&) { r->on_gradient(i); });
  reducer_ = std::move(r);
}

DistributedDataParallel::~DistributedDataParallel() {
  if (reducer_) reducer_->active = false;  // the hooks stay registered (heed has no removal) but do nothing
}

void DistributedDataParallel::synchronize() {
  if (reducer_ && reducer_->ready_count > 0) reducer_->finish();
}

std::vector<std::vector<std::string>> DistributedDataParallel::buckets() const {
  std::vector<std::vector<std::string>> out;
  if (!reducer_) {  // a world of one has no buckets; report the one it would have, for reading
    std::vector<std::string> all;
    for (auto& [name, p] : module_.named_parameters()) all.insert(all.begin(), name);
    if (!all.empty()) out.push_back(all);
    return out;
  }
  for (const Bucket& b : reducer_->buckets) {
    out.emplace_back();
    for (size_t i : b.params) out.back().push_back(reducer_->names[i]);
  }
  return out;
}

// ---- DistributedSampler ---------------------------------------------------------------------------------------
DistributedSampler::DistributedSampler(int64_t dataset_size, SamplerOptions options)
    : n_(dataset_size), options_(options) {
  if (options_.num_replicas < 0) options_.num_replicas = world_size();
  if (options_.rank < 0) options_.rank = rank();
  if (n_ < 0) throw Error("DistributedSampler: dataset size must be >= 0, got " + std::to_string(n_));
  if (options_.num_replicas < 1 || options_.rank >= options_.num_replicas)
    throw Error("DistributedSampler: rank " + std::to_string(options_.rank) + " is not in [0, " +
                std::to_string(options_.num_replicas) + ")");
  const int64_t p = options_.num_replicas;
  num_samples_ = options_.drop_last ? n_ / p : (n_ + p - 1) / p;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  if (epoch < 0) throw Error("DistributedSampler::indices: epoch must be >= 0, got " + std::to_string(epoch));
  std::vector<int64_t> order(n_);
  if (options_.shuffle) {
    Generator gen(options_.seed);  // exactly DataLoader::order (data/data.h)
    gen.set_offset((uint64_t)epoch << 40);
    order = data::random_permutation(n_, gen);
  } else {
    for (int64_t i = 0; i < n_; ++i) order[i] = i;
  }
  const int64_t p = options_.num_replicas, total = num_samples_ * p;
  // Without drop_last, the first samples again until every rank has as many (PyTorch pads the same way).
  for (int64_t i = 0; (int64_t)order.size() < total; ++i) order.push_back(order[i % std::max<int64_t>(n_, 1)]);
  std::vector<int64_t> mine;
  mine.reserve(num_samples_);
  for (int64_t i = options_.rank; i < total; i += p) mine.push_back(order[i]);
  return mine;
}

}  // namespace heed::dist

// ddp.h: data-parallel training, as PyTorch's DistributedDataParallel. Read after dist/dist.h.
//
// Every rank holds the whole model and trains it on its own share of each batch. If each rank computes
// the gradient of its mean loss and the gradients are then averaged over the ranks, every rank holds the
// gradient of the whole batch's mean loss, takes the same optimizer step, and the copies never drift
// apart. Two ranks with 64 images each train exactly as one process with 128 (up to float rounding):
//
//   dist::DistributedDataParallel ddp(model);            // rank 0's parameters and buffers, everywhere
//   dist::DistributedSampler sampler(n, {.seed = 1});    // this rank's shard of each epoch's order
//   for (int64_t epoch = 0; ...; ++epoch)
//     for (batch of sampler.indices(epoch), batch_size / world_size() samples) {
//       opt.zero_grad();
//       loss(model, batch).backward();  // when it returns, every grad() is the average over the ranks
//       opt.step();
//     }
//
// How the averaging works. The parameters are packed, in reverse registration order (roughly the order
// backward produces their gradients), into buckets of about bucket_cap_mb. A hook on each parameter
// (register_post_accumulate_grad_hook) copies its gradient into its bucket as soon as backward has it;
// when a bucket is full, its all-reduce starts (all_reduce_async) while backward goes on computing the
// gradients of earlier layers. The hook of the last parameter waits for every bucket and hands each
// parameter its averaged gradient, a view into its bucket. So backward itself returns averaged gradients,
// and a training step needs no extra call. With overlap = false, every bucket starts at that last hook
// instead: the same result, for measuring what overlap buys (bench/README.md, docs/distributed.md).
//
// Every parameter must receive a gradient in every backward, on every rank (all of the zoo's do). When
// some do not, call synchronize() after backward: it sends zeros for the missing ones.
//
// In a world of one the wrapper registers nothing and costs nothing.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "nn/module.h"

namespace heed::dist {

struct DDPOptions {
  double bucket_cap_mb = 25;      // bucket size in MiB of gradients (PyTorch's default)
  bool overlap = true;            // start each bucket's all-reduce during backward, as soon as it is full
  bool broadcast_buffers = true;  // after each averaging, rank 0's buffers (BatchNorm running stats) everywhere
};

class DistributedDataParallel {
 public:
  /// Broadcasts rank 0's parameters and buffers to every rank, and hooks the parameters. `module` must
  /// outlive the wrapper, and its parameters must not be replaced (Module::to) while it lives.
  explicit DistributedDataParallel(nn::Module& module, DDPOptions options = {});
  /// Unhooks: later backward passes are purely local again.
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  nn::Module& module() const { return module_; }
  /// Finishes the averaging of this backward: needed only when some parameter got no gradient (see above).
  void synchronize();
  /// The parameter names in each bucket, first bucket first (for tests and for the curious).
  std::vector<std::vector<std::string>> buckets() const;

  struct Reducer;  // ddp.cpp

 private:
  nn::Module& module_;
  std::shared_ptr<Reducer> reducer_;  // shared with the hooks, which may outlive the wrapper
};

/// The options of DistributedSampler; -1 means "from the world" (dist::world_size(), dist::rank()).
struct SamplerOptions {
  int num_replicas = -1, rank = -1;
  bool shuffle = true;     // a new order every epoch, from (seed, epoch) only
  uint64_t seed = 0;
  bool drop_last = false;  // drop the tail that does not divide evenly; else repeat the first samples
};

/// Each rank's shard of every epoch's sample order, as PyTorch's DistributedSampler: rank r of p gets
/// order[r], order[r+p], order[r+2p], ... With shuffle, the order of epoch e is data::DataLoader's with the
/// same seed (a function of seed and e alone), so every rank computes the same order without talking, and
/// with one replica this sampler gives exactly the DataLoader's samples. Batch b of every rank's shard,
/// B/p samples each, together make batch b of one process with batch size B (when p divides B).
class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, SamplerOptions options = {});
  /// This rank's samples of epoch `epoch`, num_samples() of them.
  std::vector<int64_t> indices(int64_t epoch) const;
  /// Samples per rank: ceil(n / p), or floor(n / p) with drop_last.
  int64_t num_samples() const { return num_samples_; }

 private:
  int64_t n_, num_samples_;
  SamplerOptions options_;
};

}  // namespace heed::dist

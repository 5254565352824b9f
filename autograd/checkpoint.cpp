// checkpoint.cpp: trade compute for memory. The forward runs under NoGradGuard, so none of fn's
// intermediates are kept; one "checkpoint" node remembers only fn and its inputs. Its backward reruns fn
// with recording on, from detached copies of the inputs, and differentiates that fresh graph.
#include "autograd/engine.h"
#include "tensor/random.h"

namespace heed {

static const bool registered = register_ops({"checkpoint"});

Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs) {
  // Dropout inside fn must draw the same numbers when rerun: remember where the generator stood.
  Generator& gen = default_generator();
  uint64_t seed = gen.seed(), offset = gen.offset();
  Tensor out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  std::vector<SavedTensor> saved;
  for (const Tensor& x : inputs) saved.emplace_back(x);
  return record("checkpoint", out, inputs, [fn, saved, seed, offset](const Tensor& d, const Tensor&) {
    std::vector<Tensor> xs, wanted;
    for (const SavedTensor& s : saved) {
      Tensor x = s.get().detach();
      if (s.get().requires_grad()) {
        x.requires_grad_();
        wanted.push_back(x);
      }
      xs.push_back(x);
    }
    Generator& gen = default_generator();
    uint64_t seed_now = gen.seed(), offset_now = gen.offset();
    gen.manual_seed(seed);
    gen.set_offset(offset);
    Tensor y;
    {
      GradModeGuard recording(true);
      y = fn(xs);
    }
    gen.manual_seed(seed_now);
    gen.set_offset(offset_now);
    std::vector<Tensor> g = wanted.empty() ? std::vector<Tensor>{} : grad({y}, wanted, {d}, false, false);
    std::vector<Tensor> out;
    size_t k = 0;
    for (const SavedTensor& s : saved) out.push_back(s.get().requires_grad() ? g[k++] : Tensor());
    return out;
  }, {.first_order_only = true});
}

}  // namespace heed

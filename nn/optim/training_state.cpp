// training_state.cpp: prefixes in, prefixes out.
#include "nn/optim/training_state.h"

#include <cstring>

#include "tensor/random.h"

namespace heed::optim {

// The generator's 64-bit state words travel as int64 tensors, bit for bit.
static Tensor u64_tensor(uint64_t v) {
  int64_t bits;
  std::memcpy(&bits, &v, 8);
  return from_vector<int64_t>({bits});
}
static uint64_t u64_of(const TensorMap& t, const std::string& key, const std::string& path) {
  auto it = t.find(key);
  if (it == t.end() || it->second.dtype() != int64 || it->second.numel() != 1)
    throw SafetensorsError("load_training_state: " + path + " has no int64 scalar '" + key + "'");
  int64_t bits = it->second.to_vector<int64_t>()[0];
  uint64_t v;
  std::memcpy(&v, &bits, 8);
  return v;
}

void save_training_state(const std::string& path, const nn::Module& model, const Optimizer& optimizer,
                         const StateDict& schedule, int64_t step, const Metadata& metadata) {
  TensorMap all;
  for (auto& [k, v] : model.state_dict()) all["model." + k] = v;
  for (auto& [k, v] : optimizer.state_dict()) all["optim." + k] = v;
  for (auto& [k, v] : schedule) all["sched." + k] = v;
  Generator& gen = default_generator();
  all["rng.seed"] = u64_tensor(gen.seed());
  all["rng.offset"] = u64_tensor(gen.offset());
  all["step"] = from_vector<int64_t>({step});
  Metadata meta = metadata;
  meta["step"] = std::to_string(step);
  meta["format"] = "heed training state";
  save(path, all, meta);
}

ResumeInfo load_training_state(const std::string& path, nn::Module& model, Optimizer& optimizer) {
  ResumeInfo info;
  TensorMap all = load(path, &info.metadata);
  StateDict m;
  StateDict o;
  for (auto& [k, v] : all) {
    if (k.rfind("model.", 0) == 0) m[k.substr(6)] = v;
    else if (k.rfind("optim.", 0) == 0) o[k.substr(6)] = v;
    else if (k.rfind("sched.", 0) == 0) info.schedule[k.substr(6)] = v;
  }
  // Everything is checked before anything is changed where possible: the model load is strict and
  // throws before copying on any mismatch.
  uint64_t seed = u64_of(all, "rng.seed", path), offset = u64_of(all, "rng.offset", path);
  const uint64_t step = u64_of(all, "step", path);
  if (step > (uint64_t(1) << 53))  // also catches a negative step, read as a huge unsigned number
    throw SafetensorsError("load_training_state: " + path + ": step " + std::to_string((int64_t)step) +
                           " is not a step count a run reaches (0 to 2^53)");
  info.step = (int64_t)step;
  model.load_state_dict(m, true);
  optimizer.load_state_dict(o);
  Generator& gen = default_generator();
  gen.manual_seed(seed);
  gen.set_offset(offset);
  return info;
}

}  // namespace heed::optim

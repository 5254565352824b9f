// training_state.h: one file that resumes a training run exactly where it stopped.
//
// A training checkpoint is a safetensors file holding the model ("model.*"), the optimizer ("optim.*"),
// the learning-rate schedule ("sched.*"), the step, and the global generator's state ("rng.seed",
// "rng.offset"). With all of them restored, training N steps, saving, loading in a fresh process and
// training N more gives bit-for-bit the weights of 2N uninterrupted steps: dropout masks and data
// shuffles continue the same Philox stream.
#pragma once
#include <cstdint>
#include <string>

#include "nn/module.h"
#include "nn/optim/optim.h"
#include "io/safetensors.h"

namespace heed::optim {

/// Writes the checkpoint atomically (see heed::save). `schedule` may be empty.
void save_training_state(const std::string& path, const nn::Module& model, const Optimizer& optimizer,
                         const StateDict& schedule, int64_t step, const Metadata& metadata = {});

/// What load_training_state found besides the tensors it restored.
struct ResumeInfo {
  int64_t step = 0;
  StateDict schedule;  // hand to the schedule's load_state_dict (empty if none was saved)
  Metadata metadata;
};

/// Restores the model (strictly: every key must match), the optimizer, and the global generator.
ResumeInfo load_training_state(const std::string& path, nn::Module& model, Optimizer& optimizer);

/// The same with a schedule (anything with state_dict() and load_state_dict()).
template <class Schedule>
void save_training_state(const std::string& path, const nn::Module& model, const Optimizer& optimizer,
                         const Schedule& schedule, int64_t step, const Metadata& metadata = {}) {
  save_training_state(path, model, optimizer, schedule.state_dict(), step, metadata);
}
template <class Schedule>
ResumeInfo load_training_state(const std::string& path, nn::Module& model, Optimizer& optimizer, Schedule& schedule) {
  ResumeInfo info = load_training_state(path, model, optimizer);
  schedule.load_state_dict(info.schedule);
  return info;
}

}  // namespace heed::optim

// schedule.cpp: the learning-rate schedules of schedule.h.
#include "nn/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "nn/module.h"

namespace heed::optim {

namespace {

// Reads the 0-d float tensor `key` of a schedule's state dict, or records why it cannot.
double read_scalar(const StateDict& dict, const std::string& key, std::vector<std::string>& problems) {
  auto it = dict.find(key);
  if (it == dict.end()) {
    problems.push_back("missing " + key);
    return 0;
  }
  if (it->second.numel() != 1 || !is_floating(it->second.dtype())) {
    problems.push_back(key + " must be one float, got " + shape_str(it->second.shape()) + " " +
                       dtype_name(it->second.dtype()));
    return 0;
  }
  return it->second.item();
}

// Every key of `dict` must be one of `known`; then throws nn::StateDictError if anything went wrong.
void finish(const char* name, const StateDict& dict, const std::vector<std::string>& known,
            std::vector<std::string> problems) {
  for (const auto& [key, t] : dict)
    if (std::find(known.begin(), known.end(), key) == known.end()) problems.push_back("unexpected " + key);
  if (problems.empty()) return;
  std::ostringstream msg;
  msg << name << ".load_state_dict:";
  for (const std::string& p : problems) msg << "\n  " << p;
  throw nn::StateDictError(msg.str());
}

}  // namespace

// ---- LRScheduler ----------------------------------------------------------------------------------------------
LRScheduler::LRScheduler(const char* name, Optimizer& optimizer) : name_(name), optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.num_groups(); g++) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::apply() {
  for (size_t g = 0; g < base_lrs_.size(); g++) optimizer_.set_lr(g, lr_at(last_epoch_, base_lrs_[g]));
}

void LRScheduler::step() {
  last_epoch_++;
  apply();
}

double LRScheduler::last_lr(size_t group) const { return lr_at(last_epoch_, base_lrs_.at(group)); }

StateDict LRScheduler::state_dict() const {
  StateDict d{{"last_epoch", scalar_tensor((double)last_epoch_, float64)}};
  for (size_t g = 0; g < base_lrs_.size(); g++)
    d["base_lrs." + std::to_string(g)] = scalar_tensor(base_lrs_[g], float64);
  return d;
}

void LRScheduler::load_state_dict(const StateDict& dict) {
  std::vector<std::string> problems, known{"last_epoch"};
  double epoch = read_scalar(dict, "last_epoch", problems);
  std::vector<double> bases;
  for (size_t g = 0; g < base_lrs_.size(); g++) {
    known.push_back("base_lrs." + std::to_string(g));
    bases.push_back(read_scalar(dict, known.back(), problems));
  }
  finish(name_, dict, known, problems);
  last_epoch_ = (int64_t)epoch;
  base_lrs_ = bases;
  apply();
}

// ---- StepLR ----------------------------------------------------------------------------------------------------
StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler("StepLR", optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size < 1) throw Error("StepLR: step_size must be >= 1, got " + std::to_string(step_size));
  apply();
}

double StepLR::lr_at(int64_t t, double base) const { return base * std::pow(gamma_, (double)(t / step_size_)); }

// ---- WarmupCosineLR ---------------------------------------------------------------------------------------------
WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr)
    : LRScheduler("WarmupCosineLR", optimizer),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  if (warmup_steps < 0 || total_steps <= warmup_steps)
    throw Error("WarmupCosineLR: needs 0 <= warmup_steps < total_steps, got warmup_steps " +
                std::to_string(warmup_steps) + " and total_steps " + std::to_string(total_steps));
  if (min_lr < 0) throw Error("WarmupCosineLR: min_lr must be >= 0, got " + std::to_string(min_lr));
  apply();
}

// Warmup starts at base/warmup rather than 0, so that the first step is not wasted; the cosine then falls
// from base at t = warmup_steps to min_lr at t = total_steps, steepest in the middle.
double WarmupCosineLR::lr_at(int64_t t, double base) const {
  if (t < warmup_steps_) return base * (double)(t + 1) / (double)warmup_steps_;
  if (t >= total_steps_) return min_lr_;
  double progress = (double)(t - warmup_steps_) / (double)(total_steps_ - warmup_steps_);
  return min_lr_ + (base - min_lr_) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

// ---- ReduceLROnPlateau ------------------------------------------------------------------------------------------
ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const Options& options)
    : optimizer_(optimizer),
      options_(options),
      best_(options.mode == Mode::Min ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity()) {
  if (!(options.factor < 1 && options.factor >= 0))
    throw Error("ReduceLROnPlateau: factor must be in [0,1), got " + std::to_string(options.factor));
  if (options.patience < 0 || options.cooldown < 0 || options.threshold < 0 || options.min_lr < 0)
    throw Error("ReduceLROnPlateau: patience, cooldown, threshold and min_lr must be >= 0");
}

bool ReduceLROnPlateau::is_better(double metric) const {
  if (options_.mode == Mode::Min) return metric < best_ * (1.0 - options_.threshold);
  return metric > best_ * (1.0 + options_.threshold);
}

void ReduceLROnPlateau::step(double metric) {
  last_epoch_++;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    num_bad_epochs_++;
  }
  if (cooldown_counter_ > 0) {  // just reduced: give the new lr time before judging it
    cooldown_counter_--;
    num_bad_epochs_ = 0;
  }
  if (num_bad_epochs_ > options_.patience) {
    for (size_t g = 0; g < optimizer_.num_groups(); g++) {
      double old_lr = optimizer_.lr(g);
      double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
      if (old_lr - new_lr > options_.eps) optimizer_.set_lr(g, new_lr);
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
}

StateDict ReduceLROnPlateau::state_dict() const {
  return {{"best", scalar_tensor(best_, float64)},
          {"num_bad_epochs", scalar_tensor((double)num_bad_epochs_, float64)},
          {"cooldown_counter", scalar_tensor((double)cooldown_counter_, float64)},
          {"last_epoch", scalar_tensor((double)last_epoch_, float64)}};
}

void ReduceLROnPlateau::load_state_dict(const StateDict& dict) {
  std::vector<std::string> problems;
  double best = read_scalar(dict, "best", problems);
  double bad = read_scalar(dict, "num_bad_epochs", problems);
  double cooldown = read_scalar(dict, "cooldown_counter", problems);
  double epoch = read_scalar(dict, "last_epoch", problems);
  finish("ReduceLROnPlateau", dict, {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"}, problems);
  best_ = best;
  num_bad_epochs_ = (int64_t)bad;
  cooldown_counter_ = (int64_t)cooldown;
  last_epoch_ = (int64_t)epoch;
}

}  // namespace heed::optim

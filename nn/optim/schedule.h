// schedule.h: learning-rate schedules. Each one owns a reference to an optimizer and sets the lr of
// every parameter group; call its step() once per optimizer step (or per epoch), after optimizer.step():
//
//   optim::AdamW opt(model.parameters(), {.lr = 6e-4});
//   optim::WarmupCosineLR sched(opt, /*warmup_steps=*/100, /*total_steps=*/5000, /*min_lr=*/6e-5);
//   for (int64_t it = 0; it < 5000; it++) { ...; opt.step(); sched.step(); }
//
//   StepLR            lr = base · gamma^floor(t / step_size)                        (torch.optim.lr_scheduler.StepLR)
//   WarmupCosineLR    linear warmup to base, then a half cosine down to min_lr       (as nanoGPT's get_lr)
//   ReduceLROnPlateau lr *= factor when a metric stops improving                      (torch's, mode min or max)
//
// A schedule keeps a reference to its optimizer, which must outlive it. "base" is each group's lr when
// the schedule is built. A schedule sets the lr for t = 0 as soon as it is
// built, as PyTorch's do; t then counts step() calls. State dicts are flat maps of 0-d float64 tensors,
// like the optimizers' (nn/optim/optim.h), so the two can be saved side by side.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/optim/optim.h"

namespace heed::optim {

/// The schedules that are a function of the step count: lr(t) per group from the group's base lr.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// t += 1, then sets every group's lr to lr_at(t).
  void step();
  /// The lr this schedule gives group `group` now.
  double last_lr(size_t group = 0) const;
  /// t: the number of step() calls so far.
  int64_t last_epoch() const { return last_epoch_; }
  /// "last_epoch" and "base_lrs.<group>".
  StateDict state_dict() const;
  /// Restores t and the base lrs, then sets the optimizer's lrs for that t.
  void load_state_dict(const StateDict& dict);

 protected:
  LRScheduler(const char* name, Optimizer& optimizer);
  /// The lr at step t of a group whose base lr is `base`.
  virtual double lr_at(int64_t t, double base) const = 0;
  /// Sets every group's lr for the current t; each constructor calls it once at the end.
  void apply();

  const char* name_;
  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = 0;
};

class StepLR : public LRScheduler {
 public:
  /// lr = base · gamma^floor(t / step_size)
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 private:
  double lr_at(int64_t t, double base) const override;
  int64_t step_size_;
  double gamma_;
};

class WarmupCosineLR : public LRScheduler {
 public:
  /// t < warmup_steps: base·(t+1)/warmup_steps;  then min_lr + (base - min_lr)·½(1 + cos(π·progress)),
  /// progress = (t - warmup_steps) / (total_steps - warmup_steps);  min_lr from total_steps on.
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr = 0);

 private:
  double lr_at(int64_t t, double base) const override;
  int64_t warmup_steps_, total_steps_;
  double min_lr_;
};

/// Lowers the lr when a metric has stopped improving, as torch.optim.lr_scheduler.ReduceLROnPlateau with
/// threshold_mode "rel": a metric improves on the best so far when it is below best·(1 - threshold)
/// (mode Min) or above best·(1 + threshold) (mode Max). After more than `patience` epochs without an
/// improvement every group's lr becomes max(lr·factor, min_lr), and the next `cooldown` epochs do not
/// count as bad.
struct ReduceLROnPlateauOptions {
  enum class Mode { Min, Max };
  Mode mode = Mode::Min;
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  int64_t cooldown = 0;
  double min_lr = 0;
  double eps = 1e-8;  // a change of the lr smaller than this is not made
};
class ReduceLROnPlateau {
 public:
  using Options = ReduceLROnPlateauOptions;
  using Mode = Options::Mode;
  explicit ReduceLROnPlateau(Optimizer& optimizer, const Options& options = {});
  ReduceLROnPlateau(const ReduceLROnPlateau&) = delete;
  ReduceLROnPlateau& operator=(const ReduceLROnPlateau&) = delete;

  /// Feeds one epoch's metric (a validation loss, in mode Min).
  void step(double metric);
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t last_epoch() const { return last_epoch_; }
  /// "best", "num_bad_epochs", "cooldown_counter", "last_epoch".
  StateDict state_dict() const;
  void load_state_dict(const StateDict& dict);

 private:
  bool is_better(double metric) const;
  Optimizer& optimizer_;
  Options options_;
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

}  // namespace heed::optim

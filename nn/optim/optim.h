// optim.h: SGD, Adam, AdamW and RMSprop with the exact update rules of PyTorch 1.13 (the single-tensor
// loops in torch/optim/*.py), parameter groups, and state dicts that can be saved as safetensors.
//
//   optim::Adam opt(model.parameters(), {.lr = 1e-3});
//   for (...) {
//     opt.zero_grad();
//     loss(model, batch).backward();
//     opt.step();
//   }
//
// Parameter groups give parts of a model their own options; each group's Options is complete, with the
// struct's defaults for what it leaves out:
//
//   optim::AdamW opt({{decay, {.lr = 1e-3, .weight_decay = 0.1}},
//                     {no_decay, {.lr = 1e-3, .weight_decay = 0}}});
//
// Parameters are numbered across the groups in order; that number is the <i> of the state dict's
// "state.<i>.exp_avg". The state dict is flat, std::map<std::string, Tensor>, so heed::save writes it as
// safetensors:
//
//   state.<i>.step              0-d float64: the updates parameter i has had (Adam, AdamW, RMSprop)
//   state.<i>.<buffer>          exp_avg, exp_avg_sq, max_exp_avg_sq, momentum_buffer, square_avg, grad_avg
//   param_groups.<g>.params     int64 (n): the indices of the group's parameters
//   param_groups.<g>.<option>   0-d float64: lr, weight_decay, beta1, ... (flags as 0 or 1)
//
// A parameter's state appears after its first update, as in PyTorch. A step skips every parameter whose
// grad is undefined, and its step count does not advance.
//
// How a step runs: under NoGradGuard, one fused loop per parameter reads p, g and the buffers once and
// writes them once (an Adam step is a single pass over p, g, m, v), rather than a chain of tensor ops that
// would sweep memory once per op. The loops are in tensor/kernels/optim.h, in two levels as simd.h's
// kernels: a plain scalar reference, and an xsimd version that tests check against it;
// heed::kernels::set_use_simd(false) selects the reference. Each update writes into the parameter's
// storage in place and bumps its version, so a backward that saved the old value fails loudly instead of
// using the new one.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tensor/tensor.h"

namespace heed::optim {

using StateDict = std::map<std::string, Tensor>;

/// Some parameters and the options they share. (The Options structs live outside their optimizer class
/// only so that `= {}` can default them: C++ cannot use a nested struct's member defaults before the
/// enclosing class is complete.)
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;
  Options options = {};
};

/// The base of every optimizer: parameter groups, per-parameter state, the state dict, and the learning
/// rate that schedules (nn/optim/schedule.h) read and set.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// Resets every parameter's gradient to undefined (as Module::zero_grad and PyTorch's set_to_none).
  void zero_grad();

  size_t num_groups() const { return group_params_.size(); }
  /// The parameters of one group, in order.
  std::vector<Tensor> params(size_t group) const;
  double lr(size_t group = 0) const;
  /// Sets the learning rate of every group, or of one.
  void set_lr(double lr);
  void set_lr(size_t group, double lr);

  /// The state, the groups' options and their parameter indices; the tensors of `state.*` share storage
  /// with the optimizer's buffers (clone them for a snapshot).
  StateDict state_dict() const;
  /// Restores a state dict from an optimizer of the same type over the same parameter shapes and groups.
  /// Every key must be known and every known key present (options and the state of each parameter that
  /// has any); buffers are copied, converted to the parameter's dtype. Throws nn::StateDictError listing
  /// every problem.
  void load_state_dict(const StateDict& dict);

 protected:
  /// One option of a group, by name: a number or a flag.
  using OptionRef = std::variant<double*, bool*>;
  using OptionList = std::vector<std::pair<const char*, OptionRef>>;

  struct ParamState {
    Tensor param;
    size_t group = 0;
    double step = 0;                          // updates so far (a skipped step does not count)
    std::map<std::string, Tensor> buffers;    // created at the parameter's first update
  };

  /// `name` is the class name for error messages ("Adam"); the groups hold each group's parameters.
  Optimizer(const char* name, const std::vector<std::vector<Tensor>>& groups);

  /// Each optimizer lists its options (lr first), so that the base can save, load and set them by name.
  virtual OptionList options(size_t group) = 0;
  /// The buffers a parameter of this group has once it has been updated.
  virtual std::vector<std::string> buffer_names(size_t group) const = 0;
  /// Whether state.<i>.step is kept (PyTorch's SGD keeps none).
  virtual bool counts_steps() const { return true; }
  /// Throws heed::Error when a group's options break the optimizer's rules ("Adam: group 0: beta1 must
  /// be in [0,1), got 5"): from the constructor, and from load_state_dict for options read from a file.
  virtual void check_options(size_t group) const = 0;

  /// The gradient of s.param, contiguous, or undefined when there is none; checks shape and dtype.
  Tensor gradient(const ParamState& s) const;
  /// The named buffer of s, zeros of the parameter's shape and dtype when first asked for.
  Tensor& buffer(ParamState& s, const std::string& name);
  /// Marks an in-place write to s.param for autograd's saved-tensor check.
  static void bump_version(const Tensor& param, const char* op);
  /// Throws "Adam.lr: group 2 out of range (2 groups)".
  void check_group(const char* what, size_t group) const;
  OptionList options_for_reading(size_t group) const;

  const char* name_;
  std::vector<ParamState> state_;                   // every parameter, numbered across groups
  std::vector<std::vector<size_t>> group_params_;   // group -> parameter indices
};

// ---- SGD ---------------------------------------------------------------------------------------------------
/// d = g (+ wd·p);  buf = momentum·buf + (1-dampening)·d (buf = d at the first step);
/// d = nesterov ? d + momentum·buf : buf;  p -= lr·d.  maximize ascends (d = -g).
struct SGDOptions {
  double lr = 1e-3;  // PyTorch 1.13 requires lr; heed's default is later PyTorch's
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
};
class SGD : public Optimizer {
 public:
  using Options = SGDOptions;
  using Group = ParamGroup<Options>;
  SGD(const std::vector<Tensor>& params, const Options& options = {});
  explicit SGD(const std::vector<Group>& groups);
  void step() override;
  const Options& options_of(size_t group) const { return options_.at(group); }

 private:
  OptionList options(size_t group) override;
  void check_options(size_t group) const override;
  std::vector<std::string> buffer_names(size_t group) const override;
  bool counts_steps() const override { return false; }
  std::vector<Options> options_;
};

// ---- Adam and AdamW ------------------------------------------------------------------------------------------
/// t += 1;  g (+ wd·p for Adam);  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
/// v̂ = amsgrad ? (vmax = max(vmax, v)) : v;  p -= lr/(1-β1^t) · m / (√v̂ / √(1-β2^t) + eps).
/// AdamW decays the weight apart from the gradient (Loshchilov and Hutter 2019): p *= 1 - lr·wd first.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
};
class Adam : public Optimizer {
 public:
  using Options = AdamOptions;
  using Group = ParamGroup<Options>;
  Adam(const std::vector<Tensor>& params, const Options& options = {});
  explicit Adam(const std::vector<Group>& groups);
  void step() override;
  const Options& options_of(size_t group) const { return options_.at(group); }

 protected:
  Adam(const char* name, const std::vector<Group>& groups, bool decoupled);

 private:
  OptionList options(size_t group) override;
  void check_options(size_t group) const override;
  std::vector<std::string> buffer_names(size_t group) const override;
  std::vector<Options> options_;
  bool decoupled_ = false;  // AdamW
};

/// Adam's options with PyTorch's AdamW default, weight_decay = 1e-2.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};
/// Adam with decoupled weight decay.
class AdamW : public Adam {
 public:
  using Options = AdamWOptions;
  using Group = ParamGroup<Options>;
  AdamW(const std::vector<Tensor>& params, const Options& options = {});
  explicit AdamW(const std::vector<Group>& groups);
};

// ---- RMSprop -------------------------------------------------------------------------------------------------
/// g (+ wd·p);  s = α·s + (1-α)·g²;  centered: a = α·a + (1-α)·g, s̃ = s - a²;  r = √s̃ + eps;
/// momentum: buf = momentum·buf + g/r, p -= lr·buf;  else p -= lr·g/r.
struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
};
class RMSprop : public Optimizer {
 public:
  using Options = RMSpropOptions;
  using Group = ParamGroup<Options>;
  RMSprop(const std::vector<Tensor>& params, const Options& options = {});
  explicit RMSprop(const std::vector<Group>& groups);
  void step() override;
  const Options& options_of(size_t group) const { return options_.at(group); }

 private:
  OptionList options(size_t group) override;
  void check_options(size_t group) const override;
  std::vector<std::string> buffer_names(size_t group) const override;
  std::vector<Options> options_;
};

}  // namespace heed::optim

// module.h: nn::Module, the base of every layer and model. Read after autograd/node.h.
//
// A module is a plain struct. Its parameters are Tensor members and its sub-modules are plain members;
// the constructor registers each once by name, so that named_parameters() and the state dict can find
// them. There is no holder type and no macro:
//
//   struct MLP : nn::Module {
//     nn::Linear fc1{784, 400}, fc2{400, 10};
//     MLP() { register_module("fc1", fc1); register_module("fc2", fc2); }
//     Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))); }
//   };
//   MLP model;
//   Tensor logits = model(x);   // calls forward, as a PyTorch module's __call__ does
//
// Calling a module. Module declares `virtual Tensor forward(const Tensor&)`, and its operator() calls it;
// a struct that declares `Tensor forward(const Tensor& x)` overrides it without writing `override` (the
// signature alone does it), so `model(x)` works for every such module, the user's included. Without
// C++23's deducing this, a base class cannot see a derived forward of any other signature, so:
//   - a forward with other arguments (`forward(x, mask)`) is called as `m.forward(x, mask)`, or the
//     module adds its own operator() with those arguments (MultiheadAttention does);
//   - a forward(const Tensor&) that returns something else (a struct of outputs) would clash with the
//     virtual, so such a module names that member otherwise (`encode`, `forward_with_attention`) or takes
//     its input by another type; calling the plain `model(x)` on a module without forward(const Tensor&)
//     throws an Error naming the module.
//
// Registration stores pointers to the members, so a Module cannot be copied or moved (the pointers would
// dangle); build it in place, or hold it by std::unique_ptr.
#pragma once
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/node.h"
#include "tensor/tensor.h"

namespace heed::nn {

/// A double as Python's repr prints it (0.01, 1.0, 1e-05), so that extra_repr() reads as PyTorch's.
std::string py_float(double v);

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

/// Thrown by load_state_dict; the message lists every missing, unexpected and mis-shaped key.
struct StateDictError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Module {
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The type name printed by operator<< ("Linear").
  virtual std::string type_name() const { return "Module"; }
  /// Extra text after the type name ("in_features=784, out_features=400").
  virtual std::string extra_repr() const { return ""; }

  // ---- calling ----------------------------------------------------------------------------------------------
  /// The computation; a derived `Tensor forward(const Tensor&)` overrides it. This default throws an
  /// Error that names the module (its forward takes other arguments: call m.forward(...)).
  virtual Tensor forward(const Tensor& x);
  /// model(x) is model.forward(x), as in PyTorch.
  Tensor operator()(const Tensor& input) { return forward(input); }

  // ---- registration (call once, in the constructor) -------------------------------------------------------
  /// Registers `*t` as a parameter: marks it requires_grad and returns it.
  Tensor& register_parameter(const std::string& name, Tensor& t);
  /// A buffer is state that is saved but not trained (BatchNorm's running mean, spectral norm's u).
  Tensor& register_buffer(const std::string& name, Tensor& t);
  template <class M>
  M& register_module(const std::string& name, M& m) {
    add_child(name, &m);
    return m;
  }

  // ---- traversal -------------------------------------------------------------------------------------------
  /// Every parameter, depth first in registration order, named "fc1.weight" etc. Undefined tensors
  /// (a Linear without bias) are skipped.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  /// The direct sub-modules, in registration order.
  std::vector<std::pair<std::string, Module*>> named_children() const;
  std::vector<Module*> children() const;
  /// This module ("" first) and every descendant, with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules() const;

  // ---- modes and gradients -----------------------------------------------------------------------------------
  /// Training mode (dropout active, batch norm uses batch statistics) for this module and all below it.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Resets every parameter's gradient (to undefined, which frees it, as PyTorch's set_to_none).
  void zero_grad();

  // ---- state dict ----------------------------------------------------------------------------------------------
  /// Parameters and buffers by dotted name; the tensors share storage with the module's.
  StateDict state_dict() const;
  /// Copies values into the module's tensors (in place, so optimizers keep pointing at them). With
  /// strict, any missing or unexpected key is an error; a shape or dtype mismatch is always one.
  void load_state_dict(const StateDict& dict, bool strict = true);

  /// Converts every floating parameter and buffer, here and below, to `dtype` (e.g. float64 for
  /// gradcheck). Parameters stay leaves that require grad; optimizers built earlier must be rebuilt.
  void to(DType dtype);

  /// The number of parameter elements.
  int64_t num_parameters() const;

 protected:
  // For containers (Sequential, ModuleList) that own their children.
  void add_child(const std::string& name, Module* m);

 private:
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

/// The module tree with each parameter's shape, and the total parameter count, e.g.
///   MLP(
///     (fc1): Linear(in_features=784, out_features=400)  weight (400,784) bias (400)
///     ...
///   )  # 318,010 parameters
std::ostream& operator<<(std::ostream& os, const Module& m);

/// Throws "Linear: expected input (...,784), got (32,785)": the standard shape error of a layer.
[[noreturn]] void shape_error(const std::string& layer, const std::string& expected, const Shape& got);

}  // namespace heed::nn

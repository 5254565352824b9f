// node.h: the autograd graph. Read this after tensor/tensor.h.
//
// Reverse mode in one paragraph. Every differentiable op, as it runs forward, calls `record`, which gives
// its output a Node: the op's name, an edge to the Node of each input, and a `backward` closure that maps
// dout (the gradient of the loss with respect to the output) to one gradient per input (the chain rule for
// that op alone). A leaf tensor (a parameter) has no Node of its own; its edge points at an
// AccumulateGrad node that adds whatever arrives into `leaf.grad()`. `loss.backward()` (engine.cpp) sorts
// the Nodes reachable from the loss so that every Node runs after all the Nodes that feed it gradient,
// then runs them in that order, summing the gradients that meet at each one.
//
// Backward closures are written with heed's own differentiable ops. Run with grad mode off (the usual
// case) they just compute numbers; run with grad mode on (`create_graph=true`) they record a new graph, and
// that graph's backward is the second derivative. WGAN-GP's gradient penalty needs exactly that.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace heed {

// ---- grad modes ----------------------------------------------------------------------------------------
/// Is recording on for this thread? (Off inside NoGradGuard, and inside a plain backward.)
bool grad_enabled();
void set_grad_enabled(bool on);
/// RAII: no graph is recorded in this scope (optimizer steps, evaluation, initialisation).
struct NoGradGuard {
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};
/// RAII: the scope records (or not) as told, e.g. inside a checkpointed recomputation.
struct GradModeGuard {
  explicit GradModeGuard(bool on) : prev_(grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;
 private:
  bool prev_;
};

/// Anomaly mode: while a guard lives, every op's output and every backward gradient is checked for
/// NaN/Inf, and the first bad value throws an AnomalyError naming the forward op and its input shapes.
bool anomaly_enabled();
struct DetectAnomalyGuard {
  DetectAnomalyGuard();
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;
 private:
  bool prev_;
};
struct AnomalyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Backward misuse: a second backward without retain_graph, an in-place change to a saved tensor,
/// double backward through a first-order-only op.
struct AutogradError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- saved tensors -----------------------------------------------------------------------------------
// A tensor an op keeps for its backward. It remembers the storage version at save time; if an in-place
// op bumps the version before backward runs, `get` throws instead of letting backward read changed values.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  /// The saved tensor; throws AutogradError if it was modified in place since it was saved.
  Tensor get() const;

 private:
  Tensor t_;
  uint64_t version_ = 0;
};

// ---- the graph ---------------------------------------------------------------------------------------
/// dout and the op's own output (undefined unless the op asked to save it) -> one gradient per input;
/// an undefined Tensor means "zero", so ops need not build zero tensors.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dout, const Tensor& out)>;

struct OpFlags {
  bool save_output = false;       // backward needs the output (exp, tanh, sigmoid, softmax, ...)
  bool first_order_only = false;  // backward uses raw kernels; create_graph through it throws
  bool reduces_broadcast = false; // backward sums a broadcast gradient back down (shown by to_dot)
};

struct Node : std::enable_shared_from_this<Node> {
  const char* name = "";
  std::vector<std::shared_ptr<Node>> next;  // one edge per input; null when that input needs no gradient
  std::vector<Shape> input_shapes;          // for error messages, anomaly reports and to_dot
  std::vector<DType> input_dtypes;
  Shape out_shape;
  DType out_dtype = float32;
  BackwardFn backward;
  OpFlags flags;
  Tensor saved_output;          // a graph-free alias of the output, when flags.save_output
  uint64_t saved_output_version = 0;
  std::vector<Hook> hooks;      // hooks registered on the (non-leaf) output tensor
  std::shared_ptr<TensorImpl> leaf;  // AccumulateGrad nodes only: the leaf that receives the gradient
  bool released = false;        // set after a backward without retain_graph
  uint64_t seq = 0;             // creation order (for debugging; the depth-first sort needs no tie-break)

  bool is_accumulate() const { return leaf != nullptr; }
  /// Frees the graph behind this node without recursion (see engine.cpp).
  ~Node();
};

/// The edge a tensor's gradient flows into: its grad_fn, or (for a leaf that requires grad) its
/// AccumulateGrad node, created on first use and shared by all later uses.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

/// Called by every differentiable op after computing `out` with a raw kernel: when grad mode is on and
/// some input requires grad, attaches a Node with `backward`. Always runs the anomaly check.
Tensor attach(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward, OpFlags flags);

inline bool any_requires_grad(const std::vector<Tensor>& xs) {
  for (const Tensor& x : xs)
    if (x.defined() && x.requires_grad()) return true;
  return false;
}

/// `attach`, but the closure is only turned into a std::function when a graph is actually recorded,
/// so ops on tensors that need no gradient pay almost nothing.
template <class F>
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, F&& backward, OpFlags flags = {}) {
  if (!grad_enabled() || !any_requires_grad(inputs)) {
    if (anomaly_enabled()) return attach(name, std::move(out), inputs, nullptr, flags);
    return out;
  }
  return attach(name, std::move(out), inputs, BackwardFn(std::forward<F>(backward)), flags);
}

// ---- the op registry -----------------------------------------------------------------------------------
// Every differentiable op registers its name once, in the file that defines it. The gradcheck suite
// (tests/autograd/test_gradcheck.cpp) fails if an op is registered but missing from its table.
bool register_ops(std::initializer_list<const char*> names);
const std::vector<std::string>& registered_ops();

}  // namespace heed

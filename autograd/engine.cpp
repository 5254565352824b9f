// engine.cpp: grad modes, saved tensors, recording, and the backward pass itself.
#include "autograd/engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "tensor/kernels/kernels.h"
#include "tensor/view.h"

namespace heed {

// ---- modes ------------------------------------------------------------------------------------------------
// Thread-local, as in PyTorch: a data-loading thread's NoGradGuard must not switch off the training thread.
static thread_local bool t_grad_enabled = true;
static thread_local bool t_anomaly = false;
bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }
bool anomaly_enabled() { return t_anomaly; }
DetectAnomalyGuard::DetectAnomalyGuard() : prev_(t_anomaly) { t_anomaly = true; }
DetectAnomalyGuard::~DetectAnomalyGuard() { t_anomaly = prev_; }

// The node whose backward is running, so that a SavedTensor's error can name the op that saved it.
static thread_local const Node* t_current_node = nullptr;

// ---- the op registry ----------------------------------------------------------------------------------
static std::vector<std::string>& registry() {
  static std::vector<std::string> ops;
  return ops;
}
bool register_ops(std::initializer_list<const char*> names) {
  for (const char* n : names) registry().emplace_back(n);
  return true;
}
const std::vector<std::string>& registered_ops() { return registry(); }

// ---- saved tensors -----------------------------------------------------------------------------------------
SavedTensor::SavedTensor(const Tensor& t) : t_(t), version_(t.defined() ? t.storage()->version : 0) {}

// `op` is the op that saved the tensor: the node whose backward runs, or (for a saved output, checked just
// before that backward starts) the node itself.
static void check_version(uint64_t saved, const Tensor& t, const char* op) {
  if (t.storage()->version == saved) return;
  std::ostringstream os;
  os << "autograd: a tensor of shape " << shape_str(t.shape()) << " that '" << op
     << "' saved for backward was modified in place by '"
     << t.storage()->last_inplace_op << "' (version " << saved << " when saved, " << t.storage()->version
     << " now); clone it before the in-place op";
  throw AutogradError(os.str());
}

Tensor SavedTensor::get() const {
  if (t_.defined()) check_version(version_, t_, t_current_node ? t_current_node->name : "a backward");
  return t_;
}

// ---- freeing a graph -------------------------------------------------------------------------------------
// The default destructor would free a chain of nodes recursively (each node's `next` holds the one below),
// and 200,000 chained ops would overflow the stack. Instead, a dying node takes over the edges of every
// child it is the last owner of, and lets those children die with no edges left: a loop, not a recursion.
// The child's closure goes first, while the child's `next` still keeps the grandchildren alive, so freeing
// the closure's saved tensors never starts a deep chain either.
Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack = std::move(next);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    if (n && n.use_count() == 1) {
      n->backward = nullptr;
      n->saved_output = Tensor();
      for (auto& c : n->next) stack.push_back(std::move(c));
      n->next.clear();
    }
  }
}

// ---- recording ---------------------------------------------------------------------------------------------
static std::atomic<uint64_t> g_seq{0};

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  // A leaf: reuse its AccumulateGrad node while any graph still holds it, so that all uses of the leaf in
  // one graph meet at one node and their gradients are summed before being accumulated.
  TensorImpl* impl = t.impl();
  if (auto acc = impl->grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<Node>();
  acc->name = "AccumulateGrad";
  acc->leaf = t.impl_ptr();
  acc->out_shape = t.shape();
  acc->out_dtype = t.dtype();
  acc->seq = g_seq++;
  impl->grad_accumulator = acc;
  return acc;
}

static bool has_nan_or_inf(const Tensor& t) {
  if (!is_floating(t.dtype())) return false;
  Tensor c = view::contiguous(t);
  return dispatch_floating(t.dtype(), "anomaly", [&](auto zero) {
    using T = decltype(zero);
    const T* p = c.data_ptr<T>();
    for (int64_t i = 0; i < c.numel(); i++)
      if (!std::isfinite(p[i])) return true;
    return false;
  });
}

static std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (size_t i = 0; i < shapes.size(); i++) s += (i ? ", " : "") + shape_str(shapes[i]);
  return s;
}

Tensor attach(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward, OpFlags flags) {
  // Inside a backward closure the engine checks the closure's results itself, naming the backward op.
  if (anomaly_enabled() && !t_current_node && has_nan_or_inf(out)) {
    std::vector<Shape> shapes;
    for (const Tensor& x : inputs) shapes.push_back(x.defined() ? x.shape() : Shape{});
    throw AnomalyError(std::string("anomaly: forward op '") + name + "' produced NaN or Inf; input shapes " +
                       shapes_str(shapes) + ", output shape " + shape_str(out.shape()));
  }
  if (!backward) return out;
#ifndef NDEBUG
  // Debug builds (CI's sanitizer build) refuse an op that skipped register_ops, so that the gradcheck
  // table's coverage test cannot be bypassed by forgetting to register.
  if (std::find(registry().begin(), registry().end(), name) == registry().end())
    throw AutogradError(std::string("record: op '") + name +
                        "' is not registered; call register_ops in the file that defines it");
#endif
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(backward);
  node->flags = flags;
  node->seq = g_seq++;
  node->out_shape = out.shape();
  node->out_dtype = out.dtype();
  node->next.reserve(inputs.size());
  for (const Tensor& x : inputs) {
    node->next.push_back(gradient_edge(x));
    node->input_shapes.push_back(x.defined() ? x.shape() : Shape{});
    node->input_dtypes.push_back(x.defined() ? x.dtype() : float32);
  }
  // `out` may be a fresh kernel result or a view that shares an input's TensorImpl fields; either way it
  // gets its own impl here, so that setting grad_fn never touches an input.
  auto impl = std::make_shared<TensorImpl>(*out.impl());
  impl->grad.reset();
  impl->grad_accumulator.reset();
  impl->hooks.clear();
  impl->post_accumulate_grad_hooks.clear();
  impl->requires_grad = true;
  impl->grad_fn = node;
  Tensor result(impl);
  if (flags.save_output) {
    // Saving `result` itself would make a cycle (result -> node -> result). Save a graph-free alias of
    // the same storage; backward re-attaches this node when it needs the output (see run_node).
    node->saved_output = view_of(result, result.shape(), result.strides(), result.offset());
    node->saved_output_version = result.storage()->version;
  }
  return result;
}

// ---- Tensor's autograd methods ----------------------------------------------------------------------------
Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf())
    throw Error("requires_grad_: only a leaf can be marked; this tensor is the output of '" +
                std::string(grad_fn()->name) + "' (use detach() first)");
  if (on && !is_floating(dtype()))
    throw Error(std::string("requires_grad_: only float tensors can require grad, this one is ") + dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

void Tensor::register_hook(Hook fn) const {
  if (!requires_grad())
    throw Error("register_hook: the tensor of shape " + shape_str(shape()) + " does not require grad");
  if (grad_fn()) grad_fn()->hooks.push_back(std::move(fn));
  else impl_->hooks.push_back(std::move(fn));
}

void Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook fn) const {
  if (!requires_grad() || !is_leaf())
    throw Error("register_post_accumulate_grad_hook: the tensor of shape " + shape_str(shape()) +
                " is not a leaf that requires grad");
  impl_->post_accumulate_grad_hooks.push_back(std::move(fn));
}

// ---- the backward pass -------------------------------------------------------------------------------------
// Topological order by an iterative depth-first search (an explicit stack, so a chain of 200,000 ops cannot
// overflow the C++ stack). Reversed post-order puts every node before the nodes it sends gradient to, so by
// the time a node runs, every contribution to its gradient has arrived.
static std::vector<Node*> topological_order(const std::vector<Node*>& roots) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;  // (node, index of the next edge to visit)
  for (Node* r : roots) {
    if (!r || !seen.insert(r).second) continue;
    stack.push_back({r, 0});
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->next.size()) {
        Node* child = n->next[i++].get();
        if (child && seen.insert(child).second) stack.push_back({child, 0});
      } else {
        post.push_back(n);
        stack.pop_back();
      }
    }
  }
  std::reverse(post.begin(), post.end());
  return post;
}

static Tensor apply_hooks(const std::vector<Hook>& hooks, Tensor g) {
  for (const Hook& h : hooks) {
    Tensor r = h(g);
    if (r.defined()) {
      if (r.shape() != g.shape())
        throw Error("register_hook: a hook returned shape " + shape_str(r.shape()) + " for a gradient of shape " +
                    shape_str(g.shape()));
      g = r;
    }
  }
  return g;
}

static void accumulate(std::unordered_map<Node*, Tensor>& buffers, Node* n, const Tensor& g) {
  Tensor& b = buffers[n];
  b = b.defined() ? add(b, g) : g;
}

// Runs one node's backward and returns the gradients for its inputs.
static std::vector<Tensor> run_node(Node* n, const Tensor& dout, bool create_graph) {
  if (n->released || !n->backward)
    throw AutogradError(
        std::string("backward: trying to run backward through the graph a second time (op '") + n->name +
        "'); its saved tensors were freed after the first backward. Pass retain_graph=true to the first "
        "backward if you need a second.");
  if (create_graph && n->flags.first_order_only)
    throw AutogradError(std::string("backward: op '") + n->name +
                        "' has a first-order-only backward (a raw kernel), so create_graph=true cannot differentiate "
                        "through it");
  Tensor out;
  if (n->flags.save_output) {
    check_version(n->saved_output_version, n->saved_output, n->name);  // before t_current_node is n
    // Re-attach the node to the output alias, so that a backward formula using the output (exp' = exp)
    // is itself differentiable in create_graph mode.
    auto impl = std::make_shared<TensorImpl>(*n->saved_output.impl());
    impl->requires_grad = true;
    impl->grad_fn = n->shared_from_this();
    out = Tensor(impl);
  }
  const Node* prev = t_current_node;
  t_current_node = n;
  std::vector<Tensor> grads;
  try {
    GradModeGuard mode(create_graph);
    grads = n->backward(dout, out);
  } catch (...) {
    t_current_node = prev;
    throw;
  }
  t_current_node = prev;
  if (grads.size() != n->next.size())
    throw AutogradError(std::string("backward of '") + n->name + "' returned " + std::to_string(grads.size()) +
                        " gradients for " + std::to_string(n->next.size()) + " inputs");
  for (size_t i = 0; i < grads.size(); i++) {
    if (!grads[i].defined() || !n->next[i]) continue;
    if (grads[i].shape() != n->input_shapes[i])
      throw AutogradError(std::string("backward of '") + n->name + "' gave a gradient of shape " +
                          shape_str(grads[i].shape()) + " for input " + std::to_string(i) + " of shape " +
                          shape_str(n->input_shapes[i]));
    // Type promotion (float32 + float64 is float64) hands a float32 input a float64 gradient: PyTorch
    // converts it back to the input's dtype, and so do we.
    if (grads[i].dtype() != n->input_dtypes[i] && is_floating(n->input_dtypes[i]))
      grads[i] = grads[i].to(n->input_dtypes[i]);
    if (anomaly_enabled() && has_nan_or_inf(grads[i]))
      throw AnomalyError(std::string("anomaly: the backward of '") + n->name +
                         "' produced NaN or Inf in the gradient of input " + std::to_string(i) +
                         "; the forward op's input shapes were " + shapes_str(n->input_shapes));
  }
  return grads;
}

// The engine. `capture`, when given, lists the nodes whose incoming gradient heed::grad returns; then
// leaves are not touched and only the nodes that lead to a captured one run.
static std::vector<Tensor> run_backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds,
                                        bool retain_graph, bool create_graph, const std::vector<Tensor>* inputs) {
  std::vector<Node*> roots;
  std::vector<std::shared_ptr<Node>> keep_alive;  // root edges made just now (a leaf's AccumulateGrad)
  std::unordered_map<Node*, Tensor> buffers;
  for (size_t i = 0; i < outputs.size(); i++) {
    const Tensor& y = outputs[i];
    if (!y.requires_grad())
      throw AutogradError("backward: output " + std::to_string(i) + " of shape " + shape_str(y.shape()) +
                          " does not require grad and has no grad_fn");
    Tensor seed = i < seeds.size() ? seeds[i] : Tensor();
    if (!seed.defined()) {
      if (y.numel() != 1)
        throw AutogradError("backward: a gradient can be created implicitly only for a one-element output; got shape " +
                            shape_str(y.shape()) + ", so pass a seed of that shape");
      seed = ones_like(y);
    } else if (seed.shape() != y.shape() || seed.dtype() != y.dtype()) {
      throw AutogradError("backward: seed " + shape_str(seed.shape()) + " " + dtype_name(seed.dtype()) +
                          " does not match output " + shape_str(y.shape()) + " " + dtype_name(y.dtype()));
    }
    auto edge = gradient_edge(y);
    keep_alive.push_back(edge);
    roots.push_back(edge.get());
    GradModeGuard mode(create_graph);
    accumulate(buffers, edge.get(), seed);
  }

  std::vector<Node*> order = topological_order(roots);

  std::unordered_map<Node*, size_t> capture_index;
  std::unordered_set<Node*> needed;
  if (inputs) {
    for (size_t i = 0; i < inputs->size(); i++) {
      auto edge = gradient_edge((*inputs)[i]);
      if (!edge)
        throw AutogradError("grad: input " + std::to_string(i) + " of shape " + shape_str((*inputs)[i].shape()) +
                            " does not require grad");
      keep_alive.push_back(edge);
      capture_index[edge.get()] = i;
    }
    // A node is needed when a captured node can be reached from it: walk the order backwards.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      bool need = capture_index.count(n) > 0;
      for (auto& c : n->next) need = need || (c && needed.count(c.get()));
      if (need) needed.insert(n);
    }
  }

  std::vector<Tensor> captured(inputs ? inputs->size() : 0);
  for (Node* n : order) {
    auto it = buffers.find(n);
    Tensor g = it == buffers.end() ? Tensor() : it->second;
    if (it != buffers.end()) buffers.erase(it);  // free each gradient as soon as it is used
    if (inputs && !needed.count(n)) continue;
    if (g.defined()) {
      GradModeGuard mode(create_graph);
      g = apply_hooks(n->is_accumulate() ? n->leaf->hooks : n->hooks, g);
    }
    if (inputs) {
      auto c = capture_index.find(n);
      if (c != capture_index.end()) captured[c->second] = g;
      if (n->is_accumulate()) continue;
    } else if (n->is_accumulate()) {
      if (!g.defined()) continue;
      // The leaf's gradient: accumulated, so two backward calls add up (zero_grad resets it).
      GradModeGuard mode(create_graph);
      Tensor contribution = create_graph ? g : g.detach();
      Tensor old(n->leaf->grad);
      n->leaf->grad = (old.defined() ? add(old, contribution) : contribution).impl_ptr();
      for (const PostAccumulateGradHook& h : n->leaf->post_accumulate_grad_hooks) h(Tensor(n->leaf));
      continue;
    }
    if (g.defined()) {
      std::vector<Tensor> grads = run_node(n, g, create_graph);
      GradModeGuard mode(create_graph);
      for (size_t i = 0; i < grads.size(); i++)
        if (grads[i].defined() && n->next[i]) accumulate(buffers, n->next[i].get(), grads[i]);
    }
    if (!retain_graph) {
      n->released = true;
      n->backward = nullptr;  // frees the closure's saved tensors now, not when the graph dies
      n->saved_output = Tensor();
    }
  }
  return captured;
}

void Tensor::backward(const Tensor& seed, bool retain_graph, bool create_graph) const {
  run_backward({*this}, {seed}, retain_graph || create_graph, create_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph) {
  return grad(outputs, inputs, grad_outputs, create_graph, create_graph);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph) {
  return run_backward(outputs, grad_outputs, retain_graph, create_graph, &inputs);
}

// ---- DOT export ----------------------------------------------------------------------------------------------
std::string to_dot(const Tensor& root) {
  std::ostringstream os;
  os << "digraph heed {\n  rankdir=BT;\n  node [fontname=\"monospace\", fontsize=10];\n";
  auto edge = gradient_edge(root);
  if (!edge) {
    os << "  n0 [shape=ellipse, label=\"" << shape_str(root.shape()) << " " << dtype_name(root.dtype()) << "\"];\n}\n";
    return os.str();
  }
  std::vector<Node*> order = topological_order({edge.get()});
  std::unordered_map<Node*, size_t> id;
  for (size_t i = 0; i < order.size(); i++) id[order[i]] = i;
  for (Node* n : order) {
    os << "  n" << id[n];
    if (n->is_accumulate()) {
      os << " [shape=ellipse, label=\"leaf " << shape_str(n->out_shape) << " " << dtype_name(n->out_dtype) << "\"];\n";
    } else {
      os << " [shape=box, label=\"" << n->name << "\\n" << shape_str(n->out_shape) << " " << dtype_name(n->out_dtype);
      if (n->flags.reduces_broadcast) os << "\\nbroadcast grad reduced\", style=filled, fillcolor=orange";
      else os << "\"";
      os << "];\n";
    }
    for (auto& c : n->next)
      if (c) os << "  n" << id[c.get()] << " -> n" << id[n] << ";\n";  // data flows input -> op
  }
  os << "}\n";
  return os.str();
}

}  // namespace heed

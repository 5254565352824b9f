// tensor.h: heed's strided tensor. Read this file first; it is a table of contents.
//
// A Tensor is a cheap handle (a shared pointer) to a TensorImpl: a shape, strides and an offset into a
// reference-counted Storage. Copying a Tensor copies the handle, like a Python reference. Views share
// the Storage; `contiguous()` and `clone()` are the ways to get fresh memory.
//
// The op functions declared here are *differentiable*: their definitions live in autograd/, each next to
// its backward. The raw, graph-free kernels they call live in tensor/kernels/kernels.h.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace heed {

struct Node;  // autograd/node.h: one recorded op in the graph
namespace kernels {
struct FlashAttentionParams;  // tensor/kernels/flash_attention.h
}
class Tensor;
class Generator;

// Raw bytes, 64-byte aligned so that SIMD loads of contiguous data are cheap.
// `version` counts in-place writes: autograd compares it with the version it saw when it saved a
// tensor for backward, so an in-place change after saving is caught instead of giving a wrong gradient.
struct Storage {
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t nbytes = 0;
  uint64_t version = 0;
  const char* last_inplace_op = "";  // for the error message when `version` does not match
};

/// Bytes held by live Storages: now, and the peak since the last reset (for memory tests and benchmarks).
struct MemoryStats {
  int64_t current = 0, peak = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();

using Hook = std::function<Tensor(const Tensor&)>;
using PostAccumulateGradHook = std::function<void(const Tensor&)>;  // sees the leaf, its grad() up to date

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements, not bytes
  DType dtype = DType::Float32;
  // autograd state (see autograd/node.h): a leaf has no grad_fn; a result of a recorded op has one.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  std::weak_ptr<Node> grad_accumulator;  // a leaf's AccumulateGrad node, shared by all its uses
  std::vector<Hook> hooks;               // a leaf's hooks; a non-leaf keeps them on its grad_fn
  std::vector<PostAccumulateGradHook> post_accumulate_grad_hooks;  // a leaf's, run after its grad is updated
};

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage; used for "no gradient"
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata ---------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t size(int64_t dim) const;    /// negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return (int64_t)impl_->shape.size(); }
  int64_t numel() const { return numel_of(impl_->shape); }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  bool is_contiguous() const;
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }

  // ---- element access ---------------------------------------------------------------------------
  /// Pointer to element [0,...,0] (storage + offset); checks T against the dtype.
  template <class T> T* data_ptr() const;
  /// The value of a one-element tensor, converted to double.
  double item() const;
  template <class T> T item() const { return static_cast<T>(item()); }
  /// Element at a full index, converted to double (for tests and printing; slow).
  double at(const std::vector<int64_t>& index) const;
  /// All elements in row-major order, converted to T.
  template <class T> std::vector<T> to_vector() const;

  // ---- views: no copy; the result shares storage -------------------------------------------------
  Tensor view(const Shape& shape) const;     /// throws when the strides cannot be viewed as `shape`
  Tensor reshape(const Shape& shape) const;  /// a view when possible, else a copy; one dim may be -1
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor mT() const { return transpose(-2, -1); }  /// the matrix transpose of the last two dims
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  /// python's x[start:end:step]
  Tensor select(int64_t dim, int64_t index) const;  /// removes `dim`
  Tensor expand(const Shape& shape) const;          /// size-1 dims become stride-0; -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  /// `*this` when already contiguous, else a copy
  Tensor clone() const;       /// always a copy, differentiable
  Tensor to(DType dtype) const;

  // ---- autograd (autograd/engine.cpp) -------------------------------------------------------------
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);  /// marks a leaf; throws on a non-leaf
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl_->grad); }  /// undefined until a backward reaches it
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  Tensor detach() const;  /// same storage, cut out of the graph
  /// Seeds with 1 for a one-element tensor, else `seed` is required. Accumulates into leaves' grad.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  /// `fn` sees this tensor's gradient during backward and may return a replacement (or an undefined
  /// Tensor to keep it).
  void register_hook(Hook fn) const;
  /// For a leaf: `fn(leaf)` runs during backward right after the gradient is added into leaf.grad(), as
  /// PyTorch's register_post_accumulate_grad_hook (dist::DistributedDataParallel starts its all-reduce there).
  void register_post_accumulate_grad_hook(PostAccumulateGradHook fn) const;

  // ---- in-place (for optimizers and initialisers; they bump the storage version) --------------------
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double s);
  Tensor& zero_();
  Tensor& fill_(double v);
  Tensor& copy_(const Tensor& src);

  // ---- ops as methods (same as the free functions below) -----------------------------------------
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor sum_to_size(const Shape& shape) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor abs() const;
  Tensor pow(double p) const;
  Tensor square() const;
  Tensor matmul(const Tensor& other) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor norm() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- creation (tensor/tensor.cpp) -------------------------------------------------------------------
/// A new uninitialised contiguous tensor. Every size product is checked (shape.h: checked_numel), and a
/// size the system cannot give throws OutOfMemory naming the shape and the bytes asked for.
Tensor empty(const Shape& shape, DType dtype = float32);
/// The same, with `op` naming the caller in its errors: "Linear: out of memory allocating ... bytes".
Tensor empty(const char* op, const Shape& shape, DType dtype);
Tensor zeros(const Shape& shape, DType dtype = float32);
Tensor ones(const Shape& shape, DType dtype = float32);
Tensor full(const Shape& shape, double value, DType dtype = float32);
/// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, DType dtype = float32);
/// [start, start+step, ...) below `end`, like torch.arange.
Tensor arange(double start, double end, double step = 1, DType dtype = int64);
Tensor arange(int64_t end, DType dtype = int64);
Tensor linspace(double start, double end, int64_t steps, DType dtype = float32);
Tensor eye(int64_t n, DType dtype = float32);
/// Uniform on [0,1), from `gen` or the global generator (tensor/random.h).
Tensor rand(const Shape& shape, DType dtype = float32, Generator* gen = nullptr);
/// Standard normal.
Tensor randn(const Shape& shape, DType dtype = float32, Generator* gen = nullptr);
/// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen = nullptr);
/// Copies `values` into a new 1-d tensor (even for one value, as torch.tensor([v])). T picks the dtype.
template <class T> Tensor from_vector(const std::vector<T>& values);
/// The same in exactly `shape`; an empty shape {} makes a 0-d tensor of the one value (torch.tensor(v)).
template <class T> Tensor from_vector(const std::vector<T>& values, const Shape& shape);
/// A 2-d tensor from nested braces: tensor({{1, 2}, {3, 4}}).
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = float32);
Tensor tensor(std::initializer_list<double> values, DType dtype = float32);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);

/// Prints like PyTorch: values (summarised past 1000 elements), then shape and dtype.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- differentiable ops (defined in autograd/, each beside its backward) ---------------------------
// unary, elementwise
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  /// gradient 0 everywhere (as PyTorch)
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
/// GELU, exact (erf) form by default, or the tanh approximation.
Tensor gelu(const Tensor& x, bool tanh_approx = false);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor square(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);  /// gradient 1 inside [lo,hi], 0 outside
// binary, broadcasting
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  /// ties split the gradient half and half
Tensor minimum(const Tensor& a, const Tensor& b);
// comparisons: bool masks, not differentiable
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& mask);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
/// cond ? a : b elementwise, with broadcasting; cond is bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// reductions
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
/// Values and int64 indices of the max along `dim` (the first index on ties; the gradient goes there).
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// The max of all elements; ties share the gradient equally.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
Tensor amax(const Tensor& x, int64_t dim, bool keepdim = false);  /// ties share the gradient
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor var(const Tensor& x, int64_t dim, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, int64_t dim, int64_t correction = 1, bool keepdim = false);
/// The variance of all elements (correction 1, as torch.var(x)).
Tensor var(const Tensor& x);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor norm(const Tensor& x);  /// the 2-norm of all elements
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
/// Sums broadcast dims away so the result has `shape` (the gradient of broadcasting).
Tensor sum_to_size(const Tensor& x, const Shape& shape);
// indexing and joining
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of `x` with `src` added at `index` along dim (out[index[i][j]][j] += src[i][j] for dim 0).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
/// A copy of `x` with src's rows added at `index` along dim (the gradient of index_select).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// Pieces of the given sizes along dim (they must sum to its size), as torch.split(x, [2, 3], dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& split_sizes, int64_t dim = 0);
// sorting (autograd/ops_sort.cpp); the values are differentiable through gather
/// Values and int64 indices sorted along dim; NaN sorts as the largest; ties keep their order.
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The k largest (or smallest) values along dim and their int64 indices, in sorted order.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
// indices and samples (autograd/ops_sort.cpp): int64, not differentiable
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// int64 category indices drawn from the non-negative weights `probs` (C) or (B, C) (not necessarily
/// normalised) -> (num_samples) or (B, num_samples), as torch.multinomial. Not differentiable.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false, Generator* gen = nullptr);
// linear algebra
/// PyTorch's matmul: 1-d @ 1-d is a dot; batched dims broadcast. Runs on OpenBLAS.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x @ w^T + b, as nn.Linear: x (...,K), w (N,K), b (N) or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// normalisation
/// Normalises over the trailing dims, as F.layer_norm: x (..., *normalized_shape); weight and bias, when
/// defined, have normalized_shape and x's dtype. y = (x - mean) / √(var + eps) · weight + bias, with the
/// biased variance. Throws heed::Error naming the shapes when they do not fit. Second order.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// losses, unreduced: the fused ops behind nn/loss.h's losses, which add the checks, weights and reductions
/// -(y log p + (1-y) log(1-p)) elementwise, each log clamped below at -100 as PyTorch does; p holds
/// probabilities in [0,1] (a value outside throws), y has p's shape and dtype. Second order.
Tensor binary_cross_entropy_elementwise(const Tensor& p, const Tensor& y);
/// The cross-entropy of each row of logits x (N,C) against int64 class indices target (N), with an optional
/// constant class weight (C) and label smoothing in [0,1]; rows whose target is ignore_index give 0.
/// Returns the losses (N) and the mean's denominator, Σ weight[target_i] over the rows not ignored.
/// Second order (in x).
std::pair<Tensor, double> cross_entropy_rows(const Tensor& x, const Tensor& target, const Tensor& weight,
                                             int64_t ignore_index, double label_smoothing);
// fused attention (the kernel and its parameters: tensor/kernels/flash_attention.h)
/// The differentiable fused attention (autograd/ops_attention.cpp): kernels::flash_attention_forward, with
/// flash_attention_backward as its gradient. FIRST-ORDER ONLY: its backward is a raw kernel, so
/// create_graph=true through it throws AutogradError; use the composite nn::scaled_dot_product_attention
/// (impl = AttentionImpl::Composite) for double backward.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const kernels::FlashAttentionParams& p);

/// The same for self-attention from one packed projection, as MultiheadAttention's in_proj makes it:
/// qkv (B, T, 3·NH·D), the last dim [q | k | v], each NH heads of D  ->  out (B, NH, T, D). Equal to
/// flash_attention on the three (B, NH, T, D) views, but its gradient is one (B, T, 3·NH·D) tensor, where
/// three views would each return a zero-padded (B, T, 3·NH·D) gradient to be summed. Also first-order only.
Tensor flash_attention_packed(const Tensor& qkv, int64_t num_heads, const kernels::FlashAttentionParams& p);

// Python's remainder (autograd/ops_elementwise.cpp)
/// Python's a % b (the sign of b), as torch.remainder; differentiable: da = d, db = -d floor(a / b).
Tensor remainder(const Tensor& a, const Tensor& b);
// Python's floor division: not differentiable (the quotient is piecewise constant, as in PyTorch)
/// Python's a // b: the quotient rounded toward -inf, in the promoted dtype (int64 // int64 is int64).
/// Integer division by zero throws.
Tensor floor_divide(const Tensor& a, const Tensor& b);

// ---- type promotion (tensor/kernels/promote.cpp): helpers that make constants, not differentiable ----------
/// The dtype of a binary op's result, as torch.result_type: tensors with dims decide; a 0-d tensor only
/// counts when its category (bool < integer < floating) is higher.
DType result_type(const Tensor& a, const Tensor& b);
/// The 0-d tensor a floating number becomes beside `like`, as a Python float beside a tensor: like's
/// dtype when it is floating, else float32 (PyTorch's default dtype), so int64 * 2.5 is float32.
Tensor wrap_scalar(const Tensor& like, double v);
/// The 0-d tensor an integer becomes beside `like`, as a Python int: like's dtype (int64 for bool), so
/// int64 * 7 stays int64 and float32 * 2 stays float32.
Tensor wrap_scalar_int(const Tensor& like, int64_t v);

// C++ operators. A number on either side becomes a 0-d tensor by the rules of a Python number beside a
// tensor: a double by wrap_scalar (int64 * 2.0 is float32), an integer by wrap_scalar_int (int64 * 2 is
// int64, float32 * 2 is float32). So `x * 2` and `x * 2.0` give the dtypes PyTorch gives.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
Tensor operator<(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
/// Elementwise equality, a bool tensor (as torch's ==): `pred == labels`, `labels == 3`.
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);
Tensor operator%(const Tensor& a, const Tensor& b);  /// remainder
Tensor operator%(const Tensor& a, double b);
// An integer literal is a Python int (exact match beats the conversion to double).
template <std::integral I> Tensor operator+(const Tensor& a, I b) { return a + wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator-(const Tensor& a, I b) { return a - wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator*(const Tensor& a, I b) { return a * wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator/(const Tensor& a, I b) { return a / wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator%(const Tensor& a, I b) { return a % wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator+(I a, const Tensor& b) { return wrap_scalar_int(b, (int64_t)a) + b; }
template <std::integral I> Tensor operator-(I a, const Tensor& b) { return wrap_scalar_int(b, (int64_t)a) - b; }
template <std::integral I> Tensor operator*(I a, const Tensor& b) { return wrap_scalar_int(b, (int64_t)a) * b; }
template <std::integral I> Tensor operator/(I a, const Tensor& b) { return wrap_scalar_int(b, (int64_t)a) / b; }
template <std::integral I> Tensor operator==(const Tensor& a, I b) { return a == wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator!=(const Tensor& a, I b) { return a != wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator<(const Tensor& a, I b) { return a < wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator<=(const Tensor& a, I b) { return a <= wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator>(const Tensor& a, I b) { return a > wrap_scalar_int(a, (int64_t)b); }
template <std::integral I> Tensor operator>=(const Tensor& a, I b) { return a >= wrap_scalar_int(a, (int64_t)b); }

/// True when the shapes match and every pair of elements satisfies |a-b| <= atol + rtol*|b|.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

// ---- template definitions -------------------------------------------------------------------------
template <class T>
T* Tensor::data_ptr() const {
  if (dtype_of<T>() != impl_->dtype)
    throw Error(std::string("data_ptr: asked for ") + dtype_name(dtype_of<T>()) + " but the tensor is " +
                dtype_name(impl_->dtype));
  return static_cast<T*>(impl_->storage->data) + impl_->offset;
}

}  // namespace heed

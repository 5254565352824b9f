// ops_view.cpp: differentiable views, copies, dtype casts and the in-place ops.
//
// A view's output shares its input's storage, but in the graph it is an ordinary op: its backward maps
// the view's gradient back to the base's shape. For permute that is the inverse permute; for a slice it
// is "a zero tensor of the base's shape with d written into the sliced region" (slice_backward, whose own
// backward is the slice again). This is how the gradient of x[2:5] reaches x.
#include <algorithm>
#include <numeric>

#include "autograd/node.h"
#include "tensor/kernels/kernels.h"
#include "tensor/view.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"view", "permute", "expand", "slice", "slice_backward", "contiguous",
                                             "clone", "to"});

// out = x viewed as `shape`;  dx = d viewed as x's shape
Tensor Tensor::view(const Shape& shape) const {
  return record("view", view::view(*this, shape), {*this},
                [in = this->shape()](const Tensor& d, const Tensor&) { return Grads{d.reshape(in)}; });
}

// Composite: a view when the strides allow one, otherwise a contiguous copy, then a view.
Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = view::infer_shape("reshape", shape, numel());
  if (target == this->shape()) return *this;
  Shape st;
  if (view::can_view(*this, target, st)) return view(target);
  return contiguous().view(target);
}

// out = x permuted;  dx = d permuted by the inverse permutation
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  Tensor out = view::permute(*this, dims);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); i++) inverse[wrap_dim("permute", dims[i], dim())] = (int64_t)i;
  return record("permute", out, {*this},
                [inverse](const Tensor& d, const Tensor&) { return Grads{d.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim_scalar_ok("transpose", d0, dim());  // transpose(0, -1) of a scalar is the scalar, as in PyTorch
  d1 = wrap_dim_scalar_ok("transpose", d1, dim());
  if (dim() < 2 && d0 == d1) return *this;
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[d0], p[d1]);
  return permute(p);
}

// out = x broadcast to `shape` (stride 0 on the new dims);  dx = d summed back to x's shape
Tensor Tensor::expand(const Shape& shape) const {
  Tensor out = view::expand(*this, shape);
  return record("expand", out, {*this},
                [in = this->shape()](const Tensor& d, const Tensor&) { return Grads{heed::sum_to_size(d, in)}; },
                {.reduces_broadcast = out.shape() != this->shape()});
}

// The gradient of a slice: zeros of the base's shape with `d` in the sliced region. Its own gradient is
// the same slice of dd, so the pair is closed under differentiation.
static Tensor slice_backward(const Tensor& d, const Shape& base, int64_t dim, int64_t start, int64_t end,
                             int64_t step) {
  Tensor out = zeros(base, d.dtype());
  kernels::copy_(view::slice(out, dim, start, end, step), d);
  return record("slice_backward", out, {d}, [dim, start, end, step](const Tensor& dd, const Tensor&) {
    return Grads{dd.slice(dim, start, end, step)};
  });
}

// out = x[start:end:step] along dim;  dx = slice_backward(d)
Tensor Tensor::slice(int64_t dim_, int64_t start, int64_t end, int64_t step) const {
  int64_t d = wrap_dim("slice", dim_, dim());
  Tensor out = view::slice(*this, d, start, end, step);
  // The same Python-style clipping as view::slice, so backward writes exactly where forward read.
  int64_t n = size(d);
  int64_t s = std::clamp<int64_t>(start < 0 ? start + n : start, 0, n);
  int64_t e = std::clamp<int64_t>(end < 0 ? end + n : end, s, n);
  return record("slice", out, {*this}, [base = shape(), d, s, e, step](const Tensor& g, const Tensor&) {
    return Grads{slice_backward(g, base, d, s, e, step)};
  });
}

Tensor Tensor::narrow(int64_t dim_, int64_t start, int64_t length) const {
  int64_t d = wrap_dim("narrow", dim_, dim());
  view::narrow(*this, d, start, length);  // validates the range with narrow's own error message
  if (start < 0) start += size(d);
  return slice(d, start, start + length, 1);
}

// Composite views.
Tensor Tensor::select(int64_t dim_, int64_t index) const {
  int64_t d = wrap_dim("select", dim_, dim());
  view::select(*this, d, index);  // validates
  if (index < 0) index += size(d);
  return slice(d, index, index + 1).squeeze(d);
}
Tensor Tensor::squeeze(int64_t dim_) const {
  if (dim() == 0) return *this;
  int64_t d = wrap_dim("squeeze", dim_, dim());
  if (size(d) != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}
Tensor Tensor::squeeze() const {
  Shape s;
  for (int64_t v : shape())
    if (v != 1) s.push_back(v);
  return s == shape() ? *this : view(s);
}
Tensor Tensor::unsqueeze(int64_t dim_) const {
  int64_t d = wrap_dim("unsqueeze", dim_, dim() + 1);
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t a = wrap_dim("flatten", start_dim, dim()), b = wrap_dim("flatten", end_dim, dim());
  if (a > b) throw Error("flatten: start_dim " + std::to_string(a) + " > end_dim " + std::to_string(b));
  Shape s(shape().begin(), shape().begin() + a);
  int64_t n = 1;
  for (int64_t i = a; i <= b; i++) n *= size(i);
  s.push_back(n);
  s.insert(s.end(), shape().begin() + b + 1, shape().end());
  return reshape(s);
}

// out = a contiguous copy of x (or x itself);  dx = d
Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return record("contiguous", kernels::cast(*this, dtype()), {*this},
                [](const Tensor& d, const Tensor&) { return Grads{d}; });
}

// out = a copy of x;  dx = d
Tensor Tensor::clone() const {
  return record("clone", kernels::cast(*this, dtype()), {*this},
                [](const Tensor& d, const Tensor&) { return Grads{d}; });
}

// out = x converted to `dtype`;  dx = d converted back
Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  if (requires_grad() && !is_floating(dt))
    throw Error(std::string("to: cannot convert a tensor that requires grad to ") + dtype_name(dt));
  return record("to", kernels::cast(*this, dt), {*this},
                [from = dtype()](const Tensor& d, const Tensor&) { return Grads{d.to(from)}; });
}

Tensor Tensor::detach() const { return view_of(*this, shape(), strides(), offset()); }

// ---- in-place ops ------------------------------------------------------------------------------------------
// They change values that autograd may have saved, so each one bumps the storage's version (checked by
// SavedTensor::get), and they refuse to run on a tensor that is part of a graph being recorded.
static void before_inplace(const Tensor& t, const char* op) {
  if (grad_enabled() && t.requires_grad())
    throw Error(std::string(op) + ": in-place op on a tensor of shape " + shape_str(t.shape()) +
                " that requires grad; run it under NoGradGuard (as optimizers do) or on a detached tensor");
  t.storage()->version++;
  t.storage()->last_inplace_op = op;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  before_inplace(*this, "add_");
  if (alpha == 1.0) kernels::binary_("add_", simd::Binary::Add, *this, other);
  else
    kernels::binary_("add_", simd::Binary::Add, *this,
                     kernels::binary("add_", simd::Binary::Mul, other, scalar_tensor(alpha, other.dtype())));
  return *this;
}
Tensor& Tensor::mul_(const Tensor& other) {
  before_inplace(*this, "mul_");
  kernels::binary_("mul_", simd::Binary::Mul, *this, other);
  return *this;
}
Tensor& Tensor::mul_(double s) {
  before_inplace(*this, "mul_");
  kernels::binary_("mul_", simd::Binary::Mul, *this, scalar_tensor(s, dtype()));
  return *this;
}
Tensor& Tensor::zero_() {
  before_inplace(*this, "zero_");
  kernels::fill_(*this, 0.0);
  return *this;
}
Tensor& Tensor::fill_(double v) {
  before_inplace(*this, "fill_");
  kernels::fill_(*this, v);
  return *this;
}
Tensor& Tensor::copy_(const Tensor& src) {
  before_inplace(*this, "copy_");
  kernels::copy_(*this, src);
  return *this;
}

// ---- method spellings of the free functions --------------------------------------------------------------
Tensor Tensor::sum() const { return heed::sum(*this); }
Tensor Tensor::sum(int64_t d, bool keepdim) const { return heed::sum(*this, {d}, keepdim); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return heed::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return heed::mean(*this); }
Tensor Tensor::mean(int64_t d, bool keepdim) const { return heed::mean(*this, {d}, keepdim); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const { return heed::mean(*this, dims, keepdim); }
Tensor Tensor::sum_to_size(const Shape& s) const { return heed::sum_to_size(*this, s); }
Tensor Tensor::exp() const { return heed::exp(*this); }
Tensor Tensor::log() const { return heed::log(*this); }
Tensor Tensor::sqrt() const { return heed::sqrt(*this); }
Tensor Tensor::tanh() const { return heed::tanh(*this); }
Tensor Tensor::sigmoid() const { return heed::sigmoid(*this); }
Tensor Tensor::relu() const { return heed::relu(*this); }
Tensor Tensor::abs() const { return heed::abs(*this); }
Tensor Tensor::pow(double p) const { return heed::pow(*this, p); }
Tensor Tensor::square() const { return heed::square(*this); }
Tensor Tensor::matmul(const Tensor& o) const { return heed::matmul(*this, o); }
Tensor Tensor::softmax(int64_t d) const { return heed::softmax(*this, d); }
Tensor Tensor::log_softmax(int64_t d) const { return heed::log_softmax(*this, d); }
Tensor Tensor::norm() const { return heed::norm(*this); }

}  // namespace heed

// ops_reduce.cpp: reductions and the fused softmax family, each forward beside its backward.
//
// The backward of a reduction is a broadcast: every input element that fed sum(x, dim) gets the same
// gradient, so d is reshaped to keep the reduced dims as size 1 and then expanded back to x's shape.
#include <algorithm>
#include <cmath>

#include "autograd/node.h"
#include "tensor/kernels/kernels.h"
#include "tensor/view.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered =
    register_ops({"sum", "max_dim", "max_all", "amax", "softmax", "log_softmax", "norm"});

static std::vector<int64_t> wrap_dims(const char* op, const std::vector<int64_t>& dims, int64_t ndim) {
  std::vector<int64_t> out;
  for (int64_t d : dims) {
    int64_t w = wrap_dim_scalar_ok(op, d, ndim);
    if (std::find(out.begin(), out.end(), w) != out.end())
      throw Error(std::string(op) + ": dim " + std::to_string(w) + " appears twice");
    out.push_back(w);
  }
  return out;
}
static std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int64_t i = 0; i < x.dim(); i++) d[i] = i;
  return d;
}
// x's shape with `dims` set to 1: how a keepdim=false result is viewed before expanding it back.
static Shape kept_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape k = s;
  for (int64_t d : dims) k[d] = 1;
  return k;
}

// out = Σ_dims x;  dx = d (reshaped with the reduced dims as 1) expanded to x's shape
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  std::vector<int64_t> dims = wrap_dims("sum", dims_in, x.dim());
  if (x.dim() == 0) dims.clear();
  Tensor out = kernels::sum(x, dims, keepdim);
  return record("sum", out, {x},
                [shape = x.shape(), kept = kept_shape(x.shape(), dims)](const Tensor& d, const Tensor&) {
                  return Grads{d.reshape(kept).expand(shape)};
                });
}
Tensor sum(const Tensor& x) { return sum(x, all_dims(x), false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  if (!is_floating(x.dtype())) throw Error(std::string("mean: needs a float tensor, got ") + dtype_name(x.dtype()));
  std::vector<int64_t> dims = wrap_dims("mean", dims_in, x.dim());
  int64_t n = 1;
  for (int64_t d : dims) n *= x.dim() ? x.shape()[d] : 1;  // a 0-d tensor's dim 0 holds its one element
  return sum(x, dims, keepdim) / (double)n;
}
Tensor mean(const Tensor& x) { return mean(x, all_dims(x), false); }

Tensor sum_to_size(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  // Leading dims that `shape` lacks, and dims where it has 1 but x does not, were broadcast.
  int64_t lead = x.dim() - (int64_t)shape.size();
  if (lead < 0) throw Error("sum_to_size: " + shape_str(x.shape()) + " has fewer dims than " + shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < x.dim(); i++) {
    if (i < lead) dims.push_back(i);
    else if (shape[i - lead] == 1 && x.shape()[i] != 1) dims.push_back(i);
    else if (shape[i - lead] != x.shape()[i])
      throw Error("sum_to_size: " + shape_str(x.shape()) + " cannot be summed to " + shape_str(shape));
  }
  Tensor s = dims.empty() ? x : sum(x, dims, true);
  return s.reshape(shape);
}

// out, idx = max(x, dim);  dx = d scattered to the position idx picked (the first max on ties)
static std::pair<Tensor, Tensor> max_or_min(const Tensor& x, int64_t dim, bool keepdim, bool is_min) {
  dim = wrap_dim_scalar_ok(is_min ? "min" : "max", dim, x.dim());
  // Named, not a structured binding: a lambda cannot capture one before clang 16 (the fuzz build's compiler).
  const std::pair<Tensor, Tensor> picked = kernels::max_dim(x, dim, keepdim, is_min);
  const Tensor& values = picked.first;
  const Tensor indices = picked.second;
  if (!is_floating(x.dtype())) return {values, indices};
  Tensor out =
      record("max_dim", values, {x}, [shape = x.shape(), indices, dim, keepdim](const Tensor& d, const Tensor&) {
        Tensor dd = keepdim || shape.empty() ? d : d.unsqueeze(dim);
        Tensor idx = keepdim || shape.empty() ? indices : indices.unsqueeze(dim);
        if (shape.empty()) return Grads{d};
        return Grads{scatter_add(zeros(shape, d.dtype()), dim, idx, dd)};
      });
  return {out, indices};
}
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) { return max_or_min(x, dim, keepdim, false); }
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) { return max_or_min(x, dim, keepdim, true); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return kernels::max_dim(x, dim, keepdim, false).second; }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return kernels::max_dim(x, dim, keepdim, true).second; }

// out = max over `dims` of x;  ties share: dx = d · [x == out] / (number of ties)
static Tensor extreme_shared(const char* name, const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_min) {
  // Reduce one dim at a time with the kernel (max is exact, so the order does not matter).
  Tensor v = x;
  std::sort(dims.rbegin(), dims.rend());
  for (int64_t d : dims) v = kernels::max_dim(v, d, true, is_min).first;
  Shape kept = v.shape();
  Tensor out = v;
  if (!keepdim) {
    Shape s;
    for (int64_t i = 0; i < x.dim(); i++)
      if (std::find(dims.begin(), dims.end(), i) == dims.end()) s.push_back(x.shape()[i]);
    out = view::view(v, s);
  }
  return record(name, out, {x}, [sx = SavedTensor(x), kept, dims](const Tensor& d, const Tensor& out) {
    Tensor x = sx.get();
    Tensor o = out.detach().reshape(kept);
    Tensor hit = kernels::cast(kernels::compare("max", kernels::Compare::Eq, x, o), x.dtype());
    Tensor count = kernels::sum(hit, dims, true);
    return Grads{d.reshape(kept) * (hit / count)};
  }, {.save_output = true});
}
Tensor max(const Tensor& x) {
  if (x.numel() == 0) throw Error("max: cannot reduce an empty tensor of shape " + shape_str(x.shape()));
  return extreme_shared("max_all", x, all_dims(x), false, false);
}
Tensor min(const Tensor& x) {
  if (x.numel() == 0) throw Error("min: cannot reduce an empty tensor of shape " + shape_str(x.shape()));
  return extreme_shared("max_all", x, all_dims(x), false, true);
}
Tensor amax(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_shared("amax", x, {wrap_dim_scalar_ok("amax", dim, x.dim())}, keepdim, false);
}

// Composite: var = Σ (x - mean)² / (n - correction).
Tensor var(const Tensor& x, int64_t dim, int64_t correction, bool keepdim) {
  dim = wrap_dim_scalar_ok("var", dim, x.dim());  // torch.var(scalar, 0) is nan (0 / 0), not an error
  int64_t n = x.dim() ? x.shape()[dim] : 1;
  Tensor c = x - mean(x, {dim}, true);
  return sum(c * c, {dim}, keepdim) / (double)std::max<int64_t>(0, n - correction);
}
Tensor var(const Tensor& x) {
  Tensor c = x - mean(x);
  return sum(c * c) / (double)std::max<int64_t>(0, x.numel() - 1);
}
Tensor std(const Tensor& x, int64_t dim, int64_t correction, bool keepdim) {
  return sqrt(var(x, dim, correction, keepdim));
}

// Composite: logsumexp = m + ln Σ e^(x - m), with m = max(x) held constant (detached). Subtracting the
// max keeps e^(...) <= 1, so nothing overflows; since m cancels mathematically, treating it as a constant
// leaves the gradient exact. A row of all -inf gives m = -inf, so m is replaced by 0 there (the result,
// ln 0 = -inf, is still right).
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_dim_scalar_ok("logsumexp", dim, x.dim());
  Tensor m = kernels::max_dim(x, dim, true, false).first;
  m = kernels::where(kernels::unary(simd::Unary::Abs, m) < INFINITY, m, zeros_like(m));
  Tensor out = log(sum(exp(x - m), {dim}, true)) + m;
  return keepdim ? out : out.squeeze(dim);
}

// out = softmax(x) along dim (fused kernel);  dx = out (d - Σ d·out)
Tensor softmax(const Tensor& x, int64_t dim) {
  dim = wrap_dim_scalar_ok("softmax", dim, x.dim());
  return record("softmax", kernels::softmax(x, dim, false), {x}, [dim](const Tensor& d, const Tensor& out) {
    return Grads{out * (d - sum(d * out, {dim}, true))};
  }, {.save_output = true});
}

// out = log_softmax(x) (fused kernel);  dx = d - e^out Σ d
Tensor log_softmax(const Tensor& x, int64_t dim) {
  dim = wrap_dim_scalar_ok("log_softmax", dim, x.dim());
  return record("log_softmax", kernels::softmax(x, dim, true), {x}, [dim](const Tensor& d, const Tensor& out) {
    return Grads{d - exp(out) * sum(d, {dim}, true)};
  }, {.save_output = true});
}

// out = ‖x‖₂;  dx = d x / out, taken as 0 when out = 0 (the subgradient PyTorch picks)
Tensor norm(const Tensor& x) {
  Tensor out =
      kernels::unary(simd::Unary::Sqrt, kernels::sum(kernels::unary(simd::Unary::Square, x), all_dims(x), false));
  return record("norm", out, {x}, [sx = SavedTensor(x)](const Tensor& d, const Tensor& out) {
    Tensor x = sx.get();
    Tensor zero = kernels::compare("norm", kernels::Compare::Eq, out, zeros_like(out));
    return Grads{d * x / where(zero, ones_like(out), out)};
  }, {.save_output = true});
}

}  // namespace heed

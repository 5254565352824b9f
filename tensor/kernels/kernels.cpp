// kernels.cpp: N-d strided loops around the 1-D row kernels of simd.h, plus reductions, matmul,
// indexing and random fills. No autograd here.
#include "tensor/kernels/kernels.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>

#include "tensor/kernels/blas.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/view.h"

namespace heed::kernels {

static std::atomic<bool> g_use_simd{true};
void set_use_simd(bool on) { g_use_simd = on; }
bool use_simd() { return g_use_simd; }

// Below this many elements a kernel runs on one thread: starting a parallel region costs a few
// microseconds, more than the whole loop on a small tensor.
constexpr int64_t kParallelGrain = 32768;

// ---- the N-d row iterator -------------------------------------------------------------------------------
// Every elementwise kernel has N operands (output first) that share one shape but have their own strides
// (0 on broadcast dims). `for_each_row` calls f(offsets, n, inner_strides) once per innermost run, where
// offsets[k] is operand k's element offset for the start of the run.
//
// First it simplifies the problem: size-1 dims are dropped, and two neighbouring dims merge when every
// operand steps over them as over one dim (stride[i] == stride[i+1] * size[i+1]). A contiguous tensor,
// however many dims it has, becomes one long row, which is what the SIMD kernels want.
template <size_t N>
struct Rows {
  Shape shape;
  std::array<Shape, N> strides;
};

template <size_t N>
static Rows<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  Rows<N> r;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    bool merge = !r.shape.empty();
    for (size_t k = 0; k < N && merge; k++) merge = r.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      r.shape.back() *= shape[d];
      for (size_t k = 0; k < N; k++) r.strides[k].back() = strides[k][d];
    } else {
      r.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; k++) r.strides[k].push_back(strides[k][d]);
    }
  }
  return r;
}

template <size_t N, class F>
static void for_each_row(const Shape& shape, const std::array<Shape, N>& strides, const std::array<int64_t, N>& base,
                         F&& f) {
  int64_t total = numel_of(shape);
  if (total == 0) return;
  Rows<N> r = coalesce<N>(shape, strides);
  if (r.shape.empty()) {  // a single element
    std::array<int64_t, N> st{};
    f(base, (int64_t)1, st);
    return;
  }
  int64_t n = r.shape.back();
  std::array<int64_t, N> inner;
  for (size_t k = 0; k < N; k++) inner[k] = r.strides[k].back();
  int64_t rows = total / n;
  // Long rows are cut into chunks so that even a single contiguous row keeps both cores busy. The
  // chunking never changes a result: elementwise work has no order.
  int64_t chunk = n > kParallelGrain ? kParallelGrain : n;
  int64_t chunks_per_row = (n + chunk - 1) / chunk;
  int64_t items = rows * chunks_per_row;
  int64_t outer_dims = (int64_t)r.shape.size() - 1;
#pragma omp parallel for schedule(static) if (total >= kParallelGrain && items > 1) num_threads(parallel_threads())
  for (int64_t item = 0; item < items; item++) {
    int64_t row = item / chunks_per_row, c = item % chunks_per_row;
    std::array<int64_t, N> off = base;
    int64_t rem = row;
    for (int64_t d = outer_dims - 1; d >= 0; d--) {  // unravel the row index over the outer dims
      int64_t i = rem % r.shape[d];
      rem /= r.shape[d];
      for (size_t k = 0; k < N; k++) off[k] += i * r.strides[k][d];
    }
    for (size_t k = 0; k < N; k++) off[k] += c * chunk * inner[k];
    f(off, std::min(chunk, n - c * chunk), inner);
  }
}

static void check_same_dtype(const char* name, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw Error(std::string(name) + ": dtype mismatch, " + dtype_name(a.dtype()) + " " + shape_str(a.shape()) +
                " and " + dtype_name(b.dtype()) + " " + shape_str(b.shape()) + " (convert one with .to())");
}

template <class T>
static T* base_ptr(const Tensor& t) {
  return static_cast<T*>(t.storage()->data);
}

// ---- elementwise -----------------------------------------------------------------------------------------
Tensor unary(simd::Unary op, const Tensor& x, simd::UnaryArgs args) {
  if (!is_floating(x.dtype())) return unary_integral(op, x);  // neg, abs, sign of int64 (promote.cpp)
  return dispatch_floating(x.dtype(), simd::unary_name(op), [&](auto zero) {
    using T = decltype(zero);
    Tensor y = empty(x.shape(), x.dtype());
    T* yb = base_ptr<T>(y);
    const T* xb = base_ptr<T>(x);
    bool fast = use_simd();
    for_each_row<2>(x.shape(), {y.strides(), x.strides()}, {y.offset(), x.offset()},
                    [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                      if (fast && st[0] == 1 && st[1] == 1) simd::unary_simd<T>(op, xb + off[1], yb + off[0], n, args);
                      else simd::unary_ref<T>(op, xb + off[1], st[1], yb + off[0], st[0], n, args);
                    });
    return y;
  });
}

template <class T>
static void binary_rows(simd::Binary op, const Tensor& y, const Tensor& a, const Tensor& b, const Shape& sa,
                        const Shape& sb) {
  T* yb = base_ptr<T>(y);
  const T* ab = base_ptr<T>(a);
  const T* bb = base_ptr<T>(b);
  bool fast = use_simd();
  for_each_row<3>(y.shape(), {y.strides(), sa, sb}, {y.offset(), a.offset(), b.offset()},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                    if (fast && st[0] == 1 && (st[1] == 0 || st[1] == 1) && (st[2] == 0 || st[2] == 1))
                      simd::binary_simd<T>(op, ab + off[1], st[1], bb + off[2], st[2], yb + off[0], n);
                    else
                      simd::binary_ref<T>(op, ab + off[1], st[1], bb + off[2], st[2], yb + off[0], st[0], n);
                  });
}

Tensor binary(const char* name, simd::Binary op, const Tensor& a_in, const Tensor& b_in) {
  // PyTorch's type promotion (promote.cpp); integers and bools take promote.cpp's loops.
  DType dt = result_type(a_in, b_in);
  if (op == simd::Binary::Div && !is_floating(dt)) dt = float32;  // true division, as Python's /
  if (!is_floating(dt)) return binary_integral(name, op, a_in, b_in, dt);
  const Tensor a = a_in.dtype() == dt ? a_in : cast(a_in, dt), b = b_in.dtype() == dt ? b_in : cast(b_in, dt);
  Shape out = broadcast_shapes(name, a.shape(), b.shape());
  return dispatch_floating(a.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    Tensor y = empty(out, a.dtype());
    binary_rows<T>(op, y, a, b, broadcast_strides(a.shape(), a.strides(), out),
                   broadcast_strides(b.shape(), b.strides(), out));
    return y;
  });
}

void binary_(const char* name, simd::Binary op, const Tensor& a, const Tensor& b_in) {
  // In place the result keeps a's dtype, so b may only promote to it (float += int, not int += float).
  if (result_type(a, b_in) != a.dtype() || (op == simd::Binary::Div && !is_floating(a.dtype())))
    check_same_dtype(name, a, b_in);
  if (!is_floating(a.dtype())) return copy_(a, binary(name, op, a, b_in));
  const Tensor b = b_in.dtype() == a.dtype() ? b_in : cast(b_in, a.dtype());
  Shape out = broadcast_shapes(name, a.shape(), b.shape());
  if (out != a.shape())
    throw Error(std::string(name) + ": in-place result would have shape " + shape_str(out) + " but the tensor has " +
                shape_str(a.shape()));
  dispatch_floating(a.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    binary_rows<T>(op, a, a, b, a.strides(), broadcast_strides(b.shape(), b.strides(), out));
  });
}

template <class T, class F>
static Tensor compare_loop(const Tensor& a, const Tensor& b, const Shape& out, F cmp) {
  Tensor y = empty(out, boolean);
  bool* yb = base_ptr<bool>(y);
  const T* ab = base_ptr<T>(a);
  const T* bb = base_ptr<T>(b);
  for_each_row<3>(
      out,
      {y.strides(), broadcast_strides(a.shape(), a.strides(), out), broadcast_strides(b.shape(), b.strides(), out)},
      {y.offset(), a.offset(), b.offset()},
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        for (int64_t i = 0; i < n; i++) yb[off[0] + i * st[0]] = cmp(ab[off[1] + i * st[1]], bb[off[2] + i * st[2]]);
      });
  return y;
}

Tensor compare(const char* name, Compare op, const Tensor& a_in, const Tensor& b_in) {
  DType dt = result_type(a_in, b_in);  // `labels == 3`, `x < 2.5`: compared in the promoted dtype
  const Tensor a = a_in.dtype() == dt ? a_in : cast(a_in, dt), b = b_in.dtype() == dt ? b_in : cast(b_in, dt);
  Shape out = broadcast_shapes(name, a.shape(), b.shape());
  return dispatch_all(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    switch (op) {
      case Compare::Eq: return compare_loop<T>(a, b, out, [](T x, T y) { return x == y; });
      case Compare::Ne: return compare_loop<T>(a, b, out, [](T x, T y) { return x != y; });
      case Compare::Lt: return compare_loop<T>(a, b, out, [](T x, T y) { return x < y; });
      case Compare::Le: return compare_loop<T>(a, b, out, [](T x, T y) { return x <= y; });
      case Compare::Gt: return compare_loop<T>(a, b, out, [](T x, T y) { return x > y; });
      case Compare::Ge: break;
    }
    return compare_loop<T>(a, b, out, [](T x, T y) { return x >= y; });
  });
}

Tensor logical(const char* name, Logical op, const Tensor& a, const Tensor& b) {
  const Tensor& bb = op == Logical::Not ? a : b;
  if (a.dtype() != boolean || bb.dtype() != boolean)
    throw Error(std::string(name) + ": expected bool masks, got " + dtype_name(a.dtype()) + " and " +
                dtype_name(bb.dtype()));
  Shape out = broadcast_shapes(name, a.shape(), bb.shape());
  switch (op) {
    case Logical::And: return compare_loop<bool>(a, bb, out, [](bool x, bool y) { return x && y; });
    case Logical::Or: return compare_loop<bool>(a, bb, out, [](bool x, bool y) { return x || y; });
    case Logical::Not: break;
  }
  return compare_loop<bool>(a, bb, out, [](bool x, bool) { return !x; });
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  if (cond.dtype() != boolean)
    throw Error(std::string("where: the condition must be bool, got ") + dtype_name(cond.dtype()));
  DType dt = result_type(a_in, b_in);
  const Tensor a = a_in.dtype() == dt ? a_in : cast(a_in, dt), b = b_in.dtype() == dt ? b_in : cast(b_in, dt);
  Shape out = broadcast_shapes("where", broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  return dispatch_all(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    Tensor y = empty(out, a.dtype());
    T* yb = base_ptr<T>(y);
    const bool* cb = base_ptr<bool>(cond);
    const T* ab = base_ptr<T>(a);
    const T* bb = base_ptr<T>(b);
    for_each_row<4>(out,
                    {y.strides(), broadcast_strides(cond.shape(), cond.strides(), out),
                     broadcast_strides(a.shape(), a.strides(), out), broadcast_strides(b.shape(), b.strides(), out)},
                    {y.offset(), cond.offset(), a.offset(), b.offset()},
                    [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
                      for (int64_t i = 0; i < n; i++)
                        yb[off[0] + i * st[0]] =
                            cb[off[1] + i * st[1]] ? ab[off[2] + i * st[2]] : bb[off[3] + i * st[3]];
                    });
    return y;
  });
}

void copy_(const Tensor& dst, const Tensor& src) {
  Shape out = broadcast_shapes("copy_", dst.shape(), src.shape());
  if (out != dst.shape())
    throw Error("copy_: source of shape " + shape_str(src.shape()) + " does not broadcast to destination " +
                shape_str(dst.shape()));
  Shape ss = broadcast_strides(src.shape(), src.strides(), out);
  dispatch_all(dst.dtype(), [&](auto zd) {
    using D = decltype(zd);
    dispatch_all(src.dtype(), [&](auto zs) {
      using S = decltype(zs);
      D* db = base_ptr<D>(dst);
      const S* sb = base_ptr<S>(src);
      for_each_row<2>(out, {dst.strides(), ss}, {dst.offset(), src.offset()},
                      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                        if constexpr (std::is_same_v<D, S>) {
                          if (st[0] == 1 && st[1] == 1) {
                            std::memcpy(db + off[0], sb + off[1], n * sizeof(D));
                            return;
                          }
                        }
                        for (int64_t i = 0; i < n; i++) db[off[0] + i * st[0]] = static_cast<D>(sb[off[1] + i * st[1]]);
                      });
    });
  });
}

Tensor cast(const Tensor& x, DType dtype) {
  Tensor y = empty(x.shape(), dtype);
  copy_(y, x);
  return y;
}

void fill_(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T v = static_cast<T>(value);
    T* db = base_ptr<T>(dst);
    for_each_row<1>(dst.shape(), {dst.strides()}, {dst.offset()},
                    [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                      for (int64_t i = 0; i < n; i++) db[off[0] + i * st[0]] = v;
                    });
  });
}

// ---- reductions -------------------------------------------------------------------------------------------
// A contiguous tensor reduced along one dim is (outer, R, inner) in memory. With inner == 1 each output is
// the sum of one contiguous row; otherwise each output row is built by adding R rows of length `inner`.
// Both visit the R terms in a fixed order, so the result is the same for any thread count.
struct Split3 {
  int64_t outer = 1, R = 1, inner = 1;
};
static Split3 split3(const Shape& s, int64_t dim) {
  Split3 p;
  for (int64_t i = 0; i < (int64_t)s.size(); i++) (i < dim ? p.outer : i == dim ? p.R : p.inner) *= s[i];
  return p;
}

template <class T>
static Tensor sum_one_dim(const Tensor& xc, int64_t dim) {
  Shape out = xc.shape();
  out[dim] = 1;
  Tensor y = zeros(out, xc.dtype());
  Split3 p = split3(xc.shape(), dim);
  const T* x = xc.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  bool fast = use_simd();
  bool par = xc.numel() >= kParallelGrain;
  if (p.inner == 1) {
#pragma omp parallel for schedule(static) if (par && p.outer > 1) num_threads(parallel_threads())
    for (int64_t o = 0; o < p.outer; o++)
      yp[o] = fast ? simd::sum_simd<T>(x + o * p.R, p.R) : simd::sum_ref<T>(x + o * p.R, 1, p.R);
  } else {
#pragma omp parallel for schedule(static) if (par && p.outer > 1) num_threads(parallel_threads())
    for (int64_t o = 0; o < p.outer; o++)
      for (int64_t r = 0; r < p.R; r++) {
        const T* row = x + (o * p.R + r) * p.inner;
        if (fast) simd::accumulate_simd<T>(yp + o * p.inner, row, p.inner);
        else simd::accumulate_ref<T>(yp + o * p.inner, row, 1, p.inner);
      }
  }
  return y;
}

// The sum of every element, in fixed blocks: the block partial sums are added in block order, so that
// splitting the blocks over threads cannot change the rounding.
template <class T>
static T sum_all(const T* x, int64_t n) {
  constexpr int64_t kBlock = 16384;
  int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<T> partial(nb);
  bool fast = use_simd();
#pragma omp parallel for schedule(static) if (n >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t b = 0; b < nb; b++) {
    int64_t len = std::min(kBlock, n - b * kBlock);
    partial[b] = fast ? simd::sum_simd<T>(x + b * kBlock, len) : simd::sum_ref<T>(x + b * kBlock, 1, len);
  }
  T s = 0;
  for (T v : partial) s += v;
  return s;
}

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  // int64 and bool sum to int64, as torch.sum; float64 holds every count below 2^53 exactly.
  if (!is_floating(x.dtype())) return cast(kernels::sum(cast(x, float64), std::move(dims), keepdim), int64);
  std::sort(dims.begin(), dims.end());
  return dispatch_floating(x.dtype(), "sum", [&](auto zero) -> Tensor {
    using T = decltype(zero);
    Shape kept = x.shape();
    for (int64_t d : dims) kept[d] = 1;
    Tensor y;
    if ((int64_t)dims.size() == x.dim() || x.numel() <= 1 || numel_of(kept) == 1) {
      Tensor xc = view::contiguous(x);
      y = full(kept, 0.0, x.dtype());
      y.data_ptr<T>()[0] = sum_all<T>(xc.data_ptr<T>(), xc.numel());
    } else {
      // Neighbouring dims that are both reduced, or both kept, are one dim of the contiguous data: a conv
      // bias gradient sums (N, C, H, W) over {0, 2, 3}, which is (N, C, H·W) over {0, 2}. Then one merged
      // dim at a time, the last first: rows of H·W, not N·C·H rows of W (a small conv's W is 7 or 14
      // floats, far too short a row to sum at speed).
      Shape merged;
      std::vector<int64_t> reduced;  // indices into merged
      for (int64_t i = 0; i < x.dim(); i++) {
        bool r = std::binary_search(dims.begin(), dims.end(), i);
        bool prev_r = i > 0 && std::binary_search(dims.begin(), dims.end(), i - 1);
        if (i > 0 && r == prev_r) {
          merged.back() *= x.shape()[i];
        } else {
          merged.push_back(x.shape()[i]);
          if (r) reduced.push_back((int64_t)merged.size() - 1);
        }
      }
      y = view::view(view::contiguous(x), merged);
      for (auto it = reduced.rbegin(); it != reduced.rend(); ++it) y = sum_one_dim<T>(y, *it);
      y = view::view(y, kept);
    }
    if (keepdim) return y;
    Shape squeezed;
    for (int64_t i = 0; i < x.dim(); i++)
      if (!std::binary_search(dims.begin(), dims.end(), i)) squeezed.push_back(x.shape()[i]);
    return view::view(y, squeezed);
  });
}

std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_min) {
  const char* name = is_min ? "min" : "max";
  dim = wrap_dim_scalar_ok(name, dim, x.dim());
  if (x.dim() > 0 && x.shape()[dim] == 0)
    throw Error(std::string(name) + ": cannot reduce an empty dim " + std::to_string(dim) + " of shape " +
                shape_str(x.shape()));
  Tensor xc = view::contiguous(x);
  Shape out = x.shape();
  if (x.dim() > 0) out[dim] = 1;
  Tensor values = empty(out, x.dtype()), indices = empty(out, int64);
  dispatch_all(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    Split3 p = split3(xc.shape(), x.dim() ? dim : 0);
    const T* xp = xc.data_ptr<T>();
    T* vp = values.data_ptr<T>();
    int64_t* ip = indices.data_ptr<int64_t>();
#pragma omp parallel for schedule(static) if (xc.numel() >= kParallelGrain) num_threads(parallel_threads())
    for (int64_t o = 0; o < p.outer; o++)
      for (int64_t j = 0; j < p.inner; j++) {
        const T* row = xp + o * p.R * p.inner + j;
        T best = row[0];
        int64_t bi = 0;
        for (int64_t r = 1; r < p.R; r++) {
          T v = row[r * p.inner];
          if constexpr (std::is_floating_point_v<T>) {
            if (std::isnan(best)) break;  // NaN wins and stays, as in torch.max
            if (std::isnan(v)) { best = v; bi = r; break; }
          }
          if (is_min ? v < best : v > best) { best = v; bi = r; }
        }
        vp[o * p.inner + j] = best;
        ip[o * p.inner + j] = bi;
      }
  });
  if (!keepdim && x.dim() > 0) {
    values = view::squeeze(values, dim);
    indices = view::squeeze(indices, dim);
  }
  return {values, indices};
}

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  dim = wrap_dim_scalar_ok(name, dim, x.dim());
  if (x.dim() == 0) return view::view(softmax(view::unsqueeze(x, 0), 0, log), {});
  // Work on rows: move `dim` last and make it contiguous (a no-op for the usual last-dim softmax).
  int64_t last = x.dim() - 1;
  std::vector<int64_t> perm(x.dim());
  for (int64_t i = 0; i < x.dim(); i++) perm[i] = i;
  std::swap(perm[dim], perm[last]);
  Tensor xt = dim == last ? view::contiguous(x) : view::contiguous(view::permute(x, perm));
  Tensor yt = empty(xt.shape(), x.dtype());
  dispatch_floating(x.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    int64_t n = xt.shape()[last], rows = n ? xt.numel() / n : 0;
    const T* xp = xt.data_ptr<T>();
    T* yp = yt.data_ptr<T>();
    bool fast = use_simd();
#pragma omp parallel for schedule(static) if (xt.numel() >= kParallelGrain) num_threads(parallel_threads())
    for (int64_t r = 0; r < rows; r++) {
      if (fast) simd::softmax_row_simd<T>(xp + r * n, yp + r * n, n, log);
      else simd::softmax_row_ref<T>(xp + r * n, yp + r * n, n, log);
    }
  });
  if (dim == last) return yt;
  Tensor y = empty(x.shape(), x.dtype());
  copy_(y, view::permute(yt, perm));
  return y;
}

// ---- matmul ------------------------------------------------------------------------------------------------
// How BLAS can read one (rows, cols) matrix of a strided tensor without a copy: row-major with leading
// dim stride[-2], or column-major (= a transposed row-major matrix) with leading dim stride[-1].
struct BlasView {
  bool ok = false, trans = false;
  int64_t ld = 0;
};
static BlasView blas_view(const Tensor& t) {
  int64_t r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  if ((sc == 1 || c == 1) && sr >= std::max<int64_t>(1, c)) return {true, false, sr};
  if ((sr == 1 || r == 1) && sc >= std::max<int64_t>(1, r)) return {true, true, sc};
  return {};
}

Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias) {
  check_same_dtype("matmul", a, b);
  if (a.dim() < 2 || b.dim() < 2)
    throw Error("matmul kernel: needs 2-d or batched operands, got " + shape_str(a.shape()) + " @ " +
                shape_str(b.shape()));
  int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], K2 = b.shape()[b.dim() - 2],
          N = b.shape()[b.dim() - 1];
  if (K != K2)
    throw Error("matmul: " + shape_str(a.shape()) + " @ " + shape_str(b.shape()) + ": inner dimensions " +
                std::to_string(K) + " != " + std::to_string(K2));
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes("matmul", ba, bb);
  Shape out = batch;
  out.push_back(M);
  out.push_back(N);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != N || bias.dtype() != a.dtype()))
    throw Error("matmul: bias " + shape_str(bias.shape()) + " " + dtype_name(bias.dtype()) + " for a result " +
                shape_str(out) + " " + dtype_name(a.dtype()) + ": expected (" + std::to_string(N) + ") " +
                dtype_name(a.dtype()));
  return dispatch_floating(a.dtype(), "matmul", [&](auto zero) {
    using T = decltype(zero);
    Tensor y = empty(out, a.dtype());
    if (y.numel() == 0) return y;
    T beta = T(0);
    if (bias.defined()) {  // every row of y = bias, then C = A B + 1 · C
      Tensor bc = view::contiguous(bias);
      const T* bp = bc.data_ptr<T>();
      T* yp = y.data_ptr<T>();
      for (int64_t r = 0, rows = y.numel() / N; r < rows; r++) std::copy(bp, bp + N, yp + r * N);
      beta = T(1);
    }
    if (K == 0) {  // an empty sum
      if (!bias.defined()) std::fill(y.data_ptr<T>(), y.data_ptr<T>() + y.numel(), T(0));
      return y;
    }
    // A batch of row-major matrices times one shared matrix is a single tall GEMM: (B*M, K) @ (K, N).
    // This is nn.Linear on a (B, T, E) input, the most common matmul of all.
    Shape fold;
    if (bb.empty() && b.dim() == 2 && !ba.empty() && view::can_view(a, {numel_of(ba) * M, K}, fold) &&
        fold.size() == 2 && fold[1] == 1 && fold[0] >= K) {  // rows really stacked: not an expanded (stride-0) batch
      BlasView vb = blas_view(b);
      Tensor bc = vb.ok ? b : view::contiguous(b);
      if (!vb.ok) vb = blas_view(bc);
      blas::gemm<T>(false, vb.trans, numel_of(ba) * M, N, K, T(1), base_ptr<T>(a) + a.offset(), fold[0],
                    base_ptr<T>(bc) + bc.offset(), vb.ld, beta, y.data_ptr<T>(), N);
      return y;
    }
    Shape ea = batch, eb = batch;
    ea.push_back(M), ea.push_back(K), eb.push_back(K), eb.push_back(N);
    Tensor ax = view::expand(a, ea), bx = view::expand(b, eb);
    BlasView va = blas_view(ax), vb = blas_view(bx);
    if (!va.ok) ax = view::contiguous(ax), va = blas_view(ax);
    if (!vb.ok) bx = view::contiguous(bx), vb = blas_view(bx);
    int64_t nb = numel_of(batch), nd = (int64_t)batch.size();
    T* yp = y.data_ptr<T>();
    for (int64_t i = 0; i < nb; i++) {
      int64_t oa = ax.offset(), ob = bx.offset(), rem = i;
      for (int64_t d = nd - 1; d >= 0; d--) {
        int64_t k = rem % batch[d];
        rem /= batch[d];
        oa += k * ax.strides()[d];
        ob += k * bx.strides()[d];
      }
      blas::gemm<T>(va.trans, vb.trans, M, N, K, T(1), base_ptr<T>(ax) + oa, va.ld, base_ptr<T>(bx) + ob, vb.ld, beta,
                    yp + i * M * N, N);
    }
    return y;
  });
}

// One GEMM per batch entry i, all adding into the same output; the strided walk over b's batch dims
// finds each b_i in place (a broadcast b has stride 0 there, and every i reads the same matrix).
template <class T>
static Tensor matmul_grad_shared_a_typed(const Tensor& d, const Tensor& b, bool transposed) {
  const int64_t M = d.size(-2), N = d.size(-1), K = b.size(-2);
  Shape batch(d.shape().begin(), d.shape().end() - 2);
  Shape eb = batch;
  eb.push_back(K), eb.push_back(N);
  Tensor dc = d.contiguous(), bx = b.expand(eb);
  const T* dp = dc.data_ptr<T>();
  const T* bp = static_cast<const T*>(bx.storage()->data);
  const int64_t ldb = std::max<int64_t>(bx.stride(-2), N), nb = numel_of(batch), nd = (int64_t)batch.size();
  Tensor out = empty(transposed ? Shape{K, M} : Shape{M, K}, d.dtype());
  T* op = out.data_ptr<T>();
  for (int64_t i = 0; i < nb; i++) {
    int64_t ob = bx.offset(), rem = i;
    for (int64_t k = nd - 1; k >= 0; k--) {
      ob += (rem % batch[k]) * bx.stride(k);
      rem /= batch[k];
    }
    const T* di = dp + i * M * N;
    const T beta = i == 0 ? T(0) : T(1);
    if (transposed) blas::gemm<T>(false, true, K, M, N, T(1), bp + ob, ldb, di, N, beta, op, M);
    else blas::gemm<T>(false, true, M, K, N, T(1), di, N, bp + ob, ldb, beta, op, K);
  }
  return transposed ? out.mT() : out;
}

Tensor matmul_grad_shared_a(const Tensor& dout, const Tensor& b, bool column_major) {
  return dispatch_floating(dout.dtype(), "matmul", [&](auto zero) {
    return matmul_grad_shared_a_typed<decltype(zero)>(dout, b, column_major);
  });
}

bool matmul_grad_shared_a_applies(const Tensor& a, const Tensor& b, const Tensor& d) {
  if (!is_floating(d.dtype()) || d.dim() < 3) return false;
  if (numel_of(Shape(a.shape().begin(), a.shape().end() - 2)) != 1) return false;
  if (numel_of(Shape(d.shape().begin(), d.shape().end() - 2)) <= 1) return false;
  return (b.size(-1) == 1 || b.stride(-1) == 1) && (b.size(-2) == 1 || b.stride(-2) >= b.size(-1));
}

// ---- indexing and joining -------------------------------------------------------------------------------
static std::vector<int64_t> checked_indices(const char* name, const Tensor& index, int64_t size, int64_t dim) {
  if (index.dtype() != int64)
    throw Error(std::string(name) + ": index must be int64, got " + dtype_name(index.dtype()));
  std::vector<int64_t> idx = index.to_vector<int64_t>();
  for (int64_t& i : idx) {
    if (i < -size || i >= size)
      throw Error(std::string(name) + ": index " + std::to_string(i) + " out of range for dim " + std::to_string(dim) +
                  " of size " + std::to_string(size));
    if (i < 0) i += size;
  }
  return idx;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = wrap_dim_scalar_ok("index_select", dim, x.dim());  // a 0-d x is its own one slice, as in PyTorch
  if (index.dim() > 1) throw Error("index_select: index must be 0-d or 1-d, got shape " + shape_str(index.shape()));
  int64_t size = x.dim() ? x.shape()[dim] : 1;
  std::vector<int64_t> idx = checked_indices("index_select", index, size, dim);
  Tensor xc = view::contiguous(x);
  Shape out = x.shape();
  if (x.dim()) out[dim] = (int64_t)idx.size();
  Tensor y = empty(out, x.dtype());
  Split3 p = split3(xc.shape(), dim);
  size_t es = dtype_size(x.dtype());
  const char* xp = static_cast<const char*>(xc.storage()->data) + xc.offset() * es;
  char* yp = static_cast<char*>(y.storage()->data);
  int64_t K = (int64_t)idx.size();
  // Each selected slice is `inner` contiguous elements: one memcpy per (outer, index) pair.
#pragma omp parallel for schedule(static) if (y.numel() >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t i = 0; i < K; i++)
      std::memcpy(yp + (o * K + i) * p.inner * es, xp + (o * p.R + idx[i]) * p.inner * es, p.inner * es);
  return y;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim_scalar_ok("index_add", dim, x.dim());
  check_same_dtype("index_add", x, src);
  int64_t size = x.dim() ? x.shape()[dim] : 1;
  std::vector<int64_t> idx = checked_indices("index_add", index, size, dim);
  Shape want = x.shape();
  if (x.dim()) want[dim] = (int64_t)idx.size();
  if (src.shape() != want)
    throw Error("index_add: source shape " + shape_str(src.shape()) + " should be " + shape_str(want) + " for " +
                std::to_string(idx.size()) + " indices into " + shape_str(x.shape()));
  Tensor y = cast(x, x.dtype());  // a fresh contiguous copy to add into
  Tensor sc = view::contiguous(src);
  dispatch_floating(x.dtype(), "index_add", [&](auto zero) {
    using T = decltype(zero);
    Split3 p = split3(y.shape(), dim);
    T* yp = y.data_ptr<T>();
    const T* sp = sc.data_ptr<T>();
    int64_t K = (int64_t)idx.size();
    // Repeated indices add up, so the loop over i stays serial within one outer slice.
#pragma omp parallel for schedule(static) if (y.numel() >= kParallelGrain && p.outer > 1) \
    num_threads(parallel_threads())
    for (int64_t o = 0; o < p.outer; o++)
      for (int64_t i = 0; i < K; i++)
        simd::accumulate_ref<T>(yp + (o * p.R + idx[i]) * p.inner, sp + (o * K + i) * p.inner, 1, p.inner);
  });
  return y;
}

// gather and scatter_add walk every element of `index` (shape I, same ndim as x) with an N-d counter.
template <class F>
static void for_each_index(const Shape& shape, F&& f) {
  int64_t n = numel_of(shape), nd = (int64_t)shape.size();
  std::vector<int64_t> c(nd, 0);
  for (int64_t lin = 0; lin < n; lin++) {
    f(c, lin);
    for (int64_t d = nd - 1; d >= 0; d--) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
}

static void check_gather_shapes(const char* name, const Tensor& x, int64_t dim, const Tensor& index,
                                const Tensor* src) {
  if (index.dtype() != int64)
    throw Error(std::string(name) + ": index must be int64, got " + dtype_name(index.dtype()));
  if (index.dim() != x.dim())
    throw Error(std::string(name) + ": index " + shape_str(index.shape()) + " must have as many dims as input " +
                shape_str(x.shape()));
  for (int64_t d = 0; d < x.dim(); d++) {
    if (d != dim && index.shape()[d] > x.shape()[d])
      throw Error(std::string(name) + ": index " + shape_str(index.shape()) + " is larger than input " +
                  shape_str(x.shape()) + " in dim " + std::to_string(d));
    if (src && index.shape()[d] > src->shape()[d])
      throw Error(std::string(name) + ": index " + shape_str(index.shape()) + " is larger than src " +
                  shape_str(src->shape()) + " in dim " + std::to_string(d));
  }
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = wrap_dim("gather", dim, x.dim());
  check_gather_shapes("gather", x, dim, index, nullptr);
  Tensor y = empty(index.shape(), x.dtype());
  std::vector<int64_t> idx = index.to_vector<int64_t>();
  dispatch_all(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* xb = base_ptr<T>(x);
    T* yp = y.data_ptr<T>();
    int64_t size = x.shape()[dim];
    for_each_index(index.shape(), [&](const std::vector<int64_t>& c, int64_t lin) {
      int64_t k = idx[lin];
      if (k < 0 || k >= size)
        throw Error("gather: index " + std::to_string(k) + " out of range for dim " + std::to_string(dim) +
                    " of size " + std::to_string(size));
      int64_t off = x.offset();
      for (int64_t d = 0; d < x.dim(); d++) off += (d == dim ? k : c[d]) * x.strides()[d];
      yp[lin] = xb[off];
    });
  });
  return y;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim("scatter_add", dim, x.dim());
  check_same_dtype("scatter_add", x, src);
  if (src.dim() != x.dim())
    throw Error("scatter_add: src " + shape_str(src.shape()) + " must have as many dims as input " +
                shape_str(x.shape()));
  check_gather_shapes("scatter_add", x, dim, index, &src);
  Tensor y = cast(x, x.dtype());
  std::vector<int64_t> idx = index.to_vector<int64_t>();
  dispatch_floating(x.dtype(), "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    T* yp = y.data_ptr<T>();
    const T* sb = base_ptr<T>(src);
    int64_t size = x.shape()[dim];
    Shape ys = y.strides();
    for_each_index(index.shape(), [&](const std::vector<int64_t>& c, int64_t lin) {
      int64_t k = idx[lin];
      if (k < 0 || k >= size)
        throw Error("scatter_add: index " + std::to_string(k) + " out of range for dim " + std::to_string(dim) +
                    " of size " + std::to_string(size));
      int64_t oy = 0, os = src.offset();
      for (int64_t d = 0; d < x.dim(); d++) {
        oy += (d == dim ? k : c[d]) * ys[d];
        os += c[d] * src.strides()[d];
      }
      yp[oy] += sb[os];
    });
  });
  return y;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw Error("cat: expected at least one tensor");
  const Tensor& first = xs[0];
  dim = wrap_dim("cat", dim, first.dim());
  if (first.dim() == 0) throw Error("cat: zero-dimensional tensors cannot be concatenated");
  Shape out = first.shape();
  out[dim] = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    const Tensor& x = xs[i];
    check_same_dtype("cat", first, x);
    bool ok = x.dim() == first.dim();
    for (int64_t d = 0; ok && d < x.dim(); d++) ok = d == dim || x.shape()[d] == first.shape()[d];
    if (!ok)
      throw Error("cat: tensor " + std::to_string(i) + " has shape " + shape_str(x.shape()) + " but tensor 0 has " +
                  shape_str(first.shape()) + " (they must match except in dim " + std::to_string(dim) + ")");
    out[dim] += x.shape()[dim];
  }
  Tensor y = empty(out, first.dtype());
  int64_t at = 0;
  for (const Tensor& x : xs) {
    copy_(view::narrow(y, dim, at, x.shape()[dim]), x);
    at += x.shape()[dim];
  }
  return y;
}

// ---- im2col / col2im --------------------------------------------------------------------------------------
// Both walk the same index map: for channel c, kernel offset (i,j) and output pixel (oy,ox), the input
// pixel is (oy*sh - ph + i*dh, ox*sw - pw + j*dw). im2col copies along it, col2im adds back along it.
// The innermost loop runs over ox, so for stride 1 both sides are contiguous rows.
//
// window_map_ref is the plain loop, one bounds test per element. The fast path avoids the tests by working
// on zero-padded copies of a channel, (H + 2ph) × (W + 2pw): there every tap of every window is inside,
// so the whole map for one channel is a single table of kh·kw·L offsets into the padded image, the same
// for every channel and image. im2col is then a gather along the table (vectorised), col2im a scatter-add
// along it. Small convolutions have 7×7 and 14×14 outputs, rows far too short for per-row work to pay
// off, so the per-element bounds tests of the reference loop dominate there.
//
// Both take one image: `cols` points at its first column, and row r of its columns (r = (c·kh + i)·kw + j)
// starts at cols + r·row_stride: L for Columns::PerImage, N·L for Columns::Batched.
template <class T, bool kAdd>
static void window_map_ref(T* img, T* cols, int64_t row_stride, int64_t C, int64_t H, int64_t W, const Window2d& w) {
  int64_t OH = w.out_h(H), OW = w.out_w(W);
  for (int64_t c = 0; c < C; c++)
    for (int64_t i = 0; i < w.kh; i++)
      for (int64_t j = 0; j < w.kw; j++) {
        T* row = cols + ((c * w.kh + i) * w.kw + j) * row_stride;
        for (int64_t oy = 0; oy < OH; oy++) {
          int64_t y = oy * w.sh - w.ph + i * w.dh;
          T* out = row + oy * OW;
          if (y < 0 || y >= H) {
            if constexpr (!kAdd) std::fill(out, out + OW, T(0));
            continue;
          }
          T* src = img + (c * H + y) * W;
          for (int64_t ox = 0; ox < OW; ox++) {
            int64_t x = ox * w.sw - w.pw + j * w.dw;
            bool inside = x >= 0 && x < W;
            if constexpr (kAdd) {
              if (inside) src[x] += out[ox];
            } else {
              out[ox] = inside ? src[x] : T(0);
            }
          }
        }
      }
}

// The padded-image map: offset of tap (i, j) of output pixel (oy, ox) in the padded channel, at
// (i·kw + j)·L + oy·OW + ox: row i·kw + j of one channel's columns, column oy·OW + ox.
struct PaddedMap {
  int64_t Hp = 0, Wp = 0;
  std::vector<int32_t> offset;
};
static PaddedMap padded_map(int64_t H, int64_t W, const Window2d& w) {
  PaddedMap m;
  m.Hp = H + 2 * w.ph, m.Wp = W + 2 * w.pw;
  const int64_t OH = w.out_h(H), OW = w.out_w(W);
  m.offset.resize(w.kh * w.kw * OH * OW);
  int32_t* o = m.offset.data();
  for (int64_t i = 0; i < w.kh; i++)
    for (int64_t j = 0; j < w.kw; j++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) *o++ = (int32_t)((oy * w.sh + i * w.dh) * m.Wp + ox * w.sw + j * w.dw);
  return m;
}

// Channel c of images n0 .. n1-1, walking the columns row by row. `pad` is scratch for n1 - n0 padded
// channels of Hp·Wp elements each, whose borders are zero on entry and on exit. Row t of channel c holds
// tap t for every image, image n's L entries at n·image_stride: so a Batched row is read or written from
// start to end, and the padded channels it meets stay in cache across the kh·kw rows.
template <class T, bool kAdd>
static void window_map_block(T* img, T* cols, int64_t row_stride, int64_t image_stride, int64_t C, int64_t H,
                             int64_t W, const Window2d& w, const PaddedMap& m, T* pad, int64_t c, int64_t n0,
                             int64_t n1) {
  const int64_t taps = w.kh * w.kw, L = (int64_t)m.offset.size() / taps, plane = m.Hp * m.Wp;
  auto interior = [&](int64_t n, int64_t y) { return pad + (n - n0) * plane + (y + w.ph) * m.Wp + w.pw; };
  if constexpr (!kAdd)
    for (int64_t n = n0; n < n1; n++)
      for (int64_t y = 0; y < H; y++) std::memcpy(interior(n, y), img + ((n * C + c) * H + y) * W, W * sizeof(T));
  for (int64_t t = 0; t < taps; t++) {
    const int32_t* off = m.offset.data() + t * L;
    T* row = cols + (c * taps + t) * row_stride;
    for (int64_t n = n0; n < n1; n++) {
      T* seg = row + n * image_stride;
      T* p = pad + (n - n0) * plane;
      if constexpr (kAdd)
        for (int64_t l = 0; l < L; l++) p[off[l]] += seg[l];  // one tap's windows never overlap: no conflicts
      else
        for (int64_t l = 0; l < L; l++) seg[l] = p[off[l]];  // a gather: vpgatherdd with AVX-512
    }
  }
  if constexpr (kAdd)
    for (int64_t n = n0; n < n1; n++)
      for (int64_t y = 0; y < H; y++) {
        T* ch = img + ((n * C + c) * H + y) * W;
        const T* prow = interior(n, y);
        for (int64_t x = 0; x < W; x++) ch[x] += prow[x];
      }
  // Only the interior was written by im2col; col2im's scatter also reached the border.
  if constexpr (kAdd) std::fill(pad, pad + (n1 - n0) * plane, T(0));
}

// im2col / col2im over N images, the fast or the reference map. Image n's columns start at column n·L of
// a (K, N·L) matrix (Batched) or at matrix n of (N, K, L) (PerImage). The fast map works on blocks of
// (channel, up to nb images), spread over threads, with nb padded channels of scratch per thread (about
// 64 KB, at least one channel).
template <class T, bool kAdd>
static void window_map_images(T* img, T* cols, Columns layout, int64_t N, int64_t C, int64_t H, int64_t W,
                              const Window2d& w, bool par) {
  const int64_t K = C * w.kh * w.kw, L = w.out_h(H) * w.out_w(W);
  const bool batched = layout == Columns::Batched;
  const int64_t row_stride = batched ? N * L : L, image_stride = batched ? L : K * L;
  if (!use_simd()) {
#pragma omp parallel for schedule(static) if (par) num_threads(parallel_threads())
    for (int64_t n = 0; n < N; n++)
      window_map_ref<T, kAdd>(img + n * C * H * W, cols + n * image_stride, row_stride, C, H, W, w);
    return;
  }
  const PaddedMap m = padded_map(H, W, w);
  const char* op = kAdd ? "col2im" : "im2col";
  const int64_t plane = checked_mul(op, m.Hp, m.Wp, "padded image size");
  (void)checked_mul(op, plane, (int64_t)sizeof(T), "padded image bytes");
  const int64_t nb = std::clamp<int64_t>((64 << 10) / (int64_t)sizeof(T) / plane, 1, std::max<int64_t>(N, 1));
  const int64_t blocks = (N + nb - 1) / nb, items = C * blocks;
  ParallelGuard guard;  // a failed allocation inside the region would call std::terminate (tensor/parallel.h)
#pragma omp parallel if (par) num_threads(parallel_threads())
  {
    std::unique_ptr<T[]> pad;
    const bool ready = guard.run([&] {
      // Padding far beyond the image makes this scratch huge while the output stays small (a large stride).
      // nothrow new: a failure is ours to report (a sanitizer's operator new would abort instead of throwing).
      pad.reset(new (std::nothrow) T[(size_t)(nb * plane)]);
      if (!pad)
        throw OutOfMemory(std::string(op) + ": out of memory allocating " + std::to_string(m.Hp) + "x" +
                          std::to_string(m.Wp) + " elements of scratch for the image padded by (" +
                          std::to_string(w.ph) + "," + std::to_string(w.pw) + ")");
      std::fill(pad.get(), pad.get() + nb * plane, T(0));
    });
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; item++) {
      if (!ready) continue;
      const int64_t c = item / blocks, n0 = item % blocks * nb;
      window_map_block<T, kAdd>(img, cols, row_stride, image_stride, C, H, W, w, m, pad.get(), c, n0,
                                std::min(N, n0 + nb));
    }
  }
  guard.rethrow();
}

static void check_window(const char* name, const Window2d& w, int64_t H, int64_t W) {
  if (w.kh < 1 || w.kw < 1 || w.sh < 1 || w.sw < 1 || w.dh < 1 || w.dw < 1 || w.ph < 0 || w.pw < 0)
    throw Error(std::string(name) + ": invalid window kernel=(" + std::to_string(w.kh) + "," + std::to_string(w.kw) +
                ") stride=(" + std::to_string(w.sh) + "," + std::to_string(w.sw) + ") padding=(" +
                std::to_string(w.ph) + "," + std::to_string(w.pw) + ") dilation=(" + std::to_string(w.dh) + "," +
                std::to_string(w.dw) + ")");
  if (w.out_h(H) < 1 || w.out_w(W) < 1)
    throw Error(std::string(name) + ": the " + std::to_string(w.kh) + "x" + std::to_string(w.kw) +
                " window (dilation " + std::to_string(w.dh) + "x" + std::to_string(w.dw) + ", padding " +
                std::to_string(w.ph) + "x" + std::to_string(w.pw) + ") does not fit a " + std::to_string(H) + "x" +
                std::to_string(W) + " input");
}

Tensor im2col(const Tensor& x, const Window2d& w, Columns layout) {
  if (x.dim() != 4) throw Error("im2col: expected (N,C,H,W), got " + shape_str(x.shape()));
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_window("im2col", w, H, W);
  Tensor xc = view::contiguous(x);
  int64_t K = checked_mul("im2col", C, w.kh * w.kw, "rows of the columns"), L = w.out_h(H) * w.out_w(W);
  Tensor cols = empty(layout == Columns::Batched ? Shape{K, N, L} : Shape{N, K, L}, x.dtype());
  dispatch_floating(x.dtype(), "im2col", [&](auto zero) {
    using T = decltype(zero);
    T* xp = xc.data_ptr<T>();
    T* cp = cols.data_ptr<T>();
    window_map_images<T, false>(xp, cp, layout, N, C, H, W, w, cols.numel() >= kParallelGrain && N > 1);
  });
  return cols;
}

Tensor col2im(const Tensor& cols, int64_t C, int64_t H, int64_t W, const Window2d& w, Columns layout) {
  check_window("col2im", w, H, W);
  if (C < 0) throw Error("col2im: negative channel count " + std::to_string(C));
  int64_t K = checked_mul("col2im", C, w.kh * w.kw, "rows of the columns"), L = w.out_h(H) * w.out_w(W);
  const bool batched = layout == Columns::Batched;
  if (cols.dim() != 3 || cols.size(batched ? 0 : 1) != K || cols.size(2) != L)
    throw Error("col2im: expected " +
                std::string(batched ? "(" + std::to_string(K) + ",N," : "(N," + std::to_string(K) + ",") +
                std::to_string(L) + ") columns, got " + shape_str(cols.shape()));
  int64_t N = cols.size(batched ? 1 : 0);
  Tensor cc = view::contiguous(cols);
  Tensor img = zeros({N, C, H, W}, cols.dtype());
  dispatch_floating(cols.dtype(), "col2im", [&](auto zero) {
    using T = decltype(zero);
    T* ip = img.data_ptr<T>();
    T* cp = cc.data_ptr<T>();
    window_map_images<T, true>(ip, cp, layout, N, C, H, W, w, cc.numel() >= kParallelGrain && N > 1);
  });
  return img;
}

// ---- random fills ---------------------------------------------------------------------------------------------
// The recipes (which draws make which element) live in tensor/random.h; here they meet a tensor.
void fill_uniform(const Tensor& t, Generator& gen) {
  if (!t.is_contiguous()) throw Error("rand: needs a contiguous tensor, got strides " + shape_str(t.strides()));
  dispatch_floating(t.dtype(), "rand", [&](auto zero) {
    using T = decltype(zero);
    heed::fill_uniform<T>(t.data_ptr<T>(), t.numel(), gen);
  });
}

void fill_normal(const Tensor& t, Generator& gen) {
  if (!t.is_contiguous()) throw Error("randn: needs a contiguous tensor, got strides " + shape_str(t.strides()));
  dispatch_floating(t.dtype(), "randn", [&](auto zero) {
    using T = decltype(zero);
    heed::fill_normal<T>(t.data_ptr<T>(), t.numel(), gen);
  });
}

}  // namespace heed::kernels

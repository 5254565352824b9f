// tensor.cpp: storage, metadata, views, creation and printing.
//
// Views are the heart of a strided tensor: each one below only computes a new (shape, strides, offset)
// over the same Storage. They are recorded by autograd like any other op (autograd/ops_view.cpp), so the
// functions here are the raw "make a view" half; the differentiable methods call them.
#include "tensor/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <new>
#include <ostream>
#include <sstream>

#include "tensor/allocator.h"
#include "tensor/kernels/kernels.h"
#include "tensor/random.h"
#include "tensor/view.h"

namespace heed {

// ---- Storage ------------------------------------------------------------------------------------------
static std::atomic<int64_t> g_bytes{0}, g_peak{0};

Storage::Storage(size_t n) : nbytes(n) {
  // 64-byte aligned, at least one cache line; large blocks are recycled (tensor/allocator.h says why).
  data = allocator::allocate(n);
  int64_t now = g_bytes += (int64_t)n;
  for (int64_t p = g_peak; now > p && !g_peak.compare_exchange_weak(p, now);) {
  }
}
Storage::~Storage() {
  allocator::release(data, nbytes);
  g_bytes -= (int64_t)nbytes;
}

MemoryStats memory_stats() { return {g_bytes.load(), g_peak.load()}; }
void reset_peak_memory() { g_peak = g_bytes.load(); }

static std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> storage, Shape shape, Shape strides,
                                             int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return impl;
}

Tensor view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  return Tensor(make_impl(base.storage(), std::move(shape), std::move(strides), offset, base.dtype()));
}

// ---- metadata -----------------------------------------------------------------------------------------
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim("size", d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim("stride", d, dim())]; }

bool Tensor::is_contiguous() const {
  // Size-1 dims may have any stride: they are never stepped over.
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; i--) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

// Offset (in elements) of a full index, bounds-checked.
static int64_t element_offset(const Tensor& t, const std::vector<int64_t>& index, const char* op) {
  if ((int64_t)index.size() != t.dim())
    throw Error(std::string(op) + ": index has " + std::to_string(index.size()) + " entries for a tensor of shape " +
                shape_str(t.shape()));
  int64_t off = t.offset();
  for (int64_t i = 0; i < t.dim(); i++) {
    int64_t k = index[i] < 0 ? index[i] + t.shape()[i] : index[i];
    if (k < 0 || k >= t.shape()[i])
      throw Error(std::string(op) + ": index " + std::to_string(index[i]) + " out of range for dim " +
                  std::to_string(i) + " of shape " + shape_str(t.shape()));
    off += k * t.strides()[i];
  }
  return off;
}

static double read_as_double(const Tensor& t, int64_t off) {
  const void* base = t.storage()->data;
  switch (t.dtype()) {
    case DType::Float32: return static_cast<const float*>(base)[off];
    case DType::Float64: return static_cast<const double*>(base)[off];
    case DType::Int64: return (double)static_cast<const int64_t*>(base)[off];
    case DType::Bool: return static_cast<const bool*>(base)[off] ? 1.0 : 0.0;
  }
  return 0;
}

double Tensor::at(const std::vector<int64_t>& index) const {
  return read_as_double(*this, element_offset(*this, index, "at"));
}

double Tensor::item() const {
  if (numel() != 1)
    throw Error("item: only a one-element tensor has an item; this one has shape " + shape_str(shape()));
  return read_as_double(*this, offset());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = kernels::cast(*this, dtype_of<T>());
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

// ---- raw views (graph-free; autograd/ops_view.cpp wraps them) ----------------------------------------
namespace view {

// Can a tensor with (shape, strides) be read as `target` without copying? Walk both shapes in chunks of
// equal element count; inside each chunk the old dims must be laid out contiguously with respect to each
// other, and then the chunk can be re-cut into the new sizes. This is PyTorch's `computeStride`.
static bool try_view_strides(const Shape& shape, const Shape& strides, const Shape& target, Shape& out) {
  out.assign(target.size(), 0);
  if (numel_of(shape) == 0 || shape.empty()) {
    out = contiguous_strides(target);
    return true;
  }
  int64_t view_d = (int64_t)target.size() - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; d--) {
    tensor_numel *= shape[d];
    // At a chunk boundary: the next old dim is not contiguous with this one (or we are at the front).
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(const char* op, const Shape& shape, int64_t numel) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); i++) {
    if (out[i] == -1) {
      if (infer >= 0) throw Error(std::string(op) + ": only one dim can be -1, got " + shape_str(shape));
      infer = (int64_t)i;
    } else if (out[i] < 0) {
      throw Error(std::string(op) + ": invalid size " + std::to_string(out[i]) + " in " + shape_str(shape));
    } else {
      known = checked_mul(op, known, out[i], "shape product");
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw Error(std::string(op) + ": shape " + shape_str(shape) + " is invalid for " + std::to_string(numel) +
                  " elements");
    out[infer] = numel / known;
  }
  if (numel_of(out) != numel)
    throw Error(std::string(op) + ": shape " + shape_str(shape) + " is invalid for " + std::to_string(numel) +
                " elements");
  return out;
}

bool can_view(const Tensor& x, const Shape& target, Shape& strides) {
  return try_view_strides(x.shape(), x.strides(), target, strides);
}

Tensor view(const Tensor& x, const Shape& shape) {
  Shape target = infer_shape("view", shape, x.numel());
  Shape st;
  if (!can_view(x, target, st))
    throw Error("view: a tensor of shape " + shape_str(x.shape()) + " and strides " + shape_str(x.strides()) +
                " cannot be viewed as " + shape_str(target) + "; use reshape (it copies when it must)");
  return view_of(x, target, st, x.offset());
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  int64_t n = x.dim();
  if ((int64_t)dims.size() != n)
    throw Error("permute: " + std::to_string(dims.size()) + " dims given for a tensor of shape " +
                shape_str(x.shape()));
  Shape shape(n), strides(n);
  std::vector<bool> seen(n, false);
  for (int64_t i = 0; i < n; i++) {
    int64_t d = wrap_dim("permute", dims[i], n);
    if (seen[d]) throw Error("permute: dim " + std::to_string(d) + " repeats in " + shape_str(Shape(dims)));
    seen[d] = true;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  return view_of(x, shape, strides, x.offset());
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim("slice", dim, x.dim());
  if (x.dim() == 0) throw Error("slice: cannot slice a 0-d tensor");
  if (step <= 0) throw Error("slice: step must be positive, got " + std::to_string(step));
  int64_t n = x.shape()[dim];
  // Python semantics: negative indices count from the end, and out-of-range bounds are clipped.
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = x.shape(), strides = x.strides();
  // ceil((end - start) / step) without forming end - start + step - 1, which overflows for a huge step.
  shape[dim] = end == start ? 0 : 1 + (end - start - 1) / step;
  // A dim of one element is never stepped over, so its stride may stay as it is (step * stride could
  // overflow for step = INT64_MAX); otherwise the result stays inside the storage, so it fits.
  if (shape[dim] > 1) strides[dim] = checked_mul("slice", strides[dim], step, "stride");
  return view_of(x, shape, strides, x.offset() + start * x.strides()[dim]);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_dim("narrow", dim, x.dim());
  int64_t n = x.shape()[dim];
  if (start < 0) start += n;
  if (start < 0 || length < 0 || start > n || length > n - start)  // not start + length: it can overflow
    throw Error("narrow: start " + std::to_string(start) + " length " + std::to_string(length) +
                " out of range for dim " + std::to_string(dim) + " of shape " + shape_str(x.shape()));
  return slice(x, dim, start, start + length, 1);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  dim = wrap_dim("select", dim, x.dim());
  int64_t n = x.shape()[dim];
  if (index < -n || index >= n)
    throw Error("select: index " + std::to_string(index) + " out of range for dim " + std::to_string(dim) +
                " of shape " + shape_str(x.shape()));
  if (index < 0) index += n;
  Shape shape = x.shape(), strides = x.strides();
  int64_t off = x.offset() + index * strides[dim];
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return view_of(x, shape, strides, off);
}

Tensor expand(const Tensor& x, const Shape& target) {
  if (target.size() < (size_t)x.dim())
    throw Error("expand: cannot expand shape " + shape_str(x.shape()) + " to fewer dims " + shape_str(target));
  size_t lead = target.size() - x.dim();
  Shape shape(target.size()), strides(target.size(), 0);
  for (size_t i = 0; i < target.size(); i++) {
    int64_t want = target[i];
    if (want < -1 || (want == -1 && i < lead))
      throw Error("expand: invalid size " + std::to_string(want) + " at dim " + std::to_string(i) + " of " +
                  shape_str(target) + " (sizes are >= 0, or -1 to keep an existing dim)");
    if (i < lead) {
        shape[i] = want;
      continue;
    }
    int64_t have = x.shape()[i - lead];
    if (want == -1) want = have;
    if (have != want && have != 1)
      throw Error("expand: shape " + shape_str(x.shape()) + " cannot be expanded to " + shape_str(target) +
                  " (dim " + std::to_string(i) + ": " + std::to_string(have) + " != " + std::to_string(want) + ")");
    shape[i] = want;
    strides[i] = have == want ? x.strides()[i - lead] : 0;
  }
  checked_numel("expand", shape);
  return view_of(x, shape, strides, x.offset());
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim_scalar_ok("squeeze", dim, x.dim());
  if (x.dim() == 0 || x.shape()[dim] != 1) return view_of(x, x.shape(), x.strides(), x.offset());
  Shape shape = x.shape(), strides = x.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return view_of(x, shape, strides, x.offset());
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim("unsqueeze", dim, x.dim() + 1);
  Shape shape = x.shape(), strides = x.strides();
  // The new dim's stride is irrelevant (size 1); pick the one that keeps contiguous tensors contiguous.
  int64_t st = dim < x.dim() ? x.shape()[dim] * x.strides()[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, st);
  return view_of(x, shape, strides, x.offset());
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : kernels::cast(x, x.dtype()); }

}  // namespace view

// ---- creation -----------------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype) { return empty("empty", shape, dtype); }

Tensor empty(const char* op, const Shape& shape, DType dtype) {
  // Every tensor's memory comes from here, so every shape passes the one checked product (shape.h): no
  // size can wrap around to a small buffer that the op then writes past.
  int64_t nbytes = checked_nbytes(op, shape, (int64_t)dtype_size(dtype));
  std::shared_ptr<Storage> storage;
  try {
    storage = std::make_shared<Storage>((size_t)nbytes);
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(std::string(op) + ": out of memory allocating " + std::to_string(nbytes) + " bytes for a " +
                      dtype_name(dtype) + " tensor of shape " + shape_str(shape));
  }
  return Tensor(make_impl(std::move(storage), shape, contiguous_strides(shape), 0, dtype));
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty("full", shape, dtype);
  kernels::fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype) {
  Tensor t = empty("zeros", shape, dtype);
  std::memset(t.storage()->data, 0, t.storage()->nbytes);  // all-zero bytes are 0 in every dtype
  return t;
}
Tensor ones(const Shape& shape, DType dtype) {
  Tensor t = empty("ones", shape, dtype);
  kernels::fill_(t, 1.0);
  return t;
}
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

Tensor arange(double start, double end, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    throw Error("arange: invalid range start=" + std::to_string(start) + " end=" + std::to_string(end) +
                " step=" + std::to_string(step));
  // The count is checked as a double first: casting 1e30 to int64 is undefined (and gave 0 elements).
  double count = std::ceil((end - start) / step);
  if (!(count < 9.2e18))
    throw Error("arange: [" + std::to_string(start) + ", " + std::to_string(end) + ") in steps of " +
                std::to_string(step) + " has " + std::to_string(count) + " elements, more than int64 can count");
  int64_t n = std::max<int64_t>(0, (int64_t)count);
  Tensor t = empty("arange", {n}, dtype);
  dispatch_all(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = t.data_ptr<T>();
    for (int64_t i = 0; i < n; i++) p[i] = static_cast<T>(start + (double)i * step);
  });
  return t;
}
Tensor arange(int64_t end, DType dtype) { return arange(0.0, (double)end, 1.0, dtype); }

Tensor linspace(double start, double end, int64_t steps, DType dtype) {
  if (steps < 0) throw Error("linspace: steps must be non-negative, got " + std::to_string(steps));
  Tensor t = empty("linspace", {steps}, dtype);
  dispatch_floating(dtype, "linspace", [&](auto zero) {
    using T = decltype(zero);
    T* p = t.data_ptr<T>();
    double h = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
    // Fill from both ends, as torch does, so that the last value is exactly `end`.
    for (int64_t i = 0; i < steps; i++)
      p[i] = static_cast<T>(i < steps / 2 ? start + h * i : end - h * (steps - 1 - i));
  });
  return t;
}

Tensor eye(int64_t n, DType dtype) {
  if (n < 0) throw Error("eye: n must be >= 0, got " + std::to_string(n));
  checked_numel("eye", {n, n});
  Tensor t = zeros({n, n}, dtype);
  for (int64_t i = 0; i < n; i++) kernels::fill_(view::select(view::select(t, 0, i), 0, i), 1.0);
  return t;
}

Tensor rand(const Shape& shape, DType dtype, Generator* gen) {
  Tensor t = empty("rand", shape, dtype);
  kernels::fill_uniform(t, gen ? *gen : default_generator());
  return t;
}
Tensor randn(const Shape& shape, DType dtype, Generator* gen) {
  Tensor t = empty("randn", shape, dtype);
  kernels::fill_normal(t, gen ? *gen : default_generator());
  return t;
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen) {
  if (high <= low) throw Error("randint: empty range [" + std::to_string(low) + ", " + std::to_string(high) + ")");
  Tensor t = empty("randint", shape, int64);
  Generator& g = gen ? *gen : default_generator();
  uint64_t start = g.reserve(2 * (uint64_t)t.numel());
  // In unsigned arithmetic: high - low overflows int64 for [INT64_MIN, INT64_MAX), but not uint64.
  uint64_t range = (uint64_t)high - (uint64_t)low;
  int64_t* p = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < t.numel(); i++) {
    // 64 random bits reduced modulo the range; the bias is below 2^-32 for any range that fits in 32 bits.
    uint64_t bits = ((uint64_t)philox_u32(g.seed(), start + 2 * i) << 32) | philox_u32(g.seed(), start + 2 * i + 1);
    p[i] = (int64_t)((uint64_t)low + bits % range);  // wraps into [low, high), never past it
  }
  return t;
}

template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{(int64_t)values.size()});
}
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  // An empty shape is 0-d and takes exactly one value (numel_of({}) is 1).
  if (checked_numel("from_vector", shape) != (int64_t)values.size())
    throw Error("from_vector: " + std::to_string(values.size()) + " values do not fill shape " + shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data_ptr<T>());
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&);
template Tensor from_vector<double>(const std::vector<double>&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&);
template Tensor from_vector<bool>(const std::vector<bool>&);
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&);

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return kernels::cast(from_vector(std::vector<double>(values)), dtype);
}
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> flat;
  int64_t cols = rows.size() ? (int64_t)rows.begin()->size() : 0;
  for (auto& r : rows) {
    if ((int64_t)r.size() != cols)
      throw Error("tensor: rows have different lengths (" + std::to_string(cols) + " and " + std::to_string(r.size()) +
                  ")");
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return kernels::cast(from_vector(flat, {(int64_t)rows.size(), cols}), dtype);
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype()); }
Tensor rand_like(const Tensor& t, Generator* gen) { return rand(t.shape(), t.dtype(), gen); }
Tensor randn_like(const Tensor& t, Generator* gen) { return randn(t.shape(), t.dtype(), gen); }

// ---- printing -------------------------------------------------------------------------------------------
// Like PyTorch: nested brackets, a common number format chosen from the values, and "..." past 1000 elements.
static void print_rec(std::ostream& os, const Tensor& t, int64_t d, int64_t off, int indent, bool summarise,
                      const std::function<void(double)>& put) {
  int64_t n = t.shape()[d];
  os << '[';
  auto emit = [&](int64_t i) {
    int64_t o = off + i * t.strides()[d];
    if (d + 1 == t.dim()) put(read_as_double(t, o));
    else print_rec(os, t, d + 1, o, indent + 1, summarise, put);
  };
  bool cut = summarise && n > 6;
  for (int64_t i = 0; i < n; i++) {
    if (cut && i == 3) {
      os << (d + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - 3;
    }
    emit(i);
    if (i + 1 < n) {
      // Rows end in one newline, matrices in two, and so on, as PyTorch prints them.
      if (d + 1 == t.dim()) os << ", ";
      else os << ',' << std::string(t.dim() - d - 1, '\n') << std::string(indent + 1, ' ');
    }
  }
  os << ']';
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  bool is_int = t.dtype() == DType::Int64 || t.dtype() == DType::Bool;
  // Fixed notation with 4 decimals unless the magnitudes call for scientific, as PyTorch decides.
  double amax = 0, amin_nz = INFINITY;
  bool all_int = true;
  int64_t n = t.numel();
  if (n > 0 && !is_int) {
    Tensor c = kernels::cast(t, float64);
    const double* p = c.data_ptr<double>();
    for (int64_t i = 0; i < n; i++) {
      if (!std::isfinite(p[i])) continue;
      amax = std::max(amax, std::fabs(p[i]));
      if (p[i] != 0) amin_nz = std::min(amin_nz, std::fabs(p[i]));
      all_int = all_int && p[i] == std::floor(p[i]);
    }
  }
  bool sci = !is_int && (amax >= 1e8 || (amin_nz < 1e-4 && amin_nz != INFINITY));
  std::function<void(double)> put = [&](double v) {
    std::ostringstream s;
    if (t.dtype() == DType::Bool) s << (v != 0 ? "True" : "False");
    else if (is_int) s << (int64_t)v;
    else if (std::isnan(v)) s << "nan";
    else if (std::isinf(v)) s << (v > 0 ? "inf" : "-inf");
    else if (sci) s << std::scientific << std::setprecision(4) << v;
    else if (all_int) s << (int64_t)v << '.';
    else s << std::fixed << std::setprecision(4) << v;
    os << s.str();
  };
  os << "tensor(";
  if (t.dim() == 0) put(read_as_double(t, t.offset()));
  else if (n == 0) os << "[]";
  else print_rec(os, t, 0, t.offset(), 7, n > 1000, put);
  os << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.requires_grad()) os << ", requires_grad=True";
  return os << ')';
}

}  // namespace heed

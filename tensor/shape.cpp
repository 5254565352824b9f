#include "tensor/shape.h"

#include <cstdint>
#include <sstream>

namespace heed {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < s.size(); i++) os << (i ? "," : "") << s[i];
  os << ')';
  return os.str();
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

int64_t checked_numel(const char* op, const Shape& s) {
  // The product of the non-zero sizes is what the strides multiply up to, so it must fit as well: a
  // (0, 2^40, 2^40) tensor holds nothing, but its first stride would be 2^80.
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t d : s) {
    if (d < 0) throw Error(std::string(op) + ": negative size " + std::to_string(d) + " in shape " + shape_str(s));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > INT64_MAX / d)
      throw Error(std::string(op) + ": shape " + shape_str(s) + " has more than 2^63-1 elements");
    nonzero *= d;
  }
  return empty ? 0 : nonzero;
}

int64_t checked_mul(const char* op, int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw Error(std::string(op) + ": " + what + " " + std::to_string(a) + " * " + std::to_string(b) +
                (a < 0 || b < 0 ? " has a negative factor" : " overflows int64"));
  return r;
}

int64_t checked_add(const char* op, int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw Error(std::string(op) + ": " + what + " " + std::to_string(a) + " + " + std::to_string(b) +
                " overflows int64");
  return r;
}

int64_t checked_nbytes(const char* op, const Shape& s, int64_t itemsize) {
  int64_t n = checked_numel(op, s);
  if (n > INT64_MAX / itemsize)
    throw Error(std::string(op) + ": shape " + shape_str(s) + " needs " + std::to_string(n) + " elements of " +
                std::to_string(itemsize) + " bytes: more than 2^63-1 bytes");
  return n * itemsize;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)s.size() - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim) {
  if (ndim == 0)
    throw Error(std::string(op) + ": dim " + std::to_string(dim) + " given for a 0-d tensor, which has no dims");
  return wrap_dim_scalar_ok(op, dim, ndim);
}

int64_t wrap_dim_scalar_ok(const char* op, int64_t dim, int64_t ndim) {
  // A 0-d tensor accepts dim 0 and -1, as in PyTorch, so that reductions over "the last dim" work on scalars.
  int64_t n = ndim == 0 ? 1 : ndim;
  if (dim < -n || dim >= n)
    throw Error(std::string(op) + ": dim " + std::to_string(dim) + " out of range for a " + std::to_string(ndim) +
                "-d tensor");
  return dim < 0 ? dim + n : dim;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    // Align from the right: dim i of the output is dim (size - n + i) of each input, or 1 if missing.
    int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    if (da != db && da != 1 && db != 1)
      throw Error(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                  " cannot be broadcast (dim " + std::to_string(i) + ": " + std::to_string(da) +
                  " != " + std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& out) {
  Shape st(out.size(), 0);
  size_t lead = out.size() - shape.size();
  for (size_t i = 0; i < shape.size(); i++) st[lead + i] = shape[i] == 1 ? 0 : strides[i];
  return st;
}

}  // namespace heed

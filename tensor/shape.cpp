#include "tensor/shape.h"

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

// shape.h: shapes, strides and broadcasting, the arithmetic every op starts with.
//
// A tensor of shape (2,3) stored row-major has strides (3,1): element [i][j] lives at offset + 3*i + 1*j.
// Views (transpose, narrow, expand, ...) only change shape, strides and offset; the data never moves.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/error.h"  // shape errors are heed::Error

namespace heed {

using Shape = std::vector<int64_t>;

/// "(2,3)": how shapes appear in every error message.
std::string shape_str(const Shape& s);
/// Product of the sizes; 1 for a 0-d shape. For a shape that has passed checked_numel (every tensor's has).
int64_t numel_of(const Shape& s);
/// The one checked size product, for every shape a caller hands in: throws "op: negative size -5 in shape
/// (-5,3)" or "op: shape (4294967296,4294967296) has more than 2^63-1 elements". The product of the
/// non-zero sizes must fit too, so that the strides of (0, 2^40, 2^40) cannot overflow either.
int64_t checked_numel(const char* op, const Shape& s);
/// a * b for sizes (both >= 0), or "op: what: a * b overflows int64".
int64_t checked_mul(const char* op, int64_t a, int64_t b, const char* what = "size");
/// a + b for offsets and sizes, or "op: what: a + b overflows int64".
int64_t checked_add(const char* op, int64_t a, int64_t b, const char* what = "size");
/// Bytes of a contiguous tensor of `s` with `itemsize`-byte elements: checked_numel, and the byte count
/// must fit in int64 (no allocator gives more, and std::ptrdiff_t must hold every offset).
int64_t checked_nbytes(const char* op, const Shape& s, int64_t itemsize);
/// Row-major strides for a shape: (2,3,4) -> (12,4,1).
Shape contiguous_strides(const Shape& s);
/// Turns a possibly negative dim into 0..ndim-1, or throws "op: dim 3 out of range for a 2-d tensor".
/// A 0-d tensor has no dims: size(0), select, narrow, gather ... on one throw, as in PyTorch.
int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim);
/// The same, except that a 0-d tensor accepts dim 0 and -1, as PyTorch's reductions do (sum, max,
/// softmax ... over "the last dim" of a scalar): only ops that handle ndim == 0 themselves call this.
int64_t wrap_dim_scalar_ok(const char* op, int64_t dim, int64_t ndim);
/// NumPy broadcasting: align from the right; sizes must match or be 1.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
/// Strides that read `shape`'s data as if it had been expanded to `out` (0 stride on broadcast dims).
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& out);

}  // namespace heed

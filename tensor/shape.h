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
/// Product of the sizes; 1 for a 0-d shape.
int64_t numel_of(const Shape& s);
/// Row-major strides for a shape: (2,3,4) -> (12,4,1).
Shape contiguous_strides(const Shape& s);
/// Turns a possibly negative dim into 0..ndim-1, or throws "op: dim 3 out of range for a 2-d tensor".
int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim);
/// NumPy broadcasting: align from the right; sizes must match or be 1.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
/// Strides that read `shape`'s data as if it had been expanded to `out` (0 stride on broadcast dims).
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& out);

}  // namespace heed

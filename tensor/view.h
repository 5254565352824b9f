// view.h: the raw, graph-free view constructors (tensor/tensor.cpp). Each returns a new TensorImpl over
// the same Storage. Users call the differentiable Tensor methods instead (autograd/ops_view.cpp).
#pragma once
#include "tensor/tensor.h"

namespace heed {

/// A tensor over base's storage with the given geometry and no autograd state.
Tensor view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset);

namespace view {
/// Resolves one -1 and checks the element count: "reshape: shape (5,-1) is invalid for 12 elements".
Shape infer_shape(const char* op, const Shape& shape, int64_t numel);
/// True (and the strides) when x can be read as `target` without a copy.
bool can_view(const Tensor& x, const Shape& target, Shape& strides);
Tensor view(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
/// x itself when contiguous, else a contiguous copy; no graph (kernels use it on their inputs).
Tensor contiguous(const Tensor& x);
}  // namespace view

}  // namespace heed

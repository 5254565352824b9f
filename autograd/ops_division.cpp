// ops_division.cpp: Python's floor division and remainder, and the comparison operators beside them.
// The kernels (and PyTorch's type promotion, which makes `labels * 7 + 3` int64) are in
// tensor/kernels/promote.cpp.
#include "autograd/node.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"remainder"});

// out = ⌊a / b⌋, rounded toward -inf.  Not differentiable (PyTorch has no derivative for it): a constant.
Tensor floor_divide(const Tensor& a, const Tensor& b) { return kernels::floor_divide(a, b); }

// out = a - ⌊a / b⌋ b  (the sign of b);  da = d,  db = -d ⌊a / b⌋  (the quotient is piecewise constant)
Tensor remainder(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::floor_divide(a, b, /*remainder=*/true);
  OpFlags f{.reduces_broadcast = a.shape() != out.shape() || b.shape() != out.shape()};
  return record("remainder", out, {a, b},
                [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](
                    const Tensor& d, const Tensor&) {
                  Tensor a = sa.get(), b = sb.get();
                  return Grads{ra ? sum_to_size(d, a.shape()) : Tensor(),
                               rb ? sum_to_size(neg(d * floor_divide(a, b)), b.shape()) : Tensor()};
                },
                f);
}

Tensor operator%(const Tensor& a, const Tensor& b) { return remainder(a, b); }
Tensor operator%(const Tensor& a, double b) { return remainder(a, wrap_scalar(a, b)); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator==(const Tensor& a, double b) { return eq(a, wrap_scalar(a, b)); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, wrap_scalar(a, b)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, wrap_scalar(a, b)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, wrap_scalar(a, b)); }

}  // namespace heed

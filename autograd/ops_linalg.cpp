// ops_linalg.cpp: matmul, the op that does nearly all the arithmetic of a training step.
#include "autograd/node.h"
#include "tensor/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"matmul"});

// out = a @ b   a: (..., M, K)  b: (..., K, N)  ->  out: (..., M, N), batch dims broadcast;
// da = d @ b^T,  db = a^T @ d  (each summed over the batch dims its input was broadcast along).
// The transposes are views, which the kernel hands to BLAS as a flag: backward copies nothing.
static Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::matmul(a, b);
  OpFlags f{.reduces_broadcast = a.dim() != b.dim() || a.shape()[0] != b.shape()[0]};
  return record("matmul", out, {a, b}, [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](
                                           const Tensor& d, const Tensor&) {
    Tensor a = sa.get(), b = sb.get();
    Tensor da, db;
    if (ra) da = sum_to_size(matmul(d, b.mT()), a.shape());
    if (rb) {
      if (b.dim() == 2 && a.dim() > 2) {
        // A shared weight under a batch of inputs (nn.Linear on (B,T,C)): fold the batch into the rows,
        // one (K, B*M) @ (B*M, N) GEMM instead of B GEMMs followed by a reduction.
        int64_t K = a.size(-1), N = d.size(-1);
        db = matmul(a.reshape({-1, K}).mT(), d.reshape({-1, N}));
      } else {
        db = sum_to_size(matmul(a.mT(), d), b.shape());
      }
    }
    return Grads{da, db};
  }, f);
}

// PyTorch's rules for 1-d operands: a vector on the left is a (1, K) row, on the right a (K, 1) column,
// and the added dim is removed from the result. Composite, so the 2-d op above does all the work.
Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() == 0 || b.dim() == 0)
    throw Error("matmul: both operands need at least 1 dim, got " + shape_str(a.shape()) + " @ " + shape_str(b.shape()));
  if (a.dim() == 1 && b.dim() == 1) {
    if (a.size(0) != b.size(0))
      throw Error("matmul: " + shape_str(a.shape()) + " @ " + shape_str(b.shape()) + ": inner dimensions " +
                  std::to_string(a.size(0)) + " != " + std::to_string(b.size(0)));
    return matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  return matmul_nd(a, b);
}

// Composite: x @ w^T + b, as nn.Linear.  x: (..., K)  w: (N, K)  b: (N)  ->  (..., N)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (w.dim() != 2 || x.dim() == 0 || x.size(-1) != w.size(1))
    throw Error("linear: input " + shape_str(x.shape()) + " and weight " + shape_str(w.shape()) +
                ": expected weight (out_features, " + std::to_string(x.dim() ? x.size(-1) : 0) + ")");
  Tensor y = matmul(x, w.mT());
  return b.defined() ? y + b : y;
}

}  // namespace heed

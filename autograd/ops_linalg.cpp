// ops_linalg.cpp: matmul, the op that does nearly all the arithmetic of a training step.
#include "autograd/node.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"matmul", "linear"});

static Tensor matmul_da(const Tensor& d, const Tensor& a, const Tensor& b);
static Tensor matmul_db(const Tensor& d, const Tensor& a, const Tensor& b);

// out = a @ b   a: (..., M, K)  b: (..., K, N)  ->  out: (..., M, N), batch dims broadcast;
// da = d @ bᵀ,  db = aᵀ @ d  (each summed over the batch dims its input was broadcast along).
// The transposes are views, which the kernel hands to BLAS as a flag: backward copies nothing.
// matmul_da and matmul_db, below, compute exactly these, each in its input's memory layout.
static Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::matmul(a, b);
  OpFlags f{.reduces_broadcast = a.dim() != b.dim() || a.shape()[0] != b.shape()[0]};
  return record("matmul", out, {a, b}, [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(),
                                        rb = b.requires_grad()](const Tensor& d, const Tensor&) {
    Tensor a = sa.get(), b = sb.get();
    return Grads{ra ? matmul_da(d, a, b) : Tensor(), rb ? matmul_db(d, a, b) : Tensor()};
  }, f);
}

// Each gradient comes out in the memory layout of its input, as PyTorch's mm backward does. The case that
// matters is nn.Linear: b = w.mT() is column-major, and db = (dᵀ a)ᵀ computed that way lands in memory
// exactly as w, so the transpose's backward gives w.grad contiguous. Computed as aᵀ d instead, w.grad
// would be a transposed view, and every later add of two such gradients (a weight used twice, as the GAN's
// discriminator is) and the optimizer's contiguous() would walk it element by element (bench/README.md).

// A 2-d matrix stored column by column: a transposed view of a contiguous matrix, like linear's w.mT().
static bool is_transposed_matrix(const Tensor& t) {
  return t.dim() == 2 && t.size(0) > 1 && t.size(1) > 1 && t.stride(0) == 1 && t.stride(1) == t.size(0);
}

// da = d @ bᵀ, summed to a's shape.
static Tensor matmul_da(const Tensor& d, const Tensor& a, const Tensor& b) {
  // An `a` shared by a batch (conv2d's weight under N images): one GEMM per batch entry, all adding into
  // one (M, K) result, instead of N products (N, M, K) written and then summed. Raw BLAS, so only when no
  // graph is being recorded.
  if (!grad_enabled() && kernels::matmul_grad_shared_a_applies(a, b, d)) {
    const bool column_major = a.size(-2) > 1 && a.size(-1) > 1 && a.stride(-2) == 1;
    return kernels::matmul_grad_shared_a(d, b, column_major).reshape(a.shape());
  }
  if (is_transposed_matrix(a) && d.dim() == 2) return matmul(b, d.mT()).mT();  // (b dᵀ)ᵀ, column-major as a
  return sum_to_size(matmul(d, b.mT()), a.shape());
}

// db = aᵀ @ d, summed to b's shape.
static Tensor matmul_db(const Tensor& d, const Tensor& a, const Tensor& b) {
  if (b.dim() != 2) return sum_to_size(matmul(a.mT(), d), b.shape());
  // A shared weight under a batch of inputs (nn.Linear on (B,T,C)): fold the batch into the rows,
  // one (K, B*M) @ (B*M, N) GEMM instead of B GEMMs followed by a reduction.
  const int64_t K = a.size(-1), N = d.size(-1);
  Tensor a2 = a.reshape({-1, K}), d2 = d.reshape({-1, N});
  return is_transposed_matrix(b) ? matmul(d2.mT(), a2).mT() : matmul(a2.mT(), d2);
}

// PyTorch's rules for 1-d operands: a vector on the left is a (1, K) row, on the right a (K, 1) column,
// and the added dim is removed from the result. Composite, so the 2-d op above does all the work.
Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() == 0 || b.dim() == 0)
    throw Error("matmul: both operands need at least 1 dim, got " + shape_str(a.shape()) + " @ " +
                shape_str(b.shape()));
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

// out = x @ wᵀ + b, as nn.Linear.   x: (..., K)  w: (N, K)  b: (N)  ->  (..., N)
// dx = d @ w;  dw = d₂ᵀ @ x₂;  db = Σ_rows d₂, with d₂ (rows, N) and x₂ (rows, K) the batch dims folded.
// One op rather than matmul then add: the GEMM starts from the bias (kernels::matmul's bias), so the bias
// costs no extra pass over the output, and dw comes out (N, K) contiguous, as w is. The backward is heed
// ops, so linear has second derivatives. Without a bias, or for a 1-d x, it is matmul alone.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (w.dim() != 2 || x.dim() == 0 || x.size(-1) != w.size(1))
    throw Error("linear: input " + shape_str(x.shape()) + " and weight " + shape_str(w.shape()) +
                ": expected weight (out_features, " + std::to_string(x.dim() ? x.size(-1) : 0) + ")");
  if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0)))
    throw Error("linear: bias " + shape_str(b.shape()) + " for weight " + shape_str(w.shape()) + ": expected (" +
                std::to_string(w.size(0)) + ")");
  if (!b.defined() || x.dim() == 1 || x.numel() == 0 || w.numel() == 0 || x.dtype() != w.dtype() ||
      b.dtype() != w.dtype()) {
    Tensor y = matmul(x, w.mT());
    return b.defined() ? y + b : y;
  }
  Tensor out = kernels::matmul(x, w.mT(), b);
  return record("linear", out, {x, w, b}, [sx = SavedTensor(x), sw = SavedTensor(w), rx = x.requires_grad(),
                                           rw = w.requires_grad(),
                                           rb = b.requires_grad()](const Tensor& d, const Tensor&) {
    Tensor x = sx.get(), w = sw.get();
    const int64_t K = w.size(1), N = w.size(0), rows = x.numel() / K;
    Tensor d2 = d.reshape({rows, N});
    return Grads{rx ? matmul(d, w) : Tensor(), rw ? matmul(d2.mT(), x.reshape({rows, K})) : Tensor(),
                 rb ? d2.sum(0) : Tensor()};
  });
}

}  // namespace heed

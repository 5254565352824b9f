// ops_linalg.cpp: matmul, the op that does nearly all the arithmetic of a training step.
#include "autograd/node.h"
#include "tensor/kernels/blas.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"matmul", "linear"});

// A 2-d matrix stored column by column: a transposed view of a contiguous matrix, like linear's w.mT().
static bool is_transposed_matrix(const Tensor& t) {
  return t.dim() == 2 && t.size(0) > 1 && t.size(1) > 1 && t.stride(0) == 1 && t.stride(1) == t.size(0);
}

// da = Σ_i d_i @ b_iᵀ over every batch entry i, for an `a` that the whole batch shares: conv2d's weight
// (1, O, K) under N images of columns b (N, 1, K, L). One GEMM per batch entry, all adding into the same
// (M, K) result (beta = 1), where the composite writes N products (N, 1, M, K) and then sums them: on
// conv_ae_step's second layer that intermediate is 64 × 64 × 288 floats, written, read back and zeroed
// every step (perf: sum_block_simd 7%, memset 7%). With `transposed` the result is built as its
// transpose, Σ b_i d_iᵀ (K, M), for an `a` stored column-major (conv_transpose2d's w.mT()), so it comes
// out in a's layout. Raw BLAS: the caller uses it only when no graph is being recorded.
template <class T>
static Tensor sum_of_batch_products(const Tensor& d, const Tensor& b, bool transposed) {
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

// Whether sum_of_batch_products can compute da: a shared by a batch of more than one, b's rows readable
// by BLAS in place (unit stride along N), a floating dtype, and no graph to record.
static bool batch_sum_applies(const Tensor& a, const Tensor& b, const Tensor& d) {
  if (grad_enabled() || !is_floating(d.dtype()) || d.dim() < 3) return false;
  if (numel_of(Shape(a.shape().begin(), a.shape().end() - 2)) != 1) return false;
  if (numel_of(Shape(d.shape().begin(), d.shape().end() - 2)) <= 1) return false;
  return (b.size(-1) == 1 || b.stride(-1) == 1) && (b.size(-2) == 1 || b.stride(-2) >= b.size(-1));
}

// out = a @ b   a: (..., M, K)  b: (..., K, N)  ->  out: (..., M, N), batch dims broadcast;
// da = d @ b^T,  db = a^T @ d  (each summed over the batch dims its input was broadcast along).
// The transposes are views, which the kernel hands to BLAS as a flag: backward copies nothing.
//
// Each gradient comes out in the memory layout of its input, as PyTorch's mm backward does. The case that
// matters is nn.Linear: b = w.mT() is column-major, and db = (d^T a)^T computed that way lands in memory
// exactly as w, so the transpose's backward gives w.grad contiguous. Computed as a^T d instead, w.grad
// would be a transposed view, and every later add of two such gradients (a weight used twice, as the GAN's
// discriminator is) and the optimizer's contiguous() would walk it element by element (bench/README.md).
static Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::matmul(a, b);
  OpFlags f{.reduces_broadcast = a.dim() != b.dim() || a.shape()[0] != b.shape()[0]};
  return record("matmul", out, {a, b}, [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](
                                           const Tensor& d, const Tensor&) {
    Tensor a = sa.get(), b = sb.get();
    Tensor da, db;
    if (ra) {
      if (is_transposed_matrix(a) && d.dim() == 2) da = matmul(b, d.mT()).mT();
      else if (batch_sum_applies(a, b, d)) {
        bool col_major = a.size(-2) > 1 && a.size(-1) > 1 && a.stride(-2) == 1;
        da = dispatch_floating(d.dtype(), "matmul", [&](auto zero) {
               return sum_of_batch_products<decltype(zero)>(d, b, col_major);
             }).reshape(a.shape());
      }
      else da = sum_to_size(matmul(d, b.mT()), a.shape());
    }
    if (rb) {
      if (b.dim() == 2) {
        // A shared weight under a batch of inputs (nn.Linear on (B,T,C)): fold the batch into the rows,
        // one (K, B*M) @ (B*M, N) GEMM instead of B GEMMs followed by a reduction.
        int64_t K = a.size(-1), N = d.size(-1);
        Tensor a2 = a.reshape({-1, K}), d2 = d.reshape({-1, N});
        db = is_transposed_matrix(b) ? matmul(d2.mT(), a2).mT() : matmul(a2.mT(), d2);
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
                                           rw = w.requires_grad(), rb = b.requires_grad()](const Tensor& d, const Tensor&) {
    Tensor x = sx.get(), w = sw.get();
    const int64_t K = w.size(1), N = w.size(0), rows = x.numel() / K;
    Tensor d2 = d.reshape({rows, N});
    return Grads{rx ? matmul(d, w) : Tensor(), rw ? matmul(d2.mT(), x.reshape({rows, K})) : Tensor(),
                 rb ? d2.sum(0) : Tensor()};
  });
}

}  // namespace heed

// kernels.h: the raw tensor kernels. They know shapes, strides, broadcasting and dtypes, and nothing of
// autograd: they never record a graph. The differentiable ops in autograd/ call them for their forward
// passes, and tests call them directly.
//
// The inner loops themselves (one contiguous or strided row at a time) are in tensor/kernels/simd.h, each with a
// plain scalar reference beside its xsimd fast path. This layer's job is to cut an N-d strided problem
// into such rows (`for_each_row` in kernels.cpp) and to spread them over threads.
#pragma once
#include <utility>
#include <vector>

#include "tensor/kernels/simd.h"
#include "tensor/tensor.h"

namespace heed::kernels {

/// When false, every elementwise and reduction kernel uses the scalar reference loops: tests flip it to
/// check the fast paths against the reference through the whole N-d machinery.
void set_use_simd(bool on);
bool use_simd();

// ---- elementwise -------------------------------------------------------------------------------------
/// y = f(x), a new contiguous tensor of x's shape.
Tensor unary(simd::Unary op, const Tensor& x, simd::UnaryArgs args = {});
/// y = a op b with broadcasting, in the promoted dtype (result_type; int / int gives float32).
Tensor binary(const char* name, simd::Binary op, const Tensor& a, const Tensor& b);
/// a op= b in place, b broadcast to a's shape (a keeps its strides).
void binary_(const char* name, simd::Binary op, const Tensor& a, const Tensor& b);
/// The integer and bool cases of `binary` (promote.cpp): `dt` is the promoted int64 or bool result dtype.
Tensor binary_integral(const char* name, simd::Binary op, const Tensor& a, const Tensor& b, DType dt);
/// Python's a // b (or, with remainder, a % b: the sign of b) in the promoted dtype; integer / 0 throws.
Tensor floor_divide(const Tensor& a, const Tensor& b, bool remainder = false);
/// neg, abs and sign of an int64 tensor; other unary ops of integers throw, naming the op.
Tensor unary_integral(simd::Unary op, const Tensor& x);
enum class Compare { Eq, Ne, Lt, Le, Gt, Ge };
/// A bool mask; a and b are compared in their promoted dtype.
Tensor compare(const char* name, Compare op, const Tensor& a, const Tensor& b);
enum class Logical { And, Or, Not };
Tensor logical(const char* name, Logical op, const Tensor& a, const Tensor& b);
/// cond ? a : b with three-way broadcasting.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// dst[...] = src[...] (src broadcast to dst's shape, converting dtype). dst may be any strided view.
void copy_(const Tensor& dst, const Tensor& src);
/// A contiguous copy in `dtype`.
Tensor cast(const Tensor& x, DType dtype);
void fill_(const Tensor& dst, double value);

// ---- reductions --------------------------------------------------------------------------------------
/// Sum over `dims` (already wrapped, any order, no repeats); keepdim keeps them as size 1.
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim);
/// Max (or min) along one dim: values and int64 indices (the first on ties; NaN wins, as in torch).
std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_min);
/// Softmax (or log-softmax) along `dim`, with fully -inf rows giving 0 (see simd::softmax_row).
Tensor softmax(const Tensor& x, int64_t dim, bool log);

// ---- linear algebra ----------------------------------------------------------------------------------
/// a (..., M, K) @ b (..., K, N) -> (..., M, N) with broadcast batch dims; both at least 2-d.
/// Transposed views go to BLAS as a transpose flag, not as a copy. With `bias` (N), the result is
/// a @ b + bias: every row starts as bias and the GEMM adds into it (beta = 1), so the bias costs no pass of
/// its own (with beta = 0, BLAS zeroes the output in a pass before it multiplies: the bias replaces that).
Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias = Tensor());
/// matmul's gradient for an `a` (M, K) that a whole batch shares (conv2d's weight under N images):
/// da = Σ_i dout_i @ b_iᵀ over every batch entry i, for dout (..., M, N) and b (..., K, N) broadcast to
/// dout's batch. Each GEMM adds into one (M, K) result (beta = 1), instead of writing N products
/// (N, M, K) and summing them. With column_major, the result is built as its transpose Σ_i b_i dout_iᵀ and
/// returned as a (M, K) view of it, in the layout of an `a` stored column-major (conv_transpose2d's w.mT()).
Tensor matmul_grad_shared_a(const Tensor& dout, const Tensor& b, bool column_major);
/// Whether matmul_grad_shared_a takes this case: a's batch dims hold one matrix, dout's more than one, b's
/// rows readable by BLAS in place (unit stride along N), and a floating dtype.
bool matmul_grad_shared_a_applies(const Tensor& a, const Tensor& b, const Tensor& dout);

// ---- indexing and joining ----------------------------------------------------------------------------
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// out = x with out.select(dim, index[i]) += src.select(dim, i).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);

// ---- convolution as matrix multiply -------------------------------------------------------------------------
/// The geometry of a 2-d sliding window: kernel, stride, padding and dilation, per axis (h, w).
struct Window2d {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t out_h(int64_t h) const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t out_w(int64_t w) const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
};
/// Where im2col puts the columns of a batch of N images, with K = C*kh*kw rows and L = OH*OW columns each:
///   PerImage  (N, K, L)  image after image, as PyTorch's unfold: one GEMM per image;
///   Batched   (K, N, L)  the images side by side along every row, so that (K, N*L) is one matrix and a
///                        convolution of the whole batch is one GEMM, W (O, K) @ cols (K, N*L).
enum class Columns { PerImage, Batched };
/// x (N,C,H,W) -> cols (N, C*kh*kw, OH*OW): column l holds the receptive field of output pixel l, zero
/// where the window hangs over the padding. Then a convolution is one GEMM: W (O, C*kh*kw) @ cols.
/// With Columns::Batched the same columns come out as (C*kh*kw, N, OH*OW).
Tensor im2col(const Tensor& x, const Window2d& win, Columns layout = Columns::PerImage);
/// The adjoint of im2col: cols (N, C*kh*kw, OH*OW), or (C*kh*kw, N, OH*OW) with Columns::Batched,
/// -> (N,C,H,W), summing where windows overlap.
Tensor col2im(const Tensor& cols, int64_t C, int64_t H, int64_t W, const Window2d& win,
              Columns layout = Columns::PerImage);

// ---- random fills (tensor/random.h holds the Philox generator) -----------------------------------------
/// Uniform [0,1): element i of a contiguous t uses draw (start + i) of the generator's stream, so the
/// values do not depend on the thread count.
void fill_uniform(const Tensor& t, Generator& gen);
/// Standard normal by Box-Muller: elements 2j and 2j+1 come from the pair of draws (2j, 2j+1).
void fill_normal(const Tensor& t, Generator& gen);

}  // namespace heed::kernels

namespace heed {
/// Differentiable im2col / col2im (autograd/ops_conv.cpp); the building blocks of nn's convolutions.
Tensor im2col(const Tensor& x, const kernels::Window2d& win, kernels::Columns layout = kernels::Columns::PerImage);
Tensor col2im(const Tensor& cols, int64_t C, int64_t H, int64_t W, const kernels::Window2d& win,
              kernels::Columns layout = kernels::Columns::PerImage);
}  // namespace heed

// ops_conv.cpp: im2col and col2im, the adjoint pair that turns convolution into matrix multiply.
//
// conv2d, conv_transpose2d and the pooling layers (nn/) are composites of these two and matmul, so they
// get their backward, and their double backward (WGAN-GP on a convolutional critic), for free.
#include "autograd/node.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"im2col", "col2im"});

// out = im2col(x)  x: (N,C,H,W) -> (N, C*kh*kw, OH*OW), or (C*kh*kw, N, OH*OW) when Batched;
// dx = col2im(d) in the same layout, summing overlapping windows
Tensor im2col(const Tensor& x, const kernels::Window2d& win, kernels::Columns layout) {
  return record("im2col", kernels::im2col(x, win, layout), {x},
                [shape = x.shape(), win, layout](const Tensor& d, const Tensor&) {
                  return Grads{heed::col2im(d, shape[1], shape[2], shape[3], win, layout)};
                });
}

// out = col2im(cols)  (N, C*kh*kw, OH*OW), or (C*kh*kw, N, OH*OW) when Batched, -> (N,C,H,W);
// dcols = im2col(d) in the same layout
Tensor col2im(const Tensor& cols, int64_t C, int64_t H, int64_t W, const kernels::Window2d& win,
              kernels::Columns layout) {
  return record("col2im", kernels::col2im(cols, C, H, W, win, layout), {cols},
                [win, layout](const Tensor& d, const Tensor&) { return Grads{heed::im2col(d, win, layout)}; });
}

}  // namespace heed

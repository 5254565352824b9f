// activation.h: fused first-order backwards of relu, leaky_relu and gelu, one pass over the tensor.
//
// Written with ops, relu's backward is compare, cast the mask, multiply, and gelu's about eleven passes
// (erf, exp and the products), each with a temporary the size of the activation. The differentiable ops
// (autograd/ops_elementwise.cpp) call these for a plain backward of contiguous, same-shape float tensors,
// and keep the composite for create_graph, whose own backward gives the second derivative.
//
// Two levels, as simd.h: `*_ref` is a plain loop per element, the definition; gelu's `*_simd` takes erf
// and exp from simd.h on chunks that stay in L1. relu's loop is plain C++ that the compiler vectorises, so
// it has one level. tests/tensor/kernels/test_activation.cpp checks each against its reference.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace heed::kernels {

/// dx = dout where x > 0, else slope·dout (relu: slope 0). dout and x of one shape and floating dtype.
Tensor relu_backward(const Tensor& dout, const Tensor& x, double slope);
/// dx = dout (Φ(x) + x φ(x)): exact GELU, Φ the normal CDF, φ(x) = e^(-x²/2) / √(2π). dout and x as above;
/// the SIMD rows unless use_simd() is off. Given the forward's output out = x Φ(x), the SIMD rows take
/// Φ(x) = out / x from it and compute no erf.
Tensor gelu_backward(const Tensor& dout, const Tensor& x, const Tensor& out = Tensor());

// ---- the row loops (float and double), on contiguous rows of n -------------------------------------------
template <class T> void relu_backward_row(const T* dout, const T* x, T* dx, int64_t n, T slope);
template <class T> void gelu_backward_ref(const T* dout, const T* x, T* dx, int64_t n);
template <class T> void gelu_backward_simd(const T* dout, const T* x, T* dx, int64_t n);
template <class T> void gelu_backward_from_output_simd(const T* dout, const T* x, const T* out, T* dx, int64_t n);

}  // namespace heed::kernels

// ops_attention.cpp: the fused attention op, forward beside backward. The math and the kernels are in
// tensor/flash_attention.h (walkthrough: docs/flash_attention.md); the composite attention that the fused
// op is tested against, and that users call, is nn::scaled_dot_product_attention in nn/attention.h.
#include "autograd/node.h"
#include "tensor/flash_attention.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"flash_attention"});

// out = softmax(scale · q kᵀ + masks) ∘ Z @ v   q: (..., Tq, D)  k: (..., Tk, D)  v: (..., Tk, Dv)  ->  (..., Tq, Dv)
// dq, dk, dv = kernels::flash_attention_backward: P is rebuilt tile by tile from the saved row
// logsumexp L (..., Tq), and the dropout scales Z are regenerated from (seed, offset). So besides q, k, v,
// the node keeps only out and L: O(T·D) memory where the composite keeps several (Tq, Tk) matrices.
//
// FIRST-ORDER ONLY (OpFlags::first_order_only): the backward is a raw kernel, not heed ops, so it records
// no graph of its own. Asking for create_graph=true through this node makes the engine throw
// AutogradError("... op 'flash_attention' has a first-order-only backward ..."). Double backward (a
// gradient penalty through attention) needs the composite path instead.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const kernels::FlashAttentionParams& p) {
  kernels::FlashForward f = kernels::flash_attention_forward(q, k, v, p);
  return record("flash_attention", f.out, {q, k, v},
                [sq = SavedTensor(q), sk = SavedTensor(k), sv = SavedTensor(v), lse = f.lse, p](const Tensor& d,
                                                                                                 const Tensor& out) {
                  kernels::FlashGrads g = kernels::flash_attention_backward(d, sq.get(), sk.get(), sv.get(), out, lse, p);
                  return Grads{g.dq, g.dk, g.dv};
                },
                {.save_output = true, .first_order_only = true});
}

}  // namespace heed

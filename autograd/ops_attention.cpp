// ops_attention.cpp: the fused attention op, forward beside backward. The math and the kernels are in
// tensor/kernels/flash_attention.h (walkthrough: docs/flash_attention.md); the composite attention that the fused
// op is tested against, and that users call, is nn::scaled_dot_product_attention in nn/attention.h.
#include <array>

#include "autograd/node.h"
#include "tensor/kernels/flash_attention.h"
#include "tensor/view.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"flash_attention", "flash_attention_packed"});

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
                  kernels::FlashGrads g =
                      kernels::flash_attention_backward(d, sq.get(), sk.get(), sv.get(), out, lse, p);
                  return Grads{g.dq, g.dk, g.dv};
                },
                {.save_output = true, .first_order_only = true});
}

// q, k, v of a packed qkv (B, T, 3·NH·D): plain views, (B, T, 3, NH, D) -> three (B, NH, T, D).
static std::array<Tensor, 3> unpack_qkv(const Tensor& qkv, int64_t NH) {
  const int64_t B = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / (3 * NH);
  Tensor heads = view::permute(view::view(qkv, {B, T, 3, NH, D}), {2, 0, 3, 1, 4});  // (3, B, NH, T, D)
  return {view::select(heads, 0, 0), view::select(heads, 0, 1), view::select(heads, 0, 2)};
}

// out = flash_attention(q, k, v) with q, k, v the three views of qkv;  dqkv = the three gradients, written
// by the kernel straight into their places in one zeroed (B, T, 3·NH·D) tensor.
Tensor flash_attention_packed(const Tensor& qkv, int64_t NH, const kernels::FlashAttentionParams& p) {
  if (qkv.dim() != 3 || NH <= 0 || qkv.size(2) % (3 * NH) != 0)
    throw Error("flash_attention_packed: qkv must be (B, T, 3·NH·D), got " + shape_str(qkv.shape()) + " for NH = " +
                std::to_string(NH));
  Tensor x = qkv.stride(2) == 1 ? qkv : view::contiguous(qkv);  // the kernel reads rows with unit stride
  auto [q, k, v] = unpack_qkv(x, NH);
  kernels::FlashForward f = kernels::flash_attention_forward(q, k, v, p);
  return record("flash_attention_packed", f.out, {qkv},
                [sx = SavedTensor(x), NH, lse = f.lse, p](const Tensor& d, const Tensor& out) {
                  Tensor x = sx.get();
                  auto [q, k, v] = unpack_qkv(x, NH);
                  Tensor dqkv = zeros(x.shape(), x.dtype());
                  auto [dq, dk, dv] = unpack_qkv(dqkv, NH);
                  kernels::flash_attention_backward_into(d, q, k, v, out, lse, p, dq, dk, dv);
                  return Grads{dqkv};
                },
                {.save_output = true, .first_order_only = true});
}

}  // namespace heed

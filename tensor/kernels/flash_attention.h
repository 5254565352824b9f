// flash_attention.h: the fused, memory-efficient attention kernel (FlashAttention, Dao et al. 2022, with
// the FlashAttention-2 loop order for the backward), on the CPU. Raw kernels: no autograd here. The
// differentiable op that calls them is heed::flash_attention in autograd/ops_attention.cpp, and
// docs/flash_attention.md walks through the algorithm next to this code.
//
// Letters: BH = the flattened batch dims (batch × heads), Tq queries, Tk keys, D the q/k width, Dv the
// v width. Per (batch, head):
//
//     S = scale · Q Kᵀ            (Tq,Tk)   masked entries are -inf
//     P = softmax(S) row-wise     (Tq,Tk)   a row with every key masked is all 0, not NaN
//     O = (P ∘ Z) V               (Tq,Dv)   Z = dropout scale: 1/(1-p) where kept, 0 where dropped
//
// The kernel never holds S or P: it walks (Br × Bc) tiles of them, keeps a running max and a running
// sum per query row (the "online softmax"), and returns O and L = logsumexp of each row of S, which is
// all the backward needs to rebuild any tile of P exactly: P = exp(S - L).
//
// Masks:
//   causal            query i sees keys j <= i (top-left aligned when Tq != Tk, as torch's is_causal);
//                     tiles entirely above the diagonal are skipped, not computed and masked.
//   key_padding_mask  bool, true = padding: (G, Tk) where G divides BH, row bh uses mask row bh / (BH/G)
//                     (so (B, Tk) for q (B, NH, Tq, D)), or (Tk) shared by every row.
//   dropout           keep (q-row i, key j) of slice bh when attention_dropout_keep(seed, offset + n, p)
//                     with n = (bh·Tq + i)·Tk + j, the row-major index into the (BH, Tq, Tk) weights.
//                     Counter-based (tensor/random.h), so the backward regenerates Z instead of storing it.
//
// Inputs may be strided views as long as each (T, D) matrix has unit stride along D (a transposed
// (B,T,NH,D) -> (B,NH,T,D) view qualifies and is read in place); others are copied first. q, k and v
// must share their batch dims exactly. float32 and float64.
#pragma once
#include <cstdint>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::kernels {

/// Everything the kernel needs besides q, k, v.
struct FlashAttentionParams {
  double scale = 1.0;
  bool causal = false;
  Tensor key_padding_mask{};  /// bool, true = padding; (G, Tk) or (Tk), see above; undefined = none
  double dropout_p = 0.0;   /// 0 = no dropout
  uint64_t seed = 0;        /// the Philox stream of the dropout mask
  uint64_t offset = 0;      /// its first draw (from Generator::reserve(BH·Tq·Tk))
};

/// out (..., Tq, Dv) and lse (BH, Tq): the logsumexp of each row of S, -inf for a fully masked row. The
/// tiled kernel lays out out in memory as q is laid out, and dq, dk, dv as q, k, v (for multi-head
/// attention's (B,T,NH,D) views: (B,T,NH,D) blocks), so none needs a copy on its way back to (B,T,E);
/// the reference kernels return contiguous tensors.
struct FlashForward {
  Tensor out, lse;
};
struct FlashGrads {
  Tensor dq, dk, dv;  // with the shapes of q, k, v
};

/// The tiled forward: q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv). Parallel over (BH, query tiles).
FlashForward flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& p);
/// The tiled backward (FlashAttention-2 order), from dout (..., Tq, Dv), the inputs, and the forward's out
/// and lse. Recomputes each tile of P from lse and regenerates the dropout mask. Parallel over BH.
FlashGrads flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const Tensor& lse, const FlashAttentionParams& p);

/// The same backward, adding into dq, dk, dv: zeroed tensors of q's, k's and v's shapes, each with unit
/// stride along its last dim and non-overlapping rows, possibly views of one buffer. Self-attention from a
/// packed (B, T, 3E) projection (heed::flash_attention_packed) gets its whole gradient in one tensor so.
void flash_attention_backward_into(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, const FlashAttentionParams& p,
                                   const Tensor& dq, const Tensor& dk, const Tensor& dv);

/// The same contracts as plain scalar loops, one query row at a time (O(Tk) memory, O(Tq·Tk·D) time):
/// the definition the tiled kernels are tested against.
FlashForward flash_attention_forward_ref(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const FlashAttentionParams& p);
FlashGrads flash_attention_backward_ref(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& out, const Tensor& lse, const FlashAttentionParams& p);

/// The dropout rule shared by the fused kernel and the composite attention (nn/attention.h): draw `index`
/// of seed's Philox stream, as a 24-bit uniform u (tensor/random.h), keeps the element when u >= p, for
/// float32 and float64 alike. p = 0 keeps everything, p = 1 drops everything.
inline bool attention_dropout_keep(uint64_t seed, uint64_t index, double p) {
  return (double)uniform_float(philox_u32(seed, index)) >= p;
}

/// The dropout scale Z as a tensor of `shape` (the weights' (..., Tq, Tk)) in `dtype`: element n (row-major)
/// is 1/(1-p) when attention_dropout_keep(seed, offset + n, p), else 0 (all 0 when p = 1).
Tensor attention_dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t offset, DType dtype);

}  // namespace heed::kernels


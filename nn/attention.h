// attention.h: functional attention, the core under heed's attention modules. Namespace heed::nn, next to
// nn::dropout: these are plain functions of tensors; modules (MultiheadAttention, ...) are built on them.
//
//   nn::AttentionResult r = nn::scaled_dot_product_attention(q, k, v, {.causal = true});
//   r.out                              // (B, NH, T, D)
//
// Letters: B batch, NH heads, Tq queries, Tk keys, D the query/key width, Dv the value width; "..." is any
// number of batch dims (usually B, NH).
//
// MASK CONVENTION (read this): each name takes its PyTorch namesake's convention.
//   - scaled_dot_product_attention's attn_mask, as torch 2's F.scaled_dot_product_attention: bool TRUE =
//     TAKES PART in attention (a lower-triangular ones matrix is causal).
//   - key_padding_mask, and MultiheadAttention's attn_mask (nn.MultiheadAttention's): bool TRUE = NOT
//     ALLOWED (padding, or a masked-out pair). So are the helpers below (causal_mask, local_attention_mask,
//     block_sparse_mask): pass them to MultiheadAttention, or logical_not(...) to scaled_dot_product_attention.
// A mask that does not broadcast to the scores, or of another dtype, throws. A float attn_mask is added to
// the scores (use -inf to forbid). A query row whose keys are all masked gets output 0 and gradient 0 (PyTorch gives
// NaN there).
//
// Three paths:
//   - dense composite: heed ops only (matmul, masked_fill, softmax, ...), so gradcheck and
//     gradgradcheck (double backward, e.g. WGAN-GP) work through it. O(Tq·Tk) memory.
//   - fused (tensor/kernels/flash_attention.h, docs/flash_attention.md): tiled online softmax, O(T·D) memory,
//     first-order only. Dot score, causal, key padding and dropout; no attn_mask, no weights.
//   - sparse: local (sliding window) and block-sparse attention, composites that cost O(T·w).
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::nn {

// ---- choices ---------------------------------------------------------------------------------------------

/// How scores s_ij are computed from query i and key j.
enum class AttentionScore {
  Dot,       /// s = scale · q·k, scale = 1/√D by default
  Cosine,    /// s = temperature · cos(q, k)  (q, k normalised to unit length; temperature may be learnable)
  Additive,  /// Bahdanau: s = vᵀ tanh(W q + U k)
};
/// Which implementation scaled_dot_product_attention runs.
enum class AttentionImpl {
  Auto,       /// Fused when it supports the options (see `fused_supported`), else Composite
  Composite,  /// always the composite of heed ops (double backward works)
  Fused,      /// always the fused kernel; throws when the options need the composite
};

// ---- options -------------------------------------------------------------------------------------------

/// Everything of scaled_dot_product_attention besides q, k, v; all optional.
struct AttentionOptions {
  /// bool, TRUE = TAKES PART (torch 2's F.scaled_dot_product_attention), or float, added to the scores.
  /// Forces the composite path (said once on stderr under Auto); causal and key_padding_mask run fused.
  /// Broadcastable to the scores (..., Tq, Tk): (Tq, Tk) or (B, NH, Tq, Tk), ...
  Tensor attn_mask{};
  /// bool, TRUE = PADDING: (B, Tk), B = q.size(0), shared by all heads and queries; or (Tk).
  Tensor key_padding_mask{};
  /// Query i sees keys j <= i (top-left aligned when Tq != Tk, as torch's is_causal).
  bool causal = false;
  /// Dropout on the attention weights, applied only when `training`. The mask comes from `generator`
  /// (or the global one), which hands out numel(weights) draws; see attention_dropout_mask.
  double dropout_p = 0.0;
  bool training = true;
  Generator* generator = nullptr;
  /// Dot score only; default 1/√D.
  std::optional<double> scale{};
  AttentionScore score = AttentionScore::Dot;
  /// Cosine score: required; 0-d or broadcastable to (..., Tq, Tk) (e.g. (NH, 1, 1) per head); may require
  /// grad (a learnable temperature, as in Swin Transformer V2).
  Tensor temperature{};
  /// Additive score: W (H, D), U (H, Dk), v (H). Any may require grad.
  Tensor additive_w{}, additive_u{}, additive_v{};
  /// Also return the attention weights (..., Tq, Tk), after dropout, as nn.MultiheadAttention does
  /// (before any averaging over heads). Needs the composite path.
  bool need_weights = false;
  AttentionImpl impl = AttentionImpl::Auto;
};

/// out (..., Tq, Dv); weights (..., Tq, Tk), only when options.need_weights.
struct AttentionResult {
  Tensor out;
  Tensor weights;  // undefined unless need_weights
};

/// Options of local_attention and block_sparse_attention.
struct SparseAttentionOptions {
  bool causal = false;          /// also hide keys j > i
  Tensor key_padding_mask{};    /// bool, TRUE = PADDING: (B, Tk) with B = q.size(0), or (Tk)
  std::optional<double> scale{};  /// default 1/√D
  /// local_attention only: the tile length. 0 picks window clamped to [16, 128]. Any value >= 1 gives the
  /// same result; it only trades padding waste against the number of small matmuls.
  int64_t block_size = 0;
};

/// The patterns block_layout combines (a union of the three, then the causal cut).
struct BlockLayoutOptions {
  int64_t local = 1;   /// key blocks b with |a - b| <= local (-1: none)
  int64_t stride = 0;  /// also key blocks b with (a - b) % stride == 0 (0: none)
  int64_t global = 0;  /// the first `global` key blocks are seen by every query block, and the first
                       /// `global` query blocks see every key block
  bool causal = false; /// keep only b <= a
};

// ---- dense attention -------------------------------------------------------------------------------------

/// softmax(score(q, k) + masks) @ v.   q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> out (..., Tq, Dv).
/// Batch dims broadcast on the composite path; the fused path needs them equal.
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& options = {});
/// Self-attention from one packed projection, as MultiheadAttention's in_proj makes it: qkv (B, T, 3·NH·D),
/// the last dim [q | k | v], each NH heads of D  ->  out (B, NH, T, D). The same as splitting qkv into
/// three (B, NH, T, D) views and calling scaled_dot_product_attention; when the fused kernel runs, the
/// gradient comes back as one (B, T, 3·NH·D) tensor (heed::flash_attention_packed) instead of three
/// zero-padded ones that are then summed.
AttentionResult packed_self_attention(const Tensor& qkv, int64_t num_heads, const AttentionOptions& options = {});
/// True when the fused kernel can run these inputs and options (what AttentionImpl::Auto checks).
bool fused_supported(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options);


/// The (Tq, Tk) bool mask (true = masked) of causal attention: key j is hidden from query i when j > i.
Tensor causal_mask(int64_t Tq, int64_t Tk);

// ---- sparse attention: O(T·w) time and memory ----------------------------------------------------------

/// Sliding-window attention. q (..., T, D), k (..., T, D), v (..., T, Dv) -> (..., T, Dv). Query i sees
/// keys j with |i - j| <= window, or, when causal, i - window <= j <= i (itself and the window before it).
Tensor local_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                       const SparseAttentionOptions& options = {});
/// The (T, T) bool mask (true = masked) that makes dense attention equal local_attention.
Tensor local_attention_mask(int64_t T, int64_t window, bool causal = false);

/// Block-sparse attention. Queries and keys are cut into blocks of `block_size`; `layout` is bool
/// (ceil(Tq/block), ceil(Tk/block)), and query block a sees key block b where layout[a][b] is true.
/// q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> (..., Tq, Dv). Cost O(active blocks · block²).
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& layout,
                              int64_t block_size, const SparseAttentionOptions& options = {});
/// The (Tq, Tk) bool mask (true = masked) that makes dense attention equal block_sparse_attention (add
/// causal_mask when options.causal).
Tensor block_sparse_mask(const Tensor& layout, int64_t block_size, int64_t Tq, int64_t Tk);

/// A layout from the usual patterns (Child et al. 2019, Sparse Transformers; Zaheer et al. 2020, BigBird):
/// local, strided and global blocks, optionally causal. Returns bool (nblocks_q, nblocks_k).
Tensor block_layout(int64_t nblocks_q, int64_t nblocks_k, const BlockLayoutOptions& options);

}  // namespace heed::nn

// attention.cpp: functional attention. Dense composite, dispatch to the fused kernel, and the sparse
// (local and block-sparse) composites. Everything differentiable here is built from heed ops, so its
// gradient (and its gradient's gradient) comes from the ops' own backwards; the only hand-written
// backward is the fused kernel's, in tensor/kernels/flash_attention.cpp.
//
// Letters: B batch, NH heads, Tq queries, Tk keys, D query/key width, Dv value width, "..." batch dims.
//
// Masking and NaN. Masked scores are set to -inf. heed's softmax maps a row that is entirely -inf to all
// zeros (tensor/kernels/simd.h), so a query that may see no key gets weights 0 and output 0. Backward stays finite
// too: softmax's backward is out ∘ (d - Σ d∘out), which is 0 wherever out is 0; masked_fill's backward
// is where(mask, 0, d), a select rather than a multiply, so no 0 · inf is ever formed; and an additive
// -inf mask passes through `add`, whose backward only copies the (already zero) gradient.
#include "nn/attention.h"

#include <cstdio>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/kernels/flash_attention.h"

namespace heed::nn {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Shape lead_of(const Tensor& x, int64_t trailing) { return Shape(x.shape().begin(), x.shape().end() - trailing); }
Shape with(Shape s, std::initializer_list<int64_t> tail) {
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, bool same_width) {
  if (q.dim() < 2 || k.dim() < 2 || v.dim() < 2)
    throw Error(std::string(op) + ": q, k, v need at least 2 dims (..., T, D), got " + shape_str(q.shape()) + ", " +
                shape_str(k.shape()) + ", " + shape_str(v.shape()));
  if (!is_floating(q.dtype()) || q.dtype() != k.dtype() || q.dtype() != v.dtype())
    throw Error(std::string(op) + ": q, k, v must share a float dtype, got " + dtype_name(q.dtype()) + ", " +
                dtype_name(k.dtype()) + ", " + dtype_name(v.dtype()));
  if (same_width && q.size(-1) != k.size(-1))
    throw Error(std::string(op) + ": q " + shape_str(q.shape()) + " and k " + shape_str(k.shape()) +
                ": last dims " + std::to_string(q.size(-1)) + " != " + std::to_string(k.size(-1)));
  if (k.size(-2) != v.size(-2))
    throw Error(std::string(op) + ": k " + shape_str(k.shape()) + " and v " + shape_str(v.shape()) +
                ": numbers of keys " + std::to_string(k.size(-2)) + " != " + std::to_string(v.size(-2)));
}

// key_padding_mask: bool (B, Tk) with B = q.size(0) and q batched, or (Tk).
void check_padding(const char* op, const Tensor& m, const Tensor& q, int64_t Tk) {
  if (!m.defined()) return;
  if (m.dtype() != boolean)
    throw Error(std::string(op) + ": key_padding_mask must be bool (true = padding), got " + dtype_name(m.dtype()) +
                "; pass an additive float mask as attn_mask");
  bool ok =
      (m.dim() == 1 && m.size(0) == Tk) || (m.dim() == 2 && q.dim() >= 3 && m.size(0) == q.size(0) && m.size(1) == Tk);
  if (!ok)
    throw Error(std::string(op) + ": key_padding_mask " + shape_str(m.shape()) + " must be (B, Tk) = (" +
                (q.dim() >= 3 ? std::to_string(q.size(0)) : std::string("batch")) + ", " + std::to_string(Tk) +
                ") or (Tk) = (" + std::to_string(Tk) + ") for q " + shape_str(q.shape()));
}

// The padding mask shaped to broadcast against scores of `score_dim` dims (..., X, Tk): (B, 1, ..., 1, Tk),
// so that B lines up with the first batch dim and the ones with the heads and the queries.
Tensor padding_view(const Tensor& m, int64_t score_dim) {
  if (m.dim() == 1) return m;
  Shape s(score_dim, 1);
  s.front() = m.size(0);
  s.back() = m.size(1);
  return m.reshape(s);
}

Tensor bool_tensor(const Shape& shape) { return empty(shape, boolean); }

// x / max(‖x‖, 1e-12) along the last dim, as torch's F.normalize. The clamp sits under the rsqrt, on the
// squared norm: a zero row then has a finite rsqrt and clamp's gradient (a 0/1 mask) is 0, not 0 · inf.
Tensor unit_rows(const Tensor& x) {
  return x * rsqrt(clamp(sum(x * x, {-1}, true), 1e-24, kInf));
}

double default_scale(int64_t D) { return 1.0 / std::sqrt((double)std::max<int64_t>(D, 1)); }

// scores (..., Tq, Tk) for each score function.
Tensor attention_scores(const Tensor& q, const Tensor& k, const AttentionOptions& o) {
  const char* op = "scaled_dot_product_attention";
  switch (o.score) {
    case AttentionScore::Dot: {
      // Scaling q (T·D numbers) instead of the scores (Tq·Tk numbers) is the same product, cheaper.
      double scale = o.scale.value_or(default_scale(q.size(-1)));
      return matmul(scale == 1.0 ? q : q * scale, k.mT());
    }
    case AttentionScore::Cosine: {
      if (!o.temperature.defined())
        throw Error(std::string(op) + ": the cosine score needs options.temperature (a 0-d tensor, e.g. "
                    "scalar_tensor(10.0), or a learnable parameter)");
      if (o.scale) throw Error(std::string(op) + ": scale applies to the dot score; the cosine score uses temperature");
      return matmul(unit_rows(q), unit_rows(k).mT()) * o.temperature;
    }
    case AttentionScore::Additive: {
      const Tensor &W = o.additive_w, &U = o.additive_u, &v = o.additive_v;
      if (!W.defined() || !U.defined() || !v.defined())
        throw Error(std::string(op) +
                    ": the additive score needs options.additive_w (H, D), additive_u (H, Dk) and additive_v (H)");
      if (o.scale) throw Error(std::string(op) + ": scale applies to the dot score; the additive score has none");
      if (W.dim() != 2 || U.dim() != 2 || v.dim() != 1 || W.size(1) != q.size(-1) || U.size(1) != k.size(-1) ||
          W.size(0) != U.size(0) || v.size(0) != W.size(0))
        throw Error(std::string(op) + ": additive score: expected W (H, " + std::to_string(q.size(-1)) + "), U (H, " +
                    std::to_string(k.size(-1)) + "), v (H); got W " + shape_str(W.shape()) + ", U " +
                    shape_str(U.shape()) + ", v " + shape_str(v.shape()));
      // Bahdanau: s_ij = vᵀ tanh(W q_i + U k_j). Wq (..., Tq, 1, H) + Uk (..., 1, Tk, H) broadcast to
      // (..., Tq, Tk, H): unlike the dot score this holds an H-vector per (i, j), O(Tq·Tk·H) memory.
      Tensor wq = matmul(q, W.mT()).unsqueeze(-2);
      Tensor uk = matmul(k, U.mT()).unsqueeze(-3);
      return matmul(tanh(wq + uk), v);
    }
  }
  throw Error(std::string(op) + ": unknown score function");
}

// (seed, offset) for n dropout draws, from the options' generator or the global one.
std::pair<uint64_t, uint64_t> reserve_dropout(Generator* g, int64_t n) {
  Generator& gen = g ? *g : default_generator();
  uint64_t offset = gen.reserve((uint64_t)n);
  return {gen.seed(), offset};
}

bool dropout_active(const AttentionOptions& o) { return o.training && o.dropout_p > 0; }

AttentionResult composite(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  Tensor s = attention_scores(q, k, o);  // (..., Tq, Tk)
  // The bool masks (true = hidden) are combined first, so the scores go through one masked_fill.
  Tensor hide;
  auto hide_also = [&hide](const Tensor& m) { hide = hide.defined() ? logical_or(hide, m) : m; };
  if (o.attn_mask.defined()) {
    bool fits = false;
    try {
      fits = broadcast_shapes("scaled_dot_product_attention", o.attn_mask.shape(), s.shape()) == s.shape();
    } catch (const std::exception&) {
    }
    if (!fits)
      throw Error("scaled_dot_product_attention: attn_mask " + shape_str(o.attn_mask.shape()) +
                  " does not broadcast to the scores (..., Tq, Tk) = " + shape_str(s.shape()));
    if (o.attn_mask.dtype() == boolean) {
      hide_also(logical_not(o.attn_mask));  // torch's F.scaled_dot_product_attention: true = takes part
    } else if (o.attn_mask.dtype() == s.dtype()) {
      s = s + o.attn_mask;  // additive: 0 keeps, -inf hides, anything else biases
    } else {
      throw Error(
          "scaled_dot_product_attention: attn_mask must be bool (true = takes part in attention, as "
          "torch's F.scaled_dot_product_attention) or " +
          std::string(dtype_name(s.dtype())) + " (added to the scores), got " + dtype_name(o.attn_mask.dtype()) + " " +
          shape_str(o.attn_mask.shape()));
    }
  }
  if (o.key_padding_mask.defined()) hide_also(padding_view(o.key_padding_mask, s.dim()));
  if (o.causal) hide_also(causal_mask(Tq, Tk));
  if (hide.defined()) s = masked_fill(s, hide, -kInf);
  Tensor w = softmax(s, -1);  // a fully masked row is all 0 here
  if (dropout_active(o)) {
    auto [seed, offset] = reserve_dropout(o.generator, w.numel());
    w = w * kernels::attention_dropout_mask(w.shape(), o.dropout_p, seed, offset, w.dtype());
  }
  return {matmul(w, v), o.need_weights ? w : Tensor()};
}

}  // namespace

// ---- dense attention ---------------------------------------------------------------------------------------

bool fused_supported(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  if (o.score != AttentionScore::Dot || o.need_weights || o.attn_mask.defined()) return false;
  if (q.dim() < 2 || q.dim() != k.dim() || q.dim() != v.dim()) return false;
  if (lead_of(q, 2) != lead_of(k, 2) || lead_of(q, 2) != lead_of(v, 2)) return false;
  return is_floating(q.dtype()) && q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.size(-1) == k.size(-1) &&
         k.size(-2) == v.size(-2);
}

// The fused kernel's parameters for these options; draws the dropout stream (BH·Tq·Tk draws) when active.
static kernels::FlashAttentionParams flash_params(const Tensor& q, int64_t Tk, const AttentionOptions& o) {
  kernels::FlashAttentionParams p;
  p.scale = o.scale.value_or(default_scale(q.size(-1)));
  p.causal = o.causal;
  p.key_padding_mask = o.key_padding_mask;  // (B, Tk): B divides B·NH and slice bh reads row bh / NH
  if (dropout_active(o)) {
    p.dropout_p = o.dropout_p;
    std::tie(p.seed, p.offset) = reserve_dropout(o.generator, numel_of(lead_of(q, 2)) * q.size(-2) * Tk);
  }
  return p;
}

// The checks every dense attention call makes of its inputs and options.
static void check_call(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check_qkv(op, q, k, v, o.score != AttentionScore::Additive);
  check_padding(op, o.key_padding_mask, q, k.size(-2));
  if (!(o.dropout_p >= 0 && o.dropout_p <= 1))
    throw Error(std::string(op) + ": dropout_p must be in [0, 1], got " + std::to_string(o.dropout_p));
}

// Whether this call takes the fused kernel; throws when impl = Fused asks for what it cannot do.
static bool use_fused(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  bool fused = o.impl == AttentionImpl::Fused || (o.impl == AttentionImpl::Auto && fused_supported(q, k, v, o));
  if (fused && !fused_supported(q, k, v, o))
    throw Error(std::string(op) + ": impl = Fused supports the dot score with causal, key_padding_mask and dropout, "
                "and q, k, v with equal batch dims; not attn_mask or need_weights (q " + shape_str(q.shape()) + ", k " +
                shape_str(k.shape()) + ", v " + shape_str(v.shape()) + ")");
  return fused;
}

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& o) {
  const char* op = "scaled_dot_product_attention";
  check_call(op, q, k, v, o);
  if (!use_fused(op, q, k, v, o)) {
    // An attn_mask is what most often sends Auto to the O(Tq·Tk) composite; say so once per process.
    static bool told = false;
    if (o.impl == AttentionImpl::Auto && o.attn_mask.defined() && !o.need_weights && o.score == AttentionScore::Dot &&
        !told) {
      told = true;
      std::fprintf(stderr, "heed: scaled_dot_product_attention: attn_mask runs the composite path (O(Tq*Tk) memory); "
                           "causal = true and key_padding_mask run the fused kernel (said once)\n");
    }
    return composite(q, k, v, o);
  }
  return {flash_attention(q, k, v, flash_params(q, k.size(-2), o)), Tensor()};
}

AttentionResult packed_self_attention(const Tensor& qkv, int64_t NH, const AttentionOptions& o) {
  const char* op = "packed_self_attention";
  if (qkv.dim() != 3 || NH <= 0 || qkv.size(2) % (3 * NH) != 0)
    throw Error(std::string(op) + ": qkv must be (B, T, 3·NH·D), got " + shape_str(qkv.shape()) + " for NH = " +
                std::to_string(NH));
  const int64_t B = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / (3 * NH);
  // The three views, recorded (so the composite path differentiates through them).
  Tensor heads = qkv.reshape({B, T, 3, NH, D}).permute({2, 0, 3, 1, 4});  // (3, B, NH, T, D)
  Tensor q = heads.select(0, 0), k = heads.select(0, 1), v = heads.select(0, 2);
  check_call(op, q, k, v, o);
  if (!use_fused(op, q, k, v, o)) return composite(q, k, v, o);
  return {flash_attention_packed(qkv, NH, flash_params(q, T, o)), Tensor()};
}

Tensor causal_mask(int64_t Tq, int64_t Tk) {
  Tensor m = bool_tensor({Tq, Tk});
  bool* p = m.numel() ? m.data_ptr<bool>() : nullptr;
  for (int64_t i = 0; i < Tq; i++)
    for (int64_t j = 0; j < Tk; j++) p[i * Tk + j] = j > i;
  return m;
}

// ---- sparse attention ----------------------------------------------------------------------------------------
namespace {

// x (..., T, C) with `front` zero rows before and `back` after, along dim -2 (a differentiable cat).
Tensor pad_rows(const Tensor& x, int64_t front, int64_t back) {
  if (front == 0 && back == 0) return x;
  std::vector<Tensor> parts;
  Shape lead = lead_of(x, 2);
  if (front) parts.push_back(zeros(with(lead, {front, x.size(-1)}), x.dtype()));
  parts.push_back(x);
  if (back) parts.push_back(zeros(with(lead, {back, x.size(-1)}), x.dtype()));
  return cat(parts, -2);
}

// The key padding mask as (G, Tk) bools (G = 1 for a 1-d mask), read on the CPU to build tile masks.
struct PadRows {
  std::vector<bool> v;
  int64_t G = 0, Tk = 0;
  bool defined() const { return G > 0; }
  bool at(int64_t g, int64_t j) const { return v[g * Tk + j]; }
};
PadRows pad_rows_of(const Tensor& m) {
  PadRows p;
  if (!m.defined()) return p;
  p.G = m.dim() == 1 ? 1 : m.size(0);
  p.Tk = m.size(-1);
  Tensor c = m.contiguous();
  const bool* d = c.numel() ? c.data_ptr<bool>() : nullptr;
  p.v.assign(d, d + c.numel());
  return p;
}

// Scores (..., n, X, L) get masked where `band` (n, X, L) is true or, per batch row, where `pad` (G, n, L)
// is true. pad is viewed as (G, 1, ..., 1, n, 1, L) for a (B, Tk) mask, (n, 1, L) for a (Tk) mask.
Tensor tile_mask(const Tensor& band, const Tensor& pad, bool pad_is_batched, int64_t score_dim) {
  if (!pad.defined()) return band;
  Tensor pv;
  if (pad_is_batched) {
    Shape s(score_dim, 1);
    s[0] = pad.size(0);
    s[score_dim - 3] = pad.size(1);
    s[score_dim - 1] = pad.size(2);
    pv = pad.reshape(s);
  } else {
    pv = pad.reshape({pad.size(1), 1, pad.size(2)});
  }
  return logical_or(band, pv);
}

void check_sparse(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const SparseAttentionOptions& o) {
  check_qkv(op, q, k, v, true);
  check_padding(op, o.key_padding_mask, q, k.size(-2));
}

}  // namespace

// Sliding window, O(T·w). Cut the sequence into blocks of Bk positions. Query block b then needs only key
// blocks b-r .. b+r, r = ceil(w / Bk) (b-r .. b when causal), so each block's scores are a
// (Bk, (2r+1)·Bk) tile instead of a (Bk, T) row:
//
//   qb   (..., nb, Bk, D)            q, zero-padded to nb·Bk rows
//   kcat (..., nb, (2r+1)·Bk, D)     block b holds key blocks b-r .. b+r: 2r+1 shifted slices of the
//                                    zero-padded k, concatenated (vcat likewise)
//   s    (..., nb, Bk, L)            qb @ kcatᵀ, L = (2r+1)·Bk, masked outside the band |i - j| <= w and
//                                    at the padding; then softmax and @ vcat -> (..., nb, Bk, Dv)
//
// Time and memory are O(T · L) = O(T·w) for Bk ≈ w. It is all slices, cat, matmul, masked_fill and
// softmax, so autograd differentiates it (twice, too).
Tensor local_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                       const SparseAttentionOptions& o) {
  const char* op = "local_attention";
  check_sparse(op, q, k, v, o);
  const int64_t T = q.size(-2), D = q.size(-1);
  if (k.size(-2) != T)
    throw Error(std::string(op) + ": needs as many keys as queries, got q " + shape_str(q.shape()) + ", k " +
                shape_str(k.shape()));
  if (window < 0) throw Error(std::string(op) + ": window must be >= 0, got " + std::to_string(window));
  if (o.block_size < 0) throw Error(std::string(op) + ": block_size must be >= 0, got " + std::to_string(o.block_size));
  const int64_t Bk = o.block_size > 0 ? o.block_size : std::clamp<int64_t>(window, 16, 128);
  const int64_t r = (window + Bk - 1) / Bk;
  const int64_t nb = std::max<int64_t>((T + Bk - 1) / Bk, 1), Tp = nb * Bk;
  const int64_t nblk = o.causal ? r + 1 : 2 * r + 1, L = nblk * Bk;
  const double scale = o.scale.value_or(default_scale(D));

  // Key blocks b-r .. b(+r) for every b at once: slice s of the padded keys, starting at row s·Bk, is the
  // sequence of key blocks b - r + s.
  auto bands = [&](const Tensor& x) {
    Tensor xp = pad_rows(x, r * Bk, Tp - T + (o.causal ? 0 : r * Bk));
    Shape lead = lead_of(x, 2);
    std::vector<Tensor> parts;
    for (int64_t s = 0; s < nblk; s++)
      parts.push_back(xp.narrow(-2, s * Bk, Tp).reshape(with(lead, {nb, Bk, x.size(-1)})));
    return parts.size() == 1 ? parts[0] : cat(parts, -2);
  };
  Tensor kcat = bands(k), vcat = bands(v);
  Tensor qb = pad_rows(scale == 1.0 ? q : q * scale, 0, Tp - T).reshape(with(lead_of(q, 2), {nb, Bk, D}));
  Tensor s = matmul(qb, kcat.mT());  // (..., nb, Bk, L)

  // Query i = b·Bk + a, tile column c is key j = (b - r)·Bk + c.
  Tensor band = bool_tensor({nb, Bk, L});
  bool* bp = band.data_ptr<bool>();
  for (int64_t b = 0; b < nb; b++)
    for (int64_t a = 0; a < Bk; a++)
      for (int64_t c = 0; c < L; c++) {
        int64_t i = b * Bk + a, j = (b - r) * Bk + c, d = i - j;
        bool inside = o.causal ? (d >= 0 && d <= window) : (d >= -window && d <= window);
        bp[(b * Bk + a) * L + c] = !inside || j < 0 || j >= T;
      }
  Tensor pad;
  PadRows pr = pad_rows_of(o.key_padding_mask);
  if (pr.defined()) {
    pad = bool_tensor({pr.G, nb, L});
    bool* pp = pad.data_ptr<bool>();
    for (int64_t g = 0; g < pr.G; g++)
      for (int64_t b = 0; b < nb; b++)
        for (int64_t c = 0; c < L; c++) {
          int64_t j = (b - r) * Bk + c;
          pp[(g * nb + b) * L + c] = j >= 0 && j < T && pr.at(g, j);
        }
  }
  s = masked_fill(s, tile_mask(band, pad, o.key_padding_mask.defined() && o.key_padding_mask.dim() == 2, s.dim()),
                  -kInf);
  Tensor out = matmul(softmax(s, -1), vcat);  // (..., nb, Bk, Dv)
  return out.reshape(with(lead_of(out, 3), {Tp, v.size(-1)})).narrow(-2, 0, T);
}

Tensor local_attention_mask(int64_t T, int64_t window, bool causal) {
  Tensor m = bool_tensor({T, T});
  bool* p = m.numel() ? m.data_ptr<bool>() : nullptr;
  for (int64_t i = 0; i < T; i++)
    for (int64_t j = 0; j < T; j++) {
      int64_t d = i - j;
      p[i * T + j] = causal ? !(d >= 0 && d <= window) : !(d >= -window && d <= window);
    }
  return m;
}

// Block-sparse, O(active blocks · block²). Query block a sees the c_a key blocks its layout row lists.
// Rows are grouped by c_a rounded up to a power of two, P (at most 2x padding, and at most log2(nbk) + 1
// groups); within a group every row gathers exactly P key blocks (index_select; padding slots masked):
//
//   qg (..., n, Bs, D)      the group's query blocks
//   kg (..., n, P·Bs, D)    their key blocks, gathered and laid side by side (vg likewise)
//   s  (..., n, Bs, P·Bs)   qg @ kgᵀ, masked at padding slots, past Tk, and above the diagonal if causal
//
// The groups' outputs are concatenated and put back in block order with one index_select.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& layout, int64_t bs,
                              const SparseAttentionOptions& o) {
  const char* op = "block_sparse_attention";
  check_sparse(op, q, k, v, o);
  if (bs < 1) throw Error(std::string(op) + ": block_size must be >= 1, got " + std::to_string(bs));
  const int64_t Tq = q.size(-2), Tk = k.size(-2), D = q.size(-1), Dv = v.size(-1);
  const int64_t nbq = (Tq + bs - 1) / bs, nbk = (Tk + bs - 1) / bs;
  if (!layout.defined() || layout.dtype() != boolean || layout.dim() != 2 || layout.size(0) != nbq ||
      layout.size(1) != nbk)
    throw Error(
        std::string(op) + ": layout must be bool (" + std::to_string(nbq) + ", " + std::to_string(nbk) + ") for Tq " +
        std::to_string(Tq) + ", Tk " + std::to_string(Tk) + " and block_size " + std::to_string(bs) + ", got " +
        (layout.defined() ? std::string(dtype_name(layout.dtype())) + " " + shape_str(layout.shape()) : "none"));
  if (nbq == 0) return zeros(with(lead_of(q, 2), {0, Dv}), q.dtype());
  const double scale = o.scale.value_or(default_scale(D));

  Tensor lay = layout.contiguous();
  const bool* lp = lay.numel() ? lay.data_ptr<bool>() : nullptr;
  std::vector<std::vector<int64_t>> cols(nbq);
  for (int64_t a = 0; a < nbq; a++)
    for (int64_t b = 0; b < nbk; b++)
      if (lp[a * nbk + b]) cols[a].push_back(b);
  // Groups by padded count; a row with no blocks joins P = 1 with its only slot masked (output 0).
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t a = 0; a < nbq; a++) {
    int64_t c = (int64_t)cols[a].size(), P = 1;
    while (P < c) P *= 2;
    groups[P].push_back(a);
  }

  Tensor qb = pad_rows(scale == 1.0 ? q : q * scale, 0, nbq * bs - Tq).reshape(with(lead_of(q, 2), {nbq, bs, D}));
  Tensor kb = pad_rows(k, 0, std::max<int64_t>(nbk, 1) * bs - Tk)
                  .reshape(with(lead_of(k, 2), {std::max<int64_t>(nbk, 1), bs, D}));
  Tensor vb = pad_rows(v, 0, std::max<int64_t>(nbk, 1) * bs - Tk)
                  .reshape(with(lead_of(v, 2), {std::max<int64_t>(nbk, 1), bs, Dv}));
  PadRows pr = pad_rows_of(o.key_padding_mask);
  const bool pad_batched = o.key_padding_mask.defined() && o.key_padding_mask.dim() == 2;

  std::vector<Tensor> parts;
  std::vector<int64_t> order;
  for (const auto& [P, rows] : groups) {
    const int64_t n = (int64_t)rows.size(), W = P * bs;
    std::vector<int64_t> slot(n * P, 0);
    Tensor band = bool_tensor({n, bs, W});
    bool* bp = band.data_ptr<bool>();
    for (int64_t g = 0; g < n; g++) {
      const std::vector<int64_t>& cs = cols[rows[g]];
      for (int64_t t = 0; t < P; t++) slot[g * P + t] = t < (int64_t)cs.size() ? cs[t] : 0;
      for (int64_t a = 0; a < bs; a++)
        for (int64_t c = 0; c < W; c++) {
          int64_t t = c / bs, i = rows[g] * bs + a, j = slot[g * P + t] * bs + c % bs;
          bp[(g * bs + a) * W + c] = t >= (int64_t)cs.size() || j >= Tk || (o.causal && j > i);
        }
    }
    Tensor pad;
    if (pr.defined()) {
      pad = bool_tensor({pr.G, n, W});
      bool* pp = pad.data_ptr<bool>();
      for (int64_t gg = 0; gg < pr.G; gg++)
        for (int64_t g = 0; g < n; g++)
          for (int64_t c = 0; c < W; c++) {
            int64_t j = slot[g * P + c / bs] * bs + c % bs;
            pp[(gg * n + g) * W + c] = j < Tk && pr.at(gg, j);
          }
    }
    const bool all_rows = n == nbq;  // one group holding every row, in order: no gather of queries
    Tensor qg = all_rows ? qb : index_select(qb, -3, from_vector<int64_t>(rows));
    Tensor idx = from_vector<int64_t>(slot);
    Tensor kg = index_select(kb, -3, idx).reshape(with(lead_of(k, 2), {n, W, D}));
    Tensor vg = index_select(vb, -3, idx).reshape(with(lead_of(v, 2), {n, W, Dv}));
    Tensor s = matmul(qg, kg.mT());  // (..., n, bs, W)
    s = masked_fill(s, tile_mask(band, pad, pad_batched, s.dim()), -kInf);
    parts.push_back(matmul(softmax(s, -1), vg));  // (..., n, bs, Dv)
    order.insert(order.end(), rows.begin(), rows.end());
  }
  Tensor out = parts.size() == 1 ? parts[0] : cat(parts, -3);
  if (parts.size() > 1) {
    std::vector<int64_t> inverse(nbq);
    for (int64_t t = 0; t < nbq; t++) inverse[order[t]] = t;
    out = index_select(out, -3, from_vector<int64_t>(inverse));
  }
  return out.reshape(with(lead_of(out, 3), {nbq * bs, Dv})).narrow(-2, 0, Tq);
}

Tensor block_sparse_mask(const Tensor& layout, int64_t bs, int64_t Tq, int64_t Tk) {
  if (bs < 1) throw Error("block_sparse_mask: block_size must be >= 1, got " + std::to_string(bs));
  const int64_t nbq = (Tq + bs - 1) / bs, nbk = (Tk + bs - 1) / bs;
  if (layout.dtype() != boolean || layout.dim() != 2 || layout.size(0) != nbq || layout.size(1) != nbk)
    throw Error("block_sparse_mask: layout must be bool (" + std::to_string(nbq) + ", " + std::to_string(nbk) +
                "), got " + dtype_name(layout.dtype()) + " " + shape_str(layout.shape()));
  Tensor lay = layout.contiguous();
  Tensor m = bool_tensor({Tq, Tk});
  const bool* lp = lay.numel() ? lay.data_ptr<bool>() : nullptr;
  bool* p = m.numel() ? m.data_ptr<bool>() : nullptr;
  for (int64_t i = 0; i < Tq; i++)
    for (int64_t j = 0; j < Tk; j++) p[i * Tk + j] = !lp[(i / bs) * nbk + j / bs];
  return m;
}

Tensor block_layout(int64_t nq, int64_t nk, const BlockLayoutOptions& o) {
  if (nq < 0 || nk < 0 || o.stride < 0 || o.global < 0)
    throw Error("block_layout: sizes, stride and global must be >= 0, got (" + std::to_string(nq) + ", " +
                std::to_string(nk) + "), stride " + std::to_string(o.stride) + ", global " + std::to_string(o.global));
  Tensor m = bool_tensor({nq, nk});
  bool* p = m.numel() ? m.data_ptr<bool>() : nullptr;
  for (int64_t a = 0; a < nq; a++)
    for (int64_t b = 0; b < nk; b++) {
      int64_t d = a - b;
      bool on = (o.local >= 0 && std::abs(d) <= o.local) || (o.stride > 0 && d % o.stride == 0) || b < o.global ||
                a < o.global;
      p[a * nk + b] = on && !(o.causal && b > a);
    }
  return m;
}

}  // namespace heed::nn

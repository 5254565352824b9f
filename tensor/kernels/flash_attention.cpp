// flash_attention.cpp: the tiled attention kernels (FlashAttention forward, FlashAttention-2 backward)
// and, at the bottom, the scalar reference loops they are tested against. docs/flash_attention.md
// derives every line of the two tiled loops; the comments here point at the steps.
//
// Letters as in the header: BH flattened batch × heads, Tq, Tk, D (q/k width), Dv (v width);
// Br × Bc is one tile of S = scale · Q Kᵀ (Br query rows, Bc key columns).
#include "tensor/kernels/flash_attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/kernels/blas.h"
#include "tensor/kernels/simd.h"
#include "tensor/parallel.h"
#include "tensor/view.h"

namespace heed::kernels {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// ---- operands ----------------------------------------------------------------------------------------
// One operand seen as BH row-major matrices (rows, cols): element [bh][r][c] is at ptr[off[bh] + r*ld + c].
// Views with unit stride along the last dim are used in place, so the (B,T,NH,D) -> (B,NH,T,D) transpose
// that multi-head attention makes costs no copy; anything else is copied once. The kernels write only
// through the Mats of tensors they allocated themselves (out, dq, dk, dv).
template <class T>
struct Mats {
  Tensor keep;  // holds the storage alive (x itself, or its contiguous copy)
  T* ptr = nullptr;
  std::vector<int64_t> off;
  int64_t rows = 0, cols = 0, ld = 0;
};

bool rows_readable(const Tensor& x) {
  int64_t rows = x.size(-2), cols = x.size(-1);
  return (cols <= 1 || x.stride(-1) == 1) && (rows <= 1 || x.stride(-2) >= cols);
}

template <class T>
Mats<T> mats(const Tensor& x) {
  Mats<T> m;
  m.keep = rows_readable(x) ? x : view::contiguous(x);
  m.rows = x.size(-2);
  m.cols = x.size(-1);
  m.ld = m.rows <= 1 ? std::max<int64_t>(m.cols, 1) : m.keep.stride(-2);
  m.ld = std::max<int64_t>(m.ld, std::max<int64_t>(m.cols, 1));
  m.ptr = m.keep.numel() ? m.keep.template data_ptr<T>() : nullptr;
  int64_t nb = x.dim() - 2, bh = 1;
  for (int64_t d = 0; d < nb; d++) bh *= x.size(d);
  m.off.resize(bh);
  std::vector<int64_t> idx(nb, 0);
  for (int64_t b = 0; b < bh; b++) {
    int64_t o = 0;
    for (int64_t d = 0; d < nb; d++) o += idx[d] * m.keep.stride(d);
    m.off[b] = o;
    for (int64_t d = nb - 1; d >= 0; d--) {
      if (++idx[d] < x.size(d)) break;
      idx[d] = 0;
    }
  }
  return m;
}

Shape batch_of(const Tensor& x) { return Shape(x.shape().begin(), x.shape().end() - 2); }

// A new tensor of `shape` (x's rank; the last dim may differ from x's) laid out in memory as x is: its dims
// ordered by x's strides, largest first, the last dim innermost. For q = (B,L,NH,D).permute(0,2,1,3), as
// multi-head attention makes it, that is a (B,L,NH,Dv) block seen as (B,NH,L,Dv). So the output goes back
// to (B,L,E) and dq, dk, dv back through the permute and the reshape of the heads without a copy.
Tensor empty_laid_out_as(const Tensor& x, const Shape& shape, DType dtype, bool zeroed) {
  const int64_t n = x.dim();
  std::vector<int64_t> order(n - 1);  // every dim but the last, outermost first
  for (int64_t d = 0; d < n - 1; d++) order[d] = d;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    int64_t sa = x.size(a) == 1 ? 0 : x.stride(a), sb = x.size(b) == 1 ? 0 : x.stride(b);
    return sa > sb;
  });
  order.push_back(n - 1);
  Shape dense(n);
  for (int64_t d = 0; d < n; d++) dense[d] = shape[order[d]];
  Tensor t = zeroed ? zeros(dense, dtype) : empty(dense, dtype);
  std::vector<int64_t> back(n);  // dim order[d] of the result is dim d of t
  for (int64_t d = 0; d < n; d++) back[order[d]] = d;
  return view::permute(t, back);
}

// Checks the shapes and returns BH.
int64_t check_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& p) {
  if (q.dim() < 2 || k.dim() < 2 || v.dim() < 2)
    throw Error(std::string(op) + ": q, k, v need at least 2 dims (T, D), got " + shape_str(q.shape()) + ", " +
                shape_str(k.shape()) + ", " + shape_str(v.shape()));
  if (q.dtype() != k.dtype() || q.dtype() != v.dtype())
    throw Error(std::string(op) + ": q, k, v must share a dtype, got " + dtype_name(q.dtype()) + ", " +
                dtype_name(k.dtype()) + ", " + dtype_name(v.dtype()));
  if (!is_floating(q.dtype()))
    throw Error(std::string(op) + ": needs float32 or float64, got " + dtype_name(q.dtype()));
  if (batch_of(q) != batch_of(k) || batch_of(q) != batch_of(v))
    throw Error(std::string(op) + ": q, k, v must have the same batch dims, got " + shape_str(q.shape()) + ", " +
                shape_str(k.shape()) + ", " + shape_str(v.shape()));
  if (k.size(-1) != q.size(-1))
    throw Error(std::string(op) + ": q " + shape_str(q.shape()) + " and k " + shape_str(k.shape()) +
                " need the same last dim (" + std::to_string(q.size(-1)) + " != " + std::to_string(k.size(-1)) + ")");
  if (v.size(-2) != k.size(-2))
    throw Error(std::string(op) + ": k " + shape_str(k.shape()) + " and v " + shape_str(v.shape()) +
                " need the same number of keys (" + std::to_string(k.size(-2)) + " != " + std::to_string(v.size(-2)) +
                ")");
  int64_t bh = numel_of(batch_of(q));
  const Tensor& m = p.key_padding_mask;
  if (m.defined()) {
    bool ok = m.dtype() == boolean && m.size(-1) == k.size(-2) &&
              (m.dim() == 1 || (m.dim() == 2 && m.size(0) > 0 && bh % m.size(0) == 0));
    if (!ok)
      throw Error(std::string(op) + ": key_padding_mask must be bool (G, Tk) with G dividing the " +
                  std::to_string(bh) + " batch*head slices, or (Tk); got " + dtype_name(m.dtype()) + " " +
                  shape_str(m.shape()) + " for k " + shape_str(k.shape()));
  }
  if (!(p.dropout_p >= 0 && p.dropout_p <= 1))
    throw Error(std::string(op) + ": dropout_p must be in [0, 1], got " + std::to_string(p.dropout_p));
  return bh;
}

// The padding row that slice bh uses (nullptr: no padding), as a contiguous bool copy.
struct Padding {
  Tensor keep;
  const bool* ptr = nullptr;
  int64_t per = 1;  // slices per mask row
  int64_t tk = 0;
  const bool* row(int64_t bh) const { return ptr ? ptr + (bh / per) * tk : nullptr; }
};
Padding padding(const Tensor& m, int64_t bh, int64_t tk) {
  Padding p;
  if (!m.defined()) return p;
  p.keep = view::contiguous(m);
  p.ptr = p.keep.numel() ? p.keep.data_ptr<bool>() : nullptr;
  p.per = m.dim() == 1 ? bh : bh / m.size(0);
  p.per = std::max<int64_t>(p.per, 1);
  p.tk = m.dim() == 1 ? 0 : tk;  // a 1-d mask: every slice reads row 0
  return p;
}

// z[c] = dropout scale for draws start .. start+n-1: 1/(1-p) kept, 0 dropped. One Philox block gives four
// consecutive draws, so it is computed once per four elements instead of once per element.
template <class T>
void dropout_scales(T* z, int64_t n, uint64_t seed, uint64_t start, double p) {
  const T inv = p < 1 ? (T)(1.0 / (1.0 - p)) : T(0);
  const std::array<uint32_t, 2> key{(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint64_t block = ~uint64_t(0);
  std::array<uint32_t, 4> draws{};
  for (int64_t c = 0; c < n; c++) {
    uint64_t idx = start + (uint64_t)c;
    if (idx / 4 != block) {
      block = idx / 4;
      draws = philox4x32_10({(uint32_t)block, (uint32_t)(block >> 32), 0, 0}, key);
    }
    z[c] = (double)uniform_float(draws[idx % 4]) >= p ? inv : T(0);
  }
}

// Tile sizes. Every GEMM below is (Br × Bc × width) or a transpose of it; keeping that product at or under
// 64³ keeps OpenBLAS on the calling thread (tensor/kernels/blas.h: it only wakes its own threads above 64³), so
// heed's OpenMP threads are not oversubscribed by BLAS threads. 64 × 64 suits D, Dv <= 64; narrower heads
// leave room for wider key tiles (D = 32, as in mha_step and attn_long: 64 × 128), so there are half as
// many GEMM calls, each with twice the work, and a row of up to 128 keys fits one tile with no rescaling.
void tile_sizes(int64_t d, int64_t dv, int64_t tk, int64_t& br, int64_t& bc) {
  br = 64, bc = 64;
  int64_t w = std::max<int64_t>({d, dv, 1});
  while (br * bc * w > 64 * 64 * 64 && (br > 8 || bc > 8)) (bc >= br ? bc : br) /= 2;
  while (bc < tk && br * (2 * bc) * w <= 64 * 64 * 64) bc *= 2;
}

// Parallel regions only pay for themselves above roughly this many multiply-adds.
constexpr int64_t kParallelWork = 1 << 16;

// ---- forward -----------------------------------------------------------------------------------------
template <class T>
FlashForward forward_tiled(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& prm,
                           int64_t BH) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2), D = q.size(-1), Dv = v.size(-1);
  Mats<T> Q = mats<T>(q), K = mats<T>(k), V = mats<T>(v);
  Padding pad = padding(prm.key_padding_mask, BH, Tk);
  Shape oshape = batch_of(q);
  oshape.push_back(Tq), oshape.push_back(Dv);
  Tensor out = empty_laid_out_as(q, oshape, q.dtype(), false), lse = empty({BH, Tq}, q.dtype());
  if (out.numel() == 0 && lse.numel() == 0) return {out, lse};
  Mats<T> O = mats<T>(out);
  T* L = lse.numel() ? lse.data_ptr<T>() : nullptr;
  int64_t Br, Bc;
  tile_sizes(D, Dv, Tk, Br, Bc);
  const int64_t n_qt = (Tq + Br - 1) / Br;
  const T scale = (T)prm.scale;
  const bool dropout = prm.dropout_p > 0;
  const T ninf = -std::numeric_limits<T>::infinity();
  const bool par = BH * Tq * Tk * std::max<int64_t>(D, 1) >= kParallelWork && BH * n_qt > 1;

  ParallelGuard guard;  // the workspace and each tile may throw (bad_alloc, a BLAS check): carried out, not terminate
#pragma omp parallel if (par) num_threads(parallel_threads())
  {
    // Per-thread workspace: one tile of S (which becomes P in place), the output accumulator for Br rows,
    // and the running max m and running sum l of each row. O(Br·Bc + Br·Dv): nothing grows with T.
    std::vector<T> S, acc, m, l, z;
    guard.run([&] {
      S.resize(Br * Bc), acc.resize(Br * std::max<int64_t>(Dv, 1)), m.resize(Br), l.resize(Br), z.resize(Bc);
    });
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bh = 0; bh < BH; bh++) {
      for (int64_t it = 0; it < n_qt; it++) guard.run([&] {
        const int64_t i0 = it * Br, br = std::min(Br, Tq - i0);
        const T* Qi = Q.ptr + Q.off[bh] + i0 * Q.ld;
        const bool* padrow = pad.row(bh);
        std::fill(m.begin(), m.end(), ninf);
        std::fill(l.begin(), l.end(), T(0));
        std::fill(acc.begin(), acc.end(), T(0));
        // Causal: keys past the tile's last query are masked for every row in it, so stop there.
        const int64_t j_end = prm.causal ? std::min(Tk, i0 + br) : Tk;
        for (int64_t j0 = 0; j0 < j_end; j0 += Bc) {
          const int64_t bc = std::min(Bc, j_end - j0);
          if (padrow && std::all_of(padrow + j0, padrow + j0 + bc, [](bool b) { return b; })) continue;
          const T* Kj = K.ptr + K.off[bh] + j0 * K.ld;
          const T* Vj = V.ptr + V.off[bh] + j0 * V.ld;
          // S = scale · Q_i K_jᵀ   (br, bc)
          blas::gemm<T>(false, true, br, bc, D, scale, Qi, Q.ld, Kj, K.ld, T(0), S.data(), Bc);
          for (int64_t r = 0; r < br; r++) {
            T* s = S.data() + r * Bc;
            const int64_t i = i0 + r;
            if (prm.causal)
              for (int64_t c = std::max<int64_t>(i + 1 - j0, 0); c < bc; c++) s[c] = ninf;
            if (padrow)
              for (int64_t c = 0; c < bc; c++)
                if (padrow[j0 + c]) s[c] = ninf;
            // Online softmax: the new running max, and the factor alpha = e^(m_old - m_new) that rescales
            // everything accumulated so far to the new max.
            const T m_new = std::max(m[r], simd::max_simd(s, bc));
            if (m_new == ninf) {  // every key so far is masked for this row: it contributes nothing yet
              std::fill(s, s + bc, T(0));
              continue;
            }
            const T alpha = std::exp(m[r] - m_new);  // m_old = -inf gives 0: nothing to rescale
            simd::binary_simd(simd::Binary::Sub, s, 1, &m_new, 0, s, bc);
            simd::unary_simd(simd::Unary::Exp, s, s, bc, {});  // masked -inf entries become 0
            l[r] = alpha * l[r] + simd::sum_simd(s, bc);     // the normaliser uses P before dropout
            if (alpha != T(1))
              for (int64_t c = 0; c < Dv; c++) acc[r * Dv + c] *= alpha;
            if (dropout) {
              dropout_scales(z.data(), bc, prm.seed, prm.offset + (uint64_t)((bh * Tq + i) * Tk + j0), prm.dropout_p);
              for (int64_t c = 0; c < bc; c++) s[c] *= z[c];
            }
            m[r] = m_new;
          }
          // acc += P_j V_j   (br, Dv)
          if (Dv > 0) blas::gemm<T>(false, false, br, Dv, bc, T(1), S.data(), Bc, Vj, V.ld, T(1), acc.data(), Dv);
        }
        // O_i = acc / l and L_i = m + log l; a row that saw no unmasked key gets O = 0, L = -inf.
        for (int64_t r = 0; r < br; r++) {
          T* o = Dv > 0 ? O.ptr + O.off[bh] + (i0 + r) * O.ld : nullptr;  // Dv = 0: out is empty
          if (l[r] == T(0)) {
            std::fill(o, o + Dv, T(0));
            L[bh * Tq + i0 + r] = ninf;
          } else {
            const T inv = T(1) / l[r];
            for (int64_t c = 0; c < Dv; c++) o[c] = acc[r * Dv + c] * inv;
            L[bh * Tq + i0 + r] = m[r] + std::log(l[r]);
          }
        }
      });
    }
  }
  guard.rethrow();
  return {out, lse};
}

// ---- backward ----------------------------------------------------------------------------------------
// FlashAttention-2's order: the outer loop walks key tiles j, so dK_j and dV_j accumulate in place; the
// inner loop walks the query tiles i that see tile j and adds into dQ_i. Every dQ_i is touched by every j,
// so the loop over one (batch, head) slice stays on one thread and threads split the BH slices: no atomics,
// and the sums run in the same order whatever the thread count.
//
// It adds into dq, dk, dv, which the caller zeroes and lays out with unit stride along D (see
// flash_attention_backward_into).
template <class T>
void backward_tiled(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const Tensor& lse, const FlashAttentionParams& prm, int64_t BH, const Tensor& dq, const Tensor& dk,
                    const Tensor& dv) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2), D = q.size(-1), Dv = v.size(-1);
  Mats<T> Q = mats<T>(q), K = mats<T>(k), V = mats<T>(v);
  Padding pad = padding(prm.key_padding_mask, BH, Tk);
  Tensor L_t = view::contiguous(lse);
  // Dv = 0: out does not depend on q, k or v at all, so every gradient is the zero the caller gave.
  if (Tq == 0 || Tk == 0 || BH == 0 || Dv == 0) return;
  // dout and out are read in place (their rows have unit stride); dq, dk, dv are written in place.
  Mats<T> dO = mats<T>(dout), O = mats<T>(out), dQ = mats<T>(dq), dK = mats<T>(dk), dV = mats<T>(dv);
  const T* L = L_t.data_ptr<T>();
  int64_t Br, Bc;
  tile_sizes(D, Dv, Tk, Br, Bc);
  const T scale = (T)prm.scale;
  const bool dropout = prm.dropout_p > 0;
  const T ninf = -std::numeric_limits<T>::infinity();
  const bool par = BH * Tq * Tk * std::max<int64_t>(D, 1) >= kParallelWork && BH > 1;

  ParallelGuard guard;
#pragma omp parallel if (par) num_threads(parallel_threads())
  {
    // Workspace: P (in S), dP, the dropout scales Z of one tile, and Di = rowsum(dO ∘ O) for the slice.
    std::vector<T> S, dP, Z, Di;
    guard.run([&] { S.resize(Br * Bc), dP.resize(Br * Bc), Z.resize(dropout ? Br * Bc : 0), Di.resize(Tq); });
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < BH; bh++) guard.run([&] {
      const T* dOb = dO.ptr + dO.off[bh];  // row i at dOb + i * dO.ld, and so on
      const T* Ob = O.ptr + O.off[bh];
      const T* Lb = L + bh * Tq;
      T* dQb = dQ.ptr + dQ.off[bh];
      T* dKb = dK.ptr + dK.off[bh];
      T* dVb = dV.ptr + dV.off[bh];
      const bool* padrow = pad.row(bh);
      // D_i = Σ_c dO_ic O_ic  =  Σ_j P_ij dP_ij: the row sum in the softmax backward, without P.
      for (int64_t i = 0; i < Tq; i++) {
        T s = 0;
        for (int64_t c = 0; c < Dv; c++) s += dOb[i * dO.ld + c] * Ob[i * O.ld + c];
        Di[i] = s;
      }
      for (int64_t j0 = 0; j0 < Tk; j0 += Bc) {
        const int64_t bc = std::min(Bc, Tk - j0);
        if (padrow && std::all_of(padrow + j0, padrow + j0 + bc, [](bool b) { return b; })) continue;
        const T* Kj = K.ptr + K.off[bh] + j0 * K.ld;
        const T* Vj = V.ptr + V.off[bh] + j0 * V.ld;
        // Causal: query tiles wholly above key tile j (every i < j0) see none of it.
        const int64_t i_first = prm.causal ? (j0 / Br) * Br : 0;
        for (int64_t i0 = i_first; i0 < Tq; i0 += Br) {
          const int64_t br = std::min(Br, Tq - i0);
          const T* Qi = Q.ptr + Q.off[bh] + i0 * Q.ld;
          // Rebuild P_ij = exp(scale · Q_i K_jᵀ - L_i) exactly as the forward had it.
          blas::gemm<T>(false, true, br, bc, D, scale, Qi, Q.ld, Kj, K.ld, T(0), S.data(), Bc);
          for (int64_t r = 0; r < br; r++) {
            T* s = S.data() + r * Bc;
            const int64_t i = i0 + r;
            const T Li = Lb[i];
            if (Li == ninf) {  // a fully masked row: P = 0, so it sends no gradient anywhere
              std::fill(s, s + bc, T(0));
              continue;
            }
            if (prm.causal)
              for (int64_t c = std::max<int64_t>(i + 1 - j0, 0); c < bc; c++) s[c] = ninf;
            if (padrow)
              for (int64_t c = 0; c < bc; c++)
                if (padrow[j0 + c]) s[c] = ninf;
            simd::binary_simd(simd::Binary::Sub, s, 1, &Li, 0, s, bc);
            simd::unary_simd(simd::Unary::Exp, s, s, bc, {});
          }
          // dV_j += (P ∘ Z)ᵀ dO_i   (bc, Dv)
          const T* Pd = S.data();
          if (dropout) {
            for (int64_t r = 0; r < br; r++)
              dropout_scales(Z.data() + r * Bc, bc, prm.seed, prm.offset + (uint64_t)((bh * Tq + i0 + r) * Tk + j0),
                             prm.dropout_p);
            for (int64_t r = 0; r < br; r++)
              for (int64_t c = 0; c < bc; c++) dP[r * Bc + c] = S[r * Bc + c] * Z[r * Bc + c];
            Pd = dP.data();
          }
          blas::gemm<T>(true, false, bc, Dv, br, T(1), Pd, Bc, dOb + i0 * dO.ld, dO.ld, T(1), dVb + j0 * dV.ld, dV.ld);
          // dP = (dO_i V_jᵀ) ∘ Z   (br, bc)
          blas::gemm<T>(false, true, br, bc, Dv, T(1), dOb + i0 * dO.ld, dO.ld, Vj, V.ld, T(0), dP.data(), Bc);
          // dS = P ∘ (dP - D_i): the softmax backward, row by row. Masked entries have P = 0, so dS = 0.
          for (int64_t r = 0; r < br; r++) {
            T* dp = dP.data() + r * Bc;
            const T* p = S.data() + r * Bc;
            const T d = Di[i0 + r];
            if (dropout) {
              const T* z = Z.data() + r * Bc;
              for (int64_t c = 0; c < bc; c++) dp[c] = p[c] * (dp[c] * z[c] - d);
            } else {
              for (int64_t c = 0; c < bc; c++) dp[c] = p[c] * (dp[c] - d);
            }
          }
          // dQ_i += scale · dS K_j   (br, D);   dK_j += scale · dSᵀ Q_i   (bc, D)
          blas::gemm<T>(false, false, br, D, bc, scale, dP.data(), Bc, Kj, K.ld, T(1), dQb + i0 * dQ.ld, dQ.ld);
          blas::gemm<T>(true, false, bc, D, br, scale, dP.data(), Bc, Qi, Q.ld, T(1), dKb + j0 * dK.ld, dK.ld);
        }
      }
    });
  }
  guard.rethrow();  // an exception inside the region would call std::terminate (tensor/parallel.h)
}

// ---- the scalar references -----------------------------------------------------------------------------
// One query row at a time, straight from the definition: scores, max, exponentials, sum. They share only
// the operand reading (Mats) and the dropout rule with the tiled kernels.
template <class T>
T score(const Mats<T>& Q, const Mats<T>& K, int64_t bh, int64_t i, int64_t j, double scale) {
  const T* a = Q.ptr + Q.off[bh] + i * Q.ld;
  const T* b = K.ptr + K.off[bh] + j * K.ld;
  T s = 0;
  for (int64_t c = 0; c < Q.cols; c++) s += a[c] * b[c];
  return s * (T)scale;
}
bool masked(const FlashAttentionParams& p, const bool* padrow, int64_t i, int64_t j) {
  return (p.causal && j > i) || (padrow && padrow[j]);
}
double keep_scale(const FlashAttentionParams& p, int64_t bh, int64_t i, int64_t j, int64_t Tq, int64_t Tk) {
  if (p.dropout_p <= 0) return 1.0;
  if (!attention_dropout_keep(p.seed, p.offset + (uint64_t)((bh * Tq + i) * Tk + j), p.dropout_p)) return 0.0;
  return 1.0 / (1.0 - p.dropout_p);
}

template <class T>
FlashForward forward_ref(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& prm,
                         int64_t BH) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2), Dv = v.size(-1);
  Mats<T> Q = mats<T>(q), K = mats<T>(k), V = mats<T>(v);
  Padding pad = padding(prm.key_padding_mask, BH, Tk);
  Shape oshape = batch_of(q);
  oshape.push_back(Tq), oshape.push_back(Dv);
  Tensor out = zeros(oshape, q.dtype()), lse = full({BH, Tq}, kNegInf, q.dtype());
  std::vector<double> p(Tk);
  for (int64_t bh = 0; bh < BH; bh++)
    for (int64_t i = 0; i < Tq; i++) {
      double mx = kNegInf;
      for (int64_t j = 0; j < Tk; j++) {
        p[j] = masked(prm, pad.row(bh), i, j) ? kNegInf : (double)score(Q, K, bh, i, j, prm.scale);
        mx = std::max(mx, p[j]);
      }
      if (mx == kNegInf) continue;  // fully masked: O = 0, L = -inf
      double l = 0;
      for (int64_t j = 0; j < Tk; j++) l += p[j] = std::exp(p[j] - mx);
      T* o = out.data_ptr<T>() + (bh * Tq + i) * Dv;
      for (int64_t j = 0; j < Tk; j++) {
        double w = p[j] / l * keep_scale(prm, bh, i, j, Tq, Tk);
        const T* vj = V.ptr + V.off[bh] + j * V.ld;
        for (int64_t c = 0; c < Dv; c++) o[c] += (T)(w * vj[c]);
      }
      lse.data_ptr<T>()[bh * Tq + i] = (T)(mx + std::log(l));
    }
  return {out, lse};
}

template <class T>
FlashGrads backward_ref(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const FlashAttentionParams& prm, int64_t BH) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2), D = q.size(-1), Dv = v.size(-1);
  Mats<T> Q = mats<T>(q), K = mats<T>(k), V = mats<T>(v);
  Padding pad = padding(prm.key_padding_mask, BH, Tk);
  Tensor dO_t = view::contiguous(dout), O_t = view::contiguous(out), L_t = view::contiguous(lse);
  Tensor dq = zeros(q.shape(), q.dtype()), dk = zeros(k.shape(), k.dtype()), dv = zeros(v.shape(), v.dtype());
  for (int64_t bh = 0; bh < BH; bh++)
    for (int64_t i = 0; i < Tq; i++) {
      const double Li = L_t.data_ptr<T>()[bh * Tq + i];
      if (Li == kNegInf) continue;
      const T* dOi = dO_t.data_ptr<T>() + (bh * Tq + i) * Dv;
      const T* Oi = O_t.data_ptr<T>() + (bh * Tq + i) * Dv;
      double Di = 0;
      for (int64_t c = 0; c < Dv; c++) Di += (double)dOi[c] * Oi[c];
      const T* qi = Q.ptr + Q.off[bh] + i * Q.ld;
      for (int64_t j = 0; j < Tk; j++) {
        if (masked(prm, pad.row(bh), i, j)) continue;
        const double P = std::exp((double)score(Q, K, bh, i, j, prm.scale) - Li);
        const double z = keep_scale(prm, bh, i, j, Tq, Tk);
        const T* kj = K.ptr + K.off[bh] + j * K.ld;
        const T* vj = V.ptr + V.off[bh] + j * V.ld;
        double dp = 0;
        for (int64_t c = 0; c < Dv; c++) {
          dv.data_ptr<T>()[(bh * Tk + j) * Dv + c] += (T)(P * z * dOi[c]);
          dp += (double)dOi[c] * vj[c];
        }
        const double ds = P * (dp * z - Di) * prm.scale;
        for (int64_t c = 0; c < D; c++) {
          dq.data_ptr<T>()[(bh * Tq + i) * D + c] += (T)(ds * kj[c]);
          dk.data_ptr<T>()[(bh * Tk + j) * D + c] += (T)(ds * qi[c]);
        }
      }
    }
  return {dq, dk, dv};
}

}  // namespace

// ---- public entry points ---------------------------------------------------------------------------------
FlashForward flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& p) {
  int64_t bh = check_inputs("flash_attention", q, k, v, p);
  return dispatch_floating(q.dtype(), "flash_attention", [&](auto zero) {
    return forward_tiled<decltype(zero)>(q, k, v, p, bh);
  });
}

FlashGrads flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const Tensor& lse, const FlashAttentionParams& p) {
  check_inputs("flash_attention backward", q, k, v, p);
  // Each gradient in its input's layout: for multi-head attention, no copy on its way back to the (B,T,E)
  // projection that made q, k, v.
  FlashGrads g{empty_laid_out_as(q, q.shape(), q.dtype(), true), empty_laid_out_as(k, k.shape(), k.dtype(), true),
               empty_laid_out_as(v, v.shape(), v.dtype(), true)};
  flash_attention_backward_into(dout, q, k, v, out, lse, p, g.dq, g.dk, g.dv);
  return g;
}

void flash_attention_backward_into(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, const FlashAttentionParams& p,
                                   const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  int64_t bh = check_inputs("flash_attention backward", q, k, v, p);
  if (dout.shape() != out.shape() || dout.dtype() != q.dtype())
    throw Error("flash_attention backward: dout " + shape_str(dout.shape()) + " " + dtype_name(dout.dtype()) +
                " does not match out " + shape_str(out.shape()) + " " + dtype_name(q.dtype()));
  for (const Tensor* g : {&dq, &dk, &dv}) {
    const Tensor& like = g == &dq ? q : g == &dk ? k : v;
    if (g->shape() != like.shape() || g->dtype() != q.dtype() || !rows_readable(*g))
      throw Error("flash_attention backward: a gradient buffer " + shape_str(g->shape()) + " " +
                  dtype_name(g->dtype()) + " must have its input's shape " + shape_str(like.shape()) + ", dtype " +
                  dtype_name(q.dtype()) + " and unit stride along its last dim");
  }
  dispatch_floating(q.dtype(), "flash_attention backward", [&](auto zero) {
    backward_tiled<decltype(zero)>(dout, q, k, v, out, lse, p, bh, dq, dk, dv);
    return 0;
  });
}

FlashForward flash_attention_forward_ref(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const FlashAttentionParams& p) {
  int64_t bh = check_inputs("flash_attention_ref", q, k, v, p);
  return dispatch_floating(q.dtype(), "flash_attention_ref", [&](auto zero) {
    return forward_ref<decltype(zero)>(q, k, v, p, bh);
  });
}

FlashGrads flash_attention_backward_ref(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& out, const Tensor& lse, const FlashAttentionParams& p) {
  int64_t bh = check_inputs("flash_attention_ref backward", q, k, v, p);
  return dispatch_floating(q.dtype(), "flash_attention_ref backward", [&](auto zero) {
    return backward_ref<decltype(zero)>(dout, q, k, v, out, lse, p, bh);
  });
}

Tensor attention_dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t offset, DType dtype) {
  if (!(p >= 0 && p <= 1)) throw Error("attention_dropout_mask: p must be in [0, 1], got " + std::to_string(p));
  Tensor z = empty(shape, dtype);
  const int64_t n = z.numel();
  if (n == 0) return z;
  dispatch_floating(dtype, "attention_dropout_mask", [&](auto zero) {
    using T = decltype(zero);
    T* out = z.data_ptr<T>();
    // Chunks of 4096 draws, each filled by the same routine the fused kernel uses, so both read the
    // stream identically; the chunking never changes a value.
    const int64_t chunk = 4096, n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= (1 << 15)) num_threads(parallel_threads())
    for (int64_t c = 0; c < n_chunks; c++) {
      int64_t start = c * chunk, len = std::min(chunk, n - start);
      dropout_scales(out + start, len, seed, offset + (uint64_t)start, p);
    }
    return 0;
  });
  return z;
}

}  // namespace heed::kernels

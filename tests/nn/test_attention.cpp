// Tests for nn/attention.cpp and the fused kernel (tensor/kernels/flash_attention.cpp, autograd/ops_attention.cpp):
// the composite against hand-computed values and finite differences (first and second order), the fused
// kernel against the composite and against its scalar reference, every sparse pattern against dense
// attention with the equivalent mask, masking that never makes NaN, and the memory the fused path saves.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "heed.h"
#include "nn/attention.h"
#include "tensor/kernels/flash_attention.h"

using namespace heed;
using nn::AttentionImpl;
using nn::AttentionOptions;
using nn::AttentionScore;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
Generator gen(77);

Tensor R(const Shape& s, DType dt = float64) { return randn(s, dt, &gen); }
Tensor leaf(const Shape& s, DType dt = float64) { return R(s, dt).requires_grad_(); }
Tensor bools(const Shape& s, const std::vector<int>& v) {
  std::vector<double> d(v.begin(), v.end());
  return from_vector<double>(d, s) > 0.5;
}
// A random bool mask with about `frac` true.
Tensor random_mask(const Shape& s, double frac) { return lt(rand(s, float64, &gen), scalar_tensor(frac, float64)); }

bool has_nan(const Tensor& t) {
  for (double x : t.to_vector<double>())
    if (std::isnan(x)) return true;
  return false;
}

// The output and the gradients of q, k, v for a fixed upstream gradient.
struct Run {
  Tensor out, dq, dk, dv;
};
Run run(const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f, const Tensor& q, const Tensor& k,
        const Tensor& v, const Tensor& dout) {
  Tensor qq = q.detach().requires_grad_(), kk = k.detach().requires_grad_(), vv = v.detach().requires_grad_();
  Tensor out = f(qq, kk, vv);
  std::vector<Tensor> g = grad({out}, {qq, kk, vv}, {dout});
  return {out.detach(), g[0], g[1], g[2]};
}
void check_close(const Run& a, const Run& b, double rtol, double atol) {
  CHECK(allclose(a.out, b.out, rtol, atol));
  CHECK(allclose(a.dq, b.dq, rtol, atol));
  CHECK(allclose(a.dk, b.dk, rtol, atol));
  CHECK(allclose(a.dv, b.dv, rtol, atol));
}

Tensor sdpa(const Tensor& q, const Tensor& k, const Tensor& v, AttentionOptions o) {
  return nn::scaled_dot_product_attention(q, k, v, o).out;
}
AttentionOptions composite(AttentionOptions o = {}) {
  o.impl = AttentionImpl::Composite;
  return o;
}
AttentionOptions fused(AttentionOptions o = {}) {
  o.impl = AttentionImpl::Fused;
  return o;
}

}  // namespace

TEST_CASE("attention: a hand-computed example, composite and fused") {
  // One query [1, 0], keys [1, 0] and [0, 1], values 1 and 3, scale 1: scores (1, 0), weights
  // (e, 1) / (e + 1), out = (e + 3) / (e + 1) = 1.5379...
  Tensor q = tensor({{1.0, 0.0}}, float64), k = tensor({{1.0, 0.0}, {0.0, 1.0}}, float64),
         v = tensor({1.0, 3.0}, float64).reshape({2, 1});
  const double e = std::exp(1.0), want = (e + 3) / (e + 1);
  nn::AttentionResult r = nn::scaled_dot_product_attention(q, k, v, composite({.scale = 1.0, .need_weights = true}));
  CHECK(r.out.item() == doctest::Approx(want).epsilon(1e-12));
  CHECK(r.weights.at({0, 0}) == doctest::Approx(e / (e + 1)).epsilon(1e-12));
  CHECK(sdpa(q, k, v, fused({.scale = 1.0})).item() == doctest::Approx(want).epsilon(1e-12));
  // Default scale 1/√2, and a bool mask letting only key 0 take part (true = takes part): out = v_0 = 1.
  CHECK(sdpa(q, k, v, composite({.attn_mask = bools({1, 2}, {1, 0})})).item() == doctest::Approx(1.0));
  CHECK(sdpa(q, k, v, fused({.key_padding_mask = bools({2}, {0, 1})})).item() == doctest::Approx(1.0));
}

TEST_CASE("attention composite: gradcheck and gradgradcheck over scores, masks and dropout") {
  using V = std::vector<Tensor>;
  struct Case {
    const char* name;
    V inputs;
    TensorFn f;
  };
  Tensor mask34 = bools({3, 4}, {0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1});  // row 1 fully masked
  Tensor kpm = bools({2, 4}, {0, 0, 1, 0, 1, 1, 1, 1});                 // batch 1 fully padded
  Tensor additive = tensor({{0.0, -kInf, 0.5, -1.0}, {-kInf, -kInf, -kInf, -kInf}, {0.2, 0.0, -kInf, 0.0}}, float64);
  std::vector<Case> cases = {
      {"dot + bool mask + key padding", V{leaf({2, 2, 3, 5}), leaf({2, 2, 4, 5}), leaf({2, 2, 4, 3})},
       [=](const V& x) {
         return sdpa(x[0], x[1], x[2], composite({.attn_mask = logical_not(mask34), .key_padding_mask = kpm}));
       }},
      {"dot, causal, Tq != Tk, scale", V{leaf({2, 5, 3}), leaf({2, 3, 3}), leaf({2, 3, 2})},
       [](const V& x) { return sdpa(x[0], x[1], x[2], composite({.causal = true, .scale = 0.7})); }},
      {"additive float mask with -inf", V{leaf({1, 3, 4}), leaf({1, 4, 4}), leaf({1, 4, 2})},
       [=](const V& x) { return sdpa(x[0], x[1], x[2], composite({.attn_mask = additive})); }},
      {"cosine, learnable temperature", V{leaf({2, 3, 4}), leaf({2, 5, 4}), leaf({2, 5, 3}), leaf({})},
       [](const V& x) {
         return sdpa(x[0], x[1], x[2],
                     composite({.causal = true, .score = AttentionScore::Cosine, .temperature = x[3]}));
       }},
      {"additive (Bahdanau), learnable W, U, v",
       V{leaf({2, 3, 4}), leaf({2, 5, 3}), leaf({2, 5, 2}), leaf({6, 4}), leaf({6, 3}), leaf({6})},
       [](const V& x) {
         return sdpa(
             x[0], x[1], x[2],
             composite(
                 {.score = AttentionScore::Additive, .additive_w = x[3], .additive_u = x[4], .additive_v = x[5]}));
       }},
      {"dropout (fixed Philox stream)", V{leaf({2, 4, 3}), leaf({2, 4, 3}), leaf({2, 4, 3})},
       [](const V& x) {
         Generator g(9);  // a fresh stream per call: every finite-difference run draws the same mask
         return sdpa(x[0], x[1], x[2], composite({.causal = true, .dropout_p = 0.3, .generator = &g}));
       }},
      {"weights output", V{leaf({3, 4}), leaf({5, 4}), leaf({5, 2})},
       [](const V& x) {
         return nn::scaled_dot_product_attention(x[0], x[1], x[2], composite({.need_weights = true})).weights;
       }},
  };
  int first = 0, second = 0;
  for (const Case& c : cases) {
    INFO("case: ", c.name);
    CHECK_NOTHROW(gradcheck(c.f, c.inputs));
    first++;
    CHECK_NOTHROW(gradgradcheck(c.f, c.inputs));
    second++;
  }
  MESSAGE("attention composite: gradcheck cases ", first, ", gradgradcheck cases ", second);
}

TEST_CASE("attention: fully masked rows give zero output and zero gradient, never NaN") {
  Tensor q = R({2, 2, 3, 4}), k = R({2, 2, 5, 4}), v = R({2, 2, 5, 3});
  Tensor dout = R({2, 2, 3, 3});
  Tensor kpm = bools({2, 5}, {0, 1, 0, 0, 1, 1, 1, 1, 1, 1});  // batch 1: every key is padding
  // Row 0 of every (batch, head): all keys hidden by the bool mask; row 1 by an additive -inf mask.
  Tensor bool_mask = bools({3, 5}, {1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0});
  Tensor add_mask =
      tensor({{0.0, 0.0, 0.0, 0.0, 0.0}, {-kInf, -kInf, -kInf, -kInf, -kInf}, {0.0, -1.0, 0.0, -kInf, 0.5}}, float64);
  SUBCASE("composite, bool mask and additive mask") {
    Run r = run(
        [&](const Tensor& a, const Tensor& b, const Tensor& c) {
          return sdpa(a, b, c, composite({.attn_mask = logical_not(bool_mask)})) +
                 sdpa(a, b, c, composite({.attn_mask = add_mask}));
        },
        q, k, v, dout);
    for (Tensor t : {r.out, r.dq, r.dk, r.dv}) CHECK_FALSE(has_nan(t));
    // Row 0 is fully masked in the first term, row 1 in the second; each still gets the other term.
    Tensor only_add = sdpa(q, k, v, composite({.attn_mask = add_mask}));
    CHECK(allclose(r.out.select(2, 0), only_add.select(2, 0)));
    Tensor dq_add = run([&](const Tensor& a, const Tensor& b,
                            const Tensor& c) { return sdpa(a, b, c, composite({.attn_mask = add_mask})); },
                        q, k, v, dout)
                        .dq;
    CHECK(allclose(r.dq.select(2, 0), dq_add.select(2, 0)));
    Tensor dq_bool =
        run([&](const Tensor& a, const Tensor& b,
                const Tensor& c) { return sdpa(a, b, c, composite({.attn_mask = logical_not(bool_mask)})); },
            q, k, v, dout)
            .dq;
    CHECK(allclose(dq_bool.select(2, 0), zeros({2, 2, 4}, float64)));
    CHECK(allclose(dq_add.select(2, 1), zeros({2, 2, 4}, float64)));
  }
  SUBCASE("composite and fused, a fully padded batch entry") {
    for (AttentionImpl impl : {AttentionImpl::Composite, AttentionImpl::Fused}) {
      INFO("impl ", (int)impl);
      Run r = run([&](const Tensor& a, const Tensor& b, const Tensor& c) {
        return sdpa(a, b, c, {.key_padding_mask = kpm, .causal = true, .impl = impl});
      }, q, k, v, dout);
      for (Tensor t : {r.out, r.dq, r.dk, r.dv}) CHECK_FALSE(has_nan(t));
      CHECK(allclose(r.out.select(0, 1), zeros({2, 3, 3}, float64)));
      CHECK(allclose(r.dq.select(0, 1), zeros({2, 3, 4}, float64)));
      CHECK(allclose(r.dk.select(0, 1), zeros({2, 5, 4}, float64)));
      CHECK(allclose(r.dv.select(0, 1), zeros({2, 5, 3}, float64)));
      CHECK(r.out.select(0, 0).abs().sum().item() > 0);
    }
  }
  SUBCASE("no keys at all (Tk = 0)") {
    Tensor k0 = R({2, 2, 0, 4}), v0 = R({2, 2, 0, 3});
    for (AttentionImpl impl : {AttentionImpl::Composite, AttentionImpl::Fused}) {
      Run r = run([&](const Tensor& a, const Tensor& b, const Tensor& c) { return sdpa(a, b, c, {.impl = impl}); }, q,
                  k0, v0, dout);
      CHECK(allclose(r.out, zeros({2, 2, 3, 3}, float64)));
      CHECK(allclose(r.dq, zeros({2, 2, 3, 4}, float64)));
    }
  }
  SUBCASE("second order through a fully masked row stays finite") {
    Tensor ql = leaf({1, 2, 3}), kl = leaf({1, 4, 3}), vl = leaf({1, 4, 2});
    Tensor m = tensor({{0.0, -kInf, 0.0, 0.0}, {-kInf, -kInf, -kInf, -kInf}}, float64);
    CHECK_NOTHROW(
        gradgradcheck([&](const std::vector<Tensor>& x) { return sdpa(x[0], x[1], x[2], composite({.attn_mask = m})); },
                      {ql, kl, vl}));
  }
}

TEST_CASE("attention: errors name the op and the shapes") {
  Tensor q = R({2, 3, 4}), k = R({2, 5, 4}), v = R({2, 5, 3});
  CHECK_THROWS_AS(sdpa(R({4}), k, v, {}), Error);
  CHECK_THROWS_AS(sdpa(q.to(float32), k, v, {}), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, R({2, 5, 6}), v, {}), doctest::Contains("last dims 4 != 6"), Error);
  CHECK_THROWS_AS(sdpa(q, k, R({2, 4, 3}), {}), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, {.key_padding_mask = zeros({2, 5})}), doctest::Contains("must be bool"), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, {.key_padding_mask = bools({3, 5}, std::vector<int>(15, 0))}),
                       doctest::Contains("(B, Tk) = (2, 5)"), Error);
  CHECK_THROWS_AS(sdpa(q, k, v, composite({.attn_mask = zeros({3, 5}, int64)})), Error);
  CHECK_THROWS_AS(sdpa(q, k, v, composite({.attn_mask = zeros({3, 5}, float32)})), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, {.score = AttentionScore::Cosine}), doctest::Contains("temperature"), Error);
  CHECK_THROWS_AS(
      sdpa(q, k, v, {.scale = 2.0, .score = AttentionScore::Cosine, .temperature = scalar_tensor(1.0, float64)}),
      Error);
  CHECK_THROWS_AS(sdpa(q, k, v, {.score = AttentionScore::Additive}), Error);
  CHECK_THROWS_AS(
      sdpa(q, k, v,
           {.score = AttentionScore::Additive, .additive_w = R({6, 4}), .additive_u = R({6, 3}), .additive_v = R({6})}),
      Error);
  CHECK_THROWS_AS(sdpa(q, k, v, {.dropout_p = 1.5}), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, fused({.attn_mask = bools({3, 5}, std::vector<int>(15, 0))})),
                       doctest::Contains("impl = Fused"), Error);
  CHECK_THROWS_AS(nn::scaled_dot_product_attention(q, k, v, fused({.need_weights = true})), Error);
  CHECK_THROWS_AS(sdpa(q, R({1, 5, 4}), R({1, 5, 3}), fused()), Error);  // fused needs equal batch dims
  CHECK_THROWS_AS(nn::local_attention(q, k, v, 2), Error);               // Tq != Tk
  CHECK_THROWS_AS(nn::local_attention(q, q, q, -1), Error);
  CHECK_THROWS_AS(nn::block_sparse_attention(q, k, v, nn::block_layout(2, 2, {}), 2), Error);  // needs (2, 3)
  CHECK_THROWS_AS(nn::block_sparse_attention(q, k, v, nn::block_layout(2, 3, {}), 0), Error);
  CHECK_THROWS_AS(kernels::attention_dropout_mask({2, 2}, -0.1, 0, 0, float32), Error);
  CHECK_THROWS_AS(
      kernels::flash_attention_forward(q, k, v, {.key_padding_mask = bools({3, 5}, std::vector<int>(15, 0))}), Error);
}

TEST_CASE("attention fused: the tiled kernel agrees with its scalar reference") {
  for (DType dt : {float64, float32}) {
    for (auto [Tq, Tk] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 7}, {65, 130}, {129, 64}, {200, 200}}) {
      for (int mode = 0; mode < 4; mode++) {
        INFO("dtype ", dtype_name(dt), " Tq ", Tq, " Tk ", Tk, " mode ", mode);
        Tensor q = R({2, 3, Tq, 8}, dt), k = R({2, 3, Tk, 8}, dt), v = R({2, 3, Tk, 5}, dt),
               dout = R({2, 3, Tq, 5}, dt);
        if (mode == 2) k = R({2, 3, 8, Tk}, dt).mT();  // last stride != 1: the kernel copies it first
        kernels::FlashAttentionParams p{.scale = 0.4, .causal = (mode & 1) != 0};
        if (mode & 2) p.key_padding_mask = random_mask({2, Tk}, 0.3);
        if (mode == 3) p.dropout_p = 0.2, p.seed = 5, p.offset = 1000;
        auto f = kernels::flash_attention_forward(q, k, v, p), fr = kernels::flash_attention_forward_ref(q, k, v, p);
        double tol = dt == float64 ? 1e-10 : 2e-4;
        CHECK(allclose(f.out, fr.out, tol, tol));
        CHECK(allclose(f.lse.to(float64), fr.lse.to(float64), tol, tol));
        auto g = kernels::flash_attention_backward(dout, q, k, v, f.out, f.lse, p);
        auto gr = kernels::flash_attention_backward_ref(dout, q, k, v, fr.out, fr.lse, p);
        CHECK(allclose(g.dq, gr.dq, tol * 10, tol * 10));
        CHECK(allclose(g.dk, gr.dk, tol * 10, tol * 10));
        CHECK(allclose(g.dv, gr.dv, tol * 10, tol * 10));
      }
    }
  }
}

TEST_CASE("attention fused: matches the composite forward and backward") {
  for (DType dt : {float64, float32}) {
    for (int64_t T : {1, 7, 129, 1000}) {
      for (int mode = 0; mode < 4; mode++) {
        const bool causal = mode & 1, padded = mode & 2;
        // Tq = T with Tk = T, and Tq = T with Tk = T + 3 (causal stays top-left aligned); at T = 1000
        // one head and Tk = T only, to keep the composite's (T, T) matrices quick.
        for (int64_t Tk : {T, T + 3}) {
          if (T == 1000 && Tk != T) continue;
          INFO("dtype ", dtype_name(dt), " Tq ", T, " Tk ", Tk, " causal ", causal, " padded ", padded);
          const int64_t B = 2, NH = T == 1000 ? 1 : 2, D = 16, Dv = 12;
          // q, k, v as multi-head attention makes them: (B, T, NH, D) transposed to (B, NH, T, D), a view.
          Tensor q = R({B, T, NH, D}, dt).transpose(1, 2), k = R({B, Tk, NH, D}, dt).transpose(1, 2);
          Tensor v = R({B, NH, Tk, Dv}, dt), dout = R({B, NH, T, Dv}, dt);
          AttentionOptions o{.causal = causal};
          if (padded) {
            Tensor m = random_mask({B, Tk}, 0.25);
            m.select(0, 1).fill_(1.0);  // batch 1 entirely padding: its rows are fully masked
            o.key_padding_mask = m;
          }
          auto f = [&](AttentionImpl impl) {
            AttentionOptions oo = o;
            oo.impl = impl;
            return run([&](const Tensor& a, const Tensor& b, const Tensor& c) { return sdpa(a, b, c, oo); }, q, k, v,
                       dout);
          };
          Run c = f(AttentionImpl::Composite), fu = f(AttentionImpl::Fused);
          if (dt == float64) check_close(fu, c, 1e-9, 1e-11);
          else check_close(fu, c, 2e-3, 2e-5);
          for (Tensor t : {fu.out, fu.dq, fu.dk, fu.dv}) CHECK_FALSE(has_nan(t));
        }
      }
    }
  }
}

TEST_CASE("attention fused: out, dq, dk, dv are laid out as q, k, v, so multi-head attention copies nothing") {
  // q, k, v as multi-head attention makes them: (B, T, NH, D) blocks seen as (B, NH, T, D).
  const int64_t B = 2, T = 70, NH = 3, D = 8;
  Tensor q = R({B, T, NH, D}).transpose(1, 2), k = R({B, T, NH, D}).transpose(1, 2),
         v = R({B, T, NH, D}).transpose(1, 2);
  Tensor dout = R({B, T, NH, D}).transpose(1, 2);
  kernels::FlashAttentionParams p{.scale = 0.3, .causal = true};
  auto f = kernels::flash_attention_forward(q, k, v, p), fr = kernels::flash_attention_forward_ref(q, k, v, p);
  CHECK(f.out.transpose(1, 2).is_contiguous());  // back to (B, T, NH, D) with no copy
  CHECK(allclose(f.out, fr.out, 1e-10, 1e-10));
  auto g = kernels::flash_attention_backward(dout, q, k, v, f.out, f.lse, p);
  auto gr = kernels::flash_attention_backward_ref(dout, q, k, v, fr.out, fr.lse, p);
  for (auto [t, tr] : {std::pair{g.dq, gr.dq}, {g.dk, gr.dk}, {g.dv, gr.dv}}) {
    CHECK(t.transpose(1, 2).is_contiguous());
    CHECK(allclose(t, tr, 1e-9, 1e-9));
  }
  // Dv = 0: an empty output, whose gradients are all zero.
  Tensor v0 = zeros({B, NH, T, 0}, float64);
  auto f0 = kernels::flash_attention_forward(q, k, v0, p);
  CHECK(f0.out.shape() == Shape{B, NH, T, 0});
  auto g0 = kernels::flash_attention_backward(zeros({B, NH, T, 0}, float64), q, k, v0, f0.out, f0.lse, p);
  CHECK(g0.dq.abs().sum().item() == 0);
  CHECK(g0.dk.abs().sum().item() == 0);
  CHECK(g0.dv.shape() == v0.shape());
  // A gradient buffer the kernel cannot write in place is refused, not copied and lost.
  Tensor bad = zeros({B, NH, D, T}).mT();
  CHECK_THROWS_WITH_AS(kernels::flash_attention_backward_into(dout, q, k, v, f.out, f.lse, p, bad, g.dk, g.dv),
                       doctest::Contains("unit stride"), Error);
}

TEST_CASE("attention packed_self_attention equals attention on the three views, both paths, with one gradient") {
  for (DType dt : {float64, float32}) {
    for (int mode = 0; mode < 3; mode++) {
      INFO("dtype ", dtype_name(dt), " mode ", mode);
      const int64_t B = 2, T = 9, NH = 2, D = 4;
      Tensor qkv = R({B, T, 3 * NH * D}, dt), dout = R({B, NH, T, D}, dt);
      AttentionOptions o{.causal = mode == 1};
      if (mode == 2) o.key_padding_mask = random_mask({B, T}, 0.3), o.dropout_p = 0.25;
      auto packed = [&](AttentionImpl impl, uint64_t seed) {
        Generator g(seed);
        AttentionOptions oo = o;
        oo.impl = impl, oo.generator = &g;
        Tensor x = qkv.detach().requires_grad_();
        Tensor out = nn::packed_self_attention(x, NH, oo).out;
        return std::pair{out.detach(), grad({out}, {x}, {dout})[0]};
      };
      auto split = [&](uint64_t seed) {  // the three views by hand, through scaled_dot_product_attention
        Generator g(seed);
        AttentionOptions oo = o;
        oo.impl = AttentionImpl::Composite, oo.generator = &g;
        Tensor x = qkv.detach().requires_grad_();
        Tensor h = x.reshape({B, T, 3, NH, D}).permute({2, 0, 3, 1, 4});
        Tensor out = nn::scaled_dot_product_attention(h.select(0, 0), h.select(0, 1), h.select(0, 2), oo).out;
        return std::pair{out.detach(), grad({out}, {x}, {dout})[0]};
      };
      auto [ref_out, ref_grad] = split(5);
      const double tol = dt == float64 ? 1e-10 : 1e-4;
      for (AttentionImpl impl : {AttentionImpl::Fused, AttentionImpl::Composite}) {
        auto [out, g] = packed(impl, 5);
        CHECK(out.shape() == Shape{B, NH, T, D});
        CHECK(g.shape() == qkv.shape());
        CHECK(allclose(out, ref_out, tol, tol));
        CHECK(allclose(g, ref_grad, tol, tol));
      }
    }
  }
  CHECK_THROWS_WITH_AS(nn::packed_self_attention(zeros({2, 3, 10}), 2), doctest::Contains("(B, T, 3·NH·D)"), Error);
  CHECK_THROWS_WITH_AS(flash_attention_packed(zeros({2, 3, 10}), 2, {}), doctest::Contains("(B, T, 3·NH·D)"), Error);
}

TEST_CASE("attention fused: dropout equals the composite's given the same Philox stream") {
  Tensor q = R({2, 3, 70, 8}), k = R({2, 3, 90, 8}), v = R({2, 3, 90, 6}), dout = R({2, 3, 70, 6});
  Tensor kpm = random_mask({2, 90}, 0.2);
  auto with_gen = [&](AttentionImpl impl, Generator& g) {
    return run([&](const Tensor& a, const Tensor& b, const Tensor& c) {
      return sdpa(a, b, c, {.key_padding_mask = kpm, .causal = true, .dropout_p = 0.3, .generator = &g, .impl = impl});
    }, q, k, v, dout);
  };
  Generator g1(123), g2(123);
  g1.set_offset(40), g2.set_offset(40);
  Run c = with_gen(AttentionImpl::Composite, g1), f = with_gen(AttentionImpl::Fused, g2);
  check_close(f, c, 1e-9, 1e-11);
  CHECK(g1.offset() == g2.offset());
  CHECK(g1.offset() == 40 + 2 * 3 * 70 * 90);
  // The composite's dropped weights are exactly weights · attention_dropout_mask(seed, offset).
  Generator g3(123);
  g3.set_offset(40);
  Tensor w_drop =
      nn::scaled_dot_product_attention(q, k, v, composite({.dropout_p = 0.3, .generator = &g3, .need_weights = true}))
          .weights;
  Tensor w = nn::scaled_dot_product_attention(q, k, v, composite({.need_weights = true})).weights;
  Tensor z = kernels::attention_dropout_mask(w.shape(), 0.3, 123, 40, float64);
  CHECK(allclose(w_drop, w * z, 0, 0));
  double kept = (z > 0.0).to(float64).mean().item();
  CHECK(kept == doctest::Approx(0.7).epsilon(0.02));
  // training = false turns dropout off on both paths, and draws nothing.
  Generator g4(1);
  Tensor eval_out = sdpa(q, k, v, {.dropout_p = 0.3, .training = false, .generator = &g4});
  CHECK(g4.offset() == 0);
  CHECK(allclose(eval_out, sdpa(q, k, v, composite()), 1e-9, 1e-11));
}

TEST_CASE("attention fused: create_graph through the first-order-only op throws a clear error") {
  Tensor q = leaf({1, 4, 3}), k = leaf({1, 4, 3}), v = leaf({1, 4, 3});
  Tensor y = sdpa(q, k, v, {.causal = true}).sum();  // Auto picks the fused kernel here
  CHECK(y.grad_fn() != nullptr);
  CHECK_THROWS_WITH_AS(grad({y}, {q}, {}, true), doctest::Contains("'flash_attention' has a first-order-only backward"),
                       AutogradError);
  // The composite has no such limit.
  Tensor yc = sdpa(q, k, v, composite({.causal = true})).sum();
  CHECK_NOTHROW(grad({yc}, {q}, {}, true));
}

TEST_CASE("attention fused: forward + backward at T=2048 allocate far less than T^2 floats") {
  const int64_t T = 2048, D = 64;
  const int64_t t2_bytes = T * T * 4;
  auto peak_of = [&](AttentionImpl impl) {
    Tensor q = R({1, 1, T, D}, float32).requires_grad_(), k = R({1, 1, T, D}, float32).requires_grad_();
    Tensor v = R({1, 1, T, D}, float32).requires_grad_();
    int64_t before = memory_stats().current;
    reset_peak_memory();
    sdpa(q, k, v, {.causal = true, .impl = impl}).sum().backward();
    return memory_stats().peak - before;
  };
  int64_t fused_peak = peak_of(AttentionImpl::Fused), composite_peak = peak_of(AttentionImpl::Composite);
  MESSAGE("T=2048 D=64 float32 forward+backward peak: fused ", fused_peak / 1024, " KiB, composite ",
          composite_peak / 1024, " KiB, one T^2 matrix ", t2_bytes / 1024, " KiB");
  CHECK(fused_peak < t2_bytes / 4);
  CHECK(composite_peak > t2_bytes);  // the measurement does see a T^2 matrix when there is one
}

TEST_CASE("attention local: equals dense attention with the window mask, forward and gradients") {
  for (int64_t T : {1, 7, 33, 50}) {
    for (int64_t w : {0, 1, 3, 8, 20}) {
      for (bool causal : {false, true}) {
        for (int64_t block : {0, 1, 4, 5}) {
          for (bool padded : {false, true}) {
            INFO("T ", T, " window ", w, " causal ", causal, " block ", block, " padded ", padded);
            Tensor q = R({2, 2, T, 4}), k = R({2, 2, T, 4}), v = R({2, 2, T, 3}), dout = R({2, 2, T, 3});
            Tensor kpm = padded ? random_mask({2, T}, 0.3) : Tensor();
            Run l = run([&](const Tensor& a, const Tensor& b, const Tensor& c) {
              return nn::local_attention(a, b, c, w, {.causal = causal, .key_padding_mask = kpm, .block_size = block});
            }, q, k, v, dout);
            Run d = run(
                [&](const Tensor& a, const Tensor& b, const Tensor& c) {
                  return sdpa(a, b, c,
                              composite({.attn_mask = logical_not(nn::local_attention_mask(T, w, causal)),
                                         .key_padding_mask = kpm}));
                },
                q, k, v, dout);
            check_close(l, d, 1e-10, 1e-12);
          }
        }
      }
    }
  }
}

TEST_CASE("attention block-sparse: equals dense attention with the layout mask, forward and gradients") {
  struct Layout {
    const char* name;
    int64_t Tq, Tk, bs;
    nn::BlockLayoutOptions opts;
  };
  std::vector<Layout> layouts = {
      {"local", 17, 17, 4, {.local = 1}},
      {"local causal", 17, 17, 4, {.local = 1, .causal = true}},
      {"strided + global", 30, 30, 3, {.local = 0, .stride = 3, .global = 1}},
      {"strided causal", 30, 30, 3, {.local = 1, .stride = 4, .causal = true}},
      {"Tq != Tk, global only", 13, 21, 4, {.local = -1, .global = 2}},
      {"one block", 5, 5, 8, {.local = 0}},
  };
  for (const Layout& L : layouts) {
    for (bool causal : {false, true}) {
      for (bool padded : {false, true}) {
        INFO("layout ", L.name, " causal ", causal, " padded ", padded);
        Tensor lay = nn::block_layout((L.Tq + L.bs - 1) / L.bs, (L.Tk + L.bs - 1) / L.bs, L.opts);
        Tensor q = R({2, 2, L.Tq, 4}), k = R({2, 2, L.Tk, 4}), v = R({2, 2, L.Tk, 3}), dout = R({2, 2, L.Tq, 3});
        Tensor kpm = padded ? random_mask({2, L.Tk}, 0.3) : Tensor();
        Run s = run([&](const Tensor& a, const Tensor& b, const Tensor& c) {
          return nn::block_sparse_attention(a, b, c, lay, L.bs, {.causal = causal, .key_padding_mask = kpm});
        }, q, k, v, dout);
        Run d = run(
            [&](const Tensor& a, const Tensor& b, const Tensor& c) {
              return sdpa(a, b, c,
                          composite({.attn_mask = logical_not(nn::block_sparse_mask(lay, L.bs, L.Tq, L.Tk)),
                                     .key_padding_mask = kpm,
                                     .causal = causal}));
            },
            q, k, v, dout);
        check_close(s, d, 1e-10, 1e-12);
      }
    }
  }
  // A random layout, with empty rows (those queries see nothing: output 0).
  Tensor lay = random_mask({5, 5}, 0.4);
  lay.select(0, 2).fill_(0.0);
  Tensor q = R({3, 18, 4}), k = R({3, 18, 4}), v = R({3, 18, 2}), dout = R({3, 18, 2});
  Run s = run(
      [&](const Tensor& a, const Tensor& b, const Tensor& c) { return nn::block_sparse_attention(a, b, c, lay, 4); }, q,
      k, v, dout);
  Run d = run([&](const Tensor& a, const Tensor& b, const Tensor& c) {
    return sdpa(a, b, c, composite({.attn_mask = logical_not(nn::block_sparse_mask(lay, 4, 18, 18))}));
  }, q, k, v, dout);
  check_close(s, d, 1e-10, 1e-12);
  CHECK(allclose(s.out.narrow(1, 8, 4), zeros({3, 4, 2}, float64)));
}

TEST_CASE("attention block_layout: the patterns") {
  auto rows = [](const Tensor& t) { return (t.to(float64)).to_vector<double>(); };
  // 4 blocks, local 1, causal: a lower band of width 2.
  CHECK(rows(nn::block_layout(4, 4, {.local = 1, .causal = true})) ==
        std::vector<double>{1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1});
  // Diagonal plus one global block: row 0 and column 0 all on.
  CHECK(rows(nn::block_layout(3, 3, {.local = 0, .global = 1})) == std::vector<double>{1, 1, 1, 1, 1, 0, 1, 0, 1});
  // Stride 2 without local blocks: every other diagonal.
  CHECK(rows(nn::block_layout(3, 3, {.local = -1, .stride = 2})) == std::vector<double>{1, 0, 1, 0, 1, 0, 1, 0, 1});
}

TEST_CASE("attention sparse: gradcheck and gradgradcheck") {
  using V = std::vector<Tensor>;
  Tensor kpm = bools({2, 7}, {0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0});
  Tensor lay = nn::block_layout(3, 3, {.local = 0, .global = 1});
  std::vector<std::pair<const char*, TensorFn>> fns = {
      {"local", [](const V& x) { return nn::local_attention(x[0], x[1], x[2], 2, {.block_size = 3}); }},
      {"local causal + padding",
       [=](const V& x) {
         return nn::local_attention(x[0], x[1], x[2], 1, {.causal = true, .key_padding_mask = kpm, .block_size = 2});
       }},
      {"block-sparse", [=](const V& x) { return nn::block_sparse_attention(x[0], x[1], x[2], lay, 3); }},
      {"block-sparse causal + padding",
       [=](const V& x) {
         return nn::block_sparse_attention(x[0], x[1], x[2], lay, 3, {.causal = true, .key_padding_mask = kpm});
       }},
  };
  int first = 0, second = 0;
  for (auto& [name, f] : fns) {
    INFO("case: ", name);
    V in{leaf({2, 7, 3}), leaf({2, 7, 3}), leaf({2, 7, 2})};
    CHECK_NOTHROW(gradcheck(f, in));
    first++;
    CHECK_NOTHROW(gradgradcheck(f, in));
    second++;
  }
  MESSAGE("attention sparse: gradcheck cases ", first, ", gradgradcheck cases ", second);
}

TEST_CASE("attention local: memory grows with T·w, not T^2") {
  const int64_t w = 32, D = 16;
  auto peak_at = [&](int64_t T) {
    Tensor q = R({1, T, D}, float32).requires_grad_(), k = R({1, T, D}, float32).requires_grad_();
    Tensor v = R({1, T, D}, float32).requires_grad_();
    int64_t before = memory_stats().current;
    reset_peak_memory();
    nn::local_attention(q, k, v, w).sum().backward();
    return memory_stats().peak - before;
  };
  int64_t p4 = peak_at(4096), p8 = peak_at(8192);
  MESSAGE("local attention w=32 D=16 forward+backward peak: T=4096 ", p4 / 1024, " KiB, T=8192 ", p8 / 1024,
          " KiB (one 8192^2 matrix: ", 8192 * 8192 * 4 / 1024, " KiB)");
  CHECK(p8 < 2.2 * p4);  // doubling T doubles the memory (T^2 would quadruple it)
  CHECK(p8 < 8192 * 8192 * 4 / 8);
}

TEST_CASE(
    "attn_mask conventions: scaled_dot_product_attention as torch 2 (true = takes part), MultiheadAttention as "
    "nn.MultiheadAttention (true = not allowed)") {
  Tensor q = randn({1, 1, 4, 8}, float64), k = randn({1, 1, 4, 8}, float64), v = randn({1, 1, 4, 8}, float64);
  Tensor causal = nn::scaled_dot_product_attention(q, k, v, {.causal = true, .impl = nn::AttentionImpl::Composite}).out;
  // torch: F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(4, 4, dtype=bool).tril()) is causal.
  Tensor tril = logical_not(nn::causal_mask(4, 4));
  CHECK(allclose(nn::scaled_dot_product_attention(q, k, v, {.attn_mask = tril}).out, causal, 1e-12, 1e-12));
  // MultiheadAttention takes the forbidding mask, as nn.MultiheadAttention's attn_mask.
  nn::MultiheadAttention mha(8, 2, {.batch_first = true});
  mha.to(float64);
  Tensor x = randn({2, 4, 8}, float64);
  Tensor a = mha(x, x, x, {.attn_mask = nn::causal_mask(4, 4)}).out, b = mha(x, x, x, {.causal = true}).out;
  CHECK(allclose(a, b, 1e-10, 1e-10));
  // Wrong shape or dtype: refused, naming the op and the shapes.
  CHECK_THROWS_WITH_AS(nn::scaled_dot_product_attention(q, k, v, {.attn_mask = ones({3, 4}, boolean)}),
                       doctest::Contains("attn_mask (3,4)"), Error);
  CHECK_THROWS_WITH_AS(nn::scaled_dot_product_attention(q, k, v, {.attn_mask = ones({4, 4}, int64)}),
                       doctest::Contains("takes part"), Error);
}

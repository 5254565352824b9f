// Tests for nn/transformer.cpp: golden agreement with PyTorch (MHA and TransformerEncoderLayer), gradcheck
// and gradgradcheck of every module, causality, and the shape errors.
#include <doctest/doctest.h>

#include <cmath>

#include "heed.h"
#include "io/safetensors.h"
#include "nn/transformer.h"

using namespace heed;
using namespace heed::nn;

namespace {

TensorMap fixture(const std::string& name) {
  return load(std::string(HEED_SOURCE_DIR) + "/tests/fixtures/attention/" + name + ".safetensors");
}

// The module's part of a fixture ("m.in_proj_weight" -> "in_proj_weight").
StateDict module_state(const TensorMap& t) {
  StateDict d;
  for (auto& [k, v] : t)
    if (k.rfind("m.", 0) == 0) d[k.substr(2)] = v;
  return d;
}

// PyTorch's float32 tolerances for these golden tests (the attention softmax and GEMM orders differ
// from PyTorch's, so agreement is to rounding, not bitwise).
bool golden(const Tensor& heed_value, const Tensor& torch_value) {
  return allclose(heed_value.detach(), torch_value, 1.3e-6, 1e-5);
}

// Compares every parameter's gradient with the fixture's "grad.m.<name>".
void check_param_grads(const Module& m, const TensorMap& t) {
  for (auto& [name, p] : m.named_parameters()) {
    INFO("parameter ", name);
    REQUIRE(p.grad().defined());
    CHECK(golden(p.grad(), t.at("grad.m." + name)));
  }
}

}  // namespace

TEST_CASE("nn MultiheadAttention matches PyTorch: batch_first, key padding and bool attn_mask, averaged weights") {
  TensorMap t = fixture("mha_masks");
  MultiheadAttention m(8, 2, {.batch_first = true});
  m.load_state_dict(module_state(t));
  Tensor q = t["in.q"].requires_grad_(), k = t["in.k"].requires_grad_(), v = t["in.v"].requires_grad_();
  MhaOutput r = m.forward(
      q, k, v, {.key_padding_mask = t["in.key_padding_mask"], .attn_mask = t["in.attn_mask"], .need_weights = true});
  CHECK(golden(r.out, t["out"]));
  CHECK(golden(r.weights, t["weights"]));
  (r.out * t["g"]).sum().backward();
  CHECK(golden(q.grad(), t["grad.in.q"]));
  CHECK(golden(k.grad(), t["grad.in.k"]));
  CHECK(golden(v.grad(), t["grad.in.v"]));
  check_param_grads(m, t);
}

TEST_CASE("nn MultiheadAttention matches PyTorch: sequence-first self-attention, per-head weights") {
  TensorMap t = fixture("mha_seq_first");
  MultiheadAttention m(8, 2);
  m.load_state_dict(module_state(t));
  Tensor x = t["in.x"].requires_grad_();
  MhaOutput r = m.forward(x, x, x, {.need_weights = true, .average_attn_weights = false});
  CHECK(r.weights.shape() == Shape{2, 2, 5, 5});
  CHECK(golden(r.out, t["out"]));
  CHECK(golden(r.weights, t["weights"]));
  (r.out * t["g"]).sum().backward();
  CHECK(golden(x.grad(), t["grad.in.x"]));
  check_param_grads(m, t);
}

TEST_CASE("nn MultiheadAttention matches PyTorch: kdim/vdim projections and an additive causal mask") {
  TensorMap t = fixture("mha_kdim_vdim");
  MultiheadAttention m(8, 2, {.kdim = 3, .vdim = 5, .batch_first = true});
  CHECK(!m.in_proj_weight.defined());
  m.load_state_dict(module_state(t));
  Tensor q = t["in.q"].requires_grad_(), k = t["in.k"].requires_grad_(), v = t["in.v"].requires_grad_();
  MhaOutput r = m.forward(q, k, v, {.attn_mask = t["in.attn_mask"]});
  CHECK(golden(r.out, t["out"]));
  (r.out * t["g"]).sum().backward();
  CHECK(golden(k.grad(), t["grad.in.k"]));
  check_param_grads(m, t);
  // The same through heed's own causal flag.
  MhaOutput c = m.forward(q, k, v, {.causal = true});
  CHECK(golden(c.out, t["out"]));
}

TEST_CASE("nn TransformerEncoderLayer matches PyTorch, post-LN (ReLU) and pre-LN (GELU)") {
  for (auto [name, norm_first, act] :
       {std::tuple{"encoder_post_ln", false, Activation::Relu}, {"encoder_pre_ln", true, Activation::Gelu}}) {
    INFO(name);
    TensorMap t = fixture(name);
    TransformerEncoderLayer m(
        8, 2,
        {.dim_feedforward = 16, .dropout = 0.1, .activation = act, .batch_first = true, .norm_first = norm_first});
    m.load_state_dict(module_state(t));
    m.eval();
    Tensor x = t["in.x"].requires_grad_();
    Tensor y = m.forward(x, {.key_padding_mask = t["in.key_padding_mask"]});
    CHECK(golden(y, t["out"]));
    (y * t["g"]).sum().backward();
    CHECK(golden(x.grad(), t["grad.in.x"]));
    check_param_grads(m, t);
  }
}

TEST_CASE("nn attention modules pass gradcheck and gradgradcheck in float64") {
  manual_seed(21);
  {
    MultiheadAttention m(4, 2, {.batch_first = true, .impl = AttentionImpl::Composite});
    m.to(float64);
    Tensor x = randn({2, 3, 4}, float64).requires_grad_();
    Tensor kpm = from_vector<int64_t>({0, 0, 1, 0, 0, 0}, {2, 3}) > from_vector<int64_t>({0});
    auto f = [&](const std::vector<Tensor>& in) {
      return m.forward(in[0], in[0], in[0], {.key_padding_mask = kpm}).out;
    };
    std::vector<Tensor> inputs{x};
    for (Tensor& p : m.parameters()) inputs.push_back(p);
    CHECK(gradcheck(f, inputs));
    CHECK(gradgradcheck(f, {x}));
  }
  {
    MultiheadAttention m(4, 2, {.batch_first = true, .score = AttentionScore::Cosine});
    m.to(float64);
    Tensor x = randn({1, 3, 4}, float64).requires_grad_();
    auto f = [&](const std::vector<Tensor>& in) { return m.forward(in[0], in[0], in[0], {.causal = true}).out; };
    CHECK(gradcheck(f, {x, m.temperature}));
  }
  for (bool norm_first : {false, true}) {
    TransformerEncoderLayer m(4, 2,
                              {.dim_feedforward = 6,
                               .dropout = 0.0,
                               .activation = Activation::Gelu,
                               .batch_first = true,
                               .norm_first = norm_first,
                               .attention_impl = AttentionImpl::Composite});
    m.to(float64);
    Tensor x = randn({2, 3, 4}, float64).requires_grad_();
    auto f = [&](const std::vector<Tensor>& in) { return m(in[0]); };
    CHECK(gradcheck(f, {x, m.linear1.weight, m.norm1.weight, m.self_attn.in_proj_weight}));
    CHECK(gradgradcheck(f, {x}));
  }
  {
    CausalSelfAttentionBlock m(4, 2);
    m.to(float64);
    Tensor x = randn({1, 4, 4}, float64).requires_grad_();
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return m(in[0]); }, {x, m.ln1.weight}));
  }
  {
    AttentionPooling m(4, 2);
    m.to(float64);
    Tensor x = randn({2, 3, 4}, float64).requires_grad_();
    auto f = [&](const std::vector<Tensor>& in) { return m.forward(in[0]).out; };
    CHECK(gradcheck(f, {x, m.query}));
    CHECK(gradgradcheck(f, {x}));
  }
  {
    SelfAttention2d m(8, true);
    m.to(float64);
    { NoGradGuard g; m.gamma.fill_(0.5); }  // at 0 the attention path would get no gradient to check
    Tensor x = randn({1, 8, 4, 4}, float64).requires_grad_();
    auto f = [&](const std::vector<Tensor>& in) { return m(in[0]); };
    CHECK(gradcheck(f, {x, m.gamma, m.f.conv().weight}));
  }
}

TEST_CASE("nn causal attention: changing inputs after position t leaves outputs up to t unchanged") {
  manual_seed(22);
  CausalSelfAttentionBlock block(8, 2);
  Tensor x = randn({2, 7, 8});
  Tensor y = block(x);
  Tensor x2 = x.clone();
  { NoGradGuard g; x2.slice(1, 4, 7).copy_(randn({2, 3, 8})); }
  Tensor y2 = block(x2);
  CHECK(allclose(y.slice(1, 0, 4), y2.slice(1, 0, 4), 1e-6, 1e-6));
  CHECK(!allclose(y.slice(1, 4, 7), y2.slice(1, 4, 7), 1e-3, 1e-3));
}

TEST_CASE("nn attention modules: parameter names, pooling weights, positional encodings, SAGAN block") {
  MultiheadAttention m(8, 2);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  TransformerEncoderLayer layer(8, 2, {.dim_feedforward = 16});
  CHECK(layer.state_dict().count("self_attn.in_proj_weight") == 1);
  CHECK(layer.state_dict().count("norm2.bias") == 1);
  TransformerEncoder enc(8, 2, 3, {.dim_feedforward = 16, .batch_first = true}, true);
  CHECK(enc.state_dict().count("layers.2.linear2.weight") == 1);
  CHECK(enc.state_dict().count("norm.weight") == 1);
  CHECK(enc(randn({2, 5, 8})).shape() == Shape{2, 5, 8});

  AttentionPooling pool(8, 2);
  Tensor x = randn({3, 5, 8});
  Tensor pad = from_vector<int64_t>({0, 0, 0, 1, 1}, {1, 5}).expand({3, 5}) > from_vector<int64_t>({0});
  MhaOutput r = pool.forward(x, pad);
  CHECK(r.out.shape() == Shape{3, 8});
  CHECK(r.weights.shape() == Shape{3, 5});
  CHECK(allclose(r.weights.sum(1), ones({3}), 1e-5, 1e-6));
  CHECK(r.weights.at({1, 4}) == 0);  // padding gets no attention

  SinusoidalPositionalEncoding pe(8, 16);
  CHECK(pe.pe.at({0, 1}) == 1);                                   // cos(0)
  CHECK(pe.pe.at({3, 0}) == doctest::Approx(std::sin(3.0)));      // sin(t) at i = 0
  CHECK(pe.pe.at({3, 2}) == doctest::Approx(std::sin(3.0 / std::pow(10000.0, 2.0 / 8))));
  CHECK(pe(zeros({1, 4, 8})).shape() == Shape{1, 4, 8});
  CHECK_THROWS_AS(pe(zeros({1, 17, 8})), Error);
  LearnedPositionalEncoding lpe(8, 16);
  CHECK(lpe(zeros({2, 4, 8})).shape() == Shape{2, 4, 8});

  SelfAttention2d sa(16);
  auto [y, attn] = sa.forward_with_attention(randn({2, 16, 6, 6}));
  CHECK(y.shape() == Shape{2, 16, 6, 6});
  CHECK(attn.shape() == Shape{2, 36, 9});  // keys on the 2x2-pooled 3x3 grid
  Tensor z = randn({1, 16, 4, 4});
  CHECK(allclose(sa(z), z, 0, 0));  // gamma starts at 0: the block starts as the identity
}

TEST_CASE("nn attention modules reject bad shapes with clear errors") {
  MultiheadAttention m(8, 2, {.batch_first = true});
  CHECK_THROWS_WITH_AS(MultiheadAttention(10, 3), doctest::Contains("multiple of num_heads"), Error);
  CHECK_THROWS_WITH_AS(m.forward(zeros({2, 3, 7}), zeros({2, 3, 8}), zeros({2, 3, 8})),
                       doctest::Contains("MultiheadAttention(8)"), Error);
  CHECK_THROWS_AS(m.forward(zeros({3, 8}), zeros({3, 8}), zeros({3, 8})), Error);
  CHECK_THROWS_AS(m.forward(zeros({2, 3, 8}), zeros({2, 4, 8}), zeros({2, 5, 8})), Error);
  CHECK_THROWS_WITH_AS(
      m.forward(zeros({2, 3, 8}), zeros({2, 3, 8}), zeros({2, 3, 8}), {.key_padding_mask = zeros({3, 3}) > 0.5}),
      doctest::Contains("key_padding_mask should be (B, S) = (2,3)"), Error);
  CHECK_THROWS_AS(m.forward(zeros({2, 3, 8}), zeros({2, 3, 8}), zeros({2, 3, 8}), {.attn_mask = zeros({4, 4})}), Error);
  AttentionPooling pool(8);
  CHECK_THROWS_AS(pool.forward(zeros({2, 8})), Error);
  SelfAttention2d sa(16);
  CHECK_THROWS_AS(sa(zeros({2, 8, 4, 4})), Error);
}

TEST_CASE("nn SelfAttention2d: spectral norm option, PyTorch's names, gradcheck and gradgradcheck in float64") {
  manual_seed(23);
  // Plain: the block's second derivative, which WGAN-GP takes through a SAGAN critic.
  {
    SelfAttention2d m(8, true);
    m.to(float64);
    { NoGradGuard g; m.gamma.fill_(0.5); }
    Tensor x = randn({1, 8, 4, 4}, float64).requires_grad_();
    CHECK(gradgradcheck([&](const std::vector<Tensor>& in) { return m(in[0]); }, {x, m.f.conv().weight}));
  }
  // Spectral norm on f, g, h and out: torch.nn.utils.spectral_norm's state dict keys in its order.
  SelfAttention2d sn(8, {.pool_keys = true, .spectral_norm = true});
  std::vector<std::string> keys;
  for (auto& [name, t] : sn.state_dict()) keys.push_back(name);
  CHECK(keys == std::vector<std::string>{"f.bias", "f.weight_orig", "f.weight_u", "f.weight_v", "g.bias",
                                         "g.weight_orig", "g.weight_u", "g.weight_v", "gamma", "h.bias",
                                         "h.weight_orig", "h.weight_u", "h.weight_v", "out.bias", "out.weight_orig",
                                         "out.weight_u", "out.weight_v"});
  CHECK(sn.parameters().size() == 9);  // 4 x (bias, weight_orig) + gamma; u and v are buffers
  // In training mode every forward runs one power iteration; the conv that runs has W / σ, σ = u^T W v.
  Tensor x32 = randn({2, 8, 4, 4});
  sn(x32);
  Conv2d& f = sn.f.conv();
  Tensor w = sn.f.sn->weight_orig.reshape({1, 8});
  double sigma = matmul(sn.f.sn->weight_u, matmul(w, sn.f.sn->weight_v)).item();
  CHECK(allclose(f.weight.detach(), sn.f.sn->weight_orig.detach() / sigma, 1e-6, 1e-6));
  CHECK(sn(x32).shape() == Shape{2, 8, 4, 4});

  // Eval mode keeps u and v fixed, so the block is a function of x and the weights that can be checked.
  sn.to(float64);
  sn.eval();
  { NoGradGuard g; sn.gamma.fill_(0.5); }
  Tensor x = randn({1, 8, 4, 4}, float64).requires_grad_();
  auto fn = [&](const std::vector<Tensor>& in) { return sn(in[0]); };
  CHECK(gradcheck(fn, {x, sn.gamma, sn.f.sn->weight_orig, sn.h.sn->weight_orig, sn.out.sn->weight_orig}));
  CHECK(gradgradcheck(fn, {x, sn.g.sn->weight_orig}));
}

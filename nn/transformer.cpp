// transformer.cpp: the attention modules. Each forward is a short composite of heed ops around
// scaled_dot_product_attention; no backward is written by hand here.
#include "nn/transformer.h"

#include <cmath>
#include <sstream>

#include "nn/init.h"

namespace heed::nn {

// ---- MultiheadAttention ------------------------------------------------------------------------------------
MultiheadAttention::MultiheadAttention(int64_t E, int64_t NH, Config cfg)
    : embed_dim(E), num_heads(NH), head_dim(NH > 0 ? E / NH : 0), kdim(cfg.kdim ? cfg.kdim : E),
      vdim(cfg.vdim ? cfg.vdim : E), config(cfg), out_proj(E, E, cfg.bias) {
  if (E <= 0 || NH <= 0 || E % NH != 0)
    throw Error("MultiheadAttention: embed_dim " + std::to_string(E) + " must be a positive multiple of num_heads " +
                std::to_string(NH));
  // PyTorch's _reset_parameters: xavier_uniform_ on the (packed or separate) input projections, zero
  // biases, and out_proj's bias zeroed (its weight keeps Linear's default init).
  if (kdim == E && vdim == E) {
    in_proj_weight = empty({3 * E, E});
    init::xavier_uniform_(in_proj_weight);
    register_parameter("in_proj_weight", in_proj_weight);
  } else {
    q_proj_weight = empty({E, E});
    k_proj_weight = empty({E, kdim});
    v_proj_weight = empty({E, vdim});
    init::xavier_uniform_(q_proj_weight);
    init::xavier_uniform_(k_proj_weight);
    init::xavier_uniform_(v_proj_weight);
    register_parameter("q_proj_weight", q_proj_weight);
    register_parameter("k_proj_weight", k_proj_weight);
    register_parameter("v_proj_weight", v_proj_weight);
  }
  if (cfg.bias) {
    in_proj_bias = zeros({3 * E});
    register_parameter("in_proj_bias", in_proj_bias);
    NoGradGuard g;
    out_proj.bias.zero_();
  }
  if (cfg.score == AttentionScore::Cosine) {
    temperature = full({}, cfg.cosine_temperature);
    register_parameter("temperature", temperature);
  }
  register_module("out_proj", out_proj);
}

std::string MultiheadAttention::extra_repr() const {
  return "embed_dim=" + std::to_string(embed_dim) + ", num_heads=" + std::to_string(num_heads) +
         (config.batch_first ? ", batch_first=True" : "");
}

// (B, T, E) -> (B, NH, T, D): split the embedding into heads, heads before time.
static Tensor split_heads(const Tensor& x, int64_t NH) {
  int64_t B = x.size(0), T = x.size(1), E = x.size(2);
  return x.reshape({B, T, NH, E / NH}).permute({0, 2, 1, 3});
}

MhaOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value, const Args& args) {
  const char* who = "MultiheadAttention";
  if (query.dim() != 3 || key.dim() != 3 || value.dim() != 3)
    throw Error(std::string(who) + ": expected 3-d query, key and value, got " + shape_str(query.shape()) + ", " +
                shape_str(key.shape()) + ", " + shape_str(value.shape()));
  if (query.size(2) != embed_dim || key.size(2) != kdim || value.size(2) != vdim)
    throw Error(std::string(who) + "(" + std::to_string(embed_dim) + "): expected query/key/value feature sizes " +
                std::to_string(embed_dim) + "/" + std::to_string(kdim) + "/" + std::to_string(vdim) + ", got " +
                shape_str(query.shape()) + ", " + shape_str(key.shape()) + ", " + shape_str(value.shape()));
  // Work batch first: (B, L, E). PyTorch's default layout (L, B, E) is a transpose away.
  Tensor q = config.batch_first ? query : query.transpose(0, 1);
  Tensor k = config.batch_first ? key : key.transpose(0, 1);
  Tensor v = config.batch_first ? value : value.transpose(0, 1);
  int64_t B = q.size(0), L = q.size(1), S = k.size(1), E = embed_dim;
  if (k.size(0) != B || v.size(0) != B || v.size(1) != S)
    throw Error(std::string(who) + ": key " + shape_str(key.shape()) + " and value " + shape_str(value.shape()) +
                " must share batch and length, and match query " + shape_str(query.shape()));

  AttentionOptions opts;
  opts.causal = args.causal;
  opts.dropout_p = config.dropout;
  opts.training = is_training();
  opts.score = config.score;
  opts.temperature = temperature;
  opts.need_weights = args.need_weights;
  opts.impl = config.impl;
  if (args.key_padding_mask.defined()) {
    if (args.key_padding_mask.shape() != Shape{B, S})
      throw Error(std::string(who) + ": key_padding_mask should be (B, S) = " + shape_str({B, S}) + ", got " +
                  shape_str(args.key_padding_mask.shape()));
    opts.key_padding_mask = args.key_padding_mask;
  }
  if (args.attn_mask.defined()) {
    const Tensor& m = args.attn_mask;
    // nn.MultiheadAttention's bool mask is true where attention is NOT allowed; scaled_dot_product_attention's
    // (torch 2's F.scaled_dot_product_attention) is true where it is: one logical_not between the two.
    Tensor sdpa_mask = m.dtype() == boolean ? logical_not(m) : m;
    if (m.shape() == Shape{L, S}) opts.attn_mask = sdpa_mask;  // broadcasts over (B, NH)
    else if (m.shape() == Shape{B * num_heads, L, S}) opts.attn_mask = sdpa_mask.reshape({B, num_heads, L, S});
    else
      throw Error(std::string(who) + ": attn_mask should be (L, S) = " + shape_str({L, S}) + " or (B*NH, L, S) = " +
                  shape_str({B * num_heads, L, S}) + ", got " + shape_str(m.shape()));
  }
  AttentionResult r;  // out (B, NH, L, D)
  if (in_proj_weight.defined() && query.is_same(key) && key.is_same(value)) {
    // Self-attention: one (B, L, E) @ (E, 3E) projection makes q, k and v side by side, and on the fused
    // path their gradients come back side by side too: one GEMM each way instead of three, and no sum.
    r = packed_self_attention(linear(q, in_proj_weight, in_proj_bias), num_heads, opts);
  } else {
    // Input projections. The packed weight's three (E, E) row blocks are views, so their gradients land in
    // the one in_proj_weight, exactly as PyTorch's in_proj_weight.grad.
    Tensor wq = in_proj_weight.defined() ? in_proj_weight.narrow(0, 0, E) : q_proj_weight;
    Tensor wk = in_proj_weight.defined() ? in_proj_weight.narrow(0, E, E) : k_proj_weight;
    Tensor wv = in_proj_weight.defined() ? in_proj_weight.narrow(0, 2 * E, E) : v_proj_weight;
    Tensor bq, bk, bv;
    if (in_proj_bias.defined())
      bq = in_proj_bias.narrow(0, 0, E), bk = in_proj_bias.narrow(0, E, E), bv = in_proj_bias.narrow(0, 2 * E, E);
    Tensor qh = split_heads(linear(q, wq, bq), num_heads);  // (B, NH, L, D)
    Tensor kh = split_heads(linear(k, wk, bk), num_heads);  // (B, NH, S, D)
    Tensor vh = split_heads(linear(v, wv, bv), num_heads);  // (B, NH, S, D)
    r = scaled_dot_product_attention(qh, kh, vh, opts);
  }
  Tensor o = r.out.permute({0, 2, 1, 3}).reshape({B, L, E});             // heads back together
  Tensor y = out_proj(o);
  if (!config.batch_first) y = y.transpose(0, 1);
  MhaOutput res{y, Tensor()};
  if (args.need_weights) res.weights = args.average_attn_weights ? r.weights.mean({1}) : r.weights;
  return res;
}

// ---- TransformerEncoderLayer -----------------------------------------------------------------------------
static MultiheadAttention::Config mha_config(const TransformerEncoderLayer::Config& c) {
  MultiheadAttention::Config m;
  m.dropout = c.dropout;
  m.batch_first = c.batch_first;
  m.impl = c.attention_impl;
  return m;
}

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d_model, int64_t nhead, Config cfg)
    : config(cfg), self_attn(d_model, nhead, mha_config(cfg)), linear1(d_model, cfg.dim_feedforward),
      linear2(cfg.dim_feedforward, d_model), dropout(cfg.dropout), dropout1(cfg.dropout), dropout2(cfg.dropout),
      norm1(d_model, cfg.layer_norm_eps), norm2(d_model, cfg.layer_norm_eps) {
  // PyTorch's names and order, so its state dicts load one to one.
  register_module("self_attn", self_attn);
  register_module("linear1", linear1);
  register_module("dropout", dropout);
  register_module("linear2", linear2);
  register_module("norm1", norm1);
  register_module("norm2", norm2);
  register_module("dropout1", dropout1);
  register_module("dropout2", dropout2);
}

Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const MultiheadAttention::Args& args) {
  MultiheadAttention::Args a = args;
  a.need_weights = false;
  return dropout1(self_attn.forward(x, x, x, a).out);
}

Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
  Tensor h = linear1(x);
  h = config.activation == Activation::Gelu ? gelu(h) : relu(h);
  return dropout2(linear2(dropout(h)));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const MultiheadAttention::Args& args) {
  Tensor x = src;
  if (config.norm_first) {  // pre-LN: the residual stream is never normalised, which trains deep stacks stably
    x = x + self_attention_block(norm1(x), args);
    x = x + feed_forward_block(norm2(x));
  } else {  // post-LN, as in "Attention Is All You Need"
    x = norm1(x + self_attention_block(x, args));
    x = norm2(x + feed_forward_block(x));
  }
  return x;
}

TransformerEncoder::TransformerEncoder(int64_t d_model, int64_t nhead, int64_t num_layers,
                                       TransformerEncoderLayer::Config config, bool final_norm) {
  for (int64_t i = 0; i < num_layers; i++) layers.add<TransformerEncoderLayer>(d_model, nhead, config);
  register_module("layers", layers);
  if (final_norm) {
    norm = std::make_unique<LayerNorm>(d_model, config.layer_norm_eps);
    register_module("norm", *norm);
  }
}

Tensor TransformerEncoder::forward(const Tensor& src, const MultiheadAttention::Args& args) {
  Tensor x = src;
  for (size_t i = 0; i < layers.size(); i++) x = layers.at<TransformerEncoderLayer>(i).forward(x, args);
  return norm ? norm->forward(x) : x;
}

// ---- CausalSelfAttentionBlock -------------------------------------------------------------------------------
CausalSelfAttentionBlock::CausalSelfAttentionBlock(int64_t d_model, int64_t nhead, double dropout)
    : ln1(d_model), ln2(d_model), attn(d_model, nhead, {.dropout = dropout, .batch_first = true}) {
  mlp.add<Linear>(d_model, 4 * d_model);
  mlp.add<GELU>();
  mlp.add<Linear>(4 * d_model, d_model);
  register_module("ln1", ln1);
  register_module("ln2", ln2);
  register_module("attn", attn);
  register_module("mlp", mlp);
}

Tensor CausalSelfAttentionBlock::forward(const Tensor& x) {
  Tensor a = ln1(x);
  Tensor h = x + attn.forward(a, a, a, {.causal = true}).out;
  return h + mlp(ln2(h));
}

// ---- positional encodings ----------------------------------------------------------------------------------
SinusoidalPositionalEncoding::SinusoidalPositionalEncoding(int64_t d_model, int64_t max_len) {
  std::vector<float> table(max_len * d_model);
  for (int64_t t = 0; t < max_len; t++)
    for (int64_t i = 0; i < d_model; i++) {
      // Pair (2j, 2j+1) shares the frequency 1/10000^(2j/E): a sin and a cos, so a shift in t is a rotation.
      double freq = std::pow(10000.0, -(double)(i - i % 2) / (double)d_model);
      table[t * d_model + i] = (float)(i % 2 == 0 ? std::sin(t * freq) : std::cos(t * freq));
    }
  pe = from_vector(table, {max_len, d_model});
  register_buffer("pe", pe);
}

static void check_positions(const char* who, const Tensor& x, const Tensor& table) {
  if (x.dim() != 3 || x.size(2) != table.size(1) || x.size(1) > table.size(0))
    throw Error(std::string(who) + ": expected input (B, T<=" + std::to_string(table.size(0)) + ", " +
                std::to_string(table.size(1)) + "), got " + shape_str(x.shape()));
}

Tensor SinusoidalPositionalEncoding::forward(const Tensor& x) {
  check_positions("SinusoidalPositionalEncoding", x, pe);
  return x + pe.narrow(0, 0, x.size(1)).to(x.dtype());
}

LearnedPositionalEncoding::LearnedPositionalEncoding(int64_t d_model, int64_t max_len) {
  weight = randn({max_len, d_model}) * 0.02;
  register_parameter("weight", weight);
}

Tensor LearnedPositionalEncoding::forward(const Tensor& x) {
  check_positions("LearnedPositionalEncoding", x, weight);
  return x + weight.narrow(0, 0, x.size(1));
}

// ---- AttentionPooling ------------------------------------------------------------------------------------
AttentionPooling::AttentionPooling(int64_t E, int64_t NH) : attn(E, NH, {.batch_first = true}) {
  query = randn({1, 1, E}) * (1.0 / std::sqrt((double)E));
  register_parameter("query", query);
  register_module("attn", attn);
}

MhaOutput AttentionPooling::forward(const Tensor& x, const Tensor& key_padding_mask) {
  if (x.dim() != 3 || x.size(2) != attn.embed_dim)
    throw Error("AttentionPooling: expected input (B, T, " + std::to_string(attn.embed_dim) + "), got " +
                shape_str(x.shape()));
  int64_t B = x.size(0);
  Tensor q = query.expand({B, 1, attn.embed_dim});
  MhaOutput r = attn.forward(q, x, x, {.key_padding_mask = key_padding_mask, .need_weights = true});
  return {r.out.squeeze(1), r.weights.squeeze(1)};  // (B, E), (B, T)
}

// ---- SelfAttention2d -------------------------------------------------------------------------------------------
SelfAttention2d::Conv1x1::Conv1x1(int64_t in_channels, int64_t out_channels, bool spectral_norm) {
  if (spectral_norm) sn = std::make_unique<SpectralNorm<Conv2d>>(in_channels, out_channels, 1);
  else plain = std::make_unique<Conv2d>(in_channels, out_channels, 1);
}

SelfAttention2d::SelfAttention2d(int64_t C, Config cfg)
    : f(C, std::max<int64_t>(1, C / 8), cfg.spectral_norm), g(C, std::max<int64_t>(1, C / 8), cfg.spectral_norm),
      h(C, std::max<int64_t>(1, C / 2), cfg.spectral_norm), out(std::max<int64_t>(1, C / 2), C, cfg.spectral_norm),
      config(cfg) {
  gamma = zeros({1});
  register_module("f", f.module());
  register_module("g", g.module());
  register_module("h", h.module());
  register_module("out", out.module());
  register_parameter("gamma", gamma);
}

std::pair<Tensor, Tensor> SelfAttention2d::forward_with_attention(const Tensor& x) {
  const int64_t C = f.conv().in_channels;
  if (x.dim() != 4 || x.size(1) != C)
    throw Error("SelfAttention2d: expected input (B, " + std::to_string(C) + ", H, W), got " + shape_str(x.shape()));
  int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  Tensor q = f(x).flatten(2).transpose(1, 2);  // (B, H·W, C/8): one query per pixel
  Tensor k = g(x), v = h(x);                   // (B, C/8, H, W), (B, C/2, H, W)
  if (config.pool_keys && H % 2 == 0 && W % 2 == 0) {  // keys and values on a 2x2-pooled grid: 4x less attention
    k = max_pool2d(k, 2);
    v = max_pool2d(v, 2);
  }
  k = k.flatten(2).transpose(1, 2);  // (B, P, C/8), P = H·W, or H·W/4 pooled
  v = v.flatten(2).transpose(1, 2);  // (B, P, C/2)
  // SAGAN uses plain dot products (no 1/sqrt(d) scale). Composite: the weights are returned, and double
  // backward (a gradient penalty through a critic that holds this block) needs heed ops, not the fused kernel.
  AttentionOptions opts;
  opts.scale = 1.0;
  opts.need_weights = true;
  opts.impl = AttentionImpl::Composite;
  AttentionResult r = scaled_dot_product_attention(q, k, v, opts);  // out (B, H·W, C/2), weights (B, H·W, P)
  Tensor o = r.out.transpose(1, 2).reshape({B, v.size(2), H, W});
  return {x + gamma * out(o), r.weights};
}

Tensor SelfAttention2d::forward(const Tensor& x) { return forward_with_attention(x).first; }

}  // namespace heed::nn

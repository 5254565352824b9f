// transformer.h: the attention modules, built on nn/attention.h's scaled_dot_product_attention.
//
//   MultiheadAttention       PyTorch's parameterisation and names (in_proj_weight, out_proj.weight, ...)
//   TransformerEncoderLayer  pre-LN or post-LN: LayerNorm, self-attention, an MLP, dropout
//   TransformerEncoder       a stack of them
//   CausalSelfAttentionBlock a GPT block (pre-LN, causal)
//   SinusoidalPositionalEncoding, LearnedPositionalEncoding
//   AttentionPooling         a learned query attends over a set to give one vector
//   SelfAttention2d          SAGAN's attention over the pixels of a feature map
//
// Letters in shape comments: B batch, T (L, S) sequence lengths of queries (and keys), E embedding
// width, NH heads, D = E/NH the head width, C channels, H W height and width (docs/glossary.md).
#pragma once
#include <string>

#include "nn/attention.h"
#include "nn/container.h"
#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/spectral_norm.h"

namespace heed::nn {

/// What MultiheadAttention::forward returns: the output and, when asked, the attention weights
/// (B, L, S) averaged over heads, or (B, NH, L, S) per head.
struct MhaOutput {
  Tensor out, weights;
};

struct MultiheadAttention : Module {
  struct Config {
    double dropout = 0.0;      // on the attention weights, in training only
    bool bias = true;
    int64_t kdim = 0, vdim = 0;  // 0: same as embed_dim; otherwise separate q/k/v projection weights
    bool batch_first = false;  // PyTorch's default: (L, B, E); true: (B, L, E)
    AttentionScore score = AttentionScore::Dot;
    double cosine_temperature = 10.0;  // the initial, learnable temperature of the cosine score
    // Auto runs the fused kernel when no weights are asked for; it is first-order only, so a model that
    // needs double backward through attention (a WGAN-GP critic) picks Composite.
    AttentionImpl impl = AttentionImpl::Auto;
  };
  struct Args {
    Tensor key_padding_mask;   // (B, S) bool, true = padding
    Tensor attn_mask;          // (L, S) or (B*NH, L, S): bool true = not allowed, or float added
    bool causal = false;
    bool need_weights = false;
    bool average_attn_weights = true;
  };
  int64_t embed_dim, num_heads, head_dim, kdim, vdim;
  Config config;
  // Packed (3E, E) when kdim == vdim == E, as PyTorch; else three separate projections.
  Tensor in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias;
  Tensor temperature;  // the cosine score's learnable scale (a parameter only for that score)
  Linear out_proj;

  MultiheadAttention(int64_t embed_dim, int64_t num_heads, Config config);
  MultiheadAttention(int64_t embed_dim, int64_t num_heads) : MultiheadAttention(embed_dim, num_heads, Config{}) {}
  /// query (L,B,E) or (B,L,E) with batch_first; key and value (S,B,kdim/vdim) likewise.
  MhaOutput forward(const Tensor& query, const Tensor& key, const Tensor& value, const Args& args);
  MhaOutput forward(const Tensor& query, const Tensor& key, const Tensor& value) {
    return forward(query, key, value, Args{});
  }
  /// mha(q, k, v) and mha(q, k, v, {.attn_mask = m}) as in PyTorch (a forward of three tensors cannot be
  /// reached through Module's operator(), so the module has its own).
  MhaOutput operator()(const Tensor& query, const Tensor& key, const Tensor& value, const Args& args) {
    return forward(query, key, value, args);
  }
  MhaOutput operator()(const Tensor& query, const Tensor& key, const Tensor& value) {
    return forward(query, key, value);
  }
  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override;
};

enum class Activation { Relu, Gelu };

struct TransformerEncoderLayer : Module {
  struct Config {
    int64_t dim_feedforward = 2048;
    double dropout = 0.1;
    Activation activation = Activation::Relu;  // PyTorch's default; Gelu for GPT-style models
    double layer_norm_eps = 1e-5;
    bool batch_first = false;
    bool norm_first = false;  // false: post-LN (the original Transformer); true: pre-LN
    AttentionImpl attention_impl = AttentionImpl::Auto;  // see MultiheadAttention::Config::impl
  };
  Config config;
  MultiheadAttention self_attn;
  Linear linear1, linear2;
  Dropout dropout, dropout1, dropout2;
  LayerNorm norm1, norm2;

  TransformerEncoderLayer(int64_t d_model, int64_t nhead, Config config);
  TransformerEncoderLayer(int64_t d_model, int64_t nhead) : TransformerEncoderLayer(d_model, nhead, Config{}) {}
  /// src (T,B,E), or (B,T,E) with batch_first -> the same shape.
  Tensor forward(const Tensor& src, const MultiheadAttention::Args& args);
  Tensor forward(const Tensor& src) override { return forward(src, {}); }
  Tensor operator()(const Tensor& src, const MultiheadAttention::Args& args) { return forward(src, args); }
  using Module::operator();
  std::string type_name() const override { return "TransformerEncoderLayer"; }

 private:
  Tensor self_attention_block(const Tensor& x, const MultiheadAttention::Args& args);
  Tensor feed_forward_block(const Tensor& x);
};

struct TransformerEncoder : Module {
  ModuleList layers;
  std::unique_ptr<LayerNorm> norm;  // a final LayerNorm (what pre-LN stacks need), or none
  TransformerEncoder(int64_t d_model, int64_t nhead, int64_t num_layers, TransformerEncoderLayer::Config config,
                     bool final_norm = false);
  Tensor forward(const Tensor& src, const MultiheadAttention::Args& args);
  Tensor forward(const Tensor& src) override { return forward(src, {}); }
  Tensor operator()(const Tensor& src, const MultiheadAttention::Args& args) { return forward(src, args); }
  using Module::operator();
  std::string type_name() const override { return "TransformerEncoder"; }
};

/// A GPT block: x + attn(ln1(x)) with a causal mask, then x + mlp(ln2(x)); mlp = Linear(E,4E), GELU,
/// Linear(4E,E). Batch first: (B, T, E). Parameter names as bench/torch_ref.py's Block.
struct CausalSelfAttentionBlock : Module {
  LayerNorm ln1, ln2;
  MultiheadAttention attn;
  Sequential mlp;
  CausalSelfAttentionBlock(int64_t d_model, int64_t nhead, double dropout = 0.0);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "CausalSelfAttentionBlock"; }
};

/// x + PE[:T], PE[t, 2i] = sin(t / 10000^(2i/E)), PE[t, 2i+1] = cos(...). A buffer, not trained.
struct SinusoidalPositionalEncoding : Module {
  Tensor pe;  // (max_len, E)
  SinusoidalPositionalEncoding(int64_t d_model, int64_t max_len = 5000);
  /// x (B, T, E) -> x + pe[:T]
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "SinusoidalPositionalEncoding"; }
};

/// x + W[:T] with a learned (max_len, E) table, initialised N(0, 0.02²) as GPT-2 does. The arguments come
/// in SinusoidalPositionalEncoding's order, width first (every nn constructor takes widths before lengths).
struct LearnedPositionalEncoding : Module {
  Tensor weight;
  LearnedPositionalEncoding(int64_t d_model, int64_t max_len);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "LearnedPositionalEncoding"; }
};

/// Pools a set or sequence (B, T, E) to one vector (B, E): a learned query attends over the items.
/// `weights` (B, T), averaged over heads, say which items the pooled vector came from.
struct AttentionPooling : Module {
  Tensor query;  // (1, 1, E)
  MultiheadAttention attn;
  AttentionPooling(int64_t embed_dim, int64_t num_heads = 1);
  /// x (B, T, E), key_padding_mask (B, T) bool or undefined -> out (B, E), weights (B, T)
  MhaOutput forward(const Tensor& x, const Tensor& key_padding_mask = Tensor());
  MhaOutput operator()(const Tensor& x, const Tensor& key_padding_mask = Tensor()) {
    return forward(x, key_padding_mask);
  }
  std::string type_name() const override { return "AttentionPooling"; }
};

/// SAGAN's self-attention for feature maps (Zhang et al. 2019): f and g (1x1 convs to C/8) give queries
/// and keys, h (1x1 conv to C/2) gives values, keys and values optionally 2x2 max-pooled; the attended
/// values go through an output 1x1 conv to C, and y = x + gamma * o with gamma starting at 0, so the block
/// starts as the identity and learns how much attention to mix in.
///
/// SAGAN puts spectral norm on every layer of G and D, these four convs included: with Config::spectral_norm
/// each is a SpectralNorm<Conv2d>, and the state dict holds f.weight_orig, f.weight_u, f.weight_v, f.bias
/// (torch.nn.utils.spectral_norm's names) where the plain block has f.weight, f.bias. The attention runs on
/// the composite path, so double backward (a WGAN-GP critic) goes through the block.
struct SelfAttention2d : Module {
  struct Config {
    bool pool_keys = true;       // keys and values on the 2x2 max-pooled grid (H and W even): 4x less attention
    bool spectral_norm = false;  // wrap f, g, h and out in SpectralNorm
  };
  /// One 1x1 conv, plain or spectrally normalised: exactly one of the two is held.
  struct Conv1x1 {
    std::unique_ptr<Conv2d> plain;
    std::unique_ptr<SpectralNorm<Conv2d>> sn;
    Conv1x1(int64_t in_channels, int64_t out_channels, bool spectral_norm);
    Tensor operator()(const Tensor& x) { return sn ? sn->forward(x) : plain->forward(x); }
    Module& module() { return sn ? (Module&)*sn : (Module&)*plain; }
    /// The Conv2d that runs: its weight is the parameter, or with spectral norm the W / σ of the last forward.
    Conv2d& conv() { return sn ? sn->layer : *plain; }
  };
  Conv1x1 f, g, h, out;
  Tensor gamma;
  Config config;
  SelfAttention2d(int64_t channels, Config config);
  explicit SelfAttention2d(int64_t channels, bool pool_keys = true)
      : SelfAttention2d(channels, Config{.pool_keys = pool_keys}) {}
  /// x (B, C, H, W) -> y (B, C, H, W)
  Tensor forward(const Tensor& x);
  /// x (B, C, H, W) -> y (B, C, H, W) and the attention (B, H·W, P): P = H·W keys, or H·W/4 with pooled keys.
  std::pair<Tensor, Tensor> forward_with_attention(const Tensor& x);
  std::string type_name() const override { return "SelfAttention2d"; }
};

}  // namespace heed::nn

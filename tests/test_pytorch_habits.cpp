// test_pytorch_habits.cpp: the two programs of issue 14, written as a PyTorch user writes them, small
// enough to run in seconds.
//
//   1. a character-level transformer language model: token and position embeddings, pre-LN encoder layers
//      under a causal mask, trained on a short text, then sampled with temperature and top-k;
//   2. an autoencoder on points from four clusters, then k-means on its 2-d codes.
//
// What they lean on: callable modules (`model(x)`), int64 arithmetic (`starts + arange(T)`,
// `labels * k + clusters`, `//` and `%`), topk and multinomial, and a bool mask in both of PyTorch's
// conventions: nn.MultiheadAttention's attn_mask is TRUE where attention is forbidden,
// F.scaled_dot_product_attention's is TRUE where it is allowed.
//
// Letters: B batch, T time, V vocabulary, E embedding width, NH heads, N points, K clusters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "heed.h"
#include "data/data.h"
#include "metrics/metrics.h"

using namespace heed;

namespace {

// ---- 1. a character-level transformer LM --------------------------------------------------------------------

const std::string kText =
    "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
    "the early bird catches the worm. ";

struct CharLM : nn::Module {
  struct Config {
    int64_t vocab_size = 0;
    int64_t d_model = 32;
    int64_t nhead = 2;
    int64_t num_layers = 2;
    int64_t block_size = 16;
  };
  Config config;
  nn::Embedding tok;
  nn::LearnedPositionalEncoding pos;
  nn::ModuleList blocks;
  nn::LayerNorm ln_f;
  nn::Linear head;

  explicit CharLM(const Config& c)
      : config(c), tok(c.vocab_size, c.d_model), pos(c.d_model, c.block_size), ln_f(c.d_model),
        head(c.d_model, c.vocab_size) {
    for (int64_t i = 0; i < c.num_layers; i++)
      blocks.add<nn::TransformerEncoderLayer>(c.d_model, c.nhead,
                                              {.dim_feedforward = 4 * c.d_model,
                                               .dropout = 0.0,
                                               .activation = nn::Activation::Gelu,
                                               .batch_first = true,
                                               .norm_first = true});
    register_module("tok", tok);
    register_module("pos", pos);
    register_module("blocks", blocks);
    register_module("ln_f", ln_f);
    register_module("head", head);
  }

  // idx (B, T) int64 -> logits (B, T, V)
  Tensor forward(const Tensor& idx) {
    const int64_t T = idx.size(1);
    // nn.MultiheadAttention's convention: TRUE = this query may NOT see that key (here: the future).
    Tensor i = arange(T).reshape({T, 1}), j = arange(T).reshape({1, T});
    Tensor future = j > i;  // (T, T) bool
    Tensor x = pos(tok(idx));
    for (size_t l = 0; l < blocks.size(); l++)
      x = blocks.at<nn::TransformerEncoderLayer>(l)(x, {.attn_mask = future});
    return head(ln_f(x));
  }
};

// B windows of T + 1 tokens from `data` (N), as (x, y) with y one step ahead: int64 index arithmetic.
std::pair<Tensor, Tensor> get_batch(const Tensor& data, int64_t B, int64_t T, Generator& gen) {
  Tensor starts = randint(0, data.size(0) - T - 1, {B}, &gen).reshape({B, 1});  // (B, 1) int64
  Tensor at = starts + arange(T);                                               // (B, T) int64
  Tensor x = index_select(data, 0, at.reshape({-1})).reshape({B, T});
  Tensor y = index_select(data, 0, (at + 1).reshape({-1})).reshape({B, T});
  return {x, y};
}

// nanoGPT's generate: crop the context, scale the last logits by 1/temperature, keep the top k, sample.
Tensor generate(CharLM& model, Tensor idx, int64_t max_new_tokens, double temperature, int64_t top_k, Generator& gen) {
  NoGradGuard no_grad;
  for (int64_t n = 0; n < max_new_tokens; n++) {
    const int64_t T = idx.size(1), keep = std::min(T, model.config.block_size);
    Tensor logits = model(idx.narrow(1, T - keep, keep)).select(1, keep - 1) / temperature;  // (B, V)
    auto [v, ix] = topk(logits, top_k);                                                       // (B, k)
    logits = masked_fill(logits, logits < v.narrow(1, top_k - 1, 1), -std::numeric_limits<double>::infinity());
    Tensor next = multinomial(softmax(logits, -1), 1, false, &gen);  // (B, 1) int64
    idx = cat({idx, next}, 1);
  }
  return idx;
}

}  // namespace

TEST_CASE("PyTorch habits: a character-level transformer LM trains, and samples with temperature and top-k") {
  manual_seed(0);
  data::CharCorpus corpus;
  corpus.text = kText;
  corpus.build_vocab();
  Tensor data = corpus.encode(kText);  // (N) int64
  const int64_t V = (int64_t)corpus.vocab.size();

  CharLM model({.vocab_size = V, .block_size = 16});
  optim::AdamW opt(model.parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  Generator gen(1);
  double first = 0, last = 0;
  for (int step = 0; step < 150; step++) {
    auto [x, y] = get_batch(data, 16, 16, gen);
    Tensor logits = model(x);  // (B, T, V)
    Tensor loss = nn::cross_entropy(logits.reshape({-1, V}), y.reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  MESSAGE("char LM: loss " << first << " -> " << last);
  CHECK(first > 2.5);  // about log(V) untrained
  CHECK(last < 1.0);   // the text is short and repeats: the model learns it

  model.eval();
  Tensor prompt = corpus.encode("the quick").reshape({1, -1});
  Tensor out = generate(model, prompt, 20, 0.8, 5, gen);
  CHECK(out.shape() == Shape{1, 29});
  CHECK(out.dtype() == int64);
  CHECK((out.narrow(1, 0, 9) == prompt).to(int64).sum().item() == 9);  // the prompt is kept
  CHECK(((out >= 0).to(int64) * (out < V).to(int64)).sum().item() == 29);  // every id is in the vocabulary
  MESSAGE("sample: " << corpus.decode(out));

  // top_k = 1 is greedy: the same as argmax, and as nn::sample_next at temperature 0.
  Tensor greedy = generate(model, prompt, 12, 1.0, 1, gen);
  NoGradGuard no_grad;
  Tensor ctx = prompt;
  for (int n = 0; n < 12; n++) {
    const int64_t T = ctx.size(1), keep = std::min<int64_t>(T, 16);
    ctx = cat({ctx, nn::sample_next(model(ctx.narrow(1, T - keep, keep)).select(1, keep - 1), {.temperature = 0})}, 1);
  }
  CHECK((greedy == ctx).to(int64).sum().item() == 21);
  // The trained model continues its own text: "the quick" is followed by " brown fox".
  CHECK(corpus.decode(greedy.narrow(1, 9, 10)) == " brown fox");
}

TEST_CASE(
    "PyTorch habits: the two bool mask conventions, nn.MultiheadAttention's and F.scaled_dot_product_attention's") {
  manual_seed(2);
  const int64_t B = 2, NH = 2, T = 5, D = 4, E = NH * D;
  Tensor i = arange(T).reshape({T, 1}), j = arange(T).reshape({1, T});

  // F.scaled_dot_product_attention(q, k, v, attn_mask=allowed): TRUE = may attend.
  Tensor q = randn({B, NH, T, D}), k = randn({B, NH, T, D}), v = randn({B, NH, T, D});
  Tensor allowed = j <= i;
  Tensor by_mask = nn::scaled_dot_product_attention(q, k, v, {.attn_mask = allowed}).out;
  Tensor by_flag = nn::scaled_dot_product_attention(q, k, v, {.causal = true}).out;
  CHECK(allclose(by_mask, by_flag, 1e-5, 1e-6));
  // Passing the other convention's mask is a different (anti-causal) attention, not the same one.
  Tensor inverted = nn::scaled_dot_product_attention(q, k, v, {.attn_mask = j > i}).out;
  CHECK_FALSE(allclose(inverted.narrow(2, 0, T - 1), by_flag.narrow(2, 0, T - 1), 1e-3, 1e-3));

  // nn.MultiheadAttention(attn_mask=forbidden): TRUE = may NOT attend.
  nn::MultiheadAttention mha(E, NH, {.batch_first = true});
  Tensor x = randn({B, T, E});
  Tensor forbidden = j > i;
  Tensor mha_mask = mha(x, x, x, {.attn_mask = forbidden}).out;
  Tensor mha_flag = mha(x, x, x, {.causal = true}).out;
  CHECK(allclose(mha_mask, mha_flag, 1e-5, 1e-6));
  // A mask of the wrong shape or dtype is refused, naming the op.
  CHECK_THROWS_AS(nn::scaled_dot_product_attention(q, k, v, {.attn_mask = ones({T + 1, T}) > 0.0}), Error);
  CHECK_THROWS_AS(mha(x, x, x, {.attn_mask = arange(T * T).reshape({T, T})}), Error);
}

// ---- 2. an autoencoder, then k-means on its codes ------------------------------------------------------------

namespace {

struct AutoEncoder : nn::Module {
  nn::Sequential encoder, decoder;
  AutoEncoder(int64_t dim, int64_t hidden, int64_t code) {
    encoder.add<nn::Linear>(dim, hidden);
    encoder.add<nn::ReLU>();
    encoder.add<nn::Linear>(hidden, code);
    decoder.add<nn::Linear>(code, hidden);
    decoder.add<nn::ReLU>();
    decoder.add<nn::Linear>(hidden, dim);
    register_module("encoder", encoder);
    register_module("decoder", decoder);
  }
  Tensor forward(const Tensor& x) { return decoder(encoder(x)); }  // (N, dim) -> (N, dim)
};

}  // namespace

TEST_CASE("PyTorch habits: an autoencoder, then k-means on its codes, scored with integer arithmetic") {
  manual_seed(3);
  const int64_t N = 400, K = 4, dim = 16;
  data::Mixture m = data::mixture_of_gaussians(N, K, dim, /*seed=*/3, /*spread=*/4.0);
  Tensor x = (m.points - m.points.mean(0, true)) / heed::std(m.points, 0, 1, true);

  AutoEncoder model(dim, 32, 2);
  optim::Adam opt(model.parameters(), {.lr = 1e-2});
  Generator gen(4);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 30; epoch++) {
    Tensor perm = argsort(rand({N}, float32, &gen));  // a shuffle, as torch.randperm
    for (int64_t b = 0; b < N; b += 100) {
      Tensor xb = index_select(x, 0, perm.narrow(0, b, 100));
      Tensor loss = nn::mse_loss(model(xb), xb);
      opt.zero_grad();
      loss.backward();
      opt.step();
      (epoch == 0 && b == 0 ? first : last) = loss.item();
    }
  }
  MESSAGE("autoencoder: loss " << first << " -> " << last);
  CHECK(last < 0.5 * first);

  NoGradGuard no_grad;
  Tensor codes = model.encoder(x);  // (N, 2)
  metrics::KMeansResult km = metrics::kmeans(codes, (int)K);
  // The confusion matrix as PyTorch code builds it: one cell id per point, label * K + cluster, counted.
  Tensor cell = m.labels * K + km.labels;                                                // (N) int64
  Tensor counts = (cell.reshape({N, 1}) == arange(K * K).reshape({1, K * K})).to(int64).sum(0);  // (K*K)
  Tensor confusion = counts.reshape({K, K});
  CHECK(confusion.sum().item() == N);
  // Each cell id splits back into its label and cluster with // and %.
  CHECK((floor_divide(cell, wrap_scalar_int(cell, K)) == m.labels).to(int64).sum().item() == N);
  CHECK(((cell % K) == km.labels).to(int64).sum().item() == N);
  // Purity: each true cluster's largest cell, summed.
  double purity = max(confusion.to(float64), 1).first.sum().item() / N;
  double acc = metrics::clustering_accuracy(m.labels, km.labels);
  MESSAGE("k-means on the codes: purity " << purity << ", clustering accuracy " << acc);
  CHECK(purity > 0.9);
  CHECK(acc > 0.9);
}

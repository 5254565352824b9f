// gpt: a character-level GPT (Radford et al. 2018, "Improving Language Understanding by Generative
// Pre-Training"; the recipe of Karpathy's char-level nanoGPT) on the fortune cookies of Debian's fortunes.
//
// Data (the reference protocol, models/reference/gpt.py reads the same): every plain-text file of
// /usr/share/games/fortunes (no *.dat, *.u8, symlinks or sub-folders), read as UTF-8 and concatenated in sorted
// name order; the vocabulary is the sorted set of characters (113 code points); the first 90% of the characters
// train, the last 10% validate. Model: token and position embeddings, L pre-LN blocks (causal attention, a GELU
// MLP of 4E, no dropout), a final LayerNorm and an untied head. Training: random windows of T characters,
// AdamW (lr 1e-3, weight decay 0.01, constant lr). Validation loss: the mean over 50 random validation
// batches, the same batches at every evaluation. --steps 2000 is the reference recipe; the default stops
// at 1000 to fit ten minutes of this machine.
// --attn local --window W lets each character see the W before it (nn::local_attention); --attn block-sparse
// cuts T into blocks of --block and lets a block see itself, the block before and the first block
// (nn::block_layout): both cost O(T) per sequence where dense attention costs O(T²).
//
// The run prints the train and validation loss every --eval-every steps (steps.png draws them), then a sample
// from --prompt (temperature and top-k), and draws attention_layer<l>.png: each head's attention over a
// validation text, its characters on both axes. --sample-only CHECKPOINT only samples from a saved model.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <sstream>

#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;
namespace fs = std::filesystem;

struct Config {
  std::string dir = "/usr/share/games/fortunes", attn = "dense";
  int64_t layers = 4, heads = 4, d_model = 128, context = 64, window = 32, block = 32;
  int64_t eval_every = 250, eval_batches = 50;
  double weight_decay = 0.01;
};

// ---- the data: the characters of the fortunes -------------------------------------------------------------------

// UTF-8 bytes -> code points; a malformed sequence throws (the fortunes are valid UTF-8).
std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = (unsigned char)s[i];
    const int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) throw Error("gpt: the text is not valid UTF-8 at byte " + std::to_string(i));
    char32_t c = n == 1 ? b : b & (0x7F >> n);
    for (int k = 1; k < n; ++k) c = (c << 6) | ((unsigned char)s[i + k] & 0x3F);
    out.push_back(c), i += n;
  }
  return out;
}
std::string utf8_encode(char32_t c) {
  if (c < 0x80) return std::string(1, (char)c);
  if (c < 0x800) return {(char)(0xC0 | c >> 6), (char)(0x80 | (c & 0x3F))};
  if (c < 0x10000) return {(char)(0xE0 | c >> 12), (char)(0x80 | ((c >> 6) & 0x3F)), (char)(0x80 | (c & 0x3F))};
  return {(char)(0xF0 | c >> 18), (char)(0x80 | ((c >> 12) & 0x3F)), (char)(0x80 | ((c >> 6) & 0x3F)),
          (char)(0x80 | (c & 0x3F))};
}

struct Text {
  std::u32string vocab;     // sorted code points; token i is vocab[i]
  std::vector<int64_t> ids; // the whole text as tokens
  int64_t n_train = 0;      // ids[0, n_train) train, the rest validate
  std::vector<int64_t> encode(const std::string& s) const {
    std::vector<int64_t> out;
    for (char32_t c : utf8_decode(s)) {
      auto it = std::lower_bound(vocab.begin(), vocab.end(), c);
      if (it == vocab.end() || *it != c)
        throw zoo::UsageError("the prompt holds a character (U+" + std::to_string((uint32_t)c) +
                              ") that is not in the fortunes' vocabulary");
      out.push_back(it - vocab.begin());
    }
    return out;
  }
  std::string decode(const std::vector<int64_t>& ids) const {
    std::string s;
    for (int64_t i : ids) s += utf8_encode(vocab[i]);
    return s;
  }
};

Text load_text(const std::string& dir, double train_fraction) {
  std::vector<std::string> names;
  if (!fs::is_directory(dir)) throw Error("gpt: no directory '" + dir + "' (install the Debian package fortunes)");
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!fs::is_regular_file(e.symlink_status()) || name[0] == '.') continue;
    if (name.ends_with(".dat") || name.ends_with(".u8")) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::string bytes;
  for (const std::string& name : names) {
    std::ifstream f(fs::path(dir) / name, std::ios::binary);
    std::stringstream content;
    content << f.rdbuf();
    bytes += content.str();
  }
  Text t;
  std::u32string chars = utf8_decode(bytes);
  if (chars.size() < 1000) throw Error("gpt: '" + dir + "' holds " + std::to_string(chars.size()) + " characters");
  t.vocab = chars;
  std::sort(t.vocab.begin(), t.vocab.end());
  t.vocab.erase(std::unique(t.vocab.begin(), t.vocab.end()), t.vocab.end());
  for (char32_t c : chars) t.ids.push_back(std::lower_bound(t.vocab.begin(), t.vocab.end(), c) - t.vocab.begin());
  t.n_train = (int64_t)(train_fraction * (double)chars.size());
  return t;
}

// B random windows of T+1 tokens from ids[lo, hi): inputs x (B,T) and the next characters y (B,T).
std::pair<Tensor, Tensor> batch(const Text& t, int64_t lo, int64_t hi, int64_t B, int64_t T, Generator& gen) {
  std::vector<int64_t> x, y;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = lo + (int64_t)(gen.next_u32() % (uint32_t)(hi - lo - T));
    x.insert(x.end(), t.ids.begin() + start, t.ids.begin() + start + T);
    y.insert(y.end(), t.ids.begin() + start + 1, t.ids.begin() + start + T + 1);
  }
  return {from_vector(x, Shape{B, T}), from_vector(y, Shape{B, T})};
}

// ---- the model ----------------------------------------------------------------------------------------------------

struct GPT : nn::Module {
  Config c;
  nn::Embedding tok, pos;
  nn::ModuleList blocks;  // nn::CausalSelfAttentionBlock: x + attn(ln1(x)), then + mlp(ln2(x))
  nn::LayerNorm ln;
  nn::Linear head;
  Tensor layout;  // --attn block-sparse: (T/block, T/block) bool, which key blocks each query block sees
  GPT(const Config& c, int64_t vocab)
      : c(c), tok(vocab, c.d_model), pos(c.context, c.d_model), ln(c.d_model), head(c.d_model, vocab) {
    for (int64_t l = 0; l < c.layers; ++l) blocks.add<nn::CausalSelfAttentionBlock>(c.d_model, c.heads);
    register_module("tok", tok), register_module("pos", pos), register_module("blocks", blocks);
    register_module("ln", ln), register_module("head", head);
    const int64_t nb = c.context / c.block;
    layout = nn::block_layout(nb, nb, {.local = 1, .global = 1, .causal = true});
  }
  // The layout's top-left corner for T <= context characters (a prompt shorter than the context): ceil(T/block)².
  Tensor layout_for(int64_t T) {
    const int64_t nb = (T + c.block - 1) / c.block;
    return layout.narrow(0, 0, nb).narrow(1, 0, nb);
  }
  nn::CausalSelfAttentionBlock& block(size_t l) { return blocks.at<nn::CausalSelfAttentionBlock>(l); }
  // q, k, v (B,NH,T,D) from the block's packed projection of a = ln1(x) (B,T,E): [q | k | v], each NH heads of D.
  std::array<Tensor, 3> qkv(nn::CausalSelfAttentionBlock& blk, const Tensor& a) {
    const int64_t B = a.size(0), T = a.size(1), NH = c.heads, D = c.d_model / c.heads;
    Tensor p = linear(a, blk.attn.in_proj_weight, blk.attn.in_proj_bias).reshape({B, T, 3, NH, D});
    p = p.permute({2, 0, 3, 1, 4});  // (3,B,NH,T,D)
    return {p.select(0, 0), p.select(0, 1), p.select(0, 2)};
  }
  // x (B,T,E) -> (B,T,E): CausalSelfAttentionBlock::forward, with --attn's sparse pattern in place of the
  // dense causal attention (the same parameters).
  Tensor run_block(nn::CausalSelfAttentionBlock& blk, const Tensor& x) {
    if (c.attn == "dense") return blk(x);
    auto [q, k, v] = qkv(blk, blk.ln1(x));
    Tensor o = c.attn == "local"
                   ? nn::local_attention(q, k, v, c.window, {.causal = true})
                   : nn::block_sparse_attention(q, k, v, layout_for(x.size(1)), c.block, {.causal = true});
    Tensor h = x + blk.attn.out_proj(o.permute({0, 2, 1, 3}).reshape(x.shape()));  // (B,NH,T,D) -> (B,T,E)
    return h + blk.mlp(blk.ln2(h));
  }
  Tensor embed(const Tensor& idx) { return tok(idx) + pos(arange(idx.size(1))); }
  // idx (B,T) -> logits (B,T,V)
  Tensor forward(const Tensor& idx) {
    Tensor x = embed(idx);
    for (size_t l = 0; l < blocks.size(); ++l) x = run_block(block(l), x);
    return head(ln(x));
  }
  Tensor operator()(const Tensor& idx) { return forward(idx); }
  // Each block's attention weights over idx (1,T), per head: (layers, NH, T, T). Sparse patterns become the
  // equivalent masks of dense attention (local_attention_mask, block_sparse_mask), so the picture is exact.
  Tensor attention(const Tensor& idx) {
    const int64_t T = idx.size(1);
    Tensor mask = c.attn == "local" ? nn::local_attention_mask(T, c.window, true)
                  : c.attn == "block-sparse"
                      ? logical_or(nn::block_sparse_mask(layout_for(T), c.block, T, T), nn::causal_mask(T, T))
                      : nn::causal_mask(T, T);
    Tensor x = embed(idx);
    std::vector<Tensor> out;
    for (size_t l = 0; l < blocks.size(); ++l) {
      auto [q, k, v] = qkv(block(l), block(l).ln1(x));
      nn::AttentionResult r = nn::scaled_dot_product_attention(q, k, v, {.attn_mask = mask, .need_weights = true});
      out.push_back(r.weights.select(0, 0));  // (1,NH,T,T) -> (NH,T,T)
      x = run_block(block(l), x);
    }
    return stack(out);
  }
};

// ---- evaluation and sampling -------------------------------------------------------------------------------------

// The mean loss over c.eval_batches validation batches, drawn by Generator(seed): the same at every call.
double val_loss(GPT& gpt, const Text& t, int64_t B, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  double total = 0;
  for (int64_t i = 0; i < gpt.c.eval_batches; ++i) {
    auto [x, y] = batch(t, t.n_train, (int64_t)t.ids.size(), B, gpt.c.context, gen);
    total += nn::cross_entropy(gpt(x).reshape({-1, (int64_t)t.vocab.size()}), y.reshape({-1})).item();
  }
  return total / (double)gpt.c.eval_batches;
}

// The prompt and n characters after it, each sampled from the model's next-character distribution given
// the last T characters.
std::string generate(GPT& gpt, const Text& t, const std::string& prompt, int64_t n, double temperature,
                     int64_t top_k, Generator& gen) {
  NoGradGuard no_grad;
  std::vector<int64_t> ids = t.encode(prompt);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t L = std::min<int64_t>((int64_t)ids.size(), gpt.c.context);
    std::vector<int64_t> ctx(ids.end() - L, ids.end());
    Tensor logits = gpt(from_vector(ctx, Shape{1, L})).select(1, L - 1).reshape({-1});  // (V)
    // softmax(logits / temperature) over the top_k largest logits (0: all), one draw: torch's topk + multinomial.
    Tensor next = nn::sample_next(logits, {.temperature = temperature, .top_k = top_k, .generator = &gen});
    ids.push_back(next.item<int64_t>());
  }
  return t.decode(ids);
}

// attention_layer<l>.png: block l's heads over the characters `ids`, on both axes (newline "\n", space "_").
void save_attention(GPT& gpt, const Text& t, const std::vector<int64_t>& ids, const std::string& dir) {
  NoGradGuard no_grad;
  std::vector<std::string> labels;
  for (int64_t i : ids) labels.push_back(t.vocab[i] == U'\n' ? "\\n" : t.vocab[i] == U' ' ? "_" : t.decode({i}));
  Tensor w = gpt.attention(from_vector(ids, Shape{1, (int64_t)ids.size()}));  // (layers,NH,T,T)
  for (int64_t l = 0; l < w.size(0); ++l)
    viz::attention_heatmap(w.select(0, l), dir + "/attention_layer" + std::to_string(l + 1) + ".png",
                           {.row_labels = labels, .col_labels = labels});
}

// ---- main ---------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("gpt", "A character-level GPT on Debian's fortunes", {.epochs = 1, .batch_size = 32, .lr = 1e-3});
  cli.option("steps", "optimizer steps (the reference recipe is 2000)", 1000, 1);
  cli.option("context", "T: characters per training window", 64, 2);
  cli.option("layers", "transformer blocks", 4, 1);
  cli.option("heads", "attention heads", 4, 1);
  cli.option("d-model", "E: the width", 128, 1);
  cli.option("attn", "attention: dense, local or block-sparse", std::string("dense"));
  cli.option("window", "--attn local: each character sees this many before it", 32, 1);
  cli.option("block", "--attn block-sparse: the block length (it divides --context)", 32, 1);
  cli.option("eval-every", "steps between validation losses (and checkpoints)", 250, 1);
  cli.option("prompt", "the sample's first characters", std::string("Q: "));
  cli.option("sample-chars", "characters to sample after the prompt", 400, 0);
  cli.option("temperature", "divides the logits before sampling", 0.8, 0.01);
  cli.option("top-k", "sample among the k most likely characters (0: all)", 20, 0);
  cli.option("sample-only", "only sample, from this checkpoint.safetensors (same model flags)", std::string());
  cli.option("resume", "continue from this checkpoint.safetensors (same model flags)", std::string());
  cli.option("data", "the fortunes folder", std::string("/usr/share/games/fortunes"));
  return zoo::main_guard("gpt", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.dir = cli.get<std::string>("data"), .attn = cli.get<std::string>("attn"),
             .layers = cli.get<int64_t>("layers"), .heads = cli.get<int64_t>("heads"),
             .d_model = cli.get<int64_t>("d-model"), .context = cli.get<int64_t>("context"),
             .window = cli.get<int64_t>("window"), .block = cli.get<int64_t>("block"),
             .eval_every = cli.get<int64_t>("eval-every")};
    int64_t steps = cli.get<int64_t>("steps"), sample_chars = cli.get<int64_t>("sample-chars");
    if (run.quick) {
      steps = cli.given("steps") ? steps : 20, c.eval_every = 10, c.eval_batches = 4, c.layers = 2, c.d_model = 64;
      sample_chars = 80;
      std::printf("gpt: --quick: 2 blocks of width 64, %lld steps, validation on 4 batches, 80 sampled characters\n",
                  (long long)steps);
    }
    cli.require(c.attn == "dense" || c.attn == "local" || c.attn == "block-sparse",
                "--attn must be dense, local or block-sparse, got '" + c.attn + "'");
    cli.require(c.d_model % c.heads == 0, "--d-model " + std::to_string(c.d_model) + " must be a multiple of "
                                          "--heads " + std::to_string(c.heads));
    cli.require(c.context % c.block == 0, "--block " + std::to_string(c.block) + " must divide --context " +
                                              std::to_string(c.context));
    Text text = load_text(c.dir, 0.9);
    const int64_t V = (int64_t)text.vocab.size(), B = run.batch_size, T = c.context;
    text.encode(cli.get<std::string>("prompt"));  // a character outside the vocabulary is a usage error, now
    cli.require((int64_t)text.ids.size() - text.n_train > T + 1, "--context " + std::to_string(T) +
                                                                     " is longer than the validation text");

    manual_seed(run.seed);
    GPT gpt(c, V);
    optim::AdamW opt(gpt.parameters(), {.lr = run.lr, .weight_decay = c.weight_decay});
    const std::map<std::string, std::string> shape = {{"attn", c.attn}, {"context", std::to_string(T)},
        {"layers", std::to_string(c.layers)}, {"d_model", std::to_string(c.d_model)}, {"vocab", std::to_string(V)}};
    Generator sample_gen(run.seed + 3);
    auto print_sample = [&] {
      std::printf("gpt: a sample (temperature %.2f, top-k %lld):\n%s\n", cli.get<double>("temperature"),
                  (long long)cli.get<int64_t>("top-k"),
                  generate(gpt, text, cli.get<std::string>("prompt"), sample_chars, cli.get<double>("temperature"),
                           cli.get<int64_t>("top-k"), sample_gen).c_str());
    };
    if (const std::string ck = cli.get<std::string>("sample-only"); !ck.empty()) {
      optim::ResumeInfo info = optim::load_training_state(ck, gpt, opt);  // a mismatch of shapes throws here
      for (auto& [key, value] : shape)
        if (info.metadata.count(key) && info.metadata[key] != value)
          throw zoo::UsageError("the checkpoint has " + key + " " + info.metadata[key] + ", the flags give " + value);
      std::printf("gpt: %s, trained for %lld steps\n", ck.c_str(), (long long)info.step);
      print_sample();
      return 0;
    }
    const std::string resume = cli.get<std::string>("resume");
    int64_t step = resume.empty() ? 0 : zoo::resume_training(cli, run, gpt, opt);
    std::printf("gpt: %lld characters (%lld train, %lld validation), vocabulary %lld; %lld parameters, %s "
                "attention, T = %lld; from step %lld to %lld\n", (long long)text.ids.size(), (long long)text.n_train,
                (long long)(text.ids.size() - text.n_train), (long long)V, (long long)gpt.num_parameters(),
                c.attn.c_str(), (long long)T, (long long)step, (long long)steps);
    zoo::RunLog log(cli, run);
    log.set_config("steps", steps), log.set_config("vocab", V), log.set_config("parameters", gpt.num_parameters());

    // Step s's batch is draws s*B .. s*B+B-1 of Generator(seed + 1): a resumed run sees the same batches.
    Generator batch_gen(run.seed + 1);
    reset_peak_memory();
    double train_seconds = 0, val = NAN, train = NAN;
    const int64_t first_step = step;
    while (step < steps) {
      const int64_t chunk = std::min(c.eval_every - step % c.eval_every, steps - step);
      zoo::ProgressBar bar("steps " + std::to_string(step + 1) + "-" + std::to_string(step + chunk), chunk);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < chunk; ++i, ++step) {
        batch_gen.set_offset((uint64_t)(step * B));
        auto [x, y] = batch(text, 0, text.n_train, B, T, batch_gen);
        Tensor loss = nn::cross_entropy(gpt(x).reshape({-1, V}), y.reshape({-1}));
        opt.zero_grad();
        loss.backward();
        opt.step();
        zoo::check_finite_loss(loss.item(), step + 1);
        bar.update(loss.item(), B * T);
      }
      bar.finish();
      train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      train = bar.mean_loss(), val = val_loss(gpt, text, B, run.seed + 2);
      log.step(step, {{"train_loss", train}, {"val_loss", val}});
      std::printf("step %lld  train_loss %.4f  val_loss %.4f  (%.0f ms per step)\n", (long long)step, train, val,
                  1000 * train_seconds / (double)(step - first_step));
      optim::save_training_state(log.dir() + "/checkpoint.safetensors", gpt, opt, optim::StateDict{}, step,
                                 zoo::checkpoint_metadata(run, shape));
    }
    if (std::isnan(val)) val = val_loss(gpt, text, B, run.seed + 2);  // a resumed run that had nothing left to do
    const double ms = step > first_step ? 1000 * train_seconds / (double)(step - first_step) : NAN;
    log.final({{"val_loss", val}, {"train_loss", train}, {"ms_per_step", ms}, {"us_per_token", 1000 * ms / (B * T)},
               {"peak_mb", (double)memory_stats().peak / 1e6}});
    print_sample();
    // A validation text for the pictures: 48 characters from the start of the validation part's second line.
    const int64_t newline = text.encode("\n")[0];
    auto from = std::find(text.ids.begin() + text.n_train, text.ids.end() - 49, newline) + 1;
    save_attention(gpt, text, std::vector<int64_t>(from, from + std::min<int64_t>(48, T)), log.dir());
    log.finish();
    return 0;
  });
}

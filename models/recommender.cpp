// recommender: next-item recommendation with self-attention, SASRec (Kang and McAuley 2018, "Self-Attentive
// Sequential Recommendation"), beside the baselines it must beat: popularity, a first-order Markov chain
// (item-to-item transition counts), matrix factorisation trained with BPR (Rendle et al. 2009), and on the
// synthetic data the oracle, the true next-item distribution.
//
// Data: data::session_sequences by default (a latent-factor model whose next-item logits next_item_logits
// gives exactly), or --movielens FILE: ML-100K's u.data or ML-1M's ratings.dat (data::load_movielens).
// Protocol (SASRec's): leave-one-out, each user's last item is the test target, the one before it the
// validation target, and the rest trains. HR@10 and NDCG@10 rank the target among 100 sampled negatives
// (items the user never had, drawn uniformly with replacement as SASRec's code does) and among all items.
// SASRec here: item and learned position embeddings, pre-LN causal transformer layers and a final LayerNorm;
// the state at position t scores every item by a dot product with the shared item embeddings. It trains
// on the softmax cross-entropy of the next item at every position, over all items (the paper uses binary
// cross-entropy with one sampled negative; with a few thousand items the full softmax is cheap).
//
// Each epoch trains SASRec and BPR once (one optimizer step of each per batch of users) and logs every
// model's validation HR@10: metrics.png draws them per epoch. The end prints the test table and draws
// attention.png, the last position's attention over the history of four users (rows: layer and head).
// --window 1 lets each position attend to its own item only: SASRec without attention over the history.
// --dump-data FILE writes the sequences and the evaluation negatives for models/reference/recommender.py.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "metrics/metrics.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

struct Config {
  std::string movielens;                                         // empty: the synthetic data
  int64_t users = 2000, items = 500, seq_len = 50, factors = 8;  // session_sequences' sizes
  int64_t d_model = 64, heads = 2, layers = 2, max_len = 50;     // SASRec
  int64_t window = 0;  // SASRec's position t sees items t-window+1..t only (0: all before it)
  double dropout = 0.1, bpr_lr = 1e-2, bpr_reg = 1e-4;
  int64_t bpr_dim = 32, negatives = 100, k = 10;
};

// ---- the data: a sequence per user, leave-one-out ---------------------------------------------------------

enum Split { Val = 2, Test = 1 };  // the target is item n - split of a user's n items; the items before it are seen

struct Dataset {
  std::vector<std::vector<int64_t>> seqs;  // per user, items 0..n_items-1, oldest first
  std::vector<std::vector<int64_t>> had;   // the same, sorted and unique: the items a user ever had
  int64_t n_items = 0;
  std::optional<data::Sessions> truth;     // the synthetic data's model, for the oracle
  int64_t users() const { return (int64_t)seqs.size(); }
  int64_t end(int64_t u, Split s) const { return (int64_t)seqs[u].size() - s; }  // the target's index
  bool had_item(int64_t u, int64_t i) const { return std::binary_search(had[u].begin(), had[u].end(), i); }
};

Dataset load(const Config& c, uint64_t seed) {
  Dataset d;
  if (c.movielens.empty()) {
    d.truth = data::session_sequences(c.users, c.items, c.seq_len, c.factors, seed);
    std::vector<int64_t> flat = d.truth->sequences.to_vector<int64_t>();
    for (int64_t u = 0; u < c.users; ++u)
      d.seqs.emplace_back(flat.begin() + u * c.seq_len, flat.begin() + (u + 1) * c.seq_len);
    d.n_items = c.items;
  } else {
    data::UserSequences ml = data::load_movielens(c.movielens, 3);  // three items: train, validation, test
    d.seqs = std::move(ml.items), d.n_items = ml.n_items;
  }
  for (auto s : d.seqs) {
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
    d.had.push_back(std::move(s));
  }
  return d;
}

// (U, negatives) int64: per user, items it never had, uniform with replacement; Generator(seed) alone decides.
Tensor sample_negatives(const Dataset& d, int64_t count, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> out;
  for (int64_t u = 0; u < d.users(); ++u) {
    if ((int64_t)d.had[u].size() >= d.n_items)
      throw Error("recommender: user " + std::to_string(u) + " had every item; no negatives to sample");
    for (int64_t n = 0; n < count;) {
      int64_t i = (int64_t)(gen.next_u32() % (uint32_t)d.n_items);
      if (!d.had_item(u, i)) out.push_back(i), ++n;
    }
  }
  return from_vector(out, Shape{d.users(), count});
}

// The last L of s[0..end), left-padded with `pad`, appended to `out`.
void window(const std::vector<int64_t>& s, int64_t end, int64_t L, int64_t pad, std::vector<int64_t>& out) {
  for (int64_t t = end - L; t < end; ++t) out.push_back(t >= 0 ? s[t] : pad);
}

// ---- the models, smallest first -----------------------------------------------------------------------------

// Matrix factorisation: score(u, i) = P_u . Q_i, trained on BPR's pairs (u, an item u had, one u never had).
struct BPR : nn::Module {
  Tensor user, item;  // (U,K), (I,K)
  BPR(int64_t users, int64_t items, int64_t dim) : user(randn({users, dim}) * 0.1), item(randn({items, dim}) * 0.1) {
    register_parameter("user", user), register_parameter("item", item);
  }
  Tensor scores(const Tensor& users) { return matmul(index_select(user, 0, users), item.transpose(0, 1)); }  // (B,I)
  // users, pos, neg (B) -> -log σ(s_pos - s_neg) + reg · (|P_u|² + |Q_pos|² + |Q_neg|²), averaged
  Tensor loss(const Tensor& users, const Tensor& pos, const Tensor& neg, double reg) {
    Tensor p = index_select(user, 0, users), qp = index_select(item, 0, pos), qn = index_select(item, 0, neg);
    Tensor margin = (p * (qp - qn)).sum({1});
    return (softplus(-margin) + reg * (square(p) + square(qp) + square(qn)).sum({1})).mean();
  }
};

struct SASRec : nn::Module {
  int64_t n_items, window;
  nn::Embedding item_emb;  // (I+1,E): row I is the padding item
  nn::LearnedPositionalEncoding pos;
  nn::Dropout drop;
  nn::TransformerEncoder encoder;
  SASRec(const Config& c, int64_t items)
      : n_items(items), window(c.window), item_emb(items + 1, c.d_model), pos(c.d_model, c.max_len), drop(c.dropout),
        encoder(c.d_model, c.heads, c.layers, {.dim_feedforward = c.d_model, .dropout = c.dropout,
                                               .batch_first = true, .norm_first = true}, /*final_norm=*/true) {
    register_module("item_emb", item_emb), register_module("pos", pos), register_module("encoder", encoder);
    // N(0, 1/E): the input, scaled by √E, starts near N(0, 1) per coordinate, and a score (the dot product of
    // a LayerNorm'd state with an item) near N(0, 1). Embedding's N(0, 1) makes the first scores N(0, E).
    nn::init::normal_(item_emb.weight, 0, 1 / std::sqrt((double)c.d_model));
  }
  nn::MultiheadAttention::Args args(const Tensor& items) {  // padding is hidden, and the future
    nn::MultiheadAttention::Args a{.key_padding_mask = eq(items, scalar_tensor((double)n_items, int64)),
                                   .causal = true};
    if (window > 0) a.attn_mask = nn::local_attention_mask(items.size(1), window - 1, /*causal=*/true);
    return a;
  }
  Tensor embed(const Tensor& items) { return drop(pos(item_emb(items) * std::sqrt((double)item_emb.embedding_dim))); }
  // items (B,L), left-padded with I -> states (B,L,E)
  Tensor forward(const Tensor& items) { return encoder.forward(embed(items), args(items)); }
  Tensor operator()(const Tensor& items) { return forward(items); }
  // states (...,E) -> a score for every real item (...,I)
  Tensor scores(const Tensor& h) { return matmul(h, item_emb.weight.narrow(0, 0, n_items).transpose(0, 1)); }
  // The last position's attention in every layer, per head: (B, layers*NH, L). Each layer is pre-LN, so its
  // attention sees norm1 of its input, as in TransformerEncoderLayer::forward.
  Tensor last_attention(const Tensor& items) {
    Tensor x = embed(items);
    std::vector<Tensor> rows;
    for (size_t l = 0; l < encoder.layers.size(); ++l) {
      auto& layer = encoder.layers.at<nn::TransformerEncoderLayer>(l);
      nn::MultiheadAttention::Args a = args(items);
      a.need_weights = true, a.average_attn_weights = false;
      Tensor h = layer.norm1(x), w = layer.self_attn.forward(h, h, h, a).weights;  // (B,NH,L,L)
      rows.push_back(w.select(2, w.size(2) - 1));
      x = layer.forward(x, args(items));
    }
    return cat(rows, 1);
  }
};

struct Models : nn::Module {  // both trained models, so that one checkpoint and one Adam hold them
  SASRec sasrec;
  BPR bpr;
  Models(const Config& c, const Dataset& d) : sasrec(c, d.n_items), bpr(d.users(), d.n_items, c.bpr_dim) {
    register_module("sasrec", sasrec), register_module("bpr", bpr);
  }
};

// ---- the training step ------------------------------------------------------------------------------------------

// One step of each model: SASRec on the users' training items (inputs t, targets t+1, the last max_len),
// BPR on `pairs` (user, item) from the training items, each with a negative from `gen`.
std::pair<double, double> train_step(Models& m, optim::Adam& opt, const Dataset& d, const Config& c,
                                     const std::vector<int64_t>& users,
                                     const std::vector<std::pair<int64_t, int64_t>>& pairs, Generator& gen) {
  std::vector<int64_t> in, target;
  for (int64_t u : users) {
    window(d.seqs[u], d.end(u, Val) - 1, c.max_len, d.n_items, in);
    window(std::vector<int64_t>(d.seqs[u].begin() + 1, d.seqs[u].end()), d.end(u, Val) - 1, c.max_len, -100, target);
  }
  const int64_t B = (int64_t)users.size();
  Tensor logits = m.sasrec.scores(m.sasrec(from_vector(in, Shape{B, c.max_len})));  // (B,L,I)
  Tensor ce = nn::cross_entropy(logits.reshape({-1, d.n_items}), from_vector(target, Shape{B * c.max_len}));
  std::vector<int64_t> pu, pos, neg;
  for (auto [u, i] : pairs) {
    int64_t j;
    do j = (int64_t)(gen.next_u32() % (uint32_t)d.n_items); while (d.had_item(u, j));
    pu.push_back(u), pos.push_back(i), neg.push_back(j);
  }
  const Shape P{(int64_t)pairs.size()};
  Tensor bpr = m.bpr.loss(from_vector(pu, P), from_vector(pos, P), from_vector(neg, P), c.bpr_reg);
  opt.zero_grad();
  (ce + bpr).backward();  // the two share no parameters: each gets its own gradient
  opt.step();
  return {ce.item(), bpr.item()};
}

// ---- evaluation: HR@10 and NDCG@10, sampled and full ---------------------------------------------------------

struct Ranking { double hr, ndcg, hr_full, ndcg_full; };

// Ranks each user's target under scorer(users (B) int64, split) -> (B,I), among the sampled negatives (U,N)
// and among all items.
template <class Scorer>
Ranking evaluate(const Dataset& d, Split split, const Tensor& negatives, int64_t k, Scorer scorer) {
  NoGradGuard no_grad;
  std::vector<Tensor> sampled, full;
  for (int64_t u0 = 0; u0 < d.users(); u0 += 256) {
    const int64_t B = std::min<int64_t>(256, d.users() - u0);
    std::vector<int64_t> targets;
    for (int64_t u = u0; u < u0 + B; ++u) targets.push_back(d.seqs[u][d.end(u, split)]);
    Tensor t = from_vector(targets, Shape{B}), scores = scorer(arange(u0, u0 + B), split).to(float64);
    full.push_back(metrics::target_rank(scores, t));
    Tensor candidates = cat({t.unsqueeze(1), negatives.narrow(0, u0, B)}, 1);  // the target is column 0
    sampled.push_back(metrics::target_rank(gather(scores, 1, candidates), zeros({B}, int64)));
  }
  Tensor s = cat(sampled), f = cat(full);
  return {metrics::hit_rate_at_k(s, k), metrics::ndcg_at_k(s, k), metrics::hit_rate_at_k(f, k),
          metrics::ndcg_at_k(f, k)};
}

// The inputs of a split: for each user, the last max_len items before its target, left-padded.
Tensor history(const Dataset& d, const Tensor& users, Split split, int64_t L) {
  std::vector<int64_t> in;
  for (int64_t u : users.to_vector<int64_t>()) window(d.seqs[u], d.end(u, split), L, d.n_items, in);
  return from_vector(in, Shape{users.numel(), L});
}
// The item just before each user's target (B).
Tensor previous(const Dataset& d, const Tensor& users, Split split) {
  std::vector<int64_t> p;
  for (int64_t u : users.to_vector<int64_t>()) p.push_back(d.seqs[u][d.end(u, split) - 1]);
  return from_vector(p, Shape{users.numel()});
}

void dump(const Dataset& d, const Tensor& val_neg, const Tensor& test_neg, const std::string& path) {
  std::ofstream f(path);
  f << "n_items " << d.n_items << "\n";
  auto line = [&](const char* tag, const std::vector<int64_t>& v) {
    f << tag;
    for (int64_t x : v) f << ' ' << x;
    f << '\n';
  };
  for (int64_t u = 0; u < d.users(); ++u) {
    line("seq", d.seqs[u]);
    line("val_neg", val_neg.select(0, u).to_vector<int64_t>());
    line("test_neg", test_neg.select(0, u).to_vector<int64_t>());
  }
  if (!f) throw Error("recommender: cannot write '" + path + "'");
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("recommender", "Next-item recommendation: SASRec (Kang and McAuley 2018) against popularity, "
               "a Markov chain, BPR matrix factorisation and the oracle",
               {.epochs = 30, .batch_size = 128, .lr = 1e-3});
  cli.option("movielens", "a MovieLens u.data or ratings.dat to use instead of the synthetic data", std::string());
  cli.option("users", "synthetic data: users", 2000, 2);
  cli.option("items", "synthetic data: items (at least 2 more than --negatives)", 500, 2);
  cli.option("seq-len", "synthetic data: items per user", 50, 4);
  cli.option("factors", "synthetic data: the latent factors of the true model", 8, 1);
  cli.option("data-seed", "synthetic data: its seed", 0, 0);
  cli.option("d-model", "SASRec's width", 64, 1);
  cli.option("heads", "SASRec's attention heads", 2, 1);
  cli.option("layers", "SASRec's transformer layers", 2, 1);
  cli.option("max-len", "SASRec reads a user's last max-len items", 50, 1);
  cli.option("dropout", "SASRec's dropout", 0.1, 0.0, 0.9);
  cli.option("window", "SASRec attends to the last W items only (1: the current item alone; 0: all)", 0, 0);
  cli.option("dump-data", "write the sequences and the evaluation negatives to this file and stop", std::string());
  cli.option("resume", "continue from this checkpoint.safetensors (same data and sizes)", std::string());
  return zoo::main_guard("recommender", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.movielens = cli.get<std::string>("movielens"), .users = cli.get<int64_t>("users"),
             .items = cli.get<int64_t>("items"), .seq_len = cli.get<int64_t>("seq-len"),
             .factors = cli.get<int64_t>("factors"), .d_model = cli.get<int64_t>("d-model"),
             .heads = cli.get<int64_t>("heads"), .layers = cli.get<int64_t>("layers"),
             .max_len = cli.get<int64_t>("max-len"), .window = cli.get<int64_t>("window"),
             .dropout = cli.get<double>("dropout")};
    if (run.quick) {
      run.epochs = cli.given("epochs") ? run.epochs : 2;
      c.users = 300, c.items = 120, c.seq_len = 20, c.max_len = 20, c.d_model = 32;
      std::printf("recommender: --quick: 300 users, 120 items, 20 items each, d_model 32, %d epochs\n", run.epochs);
    }
    cli.require(c.d_model % c.heads == 0, "--d-model " + std::to_string(c.d_model) + " must be a multiple of --heads " +
                                              std::to_string(c.heads));
    cli.require(!c.movielens.empty() || c.items >= c.negatives + 2,
                "--items must be at least " + std::to_string(c.negatives + 2) + ", got " + std::to_string(c.items));
    Dataset d = load(c, cli.get<uint64_t>("data-seed"));
    const int64_t U = d.users(), I = d.n_items;
    Tensor val_neg = sample_negatives(d, c.negatives, run.seed + 1);
    Tensor test_neg = sample_negatives(d, c.negatives, run.seed + 2);
    if (const std::string path = cli.get<std::string>("dump-data"); !path.empty()) {
      dump(d, val_neg, test_neg, path);
      std::printf("recommender: wrote %lld users' sequences and negatives to %s\n", (long long)U, path.c_str());
      return 0;
    }

    // The baselines count what the training items hold: popularity, and transitions from item to item.
    std::vector<double> pop(I, 0), trans(I * I, 0);
    std::vector<std::pair<int64_t, int64_t>> pairs;  // (user, item) of every training item, for BPR
    for (int64_t u = 0; u < U; ++u)
      for (int64_t t = 0; t < d.end(u, Val); ++t) {
        const int64_t i = d.seqs[u][t];
        pop[i] += 1, pairs.emplace_back(u, i);
        if (t > 0) trans[d.seqs[u][t - 1] * I + i] += 1;
      }
    // Popularity, scaled below 1, breaks the Markov chain's ties (an unseen transition row is all zeros).
    Tensor popularity = from_vector(pop, Shape{I});
    Tensor tie_break = popularity / (*std::max_element(pop.begin(), pop.end()) + 1);
    Tensor transitions = from_vector(trans, Shape{I, I});

    manual_seed(run.seed);
    Models m(c, d);
    optim::Adam opt(std::vector<optim::Adam::Group>{{m.sasrec.parameters(), {.lr = run.lr}},
                                                    {m.bpr.parameters(), {.lr = c.bpr_lr}}});
    const std::string resume = cli.get<std::string>("resume");
    int64_t step = resume.empty() ? 0 : zoo::resume_training(cli, run, m, opt);
    const int64_t per_epoch = (U + run.batch_size - 1) / run.batch_size;
    const int64_t pairs_per_step = ((int64_t)pairs.size() + per_epoch - 1) / per_epoch;
    cli.require(step % per_epoch == 0, "the checkpoint's step " + std::to_string(step) + " is not at the end of an "
                                       "epoch of --batch-size " + std::to_string(run.batch_size));
    std::printf("recommender: %lld users, %lld items, %zu training items; SASRec %lld parameters, BPR %lld\n",
                (long long)U, (long long)I, pairs.size(), (long long)m.sasrec.num_parameters(),
                (long long)m.bpr.num_parameters());

    using Scorer = std::function<Tensor(const Tensor&, Split)>;  // users (B) -> scores (B,I)
    std::vector<std::pair<std::string, Scorer>> models = {
        {"popularity", [&](const Tensor& u, Split) { return popularity.unsqueeze(0).expand({u.numel(), I}); }},
        {"markov",
         [&](const Tensor& u, Split s) { return index_select(transitions, 0, previous(d, u, s)) + tie_break; }},
        {"bpr", [&](const Tensor& u, Split) { return m.bpr.scores(u); }},
        {"sasrec", [&](const Tensor& u, Split s) {
           return m.sasrec.scores(m.sasrec(history(d, u, s, c.max_len)).select(1, c.max_len - 1)); }}};
    if (d.truth) models.push_back({"oracle", [&](const Tensor& u, Split s) {
                                     return data::next_item_logits(*d.truth, u, previous(d, u, s)); }});
    std::map<std::string, double> fixed;  // the validation HR@10 of the models that do not train
    for (auto& [name, scorer] : models)
      if (name != "bpr" && name != "sasrec") fixed[name] = evaluate(d, Val, val_neg, c.k, scorer).hr;

    zoo::RunLog log(cli, run);
    log.set_config("users", U), log.set_config("items", I), log.set_config("training_items", (int64_t)pairs.size());
    for (int64_t epoch = step / per_epoch; epoch < run.epochs; ++epoch) {
      // The epoch's user order and BPR pairs come from (seed, epoch) alone, so a resumed run sees the same.
      Generator gen(run.seed + 3);
      gen.set_offset((uint64_t)epoch << 40);
      std::vector<int64_t> order = data::random_permutation(U, gen);
      std::vector<int64_t> pair_order = data::random_permutation((int64_t)pairs.size(), gen);
      zoo::ProgressBar bar(log.epoch_label((int)epoch + 1), per_epoch);
      double bpr_loss = 0;
      m.train();
      for (int64_t b = 0; b < per_epoch; ++b, ++step) {
        std::vector<int64_t> users(order.begin() + b * run.batch_size,
                                   order.begin() + std::min(U, (b + 1) * run.batch_size));
        std::vector<std::pair<int64_t, int64_t>> batch_pairs;
        for (int64_t p = b * pairs_per_step; p < std::min<int64_t>(pairs.size(), (b + 1) * pairs_per_step); ++p)
          batch_pairs.push_back(pairs[pair_order[p]]);
        auto [ce, bpr] = train_step(m, opt, d, c, users, batch_pairs, gen);
        zoo::check_finite_loss(ce + bpr, step + 1);
        bar.update(ce, (int64_t)users.size());
        bpr_loss += bpr / per_epoch;
      }
      bar.finish();
      m.eval();
      zoo::Metrics row{{"train_loss", bar.mean_loss()}, {"bpr_loss", bpr_loss}};
      for (auto& [name, scorer] : models)
        row.emplace_back(name + "_hr10", fixed.count(name) ? fixed[name] : evaluate(d, Val, val_neg, c.k, scorer).hr);
      log.epoch((int)epoch + 1, row);
      optim::save_training_state(log.dir() + "/checkpoint.safetensors", m, opt, optim::StateDict{}, step,
                                 zoo::checkpoint_metadata(run));
    }

    // The test table, and SASRec's gap to the oracle.
    m.eval();
    std::map<std::string, Ranking> test;
    std::printf("\n%-12s %8s %8s %10s %10s   (test; sampled: among %lld negatives; full: among all %lld items)\n",
                "model", "HR@10", "NDCG@10", "HR@10 full", "NDCG full", (long long)c.negatives, (long long)I);
    for (auto& [name, scorer] : models) {
      Ranking r = test[name] = evaluate(d, Test, test_neg, c.k, scorer);
      std::printf("%-12s %8.4f %8.4f %10.4f %10.4f\n", name.c_str(), r.hr, r.ndcg, r.hr_full, r.ndcg_full);
    }
    const Ranking& s = test["sasrec"];
    zoo::Metrics final{{"hr10", s.hr}, {"ndcg10", s.ndcg}, {"hr10_full", s.hr_full}, {"ndcg10_full", s.ndcg_full}};
    for (const char* name : {"popularity", "markov", "bpr", "oracle"})
      if (test.count(name))
        final.insert(final.end(), {{std::string(name) + "_hr10", test[name].hr}, {std::string(name) + "_ndcg10",
                      test[name].ndcg}, {std::string(name) + "_hr10_full", test[name].hr_full}});
    if (d.truth) {
      const double gap = 1 - s.hr / test["oracle"].hr, gap_full = 1 - s.hr_full / test["oracle"].hr_full;
      final.push_back({"gap_to_oracle", gap}), final.push_back({"gap_to_oracle_full", gap_full});
      std::printf("SASRec's HR@10 is %.1f%% below the oracle's (full ranking: %.1f%%)\n", 100 * gap, 100 * gap_full);
    }

    // attention.png: for users 0..3, the last position's attention over its test history, per layer and head.
    NoGradGuard no_grad;
    const int64_t n = std::min<int64_t>(4, U);
    Tensor w = m.sasrec.last_attention(history(d, arange(0, n), Test, c.max_len));  // (n, layers*NH, L)
    std::vector<std::string> rows, cols, titles;
    for (int64_t l = 0; l < c.layers; ++l)
      for (int64_t h = 0; h < c.heads; ++h) rows.push_back("L" + std::to_string(l + 1) + " h" + std::to_string(h));
    for (int64_t t = c.max_len; t >= 1; --t) cols.push_back("-" + std::to_string(t));
    for (int64_t u = 0; u < n; ++u) titles.push_back("user " + std::to_string(u));
    viz::save_matrix_plot(w, log.dir() + "/attention.png",
                          {.row_labels = rows, .col_labels = cols, .titles = titles, .scale = 10, .vmin = 0.0});
    log.final(final);
    log.finish();
    return 0;
  });
}

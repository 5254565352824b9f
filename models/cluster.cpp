// cluster: deep clustering of Fashion-MNIST, with and without attention.
//
// The literature's protocol (DEC, IDEC, N2D): all 70,000 images, train and test together, 10 clusters; the labels
// are used only for scoring, by Hungarian accuracy (ACC), NMI and ARI (metrics/metrics.h, as scikit-learn's).
// The recipe has three stages:
//   1. an autoencoder learns a 10-d code z of each image (MSE, Adam); --arch picks the encoder;
//   2. a manifold step, N2D's idea (McConville et al. 2020) made cheap: a k-nearest-neighbour graph of the codes,
//      and its spectral embedding (Ng, Jordan and Weiss 2001), the top 10 eigenvectors of D^-1/2 W D^-1/2 found by
//      subspace iteration. k-means in the raw 10-d code mixes garments whose codes form long, curved clouds; the
//      graph follows the clouds, and k-means on the embedding's unit rows cuts them apart;
//   3. k-means (metrics::kmeans, as sklearn's KMeans) on that embedding gives the clusters.
// --arch:
//   ae          no attention: encoder 784-500-500-10 and decoder 10-500-500-784, ReLU (DEC's, one layer shorter);
//   patch-attn  the encoder is a one-layer patch transformer: the image as 16 patches of 7x7, each a 64-d token
//               with a learned position, one self-attention block (4 heads) and an MLP, then flattened to 10;
//   cos-attn    ae, then its last --self-train epochs spent on DEC's self-training, with the soft assignment made
//               by cosine-similarity attention from each code to 10 learnable centroids: q_ij = softmax_j(cos(z_i,
//               mu_j) / tau). The centroids start at the means of stage 3's clusters; each epoch the target
//               p_ij ~ q_ij^2 / sum_i q_ij sharpens q and balances the clusters, and KL(p || q) plus the
//               reconstruction loss (IDEC) trains encoder and centroids. The clusters are then argmax_j q_ij.
//               (DEC's Student-t kernel (1 + |z - mu|^2)^-1 is this attention with distance in place of angle.)
// All three train for the same --epochs over the same 70,000 images. models/RESULTS.md has the measured table.
// The run prints the three metrics; the pictures are nearest.png (row j: the 10 images closest to cluster j's
// mean code), confusion.png (labels against clusters, the clusters in their Hungarian order), and attention.png:
// patch-attn's attention maps (how much each of the 4x4 patches is looked at, over 16 images), cos-attn's soft
// assignments of 40 images. --quick: the first 2000 images, 3 epochs of batches of 64. --synthetic clusters a
// well-separated Gaussian mixture with stages 2 and 3 alone, where the right answer (ACC 1) is known.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "metrics/metrics.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

struct Config {
  std::string arch = "ae", data_dir;
  int64_t hidden = 500, latent = 10, clusters = 10;
  int64_t neighbours = 10, iterations = 200;  // the kNN graph; subspace iterations of the spectral embedding
  int self_train = 3;                         // cos-attn: epochs of self-training, out of --epochs
  double temperature = 0.1;                   // cos-attn: tau
  int64_t images = 70000;
};

// ---- the encoders, then the autoencoder -----------------------------------------------------------------------

struct MlpEncoder : nn::Module {
  nn::Linear fc1, fc2, fc3;
  explicit MlpEncoder(const Config& c) : fc1(784, c.hidden), fc2(c.hidden, c.hidden), fc3(c.hidden, c.latent) {
    register_module("fc1", fc1), register_module("fc2", fc2), register_module("fc3", fc3);
  }
  Tensor forward(const Tensor& x) { return fc3(relu(fc2(relu(fc1(x))))); }  // x (B,784) -> z (B,10)
};

// ViT in miniature: pre-norm attention and MLP blocks over the 16 patch tokens, E = 64.
struct PatchEncoder : nn::Module {
  nn::Linear embed{49, 64}, fc1{64, 128}, fc2{128, 64}, out;
  nn::LearnedPositionalEncoding position{64, 16};
  nn::LayerNorm ln1{64}, ln2{64};
  nn::MultiheadAttention attn{64, 4, {.batch_first = true}};
  explicit PatchEncoder(const Config& c) : out(16 * 64, c.latent) {
    register_module("embed", embed), register_module("position", position), register_module("ln1", ln1);
    register_module("attn", attn), register_module("ln2", ln2), register_module("fc1", fc1);
    register_module("fc2", fc2), register_module("out", out);
  }
  // x (B,784) -> patches (B,16,49) -> tokens (B,16,64) -> z (B,10); the attention (B,16,16), averaged over heads
  std::pair<Tensor, Tensor> forward_with_attention(const Tensor& x) {
    const int64_t B = x.size(0);
    Tensor patches = x.reshape({B, 4, 7, 4, 7}).permute({0, 1, 3, 2, 4}).reshape({B, 16, 49});
    Tensor h = position(embed(patches));
    Tensor n = ln1(h);
    nn::MhaOutput a = attn(n, n, n, {.need_weights = true});
    h = h + a.out;
    h = h + fc2(relu(fc1(ln2(h))));
    return {out(h.flatten(1)), a.weights};
  }
  Tensor forward(const Tensor& x) { return forward_with_attention(x).first; }
};

struct AutoEncoder : nn::Module {
  std::unique_ptr<MlpEncoder> mlp;
  std::unique_ptr<PatchEncoder> patches;
  nn::Linear dec1, dec2, dec3;
  Tensor centroids;  // cos-attn: (K,10), set by start_self_training
  explicit AutoEncoder(const Config& c)
      : dec1(c.latent, c.hidden), dec2(c.hidden, c.hidden), dec3(c.hidden, 784),
        centroids(zeros({c.clusters, c.latent})) {
    if (c.arch == "patch-attn") patches = std::make_unique<PatchEncoder>(c), register_module("encoder", *patches);
    else mlp = std::make_unique<MlpEncoder>(c), register_module("encoder", *mlp);
    register_module("dec1", dec1), register_module("dec2", dec2), register_module("dec3", dec3);
    if (c.arch == "cos-attn") centroids.requires_grad_(true), register_parameter("centroids", centroids);
  }
  Tensor encode(const Tensor& x) { return patches ? patches->forward(x) : mlp->forward(x); }
  Tensor decode(const Tensor& z) { return sigmoid(dec3(relu(dec2(relu(dec1(z)))))); }  // z (B,10) -> (B,784)
};

// q = softmax_j(cos(z_i, mu_j) / tau): attention from each code (a query) to the centroids (the keys), whose
// values are one-hot cluster indicators, so the attention's output is the assignment itself. z (B,10) -> (B,K)
Tensor soft_assign(AutoEncoder& model, const Tensor& z, double temperature) {
  const int64_t K = model.centroids.size(0);
  nn::AttentionOptions options{.score = nn::AttentionScore::Cosine, .temperature = full({}, 1 / temperature),
                               .impl = nn::AttentionImpl::Composite};
  return nn::scaled_dot_product_attention(z.unsqueeze(1), model.centroids.unsqueeze(0), eye(K).unsqueeze(0), options)
      .out.squeeze(1);
}

// ---- stage 2: the kNN graph and its spectral embedding ----------------------------------------------------------

// The k nearest neighbours of each row of z (N,D), itself excluded -> (N,k) int64. Squared distances come from
// |a|^2 - 2 a.b + |b|^2, 256 rows at a time against all N: O(N^2 D) in matmuls, O(256 N) memory.
Tensor knn(const Tensor& z, int64_t k) {
  NoGradGuard no_grad;
  Tensor sq = z.square().sum(1);  // (N)
  return zoo::over_batches(z, 256, [&](const Tensor& rows) {
    const int64_t b = rows.size(0);
    Tensor d = rows.square().sum(1, true) - 2.0 * matmul(rows, z.transpose(0, 1)) + sq.unsqueeze(0);  // (b,N)
    return topk(d, k + 1, 1, /*largest=*/false).second.narrow(1, 1, k).reshape({b, k});  // the nearest is itself
  });
}

// The top m eigenvectors (N,m) of A = D^-1/2 W D^-1/2, W the symmetrised kNN graph (w_ij = 1 when either is among
// the other's neighbours), by subspace iteration: V <- orthonormalise(A V), from random V. A's eigenvalues lie in
// [-1, 1] with 1 on top; the components of V along the m largest grow fastest. A few hundred steps do not converge
// the near-equal top eigenvalues of a graph with ten loose clusters, but they do smooth V along the graph,
// which is what k-means needs (power iteration clustering, Lin and Cohen 2010, stops early on purpose).
std::vector<double> spectral_embedding(const Tensor& neighbours, int64_t m, int64_t iterations, uint64_t seed) {
  const int64_t N = neighbours.size(0), k = neighbours.size(1);
  const std::vector<int64_t> nb = neighbours.to_vector<int64_t>();
  std::vector<std::vector<int64_t>> adj(N);  // W as adjacency lists
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < k; ++j) adj[i].push_back(nb[i * k + j]), adj[nb[i * k + j]].push_back(i);
  std::vector<double> scale(N);  // D^-1/2
  for (int64_t i = 0; i < N; ++i) {
    std::sort(adj[i].begin(), adj[i].end());
    adj[i].erase(std::unique(adj[i].begin(), adj[i].end()), adj[i].end());
    scale[i] = 1 / std::sqrt((double)adj[i].size());
  }
  Generator gen(seed);
  std::vector<double> V = randn({N, m}, float64, &gen).to_vector<double>(), AV(N * m);  // row-major (N,m)
  for (int64_t it = 0; it < iterations; ++it) {
    for (int64_t i = 0; i < N; ++i) {
      double* out = &AV[i * m];
      std::fill(out, out + m, 0.0);
      for (int64_t j : adj[i])
        for (int64_t c = 0; c < m; ++c) out[c] += scale[j] * V[j * m + c];
      for (int64_t c = 0; c < m; ++c) out[c] *= scale[i];
    }
    for (int64_t c = 0; c < m; ++c) {  // modified Gram-Schmidt on the columns
      for (int64_t p = 0; p < c; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < N; ++i) dot += AV[i * m + c] * AV[i * m + p];
        for (int64_t i = 0; i < N; ++i) AV[i * m + c] -= dot * AV[i * m + p];
      }
      double norm = 0;
      for (int64_t i = 0; i < N; ++i) norm += AV[i * m + c] * AV[i * m + c];
      for (int64_t i = 0; i < N; ++i) AV[i * m + c] /= std::sqrt(norm);
    }
    std::swap(V, AV);
  }
  return V;
}

// Stages 2 and 3: z (N,D) -> cluster labels (N) int64 in 0..K-1, and the embedding k-means ran on (N,K).
std::pair<Tensor, Tensor> spectral_clusters(const Config& c, const Tensor& z, uint64_t seed) {
  std::printf("cluster: the %lld-nearest-neighbour graph of %lld codes, %lld steps of subspace iteration, k-means\n",
              (long long)c.neighbours, (long long)z.size(0), (long long)c.iterations);
  const int64_t N = z.size(0), K = c.clusters;
  std::vector<double> V = spectral_embedding(knn(z.to(float32), c.neighbours), K, c.iterations, seed);
  for (int64_t i = 0; i < N; ++i) {  // unit rows: NJW's normalisation
    double norm = 1e-12;
    for (int64_t j = 0; j < K; ++j) norm += V[i * K + j] * V[i * K + j];
    for (int64_t j = 0; j < K; ++j) V[i * K + j] /= std::sqrt(norm);
  }
  Tensor embedding = from_vector(V, {N, K}).to(float32);
  return {metrics::kmeans(embedding, (int)K, 10, 300, 1e-4, seed).labels, embedding};
}

// ---- stage 1: training ------------------------------------------------------------------------------------------

// cos-attn's self-training target: p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij, DEC's.
Tensor sharpened(const Tensor& q) {
  Tensor p = q.square() / q.sum(0, true);
  return p / p.sum(1, true);
}

// One epoch over x (N,784): the reconstruction loss and, given targets p (N,K), IDEC's 0.1 KL(p || q) too.
double train_epoch(AutoEncoder& model, optim::Adam& opt, const Config& c, const zoo::RunConfig& run,
                   const Tensor& x, const Tensor& p, const std::string& label, int epoch) {
  std::vector<Tensor> columns{x};
  if (p.defined()) columns.push_back(p);
  data::DataLoader loader(data::TensorDataset{columns},
                          {.batch_size = run.batch_size, .shuffle = true, .seed = run.seed + (uint64_t)epoch});
  zoo::ProgressBar bar(label, loader.size());
  for (auto& batch : loader) {
    Tensor z = model.encode(batch[0]);
    Tensor loss = nn::mse_loss(model.decode(z), batch[0]);
    if (p.defined()) {
      Tensor q = soft_assign(model, z, c.temperature);
      loss = loss + 0.1 * (batch[1] * (clamp(batch[1], 1e-12, 1).log() - clamp(q, 1e-12, 1).log())).sum(1).mean();
    }
    opt.zero_grad();
    loss.backward();
    opt.step();
    zoo::check_finite_loss(loss.item(), 0);
    bar.update(loss.item(), batch[0].size(0));
  }
  bar.finish();
  return bar.mean_loss();
}

// ---- evaluation: the metrics and the pictures -------------------------------------------------------------------

// The confusion counts (10 labels, K clusters), and each label's cluster under the Hungarian match.
std::pair<Tensor, std::vector<int64_t>> confusion(const Tensor& labels, const Tensor& clusters, int64_t K) {
  const std::vector<int64_t> y = labels.to_vector<int64_t>(), k = clusters.to_vector<int64_t>();
  std::vector<double> counts(10 * K), cost(10 * K);
  for (size_t i = 0; i < y.size(); ++i) counts[y[i] * K + k[i]] += 1;
  for (size_t i = 0; i < counts.size(); ++i) cost[i] = -counts[i];
  return {from_vector(counts, {10, K}), metrics::linear_sum_assignment(cost, 10, K)};
}

void save_pictures(AutoEncoder& model, const Config& c, const Tensor& x, const Tensor& z, const Tensor& labels,
                   const Tensor& clusters, const std::string& dir) {
  NoGradGuard no_grad;
  auto [counts, match] = confusion(labels, clusters, c.clusters);
  std::vector<std::string> names(data::fashion_mnist_classes.begin(), data::fashion_mnist_classes.end()), cols;
  for (int64_t j : match) cols.push_back("c" + std::to_string(j));
  viz::save_matrix_plot(index_select(counts, 1, from_vector(match, {10})), dir + "/confusion.png",
                        {.row_labels = names, .col_labels = cols});
  // Row j: the 10 members of label j's cluster nearest the cluster's mean code.
  const std::vector<int64_t> k = clusters.to_vector<int64_t>();
  std::vector<Tensor> rows;
  for (int64_t j : match) {
    std::vector<int64_t> members;
    for (size_t i = 0; i < k.size(); ++i)
      if (k[i] == j) members.push_back((int64_t)i);
    if (members.empty()) continue;
    Tensor zj = index_select(z, 0, from_vector(members, {(int64_t)members.size()}));
    Tensor d = (zj - zj.mean(0, true)).square().sum(1);
    const int64_t n = std::min<int64_t>(10, (int64_t)members.size());
    const std::vector<int64_t> nearest = topk(d, n, 0, false).second.to_vector<int64_t>();
    std::vector<int64_t> picked(10, members[nearest[0]]);
    for (int64_t i = 0; i < n; ++i) picked[i] = members[nearest[i]];
    rows.push_back(index_select(x, 0, from_vector(picked, {10})));
  }
  viz::save_image_grid(cat(rows, 0).reshape({-1, 1, 28, 28}), dir + "/nearest.png", {.nrow = 10});
  if (model.patches) {  // how much each patch is looked at, averaged over the 16 queries, over 16 images
    Tensor first = x.narrow(0, 0, 16), seen = model.patches->forward_with_attention(first).second.mean(1);
    std::vector<Tensor> tiles;  // each overlay's RGB bytes back as a (3,56,56) tensor in [0,1], for one grid
    for (int64_t i = 0; i < 16; ++i) {
      viz::Image im = viz::render_overlay(first.select(0, i).reshape({1, 28, 28}), seen.select(0, i).reshape({4, 4}),
                                          {.scale = 2});
      tiles.push_back(from_vector(std::vector<float>(im.pixels.begin(), im.pixels.end()), {56, 56, 3}) / 255.0);
    }
    viz::save_image_grid(stack(tiles).permute({0, 3, 1, 2}), dir + "/attention.png");
  } else if (c.arch == "cos-attn") {  // the attention of 40 images over the centroids: their soft assignments
    viz::attention_heatmap(soft_assign(model, z.narrow(0, 0, 40), c.temperature), dir + "/attention.png",
                           {.titles = {"cos-attn: q (image, centroid)"}});
  }
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("cluster", "Deep clustering of all 70,000 Fashion-MNIST images: an autoencoder, its kNN graph's "
               "spectral embedding, k-means; with and without attention",
               {.epochs = 20, .batch_size = 256, .lr = 1e-3});
  cli.option("arch", "ae (no attention), patch-attn (a patch-transformer encoder) or cos-attn (ae, then "
             "self-training of a cosine-attention soft assignment to learnable centroids)", std::string("ae"));
  cli.option("neighbours", "k of the k-nearest-neighbour graph", 10, 1);
  cli.option("iterations", "subspace iterations of the spectral embedding", 200, 1);
  cli.option("self-train", "cos-attn: epochs of self-training, out of --epochs", 3, 1);
  cli.option("temperature", "cos-attn: tau of q = softmax(cos(z, mu) / tau)", 0.1, 1e-3);
  cli.option("synthetic", "cluster 2000 points of 10 well-separated Gaussians in 16-d by stages 2 and 3 alone "
             "(the answer is known: ACC 1)", false);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("resume", "continue from this checkpoint.safetensors (same --arch and --seed)", std::string());
  return zoo::main_guard("cluster", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .data_dir = cli.get<std::string>("data"),
             .neighbours = cli.get<int64_t>("neighbours"), .iterations = cli.get<int64_t>("iterations"),
             .self_train = cli.get<int>("self-train"), .temperature = cli.get<double>("temperature")};
    cli.require(c.arch == "ae" || c.arch == "patch-attn" || c.arch == "cos-attn",
                "--arch must be ae, patch-attn or cos-attn, got '" + c.arch + "'");
    if (run.quick) {
      c.images = 2000;
      if (!cli.given("epochs")) run.epochs = 3;
      if (!cli.given("batch-size")) run.batch_size = 64;
      if (!cli.given("self-train")) c.self_train = 1;
      if (!cli.given("iterations")) c.iterations = 50;
    }
    cli.require(c.arch != "cos-attn" || c.self_train <= run.epochs, "--self-train " +
                std::to_string(c.self_train) + " must be <= --epochs " + std::to_string(run.epochs));
    zoo::RunLog log(cli, run);
    log.set_config("images", c.images);
    manual_seed(run.seed);
    if (cli.get<bool>("synthetic")) {
      data::Mixture m = data::mixture_of_gaussians(2000, c.clusters, 16, run.seed);
      Tensor clusters = spectral_clusters(c, m.points, run.seed).first;
      log.final({{"acc", metrics::clustering_accuracy(m.labels, clusters)}, {"nmi", metrics::nmi(m.labels, clusters)},
                 {"ari", metrics::ari(m.labels, clusters)}});
      log.finish();
      return 0;
    }
    // All 70,000 images, train then test, as (N,784) in [0,1].
    data::FashionMNIST train = data::load_fashion_mnist(true, data::Scale::ZeroOne, c.data_dir);
    data::FashionMNIST test = data::load_fashion_mnist(false, data::Scale::ZeroOne, c.data_dir);
    Tensor x = cat({train.images, test.images}, 0).reshape({-1, 784}).narrow(0, 0, c.images).contiguous();
    Tensor labels = cat({train.labels, test.labels}, 0).narrow(0, 0, c.images).contiguous();

    AutoEncoder model(c);
    optim::Adam opt(model.parameters(), {.lr = run.lr});
    const std::string resume = cli.get<std::string>("resume");
    const int64_t per_epoch = (c.images + run.batch_size - 1) / run.batch_size;
    int start = resume.empty() ? 0 : (int)(zoo::resume_training(cli, run, model, opt) / per_epoch);
    const int pretrain = run.epochs - (c.arch == "cos-attn" ? c.self_train : 0);
    std::printf("cluster: %s, %lld parameters, %lld images; epochs %d to %d of %d (%d of pretraining)\n",
                c.arch.c_str(), (long long)model.num_parameters(), (long long)c.images, start + 1, run.epochs,
                run.epochs, pretrain);
    auto codes = [&] { return zoo::over_batches(x, 1000, [&](const Tensor& b) { return model.encode(b); }); };
    for (int epoch = start + 1; epoch <= run.epochs; ++epoch) {
      Tensor p;
      if (epoch > pretrain) {  // cos-attn's self-training: centroids first, then this epoch's target
        if (epoch == pretrain + 1) {
          NoGradGuard no_grad;
          Tensor z = codes(), k = spectral_clusters(c, z, run.seed).first;
          for (int64_t j = 0; j < c.clusters; ++j) {
            Tensor in = (k == j).to(float32).unsqueeze(1);  // (N,1)
            model.centroids.select(0, j).copy_((z * in).sum(0) / clamp(in.sum(), 1, 1e30));
          }
        }
        p = sharpened(zoo::over_batches(x, 1000, [&](const Tensor& b) {
          return soft_assign(model, model.encode(b), c.temperature);
        }));
      }
      model.train();
      const double loss = train_epoch(model, opt, c, run, x, p, log.epoch_label(epoch), epoch);
      log.epoch(epoch, {{"train_loss", loss}});
      optim::save_training_state(log.dir() + "/checkpoint.safetensors", model, opt, optim::StateDict{},
                                 epoch * per_epoch, zoo::checkpoint_metadata(run, {{"arch", c.arch}}));
    }

    model.eval();
    Tensor z = codes(), clusters;
    if (c.arch == "cos-attn")
      clusters =
          argmax(zoo::over_batches(z, 1000, [&](const Tensor& b) { return soft_assign(model, b, c.temperature); }), 1);
    else
      clusters = spectral_clusters(c, z, run.seed).first;
    Tensor plain = metrics::kmeans(z, (int)c.clusters, 10, 300, 1e-4, run.seed).labels;  // k-means on z, for contrast
    log.final({{"acc", metrics::clustering_accuracy(labels, clusters)}, {"nmi", metrics::nmi(labels, clusters)},
               {"ari", metrics::ari(labels, clusters)}, {"kmeans_acc", metrics::clustering_accuracy(labels, plain)},
               {"kmeans_nmi", metrics::nmi(labels, plain)}});
    save_pictures(model, c, x, z, labels, clusters, log.dir());
    log.finish();
    return 0;
  });
}

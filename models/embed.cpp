// embed: a network that maps a Fashion-MNIST image to a point in 2-D, trained as a neighbour embedding. Unlike
// t-SNE it is a function: it places images it never saw without refitting.
//
// The recipe, parametric and contrastive (Damrich et al. 2023, "From t-SNE to UMAP with contrastive learning";
// Sainburg et al. 2021, "Parametric UMAP"):
//   1. the neighbour graph: the 60,000 training images reduced to their first 50 principal components, and each
//      image's 15 nearest neighbours there (exact, by GEMM in blocks). PCA-50 keeps the distances that matter
//      for neighbours at a sixteenth of the cost of all 784 pixels.
//   2. the objective, InfoNCE with t-SNE's Cauchy kernel q(a,b) = 1 / (1 + |a - b|²): a batch holds B images i,
//      each with one of its neighbours j drawn at random, and each of the 2B points must pick its partner out of
//      the 2B-1 others (SimCLR's NT-Xent form):
//        loss = -1/2B Σ_a log( q(y_a, y_partner(a)) / Σ_{c != a} q(y_a, y_c) ).
//      The other 2B-2 points are the negatives that push unrelated images apart. The heavy-tailed kernel lets
//      clusters form with space between them, as in t-SNE; the more negatives, the closer to t-SNE.
//   3. the encoder, --arch:
//        mlp   784 -> 512 -> 256 -> 2, ReLU: the baseline without attention;
//        attn  16 patches of 7x7 pixels -> tokens of width 64 with learned positions -> 2 pre-LN transformer
//              layers (4 heads) -> LayerNorm -> the 16 tokens flattened -> 256 -> 2: each patch sees the whole
//              garment before the head reads it;
//        pca   no network: the first 2 principal components (the anchor, to check the metrics against).
// models/RESULTS.md has the table: no run reaches t-SNE's trustworthiness (0.966 against 0.989) or 5-NN accuracy
// (0.72 against 0.80); attention helps per epoch (10 epochs: trust@5 0.965 against 0.955), not per second.
// Scored on the 10,000 test images: trustworthiness at k = 5 and 12 on the first 5,000 against their pixels,
// 5-NN accuracy in 2-D by 5-fold cross-validation, and k-means (k = 10) ACC and NMI in 2-D; metrics.json holds
// them under `final` as trust5, trust12, knn5_acc, acc and nmi. Pictures: embedding.png (the test points coloured
// by class, with thumbnails of a few images at their points) and embedding_scatter.png (gnuplot, with a legend).
// checkpoint.safetensors after each epoch lets --resume continue. --quick: 2,000 training images, 2 epochs, the
// first 1,000 test images (trustworthiness on 500).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "metrics/metrics.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

struct Config {
  std::string arch = "attn", data_dir;
  int64_t neighbours = 15, components = 50;  // the graph: k nearest neighbours in PCA-`components` space
  int64_t width = 64, layers = 2, heads = 4;  // attn's tokens
  int64_t train_images = 60000, test_images = 10000, trust_images = 5000;
};
const char* const kNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// ---- the neighbour graph -------------------------------------------------------------------------------------

// z (N,P) -> (N*K): row i's K nearest other rows, nearest first. |z_i - z_j|² = |z_i|² + |z_j|² - 2 z_i.z_j, and
// |z_i|² is the same for all of row i's candidates, so the rows are ranked by |z_j|² - 2 z_i.z_j: one GEMM per block
// of 1024 rows, then a scan.
std::vector<int64_t> knn_graph(const Tensor& z, int64_t K) {
  NoGradGuard no_grad;
  const int64_t N = z.size(0), block = 1024;
  const std::vector<float> sq = z.square().sum(1).to_vector<float>();  // (N)
  Tensor zt = z.mT().contiguous();                                     // (P,N)
  std::vector<int64_t> graph(N * K);
  for (int64_t i0 = 0; i0 < N; i0 += block) {
    const int64_t rows = std::min(block, N - i0);
    Tensor dots = matmul(z.narrow(0, i0, rows), zt).contiguous();  // (rows,N)
    const float* dot = dots.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
      // The K best so far, kept sorted: most candidates lose to the worst of them at the first comparison.
      std::vector<std::pair<float, int64_t>> best;
      float worst = INFINITY;
      for (int64_t j = 0; j < N; ++j) {
        const float d = sq[j] - 2 * dot[r * N + j];
        if (d >= worst || j == i0 + r) continue;
        if ((int64_t)best.size() == K) best.pop_back();
        best.insert(std::upper_bound(best.begin(), best.end(), std::pair{d, j}), {d, j});
        if ((int64_t)best.size() == K) worst = best.back().first;
      }
      for (int64_t k = 0; k < K; ++k) graph[(i0 + r) * K + k] = best[k].second;
    }
  }
  return graph;
}

// ---- the encoders, smallest first ------------------------------------------------------------------------------

struct Encoder : nn::Module {
  virtual Tensor embed(const Tensor& x) = 0;  // x (B,1,28,28) in [0,1] -> y (B,2)
};

struct MLPEncoder : Encoder {
  nn::Linear fc1{784, 512}, fc2{512, 256}, out{256, 2};
  MLPEncoder() { register_module("fc1", fc1), register_module("fc2", fc2), register_module("out", out); }
  Tensor embed(const Tensor& x) override { return out(relu(fc2(relu(fc1(x.flatten(1)))))); }
};

// x (B,1,28,28) -> (B,16,49): the 4x4 grid of 7x7 patches, row by row, each flattened.
Tensor patches(const Tensor& x) {
  return x.reshape({-1, 4, 7, 4, 7}).permute({0, 1, 3, 2, 4}).reshape({-1, 16, 49});
}

struct AttnEncoder : Encoder {
  nn::Linear patch;
  nn::LearnedPositionalEncoding position;
  nn::TransformerEncoder blocks;
  nn::Linear fc, out;
  explicit AttnEncoder(const Config& c)
      : patch(49, c.width), position(c.width, 16),
        blocks(c.width, c.heads, c.layers,
               {.dim_feedforward = 2 * c.width, .dropout = 0.0, .batch_first = true, .norm_first = true}, true),
        fc(16 * c.width, 256), out(256, 2) {
    register_module("patch", patch), register_module("position", position), register_module("blocks", blocks);
    register_module("fc", fc), register_module("out", out);
  }
  // (B,16,49) -> tokens (B,16,E) -> attended (B,16,E) -> (B,16E) -> (B,256) -> y (B,2)
  Tensor embed(const Tensor& x) override {
    return out(relu(fc(blocks(position(patch(patches(x)))).flatten(1))));
  }
};

std::unique_ptr<Encoder> make_encoder(const Config& c) {
  if (c.arch == "mlp") return std::make_unique<MLPEncoder>();
  return std::make_unique<AttnEncoder>(c);
}

// ---- the training step -----------------------------------------------------------------------------------------

// The InfoNCE loss of a batch of pairs, yi and yj (B,2), row b of each the two ends of one edge of the graph. All
// 2B points are candidates (SimCLR's NT-Xent): each point must pick its partner out of the 2B-1 others, so each
// pair has 2B-2 negatives.
Tensor contrastive_loss(const Tensor& yi, const Tensor& yj) {
  const int64_t B = yi.size(0);
  Tensor y = cat({yi, yj}, 0);                                        // (2B,2)
  Tensor d2 = (y.unsqueeze(1) - y.unsqueeze(0)).square().sum(2);      // (2B,2B) squared distances
  Tensor logits = -(d2 + 1.0).log() - eye(2 * B) * 1e9;               // log q, the Cauchy kernel; never oneself
  std::vector<int64_t> partner(2 * B);
  for (int64_t b = 0; b < 2 * B; ++b) partner[b] = (b + B) % (2 * B);
  return nn::cross_entropy(logits, from_vector(partner, {2 * B}));
}

// ---- evaluation: the metrics and the pictures ------------------------------------------------------------------

zoo::Metrics evaluate(const Config& c, const Tensor& images, const Tensor& labels, const Tensor& y, uint64_t seed) {
  const int64_t n = std::min(c.trust_images, images.size(0));
  Tensor pixels = images.narrow(0, 0, n).reshape({n, 784}), near = y.narrow(0, 0, n);
  metrics::KMeansResult km = metrics::kmeans(y, 10, 10, 300, 1e-4, seed);
  return {{"trust5", metrics::trustworthiness(pixels, near, 5)},
          {"trust12", metrics::trustworthiness(pixels, near, 12)},
          {"knn5_acc", metrics::knn_cv_accuracy(y, labels, 5, 5)},
          {"acc", metrics::clustering_accuracy(labels, km.labels)},
          {"nmi", metrics::nmi(labels, km.labels)}};
}

// matplotlib's tab10, one colour per class.
const viz::Rgb kColours[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                               {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

// embedding.png: every point as a dot of its class's colour on a 1000x1000 canvas, then, for 3 images of each
// class, the image itself (dark on light, framed in the class's colour) centred on its point.
// embedding_scatter.png: the same points drawn by gnuplot from embedding.csv, with axes and a legend.
void save_pictures(const Tensor& images, const Tensor& labels, const Tensor& y, const std::string& dir) {
  std::vector<float> p = y.contiguous().to_vector<float>();
  std::vector<int64_t> k = labels.to_vector<int64_t>();
  const int64_t N = (int64_t)k.size(), size = 1000, margin = 30;
  {
    std::ofstream csv(dir + "/embedding.csv");
    csv << "x,y,class\n";
    for (int64_t i = 0; i < N; ++i) csv << p[2 * i] << "," << p[2 * i + 1] << "," << kNames[k[i]] << "\n";
  }
  viz::plot_scatter(dir + "/embedding.csv", dir + "/embedding_scatter.png", "x", "y", "class",
                    {.title = "Fashion-MNIST test images in 2-D", .width = 1000, .height = 800});
  float lo[2] = {p[0], p[1]}, hi[2] = {p[0], p[1]};
  for (int64_t i = 0; i < N; ++i)
    for (int a = 0; a < 2; ++a) lo[a] = std::min(lo[a], p[2 * i + a]), hi[a] = std::max(hi[a], p[2 * i + a]);
  auto pixel = [&](int64_t i, int a) {
    return (int)(margin + (p[2 * i + a] - lo[a]) / std::max(hi[a] - lo[a], 1e-6f) * (size - 2 * margin));
  };
  viz::Image canvas(size, size, 3, 255);
  auto put = [&](int x, int y, viz::Rgb c) {
    if (x < 0 || y < 0 || x >= size || y >= size) return;
    uint8_t* px = canvas.at(x, y);
    px[0] = c.r, px[1] = c.g, px[2] = c.b;
  };
  for (int64_t i = 0; i < N; ++i)
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) put(pixel(i, 0) + dx, size - 1 - pixel(i, 1) + dy, kColours[k[i]]);
  std::vector<float> pixels = images.contiguous().to_vector<float>();
  std::vector<int> shown(10, 0);
  for (int64_t i = 0; i < N; i += 7) {  // every 7th image until each class has 3: spread over the data
    if (shown[k[i]] == 3) continue;
    shown[k[i]]++;
    const int x0 = pixel(i, 0) - 14, y0 = size - 1 - pixel(i, 1) - 14;
    for (int v = -1; v <= 28; ++v)
      for (int u = -1; u <= 28; ++u) {
        if (u < 0 || v < 0 || u == 28 || v == 28) {
          put(x0 + u, y0 + v, kColours[k[i]]);
          continue;
        }
        const uint8_t g = (uint8_t)std::lround(255 * (1 - std::clamp(pixels[i * 784 + v * 28 + u], 0.0f, 1.0f)));
        put(x0 + u, y0 + v, {g, g, g});
      }
  }
  viz::save_png(canvas, dir + "/embedding.png");
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("embed", "A parametric 2-D embedding of Fashion-MNIST (contrastive neighbour embedding with a Cauchy "
               "kernel), with and without attention", {.epochs = 10, .batch_size = 512, .lr = 1e-3});
  cli.option("arch", "the encoder: mlp (no attention), attn (a patch transformer), or pca (no training)",
             std::string("attn"));
  cli.option("neighbours", "k of the training images' k-nearest-neighbour graph", 15, 1, 100);
  cli.option("width", "attn: the tokens' width", 64, 4);
  cli.option("layers", "attn: transformer layers", 2, 1);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("resume", "continue from this checkpoint.safetensors (same --arch and --seed)", std::string());
  return zoo::main_guard("embed", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .data_dir = cli.get<std::string>("data"),
             .neighbours = cli.get<int64_t>("neighbours"), .width = cli.get<int64_t>("width"),
             .layers = cli.get<int64_t>("layers")};
    cli.require(c.arch == "mlp" || c.arch == "attn" || c.arch == "pca",
                "--arch must be mlp, attn or pca, got '" + c.arch + "'");
    cli.require(c.width % c.heads == 0, "--width must be a multiple of 4 (the heads), got " + std::to_string(c.width));
    cli.require(run.batch_size >= 2, "--batch-size must be >= 2 (the other pairs are the negatives)");
    if (run.quick) {
      run.epochs = cli.given("epochs") ? run.epochs : 2, c.train_images = 2000, c.test_images = 1000;
      c.trust_images = 500;
      std::printf("embed: --quick: 2,000 training images, %d epochs, the first 1,000 test images\n", run.epochs);
    }
    data::FashionMNIST train = data::load_fashion_mnist(true, data::Scale::ZeroOne, c.data_dir);
    data::FashionMNIST test = data::load_fashion_mnist(false, data::Scale::ZeroOne, c.data_dir);
    Tensor x_train = train.images.narrow(0, 0, c.train_images);
    Tensor x_test = test.images.narrow(0, 0, c.test_images), y_labels = test.labels.narrow(0, 0, c.test_images);
    zoo::RunLog log(cli, run);
    log.set_config("train_images", c.train_images), log.set_config("test_images", c.test_images);
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

    Tensor y;  // (N_test,2) the test images in 2-D
    if (c.arch == "pca") {
      y = metrics::pca(x_train.reshape({c.train_images, 784}), 2).transform(x_test.reshape({c.test_images, 784}));
    } else {
      metrics::PCAResult p = metrics::pca(x_train.reshape({c.train_images, 784}), (int)c.components);
      const std::vector<int64_t> graph = knn_graph(p.transform(x_train.reshape({c.train_images, 784})), c.neighbours);
      std::printf("embed: the %lld-nearest-neighbour graph of %lld training images in PCA-%lld (%.0f s)\n",
                  (long long)c.neighbours, (long long)c.train_images, (long long)c.components, seconds());
      manual_seed(run.seed);
      std::unique_ptr<Encoder> model = make_encoder(c);
      optim::Adam opt(model->parameters(), {.lr = run.lr});
      const std::string resume = cli.get<std::string>("resume");
      int64_t step = resume.empty() ? 0 : optim::load_training_state(resume, *model, opt).step;
      const int64_t per_epoch = c.train_images / run.batch_size, steps = run.epochs * per_epoch;
      std::printf("embed: %s, %lld parameters; %lld steps of %d pairs, from step %lld\n", c.arch.c_str(),
                  (long long)model->num_parameters(), (long long)steps, run.batch_size, (long long)step);
      // Epoch e visits every training image once, in an order drawn from (seed, e), each with a random neighbour;
      // a resumed run redraws its epoch and starts at batch step % per_epoch.
      for (int64_t epoch = step / per_epoch; step < steps; ++epoch) {
        std::mt19937_64 gen(run.seed * 1000003 + epoch);
        std::vector<int64_t> order(c.train_images), other(c.train_images);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), gen);
        for (int64_t i = 0; i < c.train_images; ++i) other[i] = graph[order[i] * c.neighbours + gen() % c.neighbours];
        model->train();
        zoo::ProgressBar bar(log.epoch_label((int)epoch + 1), per_epoch);
        for (int64_t b = step % per_epoch; b < per_epoch; ++b, ++step) {
          // The lr falls from --lr to 0 along a half cosine over the whole run.
          opt.set_lr(0, run.lr * 0.5 * (1 + std::cos(M_PI * (double)step / (double)steps)));
          Tensor i = from_vector(std::vector<int64_t>(&order[b * run.batch_size], &order[(b + 1) * run.batch_size]),
                                 {run.batch_size});
          Tensor j = from_vector(std::vector<int64_t>(&other[b * run.batch_size], &other[(b + 1) * run.batch_size]),
                                 {run.batch_size});
          // Both ends in one forward pass: (2B,1,28,28) -> (2B,2)
          Tensor yy = model->embed(cat({index_select(x_train, 0, i), index_select(x_train, 0, j)}, 0));
          Tensor loss = contrastive_loss(yy.narrow(0, 0, run.batch_size), yy.narrow(0, run.batch_size, run.batch_size));
          opt.zero_grad();
          loss.backward();
          opt.step();
          zoo::check_finite_loss(loss.item(), step + 1);
          bar.update(loss.item(), run.batch_size);
        }
        bar.finish();
        optim::save_training_state(log.dir() + "/checkpoint.safetensors", *model, opt, optim::StateDict{}, step,
                                   zoo::checkpoint_metadata(run, {{"arch", c.arch}}));
        // A cheap progress check: 5-NN accuracy of the first 2,000 test images.
        model->eval();
        const int64_t m = std::min<int64_t>(2000, c.test_images);
        Tensor y_few = zoo::over_batches(x_test.narrow(0, 0, m), 500, [&](const Tensor& x) { return model->embed(x); });
        log.epoch((int)epoch + 1, {{"train_loss", bar.mean_loss()},
                                   {"test_knn5_acc_2k", metrics::knn_cv_accuracy(y_few, y_labels.narrow(0, 0, m))}});
      }
      model->eval();
      y = zoo::over_batches(x_test, 500, [&](const Tensor& x) { return model->embed(x); });
    }
    const double fit_seconds = seconds();
    std::printf("embed: %s fitted and the test images embedded in %.0f s; scoring\n", c.arch.c_str(), fit_seconds);
    zoo::Metrics final = evaluate(c, x_test, y_labels, y, run.seed);
    final.push_back({"fit_seconds", fit_seconds});
    log.final(final);
    save_pictures(x_test, y_labels, y, log.dir());
    log.finish();
    return 0;
  });
}

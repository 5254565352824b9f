// anomaly: one-class anomaly detection on Fashion-MNIST, with and without attention.
//
// The protocol of Golan and El-Yaniv 2018 ("Deep Anomaly Detection Using Geometric Transformations", GEOM):
// train on the 6000 training images of one class c only, score all 10000 test images, and call every test
// image not of class c an anomaly. --arch picks the detector; each gives a score, higher = more anomalous:
//   pca        the mean squared reconstruction error from class c's first 32 principal components;
//   cae        the same error from a conv autoencoder with a 32-d bottleneck (conv 1->32->64, stride 2);
//   geom       a small conv net learns which of T geometric transformations was applied to an image of
//              class c: the 4 rotations by 90°; with --flips also mirrored, with --shifts x 9 shifts by
//              {-7,0,7}² pixels (GEOM's 72 with both; flips hurt here: most garments are mirror-symmetric).
//              The score is -Σ_t log p(t | transform_t(x)): the transformations of a normal image are easy to
//              tell apart, an anomaly's are not (GOAD, Bergman and Hoshen 2020, is kin): --score loglik. The
//              default, --score dirichlet, is GEOM's full score: -Σ_t log Dir(p(. | transform_t(x)); α_t), α_t
//              fitted on the training images; and pca's error is added to it, each standardised on the
//              training images (--with-pca=false leaves it out);
//   geom-attn  geom with SAGAN's self-attention block (nn::SelfAttention2d) at 14x14, so that each place can
//              compare itself with the whole garment: y = x + gamma * attention(x), gamma from --gamma (0).
// models/RESULTS.md has the 10-class tables: attention does not help here (geom and geom-attn tie).
// Per class the run prints AUROC, average precision and the detection rate: the recall of anomalies at the
// threshold that flags 5% of the normal test images (the largest TPR with FPR <= 0.05, metrics::detection_rate).
// --all-classes runs c = 0..9, with an ETA after each class, and writes table.md with the means. Each finished
// class is saved to class<c>.safetensors (weights and test scores); --resume DIR takes finished classes from DIR,
// and with --rescore only their weights, to score them another way.
// Pictures per class c: class<c>_extremes.png (the 16 most anomalous test images, then the 16 least),
// class<c>_histogram.png (the log10 scores of normal and anomalous images), class<c>_roc.png, and class<c>_where.png
// over the 16 most anomalous: geom-attn's attention (how much each place of the 7x7 key grid is looked at),
// cae's squared error per pixel. --quick: 256 training images, 1 epoch, the first 500 test images.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "metrics/metrics.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

struct Config {
  std::string arch = "geom-attn", score = "dirichlet", data_dir;
  int64_t width = 16, bottleneck = 32, components = 32;  // geom's first conv channels; cae's code; pca's
  bool flips = false, shifts = false;                    // geom's transformations: 4 rotations, x2, x9
  bool with_pca = true;                                  // geom: add pca's error to the score
  double gamma = 0;                                      // geom-attn: the attention's gamma at the start
  int64_t train_images = 6000, test_images = 10000;
};
const char* const kNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// ---- the transformations, and the modules, smallest first ---------------------------------------------------

int64_t num_transforms(const Config& c) { return 4 * (c.flips ? 2 : 1) * (c.shifts ? 9 : 1); }

// Transformation t flips (or not), shifts by (dy,dx) with zero fill, then turns by 90° (t % 4) times, as
// np.rot90. As one gather: output pixel (i,j) of transformation t is pixel index[t*784 + i*28 + j] of the image
// flattened, with a zero appended at 784.
Tensor transform_index(const Config& c) {
  const int64_t T = num_transforms(c), S = c.shifts ? 9 : 1;
  std::vector<int64_t> index;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t turns = t % 4, shift = (t / 4) % S, flip = t / (4 * S);
    const int64_t dy = c.shifts ? 7 * (shift / 3 - 1) : 0, dx = c.shifts ? 7 * (shift % 3 - 1) : 0;
    for (int64_t i = 0; i < 28; ++i)
      for (int64_t j = 0; j < 28; ++j) {
        int64_t y = i, x = j;
        for (int64_t r = 0; r < turns; ++r) std::tie(y, x) = std::pair(x, 27 - y);  // undo a turn: rot90's source
        y -= dy, x -= dx;
        if (flip) x = 27 - x;
        index.push_back(y < 0 || y > 27 || x < 0 || x > 27 ? 784 : y * 28 + x);
      }
  }
  return from_vector(index, {T * 784});
}

// x (B,1,28,28) -> every transformation of every image (B*T,1,28,28), image by image, and its label t (B*T).
std::pair<Tensor, Tensor> transform_all(const Tensor& x, const Tensor& index) {
  const int64_t B = x.size(0), T = index.size(0) / 784;
  Tensor padded = cat({x.reshape({B, 784}), zeros({B, 1})}, 1);  // (B,785)
  std::vector<int64_t> labels(B * T);
  for (int64_t i = 0; i < B * T; ++i) labels[i] = i % T;
  return {index_select(padded, 1, index).reshape({B * T, 1, 28, 28}), from_vector(labels, {B * T})};
}

// What training, scoring and the pictures see; pca is no module and is handled in score_test.
struct Detector : nn::Module {
  virtual Tensor loss(const Tensor& x) = 0;   // x (B,1,28,28) of the normal class -> the training loss
  virtual void fit_score(const Tensor&) {}    // after training, on the normal images: what the score needs
  virtual Tensor score(const Tensor& x) = 0;  // x (B,1,28,28) -> (B), higher = more anomalous
  virtual Tensor where(const Tensor&) { return {}; }  // x (B,1,28,28) -> a map (B,h,w) for where.png
};

struct ConvAE : Detector {
  nn::Conv2d conv1{1, 32, 4, {.stride = 2, .padding = 1}}, conv2{32, 64, 4, {.stride = 2, .padding = 1}};
  nn::Linear enc, dec;
  nn::ConvTranspose2d up1{64, 32, 4, {.stride = 2, .padding = 1}}, up2{32, 1, 4, {.stride = 2, .padding = 1}};
  explicit ConvAE(const Config& c) : enc(64 * 49, c.bottleneck), dec(c.bottleneck, 64 * 49) {
    register_module("conv1", conv1), register_module("conv2", conv2), register_module("enc", enc);
    register_module("dec", dec), register_module("up1", up1), register_module("up2", up2);
  }
  // x -> (B,32,14,14) -> (B,64,7,7) -> code (B,32) -> (B,64,7,7) -> (B,32,14,14) -> x_hat (B,1,28,28) in (0,1)
  Tensor reconstruct(const Tensor& x) {
    Tensor code = enc(relu(conv2(relu(conv1(x)))).flatten(1));
    return sigmoid(up2(relu(up1(relu(dec(code)).reshape({-1, 64, 7, 7})))));
  }
  Tensor loss(const Tensor& x) override { return nn::mse_loss(reconstruct(x), x); }
  Tensor score(const Tensor& x) override { return (reconstruct(x) - x).square().mean({1, 2, 3}); }
  Tensor where(const Tensor& x) override { return (reconstruct(x) - x).square().select(1, 0); }
};

// Three conv blocks (3x3, BatchNorm, ReLU), max-pooled 28 -> 14 -> 7, then a linear layer to T logits.
struct TransformNet : Detector {
  nn::Conv2d conv1, conv2, conv3;
  nn::BatchNorm2d bn1, bn2, bn3;
  std::unique_ptr<nn::SelfAttention2d> attn;  // geom-attn: after conv2, keys and values on the pooled 7x7 grid
  nn::Linear head;
  Tensor index;  // transform_index
  bool dirichlet;
  Tensor alpha;  // --score dirichlet: (T,T), row t the Dirichlet α fitted to p(. | transform_t(x)), x normal
  TransformNet(const Config& c, bool attention)
      : conv1(1, c.width, 3, {.padding = 1}), conv2(c.width, 2 * c.width, 3, {.padding = 1}),
        conv3(2 * c.width, 4 * c.width, 3, {.padding = 1}), bn1(c.width), bn2(2 * c.width), bn3(4 * c.width),
        head(4 * c.width * 49, num_transforms(c)), index(transform_index(c)), dirichlet(c.score == "dirichlet") {
    register_module("conv1", conv1), register_module("bn1", bn1), register_module("conv2", conv2);
    register_module("bn2", bn2), register_module("conv3", conv3), register_module("bn3", bn3);
    if (attention) {
      attn = std::make_unique<nn::SelfAttention2d>(2 * c.width), register_module("attn", *attn);
      nn::init::constant_(attn->gamma, c.gamma);
    }
    register_module("head", head);
  }
  // x (N,1,28,28) -> (N,W,14,14) -> (N,2W,14,14), and the attention (N,196,49) when there is some
  std::pair<Tensor, Tensor> features(const Tensor& x) {
    Tensor h = relu(bn2(conv2(nn::max_pool2d(relu(bn1(conv1(x))), 2))));
    return attn ? attn->forward_with_attention(h) : std::pair{h, Tensor()};
  }
  // -> (N,2W,7,7) -> (N,4W,7,7) -> logits (N,T)
  Tensor logits(const Tensor& x) { return head(relu(bn3(conv3(nn::max_pool2d(features(x).first, 2)))).flatten(1)); }
  Tensor loss(const Tensor& x) override {
    auto [xt, t] = transform_all(x, index);
    return nn::cross_entropy(logits(xt), t);
  }
  // x (B,1,28,28) -> log p(s | transform_t(x)) (B,T,T): t the transformation applied, s the net's guess
  Tensor log_probs(const Tensor& x) {
    const int64_t T = index.size(0) / 784;
    return log_softmax(logits(transform_all(x, index).first), 1).reshape({x.size(0), T, T});
  }
  void fit_score(const Tensor& normal) override {
    if (!dirichlet) return;
    Tensor log_p = zoo::over_batches(normal, 100, [&](const Tensor& x) { return log_probs(x); });  // (N,T,T)
    std::vector<Tensor> rows;
    for (int64_t t = 0; t < log_p.size(1); ++t) rows.push_back(metrics::dirichlet_mle(log_p.select(1, t)));
    alpha = stack(rows).to(float32);
  }
  // loglik: -Σ_t log p(t | transform_t(x)), the diagonal; dirichlet: -Σ_t Σ_s (α_ts - 1) log p(s | transform_t(x))
  Tensor score(const Tensor& x) override {
    Tensor log_p = log_probs(x);
    return -(log_p * (dirichlet ? alpha - 1.0 : eye(log_p.size(1)))).sum({1, 2});
  }
  // How much attention each key position receives, averaged over the 196 queries: (B,7,7)
  Tensor where(const Tensor& x) override { return attn ? features(x).second.mean(1).reshape({-1, 7, 7}) : Tensor(); }
};

std::unique_ptr<Detector> make_detector(const Config& c) {
  if (c.arch == "cae") return std::make_unique<ConvAE>(c);
  if (c.arch == "pca") return nullptr;
  return std::make_unique<TransformNet>(c, c.arch == "geom-attn");
}

// ---- training, one class -------------------------------------------------------------------------------------

// pca's score: the mean squared error of `test` reconstructed from the first components of `normal`.
Tensor pca_error(const Config& c, const Tensor& normal, const Tensor& test) {
  metrics::PCAResult p = metrics::pca(normal.reshape({normal.size(0), 784}), (int)c.components);
  return zoo::over_batches(test, 1000, [&](const Tensor& x) {
    Tensor flat = x.reshape({x.size(0), 784});
    return metrics::reconstruction_error(flat, p.inverse_transform(p.transform(flat)));
  });
}

// A trained model's scores of `test`, after fit_score on `normal`. With --with-pca, the sum of its score and pca's
// error, each standardised by its mean and standard deviation over the normal training images, on a log scale
// (the dirichlet score is a log-density already).
Tensor score_test(Detector* model, const Config& c, const Tensor& normal, const Tensor& test) {
  if (!model) return pca_error(c, normal, test);
  model->eval();
  model->fit_score(normal);
  auto score = [&](const Tensor& images) {
    return zoo::over_batches(images, 100, [&](const Tensor& x) { return model->score(x); });
  };
  if (!c.with_pca) return score(test);
  auto standardised = [](Tensor test_scores, Tensor train_scores, bool log_scale) {
    if (log_scale) test_scores = clamp(test_scores, 1e-12, 1e30).log();
    if (log_scale) train_scores = clamp(train_scores, 1e-12, 1e30).log();
    return (test_scores - train_scores.mean()) / heed::std(train_scores, 0);
  };
  return standardised(score(test), score(normal), c.score == "loglik") +
         standardised(pca_error(c, normal, test), pca_error(c, normal, normal), true);
}

// Trains `model` on `normal` (Adam, the lr falling to 0 along a half cosine) and scores `test` (N_test); also
// gives each epoch's mean training loss. pca (model == nullptr) needs no training.
std::pair<Tensor, std::vector<double>> fit_and_score(Detector* model, const Config& c, const zoo::RunConfig& run,
                                                     const Tensor& normal, const Tensor& test,
                                                     const std::string& label) {
  if (!model) return {score_test(model, c, normal, test), {}};
  data::DataLoader loader(data::TensorDataset{{normal}},
                          {.batch_size = run.batch_size, .shuffle = true, .seed = run.seed});
  optim::Adam opt(model->parameters(), {.lr = run.lr});
  optim::WarmupCosineLR schedule(opt, 0, run.epochs * loader.size());
  model->train();
  std::vector<double> losses;
  for (int epoch = 1; epoch <= run.epochs; ++epoch) {
    zoo::ProgressBar bar(label + " epoch " + std::to_string(epoch) + "/" + std::to_string(run.epochs), loader.size());
    for (auto& batch : loader) {
      Tensor loss = model->loss(batch[0]);
      opt.zero_grad();
      loss.backward();
      opt.step();
      schedule.step();
      bar.update(loss.item(), batch[0].size(0));
    }
    bar.finish();
    losses.push_back(bar.mean_loss());
  }
  return {score_test(model, c, normal, test), losses};
}

// ---- evaluation: the metrics and the pictures ------------------------------------------------------------------

struct Scores { double auroc, ap, detection_rate; };

Scores evaluate(const Tensor& scores, const Tensor& is_anomaly) {
  return {metrics::auroc(scores, is_anomaly), metrics::average_precision(scores, is_anomaly),
          metrics::detection_rate(scores, is_anomaly, 0.05)};
}

// `columns` (each as long as `x`) against `x` as prefix.csv, drawn as prefix.png.
void plot(const std::string& prefix, const std::string& x_name, const std::vector<double>& x,
          const std::vector<std::string>& names, const std::vector<std::vector<double>>& columns,
          const viz::PlotOptions& options) {
  std::ofstream csv(prefix + ".csv");
  csv << x_name;
  for (const std::string& name : names) csv << "," << name;
  for (size_t i = 0; i < x.size(); ++i) {
    csv << "\n" << x[i];
    for (const auto& column : columns) csv << "," << column[i];
  }
  csv.close();
  viz::plot_lines(prefix + ".csv", prefix + ".png", x_name, names, options);
}

void save_pictures(Detector* model, const Tensor& test, const Tensor& scores, const Tensor& is_anomaly,
                   const std::string& prefix) {
  NoGradGuard no_grad;
  std::vector<float> s = scores.to_vector<float>();
  std::vector<int64_t> order(s.size()), anomalous = is_anomaly.to_vector<int64_t>();
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  std::vector<int64_t> extremes(order.begin(), order.begin() + 16);
  extremes.insert(extremes.end(), order.end() - 16, order.end());
  Tensor top = index_select(test, 0, from_vector(extremes, {32}));
  viz::save_image_grid(top, prefix + "_extremes.png");
  // The histogram of log10 scores (skewed: most normal images score near 0; the dirichlet score, which can be < 0,
  // shifted to start at 0): the fraction of normal and of anomalous images in each of 40 bins between the extremes.
  const double shift = std::min<double>(0, s[order.back()]);
  auto log_score = [&](size_t i) { return std::log10(std::max<double>(s[i] - shift, 1e-8)); };
  const double lo = log_score(order.back()), hi = log_score(order.front()), width = std::max(hi - lo, 1e-12) / 40;
  std::vector<double> centres(40), normal(40), anomaly(40);
  const double n_anomaly = std::accumulate(anomalous.begin(), anomalous.end(), 0.0), n_normal = s.size() - n_anomaly;
  for (size_t i = 0; i < s.size(); ++i) {
    const int64_t bin = std::min<int64_t>(39, (int64_t)((log_score(i) - lo) / width));
    anomalous[i] ? anomaly[bin] += 1 / n_anomaly : normal[bin] += 1 / n_normal;
  }
  for (int b = 0; b < 40; ++b) centres[b] = lo + (b + 0.5) * width;
  plot(prefix + "_histogram", "log10_score", centres, {"normal", "anomalous"}, {normal, anomaly},
       {.title = "anomaly score", .ylabel = "fraction of the group per bin"});
  metrics::RocCurve roc = metrics::roc_curve(scores, is_anomaly);
  plot(prefix + "_roc", "false_positive_rate", roc.fpr, {"true_positive_rate"}, {roc.tpr}, {.title = "ROC"});
  Tensor maps = model ? model->where(top.narrow(0, 0, 16)) : Tensor();
  if (!maps.defined()) return;
  std::vector<Tensor> tiles;  // the overlays' RGB bytes back as (3,56,56) tensors in [0,1], for one grid
  for (int64_t i = 0; i < 16; ++i) {
    viz::Image im = viz::render_overlay(top.select(0, i), maps.select(0, i), {.scale = 2});
    tiles.push_back(from_vector(std::vector<float>(im.pixels.begin(), im.pixels.end()), {56, 56, 3}) / 255.0);
  }
  viz::save_image_grid(stack(tiles).permute({0, 3, 1, 2}), prefix + "_where.png");
}

// The markdown table of every class and the mean (table.md); the means and, with several classes, each class's
// values go to metrics.json under `final`.
std::string write_table(const std::vector<int>& classes, const std::vector<Scores>& results, zoo::RunLog& log) {
  Scores mean{0, 0, 0};
  std::string table = "| class | AUROC | AP | detection rate |\n|---|---|---|---|\n";
  zoo::Metrics per_class;
  char row[200];
  for (size_t i = 0; i < results.size(); ++i) {
    const Scores& r = results[i];
    const double n = results.size();
    mean = {mean.auroc + r.auroc / n, mean.ap + r.ap / n, mean.detection_rate + r.detection_rate / n};
    std::snprintf(row, sizeof row, "| %d %s | %.1f | %.1f | %.1f |\n", classes[i], kNames[classes[i]],
                  100 * r.auroc, 100 * r.ap, 100 * r.detection_rate);
    table += row;
    const std::string k = "_class" + std::to_string(classes[i]);
    per_class.insert(per_class.end(),
                     {{"auroc" + k, r.auroc}, {"ap" + k, r.ap}, {"detection_rate" + k, r.detection_rate}});
  }
  std::snprintf(row, sizeof row, "| mean | **%.1f** | %.1f | %.1f |\n", 100 * mean.auroc, 100 * mean.ap,
                100 * mean.detection_rate);
  table += row;
  std::ofstream(log.dir() + "/table.md") << table;
  log.final({{"auroc", mean.auroc}, {"ap", mean.ap}, {"detection_rate", mean.detection_rate}});
  if (results.size() > 1) log.final(per_class);
  return table;
}

// ---- the classes: their training images, and the checkpoints of finished ones ---------------------------------

// The first n training images of class k.
Tensor class_images(const data::FashionMNIST& train, int k, int64_t n) {
  const std::vector<int64_t> labels = train.labels.to_vector<int64_t>();
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < (int64_t)labels.size() && (int64_t)rows.size() < n; ++i)
    if (labels[i] == k) rows.push_back(i);
  return index_select(train.images, 0, from_vector(rows, {(int64_t)rows.size()}));
}

// What makes a checkpoint's scores besides the arch: geom's --score and --with-pca; the others' reconstruction error.
std::string score_kind(const Config& c) {
  return c.arch.starts_with("geom") ? c.score + (c.with_pca ? "+pca" : "") : "error";
}

// A finished class's weights into `model` (for the pictures, or to score again), and its test scores; undefined
// when the checkpoint was scored another way and `rescore` allows that.
Tensor load_finished(const std::string& path, const Config& c, Detector* model, bool rescore) {
  Metadata meta;
  TensorMap saved = load(path, &meta);
  const std::string held = meta.count("score") ? meta["score"] : meta["arch"].starts_with("geom") ? "loglik" : "error";
  const int64_t n = saved.at("scores").size(0);
  if (meta["arch"] != c.arch || (held != score_kind(c) && !rescore) || n != c.test_images)
    throw Error("anomaly: --resume: " + path + " holds arch '" + meta["arch"] + "', score " + held + " and " +
                std::to_string(n) + " scores, this run is " + c.arch + ", score " + score_kind(c) + " on " +
                std::to_string(c.test_images) + " test images");
  Tensor scores = saved.at("scores");
  saved.erase("scores");
  if (model) model->load_state_dict(saved), model->eval();
  return held == score_kind(c) ? scores : Tensor();
}

// ---- main -------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  zoo::Cli cli("anomaly", "One-class anomaly detection on Fashion-MNIST: PCA, a conv autoencoder, and "
               "transformation prediction (GEOM) with and without self-attention",
               {.epochs = 2, .batch_size = 32, .lr = 1e-3});
  cli.option("arch", "pca, cae (conv autoencoder), geom, or geom-attn (geom with self-attention)",
             std::string("geom-attn"));
  cli.option("class", "the normal class c (0-9): train on it, call the other classes anomalies", 0, 0, 9);
  cli.option("all-classes", "run the full protocol: every class in turn, then the table and the means", false);
  cli.option("flips", "geom: the 4 rotations also flipped horizontally (x2 transformations)", false);
  cli.option("shifts", "geom: also 9 shifts by {-7,0,7} pixels (x9 transformations)", false);
  cli.option("width", "geom: channels of the first conv (then 2x and 4x)", 16, 1);
  cli.option("score", "geom: dirichlet (GEOM's: a Dirichlet per t fitted to the softmax outputs on the training "
             "images) or loglik (-Σ_t log p(t | transform_t(x)))", std::string("dirichlet"));
  cli.option("gamma", "geom-attn: the attention block's gamma at the start (y = x + gamma * attention; SAGAN's 0)",
             0.0);
  cli.option("with-pca", "geom: add pca's reconstruction error to the score (each standardised on the training "
             "images, on a log scale); --with-pca=false for geom's score alone", true);
  cli.option("rescore", "with --resume: take the finished classes' weights only, and score the test images again "
             "(for another --score or --with-pca: training does not depend on them)", false);
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("resume", "a previous run's folder: take the classes it finished from its class<c>.safetensors",
             std::string());
  return zoo::main_guard("anomaly", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config c{.arch = cli.get<std::string>("arch"), .score = cli.get<std::string>("score"),
             .data_dir = cli.get<std::string>("data"), .width = cli.get<int64_t>("width"),
             .flips = cli.get<bool>("flips"), .shifts = cli.get<bool>("shifts"), .gamma = cli.get<double>("gamma")};
    c.with_pca = cli.get<bool>("with-pca");
    cli.require(c.arch == "pca" || c.arch == "cae" || c.arch == "geom" || c.arch == "geom-attn",
                "--arch must be pca, cae, geom or geom-attn, got '" + c.arch + "'");
    cli.require(c.score == "loglik" || c.score == "dirichlet", "--score must be loglik or dirichlet, got '" +
                c.score + "'");
    if (!cli.given("epochs") && c.arch == "cae") run.epochs = 5;
    if (!cli.given("batch-size") && c.arch == "cae") run.batch_size = 64;
    if (run.quick) run.epochs = cli.given("epochs") ? run.epochs : 1, c.train_images = 256, c.test_images = 500;
    std::printf("anomaly: %s; detection rate = the recall of anomalies at the threshold that flags 5%% of the normal "
                "test images (the largest TPR with FPR <= 0.05)%s\n", c.arch.c_str(),
                run.quick ? "; --quick: 256 training images, 1 epoch, the first 500 test images" : "");
    data::FashionMNIST train = data::load_fashion_mnist(true, data::Scale::ZeroOne, c.data_dir);
    data::FashionMNIST test = data::load_fashion_mnist(false, data::Scale::ZeroOne, c.data_dir);
    Tensor test_images = test.images.narrow(0, 0, c.test_images), test_labels = test.labels.narrow(0, 0, c.test_images);
    zoo::RunLog log(cli, run);
    log.set_config("train_images", c.train_images), log.set_config("test_images", c.test_images);
    std::vector<int> classes;
    for (int k = 0; k < 10; ++k)
      if (cli.get<bool>("all-classes") || k == cli.get<int>("class")) classes.push_back(k);

    const std::string resume = cli.get<std::string>("resume");
    std::vector<Scores> results;
    double trained_seconds = 0;
    int trained = 0;
    for (int k : classes) {
      const std::string name = "class" + std::to_string(k), file = log.dir() + "/" + name + ".safetensors";
      const std::string label = name + " (" + kNames[k] + ") " + std::to_string(results.size() + 1) + "/" +
                                std::to_string(classes.size());
      manual_seed(run.seed + k);
      std::unique_ptr<Detector> model = make_detector(c);
      Tensor is_anomaly = ne(test_labels, from_vector(std::vector<int64_t>{k}, {1})).to(int64), scores;
      const std::string previous = resume + "/" + name + ".safetensors";
      const bool resumed = !resume.empty() && std::filesystem::exists(previous);
      const auto start = std::chrono::steady_clock::now();
      std::vector<double> losses;
      if (resumed) {
        scores = load_finished(previous, c, model.get(), cli.get<bool>("rescore"));
        std::printf("%s: resumed from %s%s\n", label.c_str(), previous.c_str(), scores.defined() ? "" : ", scoring");
        if (!scores.defined()) scores = score_test(model.get(), c, class_images(train, k, c.train_images), test_images);
      } else {
        Tensor x = class_images(train, k, c.train_images);
        std::tie(scores, losses) = fit_and_score(model.get(), c, run, x, test_images, label);
      }
      TensorMap out = model ? TensorMap(model->state_dict()) : TensorMap();
      out["scores"] = scores;
      save(file, out, {{"arch", c.arch}, {"score", score_kind(c)}, {"class", std::to_string(k)}});
      Scores r = evaluate(scores, is_anomaly);
      results.push_back(r);
      save_pictures(model.get(), test_images, scores, is_anomaly, log.dir() + "/" + name);
      zoo::Metrics row{{"auroc", r.auroc}, {"ap", r.ap}, {"detection_rate", r.detection_rate}};
      for (size_t e = 0; e < losses.size(); ++e) row.push_back({"train_loss_epoch" + std::to_string(e + 1), losses[e]});
      log.step(k, row);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      trained_seconds += resumed ? 0 : seconds, trained += !resumed;
      const int left = classes.size() - results.size(), minutes = trained ? trained_seconds / trained * left / 60 : 0;
      std::printf("%s: AUROC %.4f  AP %.4f  detection rate %.4f  (%.0f s)%s\n", label.c_str(), r.auroc, r.ap,
                  r.detection_rate, seconds, left && trained ? (", ETA " + std::to_string(minutes) + " min for " +
                                                                std::to_string(left) + " more classes").c_str() : "");
    }
    std::printf("\n%s (%s)\n%s", c.arch.c_str(), cli.command().c_str(), write_table(classes, results, log).c_str());
    log.finish();
    return 0;
  });
}

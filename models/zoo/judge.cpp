// judge.cpp: the judge's network, its cache, and FD-FMNIST. Read judge.h first.
#include "models/zoo/judge.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>

#include "autograd/node.h"
#include "data/data.h"
#include "metrics/metrics.h"
#include "io/safetensors.h"
#include "tensor/random.h"

namespace heed::zoo {

namespace fs = std::filesystem;

// ---- the network ------------------------------------------------------------------------------------------

FmnistClassifier::FmnistClassifier() {
  register_module("conv1", conv1);
  register_module("bn1", bn1);
  register_module("conv2", conv2);
  register_module("bn2", bn2);
  register_module("drop1", drop1);
  register_module("fc1", fc1);
  register_module("drop2", drop2);
  register_module("fc2", fc2);
}

Tensor FmnistClassifier::features(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 1 || x.size(2) != 28 || x.size(3) != 28)
    nn::shape_error("FmnistClassifier", "(B,1,28,28)", x.shape());
  Tensor h = relu(bn1(nn::max_pool2d(conv1(x), 2)));  // (B,16,28,28) -> (B,16,14,14)
  h = relu(bn2(nn::max_pool2d(conv2(h), 2)));         // (B,32,14,14) -> (B,32,7,7)
  return relu(fc1(drop1(h).flatten(1)));               // (B,128)
}

Tensor FmnistClassifier::forward(const Tensor& x) { return fc2(drop2(features(x))); }

// ---- features -----------------------------------------------------------------------------------------------

Tensor fmnist_features(FmnistClassifier& net, const Tensor& images) {
  NoGradGuard no_grad;
  net.eval();
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += 500)
    parts.push_back(net.features(images.narrow(0, i, std::min<int64_t>(500, images.size(0) - i))));
  return cat(parts, 0);
}

// ---- the cached judge ------------------------------------------------------------------------------------------

std::string judge_path() {
  const char* heed_cache = std::getenv("HEED_CACHE");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  fs::path dir = heed_cache && *heed_cache ? fs::path(heed_cache)
                 : xdg && *xdg             ? fs::path(xdg) / "heed"
                 : home && *home           ? fs::path(home) / ".cache" / "heed"
                                           : fs::temp_directory_path() / "heed-cache";
  return (dir / "fmnist_classifier.safetensors").string();
}

namespace {

std::unique_ptr<FmnistClassifier> g_judge;
std::map<int64_t, std::pair<Tensor, Tensor>> g_test_stats;  // reference size -> (mean, covariance)

void say(std::FILE* out, const std::string& line) {
  if (!out) return;
  std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

}  // namespace

// The `classifier` program beside the running one (vae, gan and heed_tests are all built into one folder).
static fs::path classifier_program() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("classifier") : self.parent_path() / "classifier";
}

FmnistClassifier& load_or_train_judge(const JudgeOptions& options) {
  if (g_judge) return *g_judge;
  const std::string path = judge_path();
  // The untrained network draws its initial weights from seed 0; the caller's generator is put back after.
  const Generator caller = default_generator();
  manual_seed(0);
  auto net = std::make_unique<FmnistClassifier>();
  default_generator() = caller;
  if (!fs::exists(path) && options.quick) {
    say(options.out, "fmnist judge: no weights at " + path + "; --quick judges with an untrained network (not "
                     "cached), so this FD-FMNIST is only a smoke test; `./run classifier` trains the real one.");
  } else {
    if (!fs::exists(path)) {
      const fs::path program = classifier_program();
      say(options.out, "fmnist judge: no weights at " + path + "; training the classifier first (" +
                           program.string() + ", once; `./run classifier` does the same)");
      const std::string command = "'" + program.string() + "' --data '" + options.data_dir + "'";
      if (std::system(command.c_str()) != 0 || !fs::exists(path))
        throw Error("fmnist judge: `" + command + "` did not write " + path + "; run `./run classifier`");
    }
    try {
      net->load_state_dict(load(path));
    } catch (const std::exception& e) {  // a damaged file, or weights of an older network
      throw Error("fmnist judge: cannot use " + path + " (" + e.what() + "); `./run classifier` writes it anew");
    }
  }
  net->eval();
  g_judge = std::move(net);
  return *g_judge;
}

namespace {

void check_images(const char* what, const Tensor& images) {
  if (images.dim() != 4 || images.size(0) < 2 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
    throw Error(std::string("fd_fmnist: expected ") + what + " (N,1,28,28) with N >= 2, got " +
                shape_str(images.shape()));
}

}  // namespace

double fd_fmnist(FmnistClassifier& judge, const Tensor& images, const Tensor& reference) {
  check_images("images", images);
  check_images("reference images", reference);
  auto [mu1, cov1] = metrics::mean_and_cov(fmnist_features(judge, images));
  auto [mu2, cov2] = metrics::mean_and_cov(fmnist_features(judge, reference));
  return metrics::frechet_distance(mu1, cov1, mu2, cov2);
}

double fd_fmnist(const Tensor& images, const JudgeOptions& options) {
  check_images("images", images);
  FmnistClassifier& judge = load_or_train_judge(options);
  const int64_t n_ref = std::min<int64_t>(images.size(0), 10000);
  if (!g_test_stats.count(n_ref)) {
    data::FashionMNIST test = data::load_fashion_mnist(false, data::Scale::ZeroOne, options.data_dir);
    g_test_stats[n_ref] = metrics::mean_and_cov(fmnist_features(judge, test.images.narrow(0, 0, n_ref)));
  }
  const auto& [mu_ref, cov_ref] = g_test_stats[n_ref];
  auto [mu, cov] = metrics::mean_and_cov(fmnist_features(judge, images));
  return metrics::frechet_distance(mu, cov, mu_ref, cov_ref);
}

}  // namespace heed::zoo

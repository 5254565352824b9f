// Tests for models/classifier.cpp and the judge it trains (models/zoo/judge.h): the network's shapes and
// errors, and, when `./run classifier` has cached its weights, their test accuracy and FD-FMNIST's zero;
// and `classifier --fd-of FILE`, run as a program, on test images, on noise and on files it must refuse.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/data.h"
#include "heed.h"
#include "models/zoo/judge.h"
#include "io/safetensors.h"

using namespace heed;

namespace {

// The fraction of `test` that `net` classifies correctly (models/classifier.cpp measures it the same way).
double accuracy(zoo::FmnistClassifier& net, const data::FashionMNIST& test) {
  NoGradGuard no_grad;
  net.eval();
  double correct = 0;
  for (int64_t i = 0; i < test.images.size(0); i += 500) {
    const int64_t b = std::min<int64_t>(500, test.images.size(0) - i);
    correct += sum(eq(argmax(net(test.images.narrow(0, i, b)), 1), test.labels.narrow(0, i, b)).to(float64)).item();
  }
  return correct / (double)test.labels.numel();
}

}  // namespace

TEST_CASE("fmnist judge: features (B,128), logits (B,10), and shape errors that name the layer") {
  manual_seed(0);
  zoo::FmnistClassifier net;
  net.eval();
  NoGradGuard no_grad;
  Tensor x = rand({3, 1, 28, 28});
  CHECK(net.features(x).shape() == Shape{3, 128});
  CHECK(net(x).shape() == Shape{3, 10});
  CHECK_THROWS_AS(net(rand({3, 28, 28})), Error);
  CHECK_THROWS_WITH_AS(net(rand({3, 1, 32, 32})), doctest::Contains("FmnistClassifier"), Error);
  CHECK_THROWS_WITH_AS(zoo::fd_fmnist(net, rand({1, 1, 28, 28}), rand({4, 1, 28, 28})),
                       doctest::Contains("N >= 2"), Error);
  CHECK_THROWS_AS(zoo::fd_fmnist(net, rand({4, 1, 28, 28}), rand({4, 3, 28, 28})), Error);
}

TEST_CASE("fmnist judge: FD between two sets of the same images is 0, and grows as they differ") {
  manual_seed(0);
  zoo::FmnistClassifier net;  // untrained: the identities do not need a trained judge
  Tensor a = rand({64, 1, 28, 28});
  CHECK(std::abs(zoo::fd_fmnist(net, a, a)) < 1e-6);
  const double near = zoo::fd_fmnist(net, a, clamp(a + 0.05 * randn({64, 1, 28, 28}), 0, 1));
  const double far = zoo::fd_fmnist(net, a, clamp(a + 0.5 * randn({64, 1, 28, 28}), 0, 1));
  CHECK(near > 0);
  CHECK(far > near);
}

TEST_CASE("classifier: the cached judge's weights classify the test set with >= 91% accuracy") {
  const std::string path = zoo::judge_path();
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipped: no classifier weights at " << path << " (`./run classifier` trains and caches them)");
    return;
  }
  zoo::FmnistClassifier net;
  net.load_state_dict(load(path));
  data::FashionMNIST test = data::load_fashion_mnist(false);
  const double acc = accuracy(net, test);
  MESSAGE("classifier weights " << path << ": test accuracy " << acc);
  CHECK(acc >= 0.91);

  // The process's judge is the same network, and a set of test images scores 0 against itself.
  zoo::FmnistClassifier& judge = zoo::load_or_train_judge();
  CHECK(accuracy(judge, test) == acc);
  CHECK(std::abs(zoo::fd_fmnist(test.images.narrow(0, 0, 500))) < 1e-3);
}

namespace {

// `classifier args`, built next to heed_tests, with one thread; its exit code and its stdout and stderr.
std::pair<int, std::string> run_classifier(const std::string& args, const std::filesystem::path& dir) {
  const auto program = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "classifier";
  const auto log = dir / "output.txt";
  const int status = std::system((program.string() + " --threads 1 " + args + " > " + log.string() + " 2>&1").c_str());
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

// The number in the line "classifier: FD-FMNIST 12.34: ..." of a run's output (NaN when there is none).
double printed_fd(const std::string& output) {
  const std::string key = "classifier: FD-FMNIST ";
  const size_t at = output.find(key);
  return at == std::string::npos ? std::nan("") : std::stod(output.substr(at + key.size()));
}

}  // namespace

TEST_CASE("classifier --fd-of: test images score ~0 against themselves, noise far more; bad files exit 2") {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::read_symlink("/proc/self/exe").parent_path() / "classifier")) {
    MESSAGE("skipped: the classifier program is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("heed_test_fd_of_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // --quick: without a cached judge, a throwaway one trained in seconds; the identities below hold for any judge.
  const std::string common =
      "--quick --force --out " + (dir / "run").string() + " --fd-of ";  // one --out for every call
  Tensor test = data::load_fashion_mnist(false).images;  // (10000,1,28,28) in [0,1]
  auto fd_of = [&](const std::string& file, const Tensor& images) {
    save((dir / file).string(), {{"samples", images}});
    auto [code, output] = run_classifier(common + (dir / file).string(), dir);
    CHECK_MESSAGE(code == 0, output);
    MESSAGE(file << ": " << printed_fd(output));
    return printed_fd(output);
  };
  // The first 500 test images against themselves: 0. Other real images (the next 500): the sampling floor.
  // Noise, flattened to (N,784), which --fd-of also takes: far from both. (A throwaway judge's features are
  // small, so the noise is compared with the floor, not with a fixed number.)
  const double same = fd_of("same.safetensors", test.narrow(0, 0, 500));
  const double other = fd_of("other.safetensors", test.narrow(0, 500, 500));
  manual_seed(0);
  const double noise = fd_of("noise.safetensors", rand({500, 784}));
  CHECK(std::abs(same) < 1e-3 * other);
  CHECK(noise > 5 * other);

  int code = 0;
  std::string output;
  struct Case {
    std::string file, expected;
    TensorMap tensors;
  };
  const Case cases[] = {
      {"missing.safetensors", "cannot open", {}},
      {"int.safetensors", "'samples' is int64; expected float32", {{"samples", zeros({4, 784}, int64)}}},
      {"rgb.safetensors", "has shape (4,3,28,28); expected (N,1,28,28) or (N,784)",
       {{"samples", rand({4, 3, 28, 28})}}},
      {"one.safetensors", "has shape (1,784)", {{"samples", rand({1, 784})}}},
      {"bytes.safetensors", "expected [0,1]", {{"samples", 255.0 * rand({4, 784})}}},
      {"two.safetensors", "expected one tensor, or one named 'samples', found 2",
       {{"a", rand({4, 784})}, {"b", rand({4, 784})}}},
  };
  for (const Case& c : cases) {
    if (!c.tensors.empty()) save((dir / c.file).string(), c.tensors);
    std::tie(code, output) = run_classifier(common + (dir / c.file).string(), dir);
    CHECK_MESSAGE(code == 2, c.file, " -> ", output);
    CHECK_MESSAGE(output.find("classifier: ") != std::string::npos, output);
    CHECK_MESSAGE(output.find(c.expected) != std::string::npos, c.file, " -> ", output);
  }
  fs::remove_all(dir);
}

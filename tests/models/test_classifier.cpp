// Tests for models/classifier.cpp and the judge it trains (nn/fmnist_judge.h): the network's shapes and
// errors, and, when `./run classifier` has cached its weights, their test accuracy and FD-FMNIST's zero.
#include <doctest/doctest.h>

#include <filesystem>

#include "heed.h"
#include "nn/fmnist_judge.h"
#include "nn/safetensors.h"

using namespace heed;

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
  const double accuracy = zoo::fmnist_accuracy(net, test);
  MESSAGE("classifier weights " << path << ": test accuracy " << accuracy);
  CHECK(accuracy >= 0.91);

  // The process's judge is the same network, and a set of test images scores 0 against itself.
  zoo::FmnistClassifier& judge = zoo::load_or_train_judge();
  CHECK(zoo::fmnist_accuracy(judge, test) == accuracy);
  CHECK(std::abs(zoo::fd_fmnist(test.images.narrow(0, 0, 500))) < 1e-3);
}

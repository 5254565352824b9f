// classifier: a small CNN for Fashion-MNIST (Xiao, Rasul and Vollgraf 2017), and the zoo's judge of
// generated images.
//
// The network is the judge's, zoo::FmnistClassifier in models/zoo/judge.h (so that every model is scored by
// the same network): two conv blocks (conv 3x3, max-pool, BatchNorm, ReLU), dropout and a two-layer head.
// This file trains it: Adam at 1e-3, decayed to 0 along a half cosine, for 8 epochs. Its 128 penultimate features
// are what FD-FMNIST compares (FID's recipe with a judge that knows clothes), so this program also caches the
// weights where the generative models (vae, gan) look for them: zoo::judge_path(), that is
// ~/.cache/heed/fmnist_classifier.safetensors unless $HEED_CACHE or $XDG_CACHE_HOME say otherwise.
//
// The run prints, per epoch, the training loss and the test accuracy; at the end the test accuracy and
// the FD floor: FD-FMNIST between the 10000 test images and the first 10000 training images, the score
// of a perfect generator (the features of two samples of real data are never exactly alike).
// --quick trains on 1000 images for one epoch, measures on 1000 test images, and caches nothing.
//
// --fd-of FILE trains nothing: it scores images made elsewhere (models/reference/vae.py's PyTorch samples)
// with the judge, and prints their FD-FMNIST against the first N test images, exactly as the zoo's models
// score their own. FILE is a .safetensors file holding one float32 tensor (or one named "samples"), of
// shape (N,1,28,28) or (N,784), N >= 2, with values in [0,1].
#include <filesystem>
#include <iostream>

#include "data/data.h"
#include "heed.h"  // tensor, autograd, nn, nn/optim, io/safetensors
#include "models/zoo/judge.h"
#include "models/zoo/zoo.h"
#include "viz/viz.h"

using namespace heed;

struct Config {
  std::string data_dir;
  int64_t train_images = 60000, test_images = 10000, fd_images = 10000;
  bool cache = true;  // write the weights to zoo::judge_path() for the other models
};

// ---- training and evaluation ----------------------------------------------------------------------------------
// Adam on the cross-entropy over shuffled batches of the first `n` training images; the lr falls from
// run.lr to 0 along a half cosine over the whole run (a constant lr ends about 0.3 points lower).
// on_epoch(epoch, mean train loss) runs after each epoch. Leaves `net` in eval mode.
template <class OnEpoch>
void fit(zoo::FmnistClassifier& net, const data::FashionMNIST& train, int64_t n, const zoo::RunConfig& run,
           OnEpoch on_epoch) {
  n = std::min<int64_t>(n, train.images.size(0));
  data::DataLoader loader(data::TensorDataset{{train.images.narrow(0, 0, n), train.labels.narrow(0, 0, n)}},
                          {.batch_size = run.batch_size, .shuffle = true, .seed = run.seed});
  optim::Adam opt(net.parameters(), {.lr = run.lr});
  optim::WarmupCosineLR schedule(opt, 0, run.epochs * loader.size());
  for (int epoch = 1; epoch <= run.epochs; ++epoch) {
    net.train();
    zoo::ProgressBar bar("classifier epoch " + std::to_string(epoch) + "/" + std::to_string(run.epochs),
                         loader.size());
    for (auto& batch : loader) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy(net(batch[0]), batch[1]);  // batch: images (B,1,28,28), labels (B)
      loss.backward();
      opt.step();
      schedule.step();
      bar.update(loss.item(), batch[0].size(0));
    }
    bar.finish();
    on_epoch(epoch, bar.mean_loss());
  }
  net.eval();
}

// The fraction of `test` that `net` classifies correctly, in eval mode, in batches of 500.
double accuracy(zoo::FmnistClassifier& net, const data::FashionMNIST& test) {
  NoGradGuard no_grad;
  net.eval();
  const int64_t n = test.images.size(0);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; i += 500) {
    const int64_t b = std::min<int64_t>(500, n - i);
    Tensor predicted = argmax(net(test.images.narrow(0, i, b)), 1);
    correct += (int64_t)sum(eq(predicted, test.labels.narrow(0, i, b)).to(float64)).item();
  }
  return (double)correct / (double)n;
}

// ---- --fd-of ---------------------------------------------------------------------------------------------------

// The images in `path` for --fd-of, as (N,1,28,28); a file that does not hold them is a heed::Error (exit 2).
Tensor images_to_judge(const std::string& path) {
  const TensorMap tensors = load(path);
  const std::string what = "--fd-of " + path + ": ";
  auto it = tensors.size() == 1 ? tensors.begin() : tensors.find("samples");
  if (it == tensors.end())
    throw Error(what + "expected one tensor, or one named 'samples', found " + std::to_string(tensors.size()));
  const auto& [name, x] = *it;
  if (x.dtype() != float32)
    throw Error(what + "'" + name + "' is " + dtype_name(x.dtype()) + "; expected float32 images in [0,1]");
  const bool flat = x.dim() == 2 && x.size(1) == 784;
  const bool square = x.dim() == 4 && x.shape() == Shape{x.size(0), 1, 28, 28};
  if (!(flat || square) || x.size(0) < 2)
    throw Error(what + "'" + name + "' has shape " + shape_str(x.shape()) +
                "; expected (N,1,28,28) or (N,784), N >= 2");
  const double lo = min(x).item(), hi = max(x).item();
  if (!(lo >= 0 && hi <= 1))  // also catches NaN
    throw Error(what + "'" + name + "' has values in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "]; expected [0,1] (images / 255?)");
  return x.reshape({-1, 1, 28, 28});
}

int main(int argc, char** argv) {
  zoo::Cli cli("classifier", "A CNN Fashion-MNIST classifier, and the judge of FD-FMNIST",
               {.epochs = 8, .batch_size = 128, .lr = 1e-3});
  cli.option("data", "the Fashion-MNIST folder (IDX files)", std::string("/usr/share/datasets/fashion-mnist"));
  cli.option("fd-of", "train nothing: print FD-FMNIST of the images (N,1,28,28) in [0,1] in this .safetensors file",
             std::string());
  return zoo::main_guard("classifier", [&] {
    zoo::RunConfig run = cli.parse(argc, argv);
    Config cfg{.data_dir = cli.get<std::string>("data")};
    if (const std::string path = cli.get<std::string>("fd-of"); !path.empty()) {
      Tensor images = images_to_judge(path);
      zoo::RunLog log(cli, run);
      const double fd = zoo::fd_fmnist(images, {.data_dir = cfg.data_dir, .quick = run.quick});
      std::printf("classifier: FD-FMNIST %.6g: %lld images in %s against the first %lld test images\n", fd,
                  (long long)images.size(0), path.c_str(), (long long)std::min<int64_t>(images.size(0), 10000));
      log.final({{"fd_fmnist", fd}});
      log.finish();
      return 0;
    }
    if (run.quick) {
      run.epochs = 1;
      cfg.train_images = cfg.test_images = cfg.fd_images = 1000, cfg.cache = false;
    }
    data::FashionMNIST train = data::load_fashion_mnist(true, data::Scale::ZeroOne, cfg.data_dir);
    data::FashionMNIST test = data::load_fashion_mnist(false, data::Scale::ZeroOne, cfg.data_dir);
    test = {test.images.narrow(0, 0, cfg.test_images), test.labels.narrow(0, 0, cfg.test_images)};

    zoo::RunLog log(cli, run);
    log.set_config("train_images", cfg.train_images);
    log.set_config("test_images", cfg.test_images);
    if (run.quick)
      std::printf("classifier: --quick: %lld training images, 1 epoch, accuracy and FD on %lld test images; "
                  "the judge's cache is left alone\n", (long long)cfg.train_images, (long long)cfg.test_images);

    manual_seed(run.seed);
    zoo::FmnistClassifier net;
    std::cout << net << "\n";
    double test_accuracy = 0;
    fit(net, train, cfg.train_images, run, [&](int epoch, double train_loss) {
      test_accuracy = accuracy(net, test);
      log.epoch(epoch, {{"train_loss", train_loss}, {"test_accuracy", test_accuracy}});
    });

    // The FD floor: real test images against as many real training images, judged by this network.
    const double fd_floor =
        zoo::fd_fmnist(net, test.images.narrow(0, 0, cfg.fd_images), train.images.narrow(0, 0, cfg.fd_images));
    const Metadata meta{{"test_accuracy", std::to_string(test_accuracy)}, {"epochs", std::to_string(run.epochs)}};
    save(log.dir() + "/classifier.safetensors", net.state_dict(), meta);
    if (cfg.cache) {
      const std::string path = zoo::judge_path();
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      save(path, net.state_dict(), meta);
      std::printf("classifier: weights cached at %s (the judge of FD-FMNIST)\n", path.c_str());
    }

    // A picture to look at: the first 64 test images the network gets wrong, and what it called them.
    std::vector<int64_t> wrong;
    {
      NoGradGuard no_grad;
      std::vector<int64_t> predicted = argmax(net(test.images.narrow(0, 0, 1000)), 1).to_vector<int64_t>();
      std::vector<int64_t> labels = test.labels.to_vector<int64_t>();
      for (int64_t i = 0; i < 1000 && wrong.size() < 64; ++i)
        if (predicted[i] != labels[i]) wrong.push_back(i);
      std::printf("classifier: mistakes.png, first row (true -> predicted):");
      for (size_t j = 0; j < std::min<size_t>(8, wrong.size()); ++j)
        std::printf(" %s->%s", data::fashion_mnist_classes[labels[wrong[j]]],
                    data::fashion_mnist_classes[predicted[wrong[j]]]);
      std::printf("\n");
    }
    if (!wrong.empty())
      viz::save_image_grid(index_select(test.images, 0, from_vector(wrong)), log.dir() + "/mistakes.png", {.nrow = 8});
    log.final({{"test_accuracy", test_accuracy}, {"fd_floor", fd_floor}});
    log.finish();
    return 0;
  });
}

// judge.h: FD-FMNIST, the sample-quality score the zoo's generative models (vae, gan) are judged by, and the
// network that judges: the CNN that models/classifier.cpp trains.
//
// FD-FMNIST is FID's recipe (Heusel et al. 2017) with a judge that fits the data: instead of Inception
// features of ImageNet photos, the 128 penultimate features of a classifier trained on Fashion-MNIST.
// Fit a Gaussian to the features of generated images and one to the features of real test images; the
// Fréchet distance between the two (metrics::frechet_distance) is the score. Lower is better, and even
// real images do not reach 0: `classifier` prints the floor, the test set against 10000 training images.
//
// The judge is trained once and cached, so every model is judged by the same network:
//
//   $HEED_CACHE/fmnist_classifier.safetensors         when HEED_CACHE is set, else
//   $XDG_CACHE_HOME/heed/fmnist_classifier.safetensors, else
//   ~/.cache/heed/fmnist_classifier.safetensors
//
// `./run classifier` trains it and writes that file (its training loop lives there, in one file with the
// rest of that model). A model that needs the judge when the file is missing runs the classifier program
// first (it says so, and the progress shows), unless it runs under --quick (see JudgeOptions).
//
//   double fd = zoo::fd_fmnist(samples);   // samples (N,1,28,28) in [0,1] -> FD against N test images
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "nn/layers.h"

namespace heed::zoo {

/// Two conv blocks and an MLP head. Each block pools before it normalises: BatchNorm and ReLU then touch a
/// quarter of the values, which on two cores is most of a block's time.
///   x (B,1,28,28) -> [conv 3x3 1->16, max-pool 2, BatchNorm, ReLU] -> (B,16,14,14)
///                 -> [conv 3x3 16->32, max-pool 2, BatchNorm, ReLU] -> (B,32,7,7) -> dropout 0.25
///                 -> flatten (B,1568) -> Linear 1568->128, ReLU = features (B,128)
///                 -> dropout 0.5 -> Linear 128->10 = logits (B,10)
struct FmnistClassifier : nn::Module {
  nn::Conv2d conv1{1, 16, 3, {.padding = 1}}, conv2{16, 32, 3, {.padding = 1}};
  nn::BatchNorm2d bn1{16}, bn2{32};
  nn::Dropout drop1{0.25}, drop2{0.5};
  nn::Linear fc1{32 * 7 * 7, 128}, fc2{128, 10};

  FmnistClassifier();
  /// x (B,1,28,28) in [0,1] -> (B,128): the penultimate layer, what FD-FMNIST compares.
  Tensor features(const Tensor& x);
  /// x (B,1,28,28) -> logits (B,10).
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "FmnistClassifier"; }
};

/// images (N,1,28,28) -> features (N,128) float32, in batches of 500, in eval mode, without a graph.
Tensor fmnist_features(FmnistClassifier& net, const Tensor& images);

/// Where the judge's weights are cached (see the top of this file).
std::string judge_path();

struct JudgeOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  /// When the cached weights are missing: false runs the `classifier` program (built beside the running
  /// one) to train and cache the judge, a few minutes; true judges with an untrained network (seed 0) and
  /// caches nothing. A quick judge's FD says little; its purpose is a smoke test of the whole path.
  bool quick = false;
  std::FILE* out = stdout;  /// where it says what it does
};

/// The process's judge, in eval mode: loaded from judge_path(), or made as `options` say when the file is
/// missing (the first call decides; later calls return the same network). The caller's random stream is
/// left where it was.
FmnistClassifier& load_or_train_judge(const JudgeOptions& options = {});

/// The Fréchet distance between `judge`'s features of two sets of images (N,1,28,28) in [0,1], N >= 2.
double fd_fmnist(FmnistClassifier& judge, const Tensor& images, const Tensor& reference);
/// FD-FMNIST of images (N,1,28,28) in [0,1], N >= 2: the Fréchet distance between the process's judge's
/// features of the images and of the first min(N, 10000) Fashion-MNIST test images (equal-sized sets, as
/// FID is usually reported). The test set's statistics are computed once per process and size.
double fd_fmnist(const Tensor& images, const JudgeOptions& options = {});

}  // namespace heed::zoo

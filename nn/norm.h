// norm.h: normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm.
//
// All four compute  y = (x - mean) / √(var + eps) · weight + bias  and differ only in which elements
// share a mean and a variance:
//   BatchNorm   per channel, over the batch and all positions   x (N,C) / (N,C,L) / (N,C,H,W): dims 0, 2, 3...
//   LayerNorm   per sample, over the trailing normalized_shape   x (..., *normalized_shape)
//   GroupNorm   per sample and group of C/G channels             x (N,C,*)
// The variance that normalises is the biased one (divide by n), as in PyTorch. BatchNorm and GroupNorm are
// composites of mean, sum, mul, add and rsqrt, so their gradients, and second derivatives, come from those
// ops; LayerNorm calls the op heed::layer_norm (autograd/ops_norm.cpp), which has second derivatives too.
//
// BatchNorm also keeps running estimates for evaluation (buffers running_mean, running_var and the int64
// num_batches_tracked), updated in training mode under NoGradGuard as PyTorch does:
//   running = (1 - momentum)·running + momentum·batch_stat, with the *unbiased* variance (divide by n-1);
//   momentum = nullopt means a cumulative average, momentum = 1/num_batches_tracked.
// In eval mode BatchNorm normalises with the running estimates instead of the batch's.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "nn/module.h"

namespace heed::nn {

/// What BatchNorm1d and BatchNorm2d share (PyTorch's _BatchNorm); they differ only in the accepted shapes.
struct BatchNorm : Module {
  struct Config {
    double eps = 1e-5;
    std::optional<double> momentum = 0.1;  // nullopt: cumulative moving average
    bool affine = true;                    // learnable weight (ones) and bias (zeros)
    bool track_running_stats = true;       // false: no buffers, batch statistics in eval mode too
  };
  int64_t num_features;
  Config config;
  Tensor weight, bias;                                        // (C), when affine
  Tensor running_mean, running_var, num_batches_tracked;     // (C), (C), int64 0-d, when tracking

  /// x (N, C, *) -> same shape.
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;

 protected:
  BatchNorm(int64_t num_features, const Config& config);
  /// Throws shape_error unless x has a shape this layer accepts.
  virtual void check_input(const Tensor& x) const = 0;
};

/// x (N, C) or (N, C, L).
struct BatchNorm1d : BatchNorm {
  explicit BatchNorm1d(int64_t num_features, const Config& config = {}) : BatchNorm(num_features, config) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input(const Tensor& x) const override;
};

/// x (N, C, H, W).
struct BatchNorm2d : BatchNorm {
  explicit BatchNorm2d(int64_t num_features, const Config& config = {}) : BatchNorm(num_features, config) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  void check_input(const Tensor& x) const override;
};

/// Normalises over the last normalized_shape.size() dims; weight (ones) and bias (zeros) have normalized_shape.
struct LayerNorm : Module {
  Shape normalized_shape;
  double eps;
  bool elementwise_affine;
  Tensor weight, bias;

  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(Shape{normalized_shape}, eps, elementwise_affine) {}
  /// x (..., *normalized_shape) -> same shape.
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
};

/// Splits the C channels into num_groups groups and normalises each (sample, group); weight and bias (C).
struct GroupNorm : Module {
  int64_t num_groups, num_channels;
  double eps;
  bool affine;
  Tensor weight, bias;

  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  /// x (N, C, *) -> same shape.
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "GroupNorm"; }
  std::string extra_repr() const override;
};

}  // namespace heed::nn

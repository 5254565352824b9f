// norm.cpp: the normalisation layers, each a few lines of primitives. The letters are N batch, C channels,
// G groups; "stat shape" is x's shape with the reduced dims kept as 1, so that a mean broadcasts back.
//
// The backward of  y = (x - μ)·r,  r = 1/√(σ² + eps),  σ² = mean((x - μ)²)  is the classic LayerNorm
// derivation (dx = r·(dŷ - mean(dŷ) - ŷ·mean(dŷ·ŷ)) with ŷ the normalised x); for BatchNorm and GroupNorm
// the autograd engine assembles exactly that from the backward of each primitive, and can differentiate it
// once more. LayerNorm calls heed::layer_norm (autograd/ops_norm.cpp), which has that formula written out.
#include "nn/norm.h"

#include <cmath>

#include "autograd/node.h"
#include "nn/linear.h"

namespace heed::nn {

static std::string py_bool(bool b) { return b ? "True" : "False"; }

// (x - mean) / √(var + eps) over `dims`, with the biased variance. Returns the centred x's square sum
// too, for BatchNorm's unbiased running variance.
struct Normalized {
  Tensor y, mean, sq_sum;
};
static Normalized normalize(const Tensor& x, const std::vector<int64_t>& dims, double eps) {
  int64_t n = 1;
  for (int64_t d : dims) n *= x.size(d);
  Tensor mean = x.mean(dims, true);
  Tensor xc = x - mean;
  Tensor sq_sum = (xc * xc).sum(dims, true);
  Tensor var = sq_sum / (double)n;
  return {xc * rsqrt(var + eps), mean, sq_sum};
}

// ---- BatchNorm ------------------------------------------------------------------------------------------
BatchNorm::BatchNorm(int64_t c, const Config& cfg) : num_features(c), config(cfg) {
  if (c < 1) throw Error("BatchNorm: num_features must be >= 1, got " + std::to_string(c));
  if (cfg.affine) {
    weight = ones({c});
    bias = zeros({c});
  }
  register_parameter("weight", weight);
  register_parameter("bias", bias);
  if (cfg.track_running_stats) {
    running_mean = zeros({c});
    running_var = ones({c});
    num_batches_tracked = zeros({}, int64);
  }
  register_buffer("running_mean", running_mean);
  register_buffer("running_var", running_var);
  register_buffer("num_batches_tracked", num_batches_tracked);
}

void BatchNorm1d::check_input(const Tensor& x) const {
  if ((x.dim() != 2 && x.dim() != 3) || x.size(1) != num_features) {
    std::string c = std::to_string(num_features);
    shape_error(describe(*this), "(N," + c + ") or (N," + c + ",L)", x.shape());
  }
}

void BatchNorm2d::check_input(const Tensor& x) const {
  if (x.dim() != 4 || x.size(1) != num_features)
    shape_error(describe(*this), "(N," + std::to_string(num_features) + ",H,W)", x.shape());
}

// y = (x - μ)/√(σ² + eps)·weight + bias   x: (N,C,*)  weight, bias, running stats: (C), viewed (1,C,1,...)
Tensor BatchNorm::forward(const Tensor& x) {
  check_input(x);
  std::vector<int64_t> dims{0};  // every dim but the channels
  for (int64_t d = 2; d < x.dim(); d++) dims.push_back(d);
  Shape stat(x.dim(), 1);        // (1,C,1,1): how (C) vectors broadcast against x
  stat[1] = num_features;
  int64_t n = x.numel() / num_features;  // values per channel

  bool tracking = config.track_running_stats;
  bool use_batch = is_training() || !tracking;
  Tensor y;
  if (use_batch) {
    if (n <= 1)
      throw Error(describe(*this) + ": expected more than 1 value per channel when training, got input " +
                  shape_str(x.shape()));
    Normalized z = normalize(x, dims, config.eps);
    y = z.y;
    if (is_training() && tracking) {
      NoGradGuard no_grad;
      int64_t batches = num_batches_tracked.item<int64_t>() + 1;
      num_batches_tracked.fill_((double)batches);
      double f = config.momentum ? *config.momentum : 1.0 / (double)batches;
      DType dt = running_mean.dtype();
      Tensor mean = z.mean.detach().reshape({num_features}).to(dt);
      Tensor unbiased = (z.sq_sum.detach() / (double)(n - 1)).reshape({num_features}).to(dt);
      running_mean.mul_(1.0 - f).add_(mean, f);
      running_var.mul_(1.0 - f).add_(unbiased, f);
    }
  } else {
    y = (x - running_mean.view(stat)) * rsqrt(running_var.view(stat) + config.eps);
  }
  if (config.affine) y = y * weight.view(stat) + bias.view(stat);
  return y;
}

std::string BatchNorm::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + py_float(config.eps) +
         ", momentum=" + (config.momentum ? py_float(*config.momentum) : "None") +
         ", affine=" + py_bool(config.affine) + ", track_running_stats=" + py_bool(config.track_running_stats);
}

// ---- LayerNorm ------------------------------------------------------------------------------------------
LayerNorm::LayerNorm(Shape shape, double eps, bool affine)
    : normalized_shape(std::move(shape)), eps(eps), elementwise_affine(affine) {
  if (normalized_shape.empty()) throw Error("LayerNorm: normalized_shape must have at least one dim");
  for (int64_t s : normalized_shape)
    if (s < 1) throw Error("LayerNorm: normalized_shape must be positive, got " + shape_str(normalized_shape));
  if (affine) {
    weight = ones(normalized_shape);
    bias = zeros(normalized_shape);
  }
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}

// y = (x - μ)/√(σ² + eps)·weight + bias over the trailing dims   x: (..., *S)  weight, bias: S
Tensor LayerNorm::forward(const Tensor& x) {
  int64_t k = (int64_t)normalized_shape.size();
  bool ok = x.dim() >= k && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape;
  if (!ok) {
    std::string s = shape_str(normalized_shape);  // "(5,6)" -> "(..., 5,6)"
    shape_error(describe(*this), "(..., " + s.substr(1), x.shape());
  }
  return layer_norm(x, normalized_shape, elementwise_affine ? weight : Tensor(), elementwise_affine ? bias : Tensor(),
                    eps);
}

std::string LayerNorm::extra_repr() const {
  std::string t = "(";
  for (size_t i = 0; i < normalized_shape.size(); i++) t += (i ? ", " : "") + std::to_string(normalized_shape[i]);
  t += normalized_shape.size() == 1 ? ",)" : ")";
  return t + ", eps=" + py_float(eps) + ", elementwise_affine=" + py_bool(elementwise_affine);
}

// ---- GroupNorm ------------------------------------------------------------------------------------------
GroupNorm::GroupNorm(int64_t g, int64_t c, double eps, bool affine)
    : num_groups(g), num_channels(c), eps(eps), affine(affine) {
  if (g < 1 || c < 1 || c % g != 0)
    throw Error("GroupNorm: num_channels " + std::to_string(c) + " must be divisible by num_groups " +
                std::to_string(g));
  if (affine) {
    weight = ones({c});
    bias = zeros({c});
  }
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}

// x (N,C,*) viewed (N, G, C/G·*): each row is one (sample, group), normalised on its own, then viewed
// back and scaled per channel.
Tensor GroupNorm::forward(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != num_channels)
    shape_error(describe(*this), "(N," + std::to_string(num_channels) + ",*)", x.shape());
  int64_t N = x.size(0);
  Tensor y = normalize(x.reshape({N, num_groups, -1}), {2}, eps).y.reshape(x.shape());
  if (!affine) return y;
  Shape stat(x.dim(), 1);
  stat[1] = num_channels;
  return y * weight.view(stat) + bias.view(stat);
}

std::string GroupNorm::extra_repr() const {
  return std::to_string(num_groups) + ", " + std::to_string(num_channels) + ", eps=" + py_float(eps) +
         ", affine=" + py_bool(affine);
}

}  // namespace heed::nn

// distributions.h: the probability distributions a VAE or a policy gradient needs, after
// torch.distributions (which libtorch's C++ API lacks). Everything is built from heed ops, so log_prob,
// entropy and kl_divergence are differentiable with respect to the parameters (and the value, where it
// is continuous).
//
//   Normal(loc, scale)          sample, rsample, log_prob, entropy, mean, stddev, variance
//   Bernoulli({.logits = z})    sample, log_prob, entropy, probs, logits    (or {.probs = p})
//   Categorical({.logits = z})  sample (int64), log_prob, entropy, probs     (or {.probs = p})
//   kl_divergence(Normal, Normal), in closed form
//
// Shapes follow torch.distributions: the parameters broadcast to a batch_shape (Categorical's last dim
// is the categories, not batch); sample(sample_shape) returns sample_shape + batch_shape; log_prob(value)
// broadcasts value against batch_shape.
//
// sample() draws without a graph; Normal::rsample() is the reparameterisation trick: loc + scale·ε with
// ε ~ N(0,1) drawn independently of the parameters, so the gradient flows into loc and scale (Kingma and
// Welling 2014). Every draw takes an optional Generator (tensor/random.h); nullptr means the global one.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::distributions {

class Normal {
 public:
  /// loc and scale broadcast together; both float32 or both float64; scale must be > 0.
  Normal(const Tensor& loc, const Tensor& scale);
  /// A draw of shape sample_shape + batch_shape, with no graph.
  Tensor sample(const Shape& sample_shape = {}, Generator* gen = nullptr) const;
  /// loc + scale·ε: differentiable with respect to loc and scale.
  Tensor rsample(const Shape& sample_shape = {}, Generator* gen = nullptr) const;
  /// -(value - loc)² / (2 scale²) - log scale - ½ log 2π
  Tensor log_prob(const Tensor& value) const;
  /// ½ + ½ log 2π + log scale
  Tensor entropy() const;
  const Tensor& mean() const { return loc_; }
  const Tensor& stddev() const { return scale_; }
  Tensor variance() const { return scale_ * scale_; }
  const Tensor& loc() const { return loc_; }
  const Tensor& scale() const { return scale_; }
  const Shape& batch_shape() const { return loc_.shape(); }

 private:
  Tensor loc_, scale_;  // both expanded to batch_shape
};

class Bernoulli {
 public:
  /// Exactly one of the two: probabilities in [0,1], or logits (log-odds, any real).
  struct Params {
    Tensor probs;
    Tensor logits;
  };
  explicit Bernoulli(const Params& params);
  /// 0.0 or 1.0 in the parameters' dtype, of shape sample_shape + batch_shape, with no graph.
  Tensor sample(const Shape& sample_shape = {}, Generator* gen = nullptr) const;
  /// value log p + (1 - value) log(1 - p), computed from the logits as -binary_cross_entropy_with_logits,
  /// so it stays finite for logits of any size.
  Tensor log_prob(const Tensor& value) const;
  /// -p log p - (1-p) log(1-p)
  Tensor entropy() const;
  const Tensor& probs() const { return probs_; }
  const Tensor& logits() const { return logits_; }
  Tensor mean() const { return probs_; }
  Tensor variance() const { return probs_ * (1.0 - probs_); }
  const Shape& batch_shape() const { return logits_.shape(); }

 private:
  Tensor probs_, logits_;
};

class Categorical {
 public:
  /// Exactly one of the two, with the categories along the last dim: unnormalised logits, or
  /// non-negative weights (normalised to sum to 1, as torch does).
  struct Params {
    Tensor probs;
    Tensor logits;
  };
  explicit Categorical(const Params& params);
  /// int64 category indices of shape sample_shape + batch_shape, with no graph.
  Tensor sample(const Shape& sample_shape = {}, Generator* gen = nullptr) const;
  /// log p[value]: value is int64, broadcast against batch_shape; differentiable in the logits.
  Tensor log_prob(const Tensor& value) const;
  /// -Σ p log p over the categories
  Tensor entropy() const;
  /// softmax of the logits along the last dim
  Tensor probs() const;
  /// the normalised logits: log-probabilities, logits - logsumexp(logits)
  const Tensor& logits() const { return logits_; }
  int64_t num_categories() const { return logits_.shape().back(); }
  Shape batch_shape() const;

 private:
  Tensor logits_;  // normalised: logsumexp over the last dim is 0
};

/// KL(p ‖ q) = log(σq/σp) + (σp² + (μp - μq)²) / (2σq²) - ½, elementwise over the broadcast batch.
Tensor kl_divergence(const Normal& p, const Normal& q);

}  // namespace heed::distributions

// distributions.cpp: Normal, Bernoulli and Categorical as in torch.distributions, from heed ops.
#include "nn/distributions.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "nn/loss.h"

namespace heed::distributions {

namespace {

void check_float(const char* who, const char* what, const Tensor& t) {
  if (!t.defined()) throw Error(std::string(who) + ": " + what + " is an undefined tensor");
  if (!is_floating(t.dtype()))
    throw Error(std::string(who) + ": " + what + " must be float32 or float64, got " + dtype_name(t.dtype()));
}

void check_same_dtype(const char* who, const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.dtype() != b.dtype())
    throw Error(std::string(who) + ": " + an + " is " + dtype_name(a.dtype()) + " but " + bn + " is " +
                dtype_name(b.dtype()));
}

// Every element must satisfy `ok`; otherwise name the first that does not.
template <class F>
void check_values(const char* who, const char* what, const Tensor& t, const char* rule, F ok) {
  std::vector<double> v = t.to_vector<double>();
  for (size_t i = 0; i < v.size(); i++)
    if (!ok(v[i]))
      throw Error(std::string(who) + ": " + what + " must be " + rule + ", got " + std::to_string(v[i]) + " at index " +
                  std::to_string(i));
}

Shape concat(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// Exactly one of probs and logits, as torch asks.
void check_one_of(const char* who, const Tensor& probs, const Tensor& logits) {
  if (probs.defined() == logits.defined())
    throw Error(std::string(who) + ": pass exactly one of .probs and .logits");
}

// The smallest probability a log is taken of: torch's clamp_probs, machine epsilon of the dtype.
double eps_of(DType dt) {
  return dt == float32 ? (double)std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
}

const double kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);

// binary_cross_entropy_with_logits without a reduction: one value per element.
nn::BCEWithLogitsOptions elementwise() {
  nn::BCEWithLogitsOptions o;
  o.reduction = nn::Reduction::None;
  return o;
}

}  // namespace

// ---- Normal ---------------------------------------------------------------------------------------------------
Normal::Normal(const Tensor& loc, const Tensor& scale) {
  check_float("Normal", "loc", loc);
  check_float("Normal", "scale", scale);
  check_same_dtype("Normal", loc, "loc", scale, "scale");
  check_values("Normal", "scale", scale, "> 0", [](double s) { return s > 0; });
  Shape batch = broadcast_shapes("Normal", loc.shape(), scale.shape());
  loc_ = loc.expand(batch);
  scale_ = scale.expand(batch);
}

Tensor Normal::sample(const Shape& sample_shape, Generator* gen) const {
  NoGradGuard no_grad;
  return rsample(sample_shape, gen);
}

// x = μ + σε: the randomness lives in ε, which does not depend on μ or σ, so dx/dμ = 1 and dx/dσ = ε.
Tensor Normal::rsample(const Shape& sample_shape, Generator* gen) const {
  Tensor eps = randn(concat(sample_shape, batch_shape()), loc_.dtype(), gen);
  return loc_ + scale_ * eps;
}

Tensor Normal::log_prob(const Tensor& value) const {
  check_float("Normal.log_prob", "value", value);
  check_same_dtype("Normal.log_prob", value, "value", loc_, "loc");
  Tensor z = (value - loc_) / scale_;
  return -0.5 * z * z - log(scale_) - kHalfLog2Pi;
}

Tensor Normal::entropy() const { return log(scale_) + (0.5 + kHalfLog2Pi); }

Tensor kl_divergence(const Normal& p, const Normal& q) {
  check_same_dtype("kl_divergence", p.loc(), "p", q.loc(), "q");
  // torch's arrangement: with r = (σp/σq)², KL = ½ (r + ((μp - μq)/σq)² - 1 - log r).
  Tensor ratio = p.scale() / q.scale();
  Tensor r = ratio * ratio;
  Tensor t = (p.loc() - q.loc()) / q.scale();
  return 0.5 * (r + t * t - 1.0 - log(r));
}

// ---- Bernoulli ------------------------------------------------------------------------------------------------
Bernoulli::Bernoulli(const Params& params) {
  check_one_of("Bernoulli", params.probs, params.logits);
  if (params.logits.defined()) {
    check_float("Bernoulli", "logits", params.logits);
    logits_ = params.logits;
    probs_ = sigmoid(logits_);
  } else {
    check_float("Bernoulli", "probs", params.probs);
    check_values("Bernoulli", "probs", params.probs, "in [0,1]", [](double p) { return p >= 0 && p <= 1; });
    probs_ = params.probs;
    // logit p = log p - log(1-p), with p clamped to [eps, 1-eps] so that 0 and 1 give large finite logits.
    double e = eps_of(probs_.dtype());
    Tensor pc = clamp(probs_, e, 1.0 - e);
    logits_ = log(pc) - log(1.0 - pc);
  }
}

Tensor Bernoulli::sample(const Shape& sample_shape, Generator* gen) const {
  NoGradGuard no_grad;
  Tensor u = rand(concat(sample_shape, batch_shape()), probs_.dtype(), gen);
  return (u < probs_.detach()).to(probs_.dtype());  // P(u < p) = p for u uniform on [0,1)
}

Tensor Bernoulli::log_prob(const Tensor& value) const {
  check_float("Bernoulli.log_prob", "value", value);
  check_same_dtype("Bernoulli.log_prob", value, "value", logits_, "logits");
  Shape s = broadcast_shapes("Bernoulli.log_prob", value.shape(), logits_.shape());
  return -nn::binary_cross_entropy_with_logits(logits_.expand(s), value.expand(s), elementwise());
}

// H = -p log p - (1-p) log(1-p), which is the cross-entropy of the distribution with itself.
Tensor Bernoulli::entropy() const {
  return nn::binary_cross_entropy_with_logits(logits_, probs_, elementwise());
}

// ---- Categorical ------------------------------------------------------------------------------------------------
Categorical::Categorical(const Params& params) {
  check_one_of("Categorical", params.probs, params.logits);
  const Tensor& given = params.logits.defined() ? params.logits : params.probs;
  check_float("Categorical", params.logits.defined() ? "logits" : "probs", given);
  if (given.dim() < 1 || given.shape().back() < 1)
    throw Error("Categorical: needs at least one category along the last dim, got " + shape_str(given.shape()));
  if (params.logits.defined()) {
    logits_ = params.logits - logsumexp(params.logits, -1, true);
  } else {
    check_values("Categorical", "probs", params.probs, ">= 0", [](double p) { return p >= 0; });
    Tensor p = params.probs / sum(params.probs, {-1}, true);
    double e = eps_of(p.dtype());
    logits_ = log(clamp(p, e, 1.0 - e));
  }
}

Shape Categorical::batch_shape() const { return Shape(logits_.shape().begin(), logits_.shape().end() - 1); }

Tensor Categorical::probs() const { return softmax(logits_, -1); }

// Inverse-CDF sampling, one uniform per draw: category k is picked when u·total falls in
// [cum[k-1], cum[k]), which has probability p[k]. Done in double on the host; sampling is not a hot loop.
Tensor Categorical::sample(const Shape& sample_shape, Generator* gen) const {
  NoGradGuard no_grad;
  const int64_t K = num_categories();
  Shape batch = batch_shape();
  const int64_t B = numel_of(batch), S = numel_of(sample_shape);
  std::vector<double> p = probs().contiguous().to_vector<double>();
  std::vector<double> u = rand({S * B}, float64, gen).to_vector<double>();
  std::vector<int64_t> out(S * B);
  std::vector<double> cum(K);
  for (int64_t b = 0; b < B; b++) {
    double acc = 0;
    for (int64_t k = 0; k < K; k++) cum[k] = acc += p[b * K + k];
    for (int64_t s = 0; s < S; s++) {
      double target = u[s * B + b] * acc;
      int64_t k = 0;
      while (k < K - 1 && !(target < cum[k])) k++;
      out[s * B + b] = k;
    }
  }
  return from_vector(out, concat(sample_shape, batch));
}

// log p[value]: the normalised logits expanded to value's broadcast shape, then gathered along categories.
Tensor Categorical::log_prob(const Tensor& value) const {
  if (!value.defined() || value.dtype() != int64)
    throw Error(std::string("Categorical.log_prob: value must be int64 category indices, got ") +
                (value.defined() ? dtype_name(value.dtype()) : "an undefined tensor"));
  const int64_t K = num_categories();
  std::vector<int64_t> v = value.to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); i++)
    if (v[i] < 0 || v[i] >= K)
      throw Error("Categorical.log_prob: value " + std::to_string(v[i]) + " at index " + std::to_string(i) +
                  " is out of range for " + std::to_string(K) + " categories");
  Shape s = broadcast_shapes("Categorical.log_prob", value.shape(), batch_shape());
  Tensor lp = logits_.expand(concat(s, {K}));
  return gather(lp, -1, value.expand(s).unsqueeze(-1)).squeeze(-1);
}

// H = -Σ p log p. A category with logit -inf has p = 0 and contributes 0; clamping its logit to the most
// negative finite number keeps 0·(-inf) = nan out of the sum (torch does the same).
Tensor Categorical::entropy() const {
  double lowest = logits_.dtype() == float32 ? (double)std::numeric_limits<float>::lowest()
                                             : std::numeric_limits<double>::lowest();
  Tensor l = clamp(logits_, lowest, INFINITY);
  return -sum(l * probs(), {-1});
}

}  // namespace heed::distributions

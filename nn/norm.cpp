// norm.cpp: the normalisation layers, each a few lines of primitives. The letters are N batch, C channels,
// G groups; "stat shape" is x's shape with the reduced dims kept as 1, so that a mean broadcasts back.
//
// The backward of  y = (x - μ)·r,  r = 1/√(σ² + eps),  σ² = mean((x - μ)²)  is the classic LayerNorm
// derivation (dx = r·(dŷ - mean(dŷ) - ŷ·mean(dŷ·ŷ)) with ŷ the normalised x); here the autograd engine
// assembles exactly that from the backward of each primitive, and can differentiate it once more.
#include "nn/norm.h"

#include <cmath>

#include "autograd/node.h"
#include "nn/linear.h"

namespace heed::nn {

using Grads = std::vector<Tensor>;

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
         ", momentum=" + (config.momentum ? py_float(*config.momentum) : "None") + ", affine=" + py_bool(config.affine) +
         ", track_running_stats=" + py_bool(config.track_running_stats);
}

// ---- LayerNorm ------------------------------------------------------------------------------------------
LayerNorm::LayerNorm(Shape shape, double eps, bool affine) : normalized_shape(std::move(shape)), eps(eps), elementwise_affine(affine) {
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

// ---- layer_norm: the fused op ----------------------------------------------------------------------------
// LayerNorm as a composite is about ten elementwise ops and reductions forward and twenty backward, each a
// pass over the whole activation with its own temporary. gpt_step runs nine LayerNorms over (2048, 128)
// per step, and those passes were a fifth of its time outside the GEMMs (perf: binary_simd, sum_block,
// accumulate). The fused op makes one pass per row forward (saving μ and r = 1/√(σ² + eps) per row) and
// one backward, llm.c's layernorm_forward / layernorm_backward:
//   ŷ = (x - μ)·r,  y = ŷ·w + b;   g = dy·w,  dx = r·(g - mean(g) - ŷ·mean(g·ŷ)),  dw = Σ dy·ŷ,  db = Σ dy
// (the derivation is the one at the top of this file). Under create_graph the backward is the same
// formula in heed ops on a recomputed ŷ, so it can be differentiated again. R rows of C elements.
namespace {

template <class T>
void layer_norm_forward_kernel(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t R, int64_t C,
                               double eps) {
#pragma omp parallel for schedule(static) if (R * C >= 32768)
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; c++) s += xr[c];
    const double m = s / (double)C;
    for (int64_t c = 0; c < C; c++) ss += ((double)xr[c] - m) * ((double)xr[c] - m);
    const T mu = (T)m, rs = (T)(1.0 / std::sqrt(ss / (double)C + eps));
    for (int64_t c = 0; c < C; c++) {
      const T v = (xr[c] - mu) * rs;
      yr[c] = w ? v * w[c] + b[c] : v;
    }
    mean[r] = mu, rstd[r] = rs;
  }
}

// dx for every row; dw, db (when w) as column sums over the rows, in row order.
template <class T>
void layer_norm_backward_kernel(const T* x, const T* w, const T* dy, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                                int64_t R, int64_t C) {
#pragma omp parallel for schedule(static) if (R * C >= 32768)
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    const T* dr = dy + r * C;
    T* out = dx + r * C;
    const T mu = mean[r], rs = rstd[r];
    double sg = 0, sgy = 0;
    for (int64_t c = 0; c < C; c++) {
      const T g = w ? dr[c] * w[c] : dr[c];
      sg += g;
      sgy += g * ((xr[c] - mu) * rs);
    }
    const T mg = (T)(sg / (double)C), mgy = (T)(sgy / (double)C);
    for (int64_t c = 0; c < C; c++) {
      const T g = w ? dr[c] * w[c] : dr[c];
      out[c] = rs * (g - mg - ((xr[c] - mu) * rs) * mgy);
    }
  }
  if (!w) return;
  std::fill(dw, dw + C, T(0));
  std::fill(db, db + C, T(0));
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    const T* dr = dy + r * C;
    const T mu = mean[r], rs = rstd[r];
    for (int64_t c = 0; c < C; c++) {
      dw[c] += dr[c] * ((xr[c] - mu) * rs);
      db[c] += dr[c];
    }
  }
}

}  // namespace

static const bool registered = register_ops({"layer_norm"});

static Tensor layer_norm(const Tensor& x_in, int64_t C, const Tensor& weight, const Tensor& bias, double eps) {
  Tensor x = x_in.contiguous();
  const int64_t R = C ? x.numel() / C : 0;
  Tensor y = empty(x.shape(), x.dtype()), mean = empty({R}, x.dtype()), rstd = empty({R}, x.dtype());
  const bool affine = weight.defined();
  Tensor w = affine ? weight.contiguous() : Tensor(), b = affine ? bias.contiguous() : Tensor();
  dispatch_floating(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    layer_norm_forward_kernel<T>(x.data_ptr<T>(), affine ? w.data_ptr<T>() : nullptr, affine ? b.data_ptr<T>() : nullptr,
                                 y.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(), R, C, eps);
  });
  std::vector<Tensor> inputs{x_in};
  if (affine) inputs.push_back(weight), inputs.push_back(bias);
  return record("layer_norm", y, inputs,
                [sx = SavedTensor(x_in), sw = SavedTensor(weight), mean, rstd, C, R, eps, affine](const Tensor& d,
                                                                                                  const Tensor&) {
                  Tensor x = sx.get(), w = sw.get();
                  if (grad_enabled()) {  // create_graph: the formula in heed ops, on a recomputed ŷ
                    Tensor x2 = x.reshape({R, C}), d2 = d.reshape({R, C});
                    Tensor mu = x2.mean(1, true), xc = x2 - mu;
                    Tensor r = rsqrt((xc * xc).mean(1, true) + eps), xhat = xc * r;
                    Tensor g = affine ? d2 * w.reshape({C}) : d2;
                    Tensor dx = (r * (g - g.mean(1, true) - xhat * (g * xhat).mean(1, true))).reshape(x.shape());
                    if (!affine) return Grads{dx};
                    return Grads{dx, (d2 * xhat).sum(0).reshape(w.shape()), d2.sum(0).reshape(w.shape())};
                  }
                  Tensor xc = x.contiguous(), dc = d.contiguous(), dx = empty(x.shape(), x.dtype());
                  Tensor wc = affine ? w.contiguous() : Tensor();
                  Tensor dw = affine ? empty(w.shape(), w.dtype()) : Tensor(), db = affine ? empty(w.shape(), w.dtype()) : Tensor();
                  dispatch_floating(x.dtype(), "layer_norm backward", [&](auto zero) {
                    using T = decltype(zero);
                    layer_norm_backward_kernel<T>(xc.data_ptr<T>(), affine ? wc.data_ptr<T>() : nullptr, dc.data_ptr<T>(),
                                                  mean.data_ptr<T>(), rstd.data_ptr<T>(), dx.data_ptr<T>(),
                                                  affine ? dw.data_ptr<T>() : nullptr, affine ? db.data_ptr<T>() : nullptr, R, C);
                  });
                  if (!affine) return Grads{dx};
                  return Grads{dx, dw, db};
                });
}

static Tensor layer_norm_composite(const Tensor& x, int64_t k, const Tensor& weight, const Tensor& bias, double eps) {
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); d++) dims.push_back(d);
  Tensor y = normalize(x, dims, eps).y;
  return weight.defined() ? y * weight + bias : y;
}

// y = (x - μ)/√(σ² + eps)·weight + bias over the trailing dims   x: (..., *S)  weight, bias: S
Tensor LayerNorm::forward(const Tensor& x) {
  int64_t k = (int64_t)normalized_shape.size();
  bool ok = x.dim() >= k && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape;
  if (!ok) {
    std::string s = shape_str(normalized_shape);  // "(5,6)" -> "(..., 5,6)"
    shape_error(describe(*this), "(..., " + s.substr(1), x.shape());
  }
  // The fused op for float tensors whose weight and bias match the normalized shape (they may have been
  // replaced by the user); anything else takes the composite.
  bool fused = is_floating(x.dtype()) && x.numel() > 0 &&
               (!elementwise_affine || (weight.shape() == normalized_shape && bias.defined() &&
                                        bias.shape() == normalized_shape && weight.dtype() == x.dtype() &&
                                        bias.dtype() == x.dtype()));
  if (fused) return layer_norm(x, numel_of(normalized_shape), elementwise_affine ? weight : Tensor(),
                               elementwise_affine ? bias : Tensor(), eps);
  return layer_norm_composite(x, k, elementwise_affine ? weight : Tensor(), elementwise_affine ? bias : Tensor(), eps);
}

std::string LayerNorm::extra_repr() const {
  std::string t = "(";
  for (size_t i = 0; i < normalized_shape.size(); i++) t += (i ? ", " : "") + std::to_string(normalized_shape[i]);
  t += normalized_shape.size() == 1 ? ",)" : ")";
  return t + ", eps=" + py_float(eps) + ", elementwise_affine=" + py_bool(elementwise_affine);
}

// ---- GroupNorm ------------------------------------------------------------------------------------------
GroupNorm::GroupNorm(int64_t g, int64_t c, double eps, bool affine) : num_groups(g), num_channels(c), eps(eps), affine(affine) {
  if (g < 1 || c < 1 || c % g != 0)
    throw Error("GroupNorm: num_channels " + std::to_string(c) + " must be divisible by num_groups " + std::to_string(g));
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
  return std::to_string(num_groups) + ", " + std::to_string(num_channels) + ", eps=" + py_float(eps) + ", affine=" + py_bool(affine);
}

}  // namespace heed::nn

// loss.cpp: the losses of loss.h. Each is a few lines of heed ops, so its backward is the primitives'.
//
// Reading order: the argument checks every loss shares; the regression losses; the two binary
// cross-entropies; cross-entropy and nll_loss (composite, then the fused kernel); kl_div; the GAN hinges and
// WGAN-GP's gradient penalty.
#include "nn/loss.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/simd.h"
#include "tensor/parallel.h"

namespace heed::nn {

using Grads = std::vector<Tensor>;

// The ops recorded here (the fused cross-entropy and binary cross-entropy); every other loss is composed of registered primitives.
static const bool registered = register_ops({"cross_entropy", "binary_cross_entropy"});

// ---- checks shared by every loss --------------------------------------------------------------------------
namespace {

std::string str(const char* loss) { return std::string(loss) + ": "; }

void check_float(const char* loss, const char* what, const Tensor& t) {
  if (!t.defined()) throw Error(str(loss) + what + " is an undefined tensor");
  if (!is_floating(t.dtype()))
    throw Error(str(loss) + what + " must be float32 or float64, got " + dtype_name(t.dtype()) + " " + shape_str(t.shape()));
}

// Regression losses and their kin compare two tensors element by element, so the shapes must match exactly.
// PyTorch only warns and broadcasts, and then an output (N,1) against a target (N) quietly becomes an
// (N,N) loss; here it is an error.
void check_pair(const char* loss, const Tensor& input, const Tensor& target) {
  check_float(loss, "input", input);
  check_float(loss, "target", target);
  if (input.shape() != target.shape())
    throw Error(str(loss) + "input " + shape_str(input.shape()) + " and target " + shape_str(target.shape()) +
                " must have the same shape");
  if (input.dtype() != target.dtype())
    throw Error(str(loss) + "input is " + dtype_name(input.dtype()) + " but target is " + dtype_name(target.dtype()));
}

// An optional weight must broadcast *to* the input's shape: it may repeat along dims, never add elements.
void check_weight(const char* loss, const char* what, const Tensor& w, const Tensor& input) {
  if (!w.defined()) return;
  check_float(loss, what, w);
  if (w.dtype() != input.dtype())
    throw Error(str(loss) + what + " is " + dtype_name(w.dtype()) + " but input is " + dtype_name(input.dtype()));
  const Shape& ws = w.shape();
  const Shape& xs = input.shape();
  bool fits = ws.size() <= xs.size();
  for (size_t i = 0; fits && i < ws.size(); i++) {
    int64_t have = ws[ws.size() - 1 - i], want = xs[xs.size() - 1 - i];  // aligned from the right
    fits = have == want || have == 1;
  }
  if (!fits)
    throw Error(str(loss) + what + " " + shape_str(w.shape()) + " does not broadcast to the input's shape " +
                shape_str(input.shape()));
}

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None: return loss;
    case Reduction::Mean: return mean(loss);
    case Reduction::Sum: break;
  }
  return sum(loss);
}

}  // namespace

// ---- regression -----------------------------------------------------------------------------------------------
// out = (x - y)²;  dx = 2(x - y), dy = -2(x - y)
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair("mse_loss", input, target);
  Tensor d = input - target;
  return reduce(d * d, reduction);
}

// out = |x - y|;  dx = sign(x - y), 0 where they are equal (as PyTorch)
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair("l1_loss", input, target);
  return reduce(abs(input - target), reduction);
}

// out = ½d²/β where |d| < β, else |d| - ½β.  The two pieces meet with equal value and slope at |d| = β,
// so the loss is quadratic near 0 (gentle on small errors) and linear far out (robust to outliers).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  check_pair("smooth_l1_loss", input, target);
  if (beta < 0) throw Error("smooth_l1_loss: beta must be >= 0, got " + std::to_string(beta));
  Tensor d = input - target;
  Tensor ad = abs(d);
  if (beta == 0) return reduce(ad, reduction);
  Tensor quadratic = ad < beta;  // a constant mask: where() routes the gradient
  return reduce(where(quadratic, 0.5 * d * d / beta, ad - 0.5 * beta), reduction);
}

// ---- two classes ------------------------------------------------------------------------------------------------
// log x clamped below at -100, PyTorch's guard in binary_cross_entropy. The "double where": log is only
// evaluated where it is above -100, on 1 elsewhere, so its backward d/x never divides 0 by 0 at x = 0,
// and the outer where sends no gradient to the clamped elements (their loss is the constant 100).
static Tensor clamped_log(const Tensor& x) {
  Tensor ok = x > std::exp(-100.0);
  return where(ok, log(where(ok, x, ones_like(x))), full_like(x, -100.0));
}

// The elementwise loss -(y log⁺p + (1-y) log⁺(1-p)) as one fused op, log⁺ = clamped_log. Composite, it
// was about ten passes and temporaries (four wheres, two logs, the masks) forward and as many backward:
// 30% of vae_step (perf: where 14%, compare, fill, logs). The fused forward takes the logs from simd.h on
// L1-sized chunks; the plain backward is one loop; under create_graph the backward is written in heed
// ops (bce_backward_ops), so the second derivative is still there. Both match the composite, which the
// gradcheck tables and PyTorch's fixtures (tests/nn/test_loss.cpp) check.
//   dp = -y [p > e^-100]/p + (1-y) [1-p > e^-100]/(1-p)   (times d),   dy = -(log⁺p - log⁺(1-p))
namespace {

constexpr double kLogFloor = -100.0;

std::pair<Tensor, Tensor> bce_backward_ops(const Tensor& p, const Tensor& y, const Tensor& d, bool need_dy) {
  const double tiny = std::exp(kLogFloor);
  Tensor q = 1.0 - p;
  Tensor okp = p > tiny, okq = q > tiny, zero = zeros_like(p), one = ones_like(p);
  Tensor inv_p = where(okp, 1.0 / where(okp, p, one), zero), inv_q = where(okq, 1.0 / where(okq, q, one), zero);
  Tensor dp = d * ((1.0 - y) * inv_q - y * inv_p);
  Tensor dy = need_dy ? -(d * (clamped_log(p) - clamped_log(q))) : Tensor();
  return {dp, dy};
}

// loss[i] for contiguous p, y; throws on a p outside [0, 1] (a logit passed by mistake).
template <class T>
void bce_forward_kernel(const T* p, const T* y, T* out, int64_t n) {
  constexpr int64_t kRow = 512;
  T lp[kRow], lq[kRow];
  const bool fast = heed::kernels::use_simd();
  for (int64_t i0 = 0; i0 < n; i0 += kRow) {
    const int64_t m = std::min(kRow, n - i0);
    for (int64_t k = 0; k < m; k++) {
      const T v = p[i0 + k];
      if (!(v >= 0 && v <= 1))
        throw Error("binary_cross_entropy: input value " + std::to_string(v) + " at index " + std::to_string(i0 + k) +
                    " is not a probability in [0,1] (for logits use binary_cross_entropy_with_logits)");
      lp[k] = v, lq[k] = T(1) - v;
    }
    if (fast) {
      simd::unary_simd<T>(simd::Unary::Log, lp, lp, m, {});
      simd::unary_simd<T>(simd::Unary::Log, lq, lq, m, {});
    } else {
      simd::unary_ref<T>(simd::Unary::Log, lp, 1, lp, 1, m, {});
      simd::unary_ref<T>(simd::Unary::Log, lq, 1, lq, 1, m, {});
    }
    const T floor = T(kLogFloor);
    for (int64_t k = 0; k < m; k++) {
      const T yk = y[i0 + k];
      out[i0 + k] = -(yk * std::max(lp[k], floor) + (T(1) - yk) * std::max(lq[k], floor));
    }
  }
}

template <class T>
void bce_backward_kernel(const T* p, const T* y, const T* d, T* dp, int64_t n) {
  const T tiny = T(std::exp(kLogFloor));
  for (int64_t i = 0; i < n; i++) {
    const T q = T(1) - p[i];
    const T inv_p = p[i] > tiny ? T(1) / p[i] : T(0), inv_q = q > tiny ? T(1) / q : T(0);
    dp[i] = d[i] * ((T(1) - y[i]) * inv_q - y[i] * inv_p);
  }
}

Tensor bce_elementwise(const Tensor& input, const Tensor& target) {
  Tensor p = input.contiguous(), y = target.contiguous();
  Tensor loss = empty(p.shape(), p.dtype());
  dispatch_floating(p.dtype(), "binary_cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    bce_forward_kernel<T>(p.data_ptr<T>(), y.data_ptr<T>(), loss.data_ptr<T>(), p.numel());
  });
  bool need_dy = target.requires_grad();
  return record("binary_cross_entropy", loss, {input, target},
                [sp = SavedTensor(input), sy = SavedTensor(target), need_dy](const Tensor& d, const Tensor&) {
                  Tensor p = sp.get(), y = sy.get();
                  if (grad_enabled() || need_dy) {
                    auto [dp, dy] = bce_backward_ops(p, y, d, need_dy);
                    return Grads{dp, dy};
                  }
                  Tensor pc = p.contiguous(), yc = y.contiguous(), dc = d.contiguous(), dp = empty(p.shape(), p.dtype());
                  dispatch_floating(p.dtype(), "binary_cross_entropy backward", [&](auto zero) {
                    using T = decltype(zero);
                    bce_backward_kernel<T>(pc.data_ptr<T>(), yc.data_ptr<T>(), dc.data_ptr<T>(), dp.data_ptr<T>(), pc.numel());
                  });
                  return Grads{dp, Tensor()};
                });
}

}  // namespace

// out = -w (y log p + (1-y) log(1-p));  dp = w (p - y) / (p (1-p)),  dy = -w (log p - log(1-p))
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const BCEOptions& o) {
  const char* name = "binary_cross_entropy";
  check_pair(name, input, target);
  check_weight(name, "weight", o.weight, input);
  // Probabilities only: a logit passed by mistake would silently give nonsense, so the kernel says where to go.
  Tensor loss = bce_elementwise(input, target);
  if (o.weight.defined()) loss = loss * o.weight;
  return reduce(loss, o.reduction);
}

// out = (1-y) x + l softplus(-x),  l = 1 + (pos_weight - 1) y.
// Why this form: with p = σ(x), -log p = softplus(-x) and -log(1-p) = x + softplus(-x), so the usual
// -(y log p + (1-y) log(1-p)) is (1-y) x + softplus(-x). softplus(-x) = max(-x,0) + log(1 + e^-|x|)
// (the log-sum-exp form) never exponentiates a positive number, so there is no overflow, and the softplus
// kernel computes it accurately for every x. The gradient, dx = (1-y) - l σ(-x) (the familiar σ(x) - y
// without pos_weight), comes from softplus's backward, σ, which is itself differentiable.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const BCEWithLogitsOptions& o) {
  const char* name = "binary_cross_entropy_with_logits";
  check_pair(name, input, target);
  check_weight(name, "weight", o.weight, input);
  check_weight(name, "pos_weight", o.pos_weight, input);
  Tensor sp = softplus(-input);
  Tensor loss = o.pos_weight.defined() ? (1.0 - target) * input + (1.0 + (o.pos_weight - 1.0) * target) * sp
                                       : (1.0 - target) * input + sp;
  if (o.weight.defined()) loss = loss * o.weight;
  return reduce(loss, o.reduction);
}

// ---- many classes: the checks --------------------------------------------------------------------------------
namespace {

// Class-index targets for input (N,C,d1,...): the target is the input's shape without the class dim 1.
// Every index must be a class or the ignore_index; a bad label is the classic data bug, so name it.
void check_class_targets(const char* loss, const Tensor& input, const Tensor& target, const Tensor& weight,
                         int64_t ignore_index) {
  check_float(loss, "input", input);
  if (input.dim() < 2)
    throw Error(str(loss) + "input must be (N,C) or (N,C,d1,...), got " + shape_str(input.shape()));
  Shape want = input.shape();
  want.erase(want.begin() + 1);
  if (target.shape() != want)
    throw Error(str(loss) + "input " + shape_str(input.shape()) + " needs a target of shape " + shape_str(want) +
                ", got " + shape_str(target.shape()));
  int64_t C = input.shape()[1];
  std::vector<int64_t> t = target.to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); i++)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= C))
      throw Error(str(loss) + "target " + std::to_string(t[i]) + " at index " + std::to_string(i) +
                  " is out of range for " + std::to_string(C) + " classes (input " + shape_str(input.shape()) +
                  ", target " + shape_str(target.shape()) + ")");
  if (weight.defined()) {
    check_float(loss, "weight", weight);
    if (weight.shape() != Shape{C})
      throw Error(str(loss) + "weight " + shape_str(weight.shape()) + " must have one entry per class, (" +
                  std::to_string(C) + ")");
    if (weight.dtype() != input.dtype())
      throw Error(str(loss) + "weight is " + dtype_name(weight.dtype()) + " but input is " + dtype_name(input.dtype()));
  }
}

void check_target_dtype(const char* loss, const Tensor& target, bool allow_probabilities) {
  if (!target.defined()) throw Error(str(loss) + "target is an undefined tensor");
  if (target.dtype() == int64 || (allow_probabilities && is_floating(target.dtype()))) return;
  throw Error(str(loss) + "target must be int64 class indices" + (allow_probabilities ? " or float class probabilities" : "") +
              ", got " + dtype_name(target.dtype()) + " " + shape_str(target.shape()));
}

// (1,C,1,...,1): a per-class vector laid along dim 1 of an (N,C,d1,...) tensor.
Tensor along_classes(const Tensor& w, int64_t ndim) {
  Shape s(ndim, 1);
  s[1] = w.shape()[0];
  return w.reshape(s);
}

// The picked terms of nll_loss: loss = -w[t] logp[t] and its weight w[t], both 0 where t is ignored.
struct NLLTerms {
  Tensor loss, weight, keep;
};
NLLTerms nll_terms(const Tensor& logp, const Tensor& target, const Tensor& weight, int64_t ignore_index) {
  Tensor keep = ne(target, scalar_tensor((double)ignore_index, int64));
  Tensor safe = where(keep, target, zeros_like(target));  // an ignored target picks class 0, then is masked
  Tensor picked = gather(logp, 1, safe.unsqueeze(1)).squeeze(1);
  Tensor w = weight.defined() ? index_select(weight, 0, safe.flatten()).reshape(target.shape())
                              : ones(target.shape(), logp.dtype());
  Tensor zero = zeros_like(w);
  // where, not a multiply by 0: an ignored row whose class 0 has log-probability -inf must give 0, not nan.
  return {where(keep, -(picked * w), zero), where(keep, w, zero), keep};
}

// Mean is the weighted mean: Σ loss / Σ w[t] over the counted targets.
Tensor reduce_nll(const NLLTerms& t, Reduction r) {
  if (r == Reduction::Mean) return sum(t.loss) / sum(t.weight);
  return reduce(t.loss, r);
}

}  // namespace

// ---- many classes: the composite -----------------------------------------------------------------------------
// out = -w[t] logp[t] over class dim 1
Tensor nll_loss(const Tensor& input, const Tensor& target, const NLLOptions& o) {
  check_target_dtype("nll_loss", target, false);
  bool unbatched = input.dim() == 1;
  Tensor x = unbatched ? input.unsqueeze(0) : input;
  Tensor t = unbatched ? target.unsqueeze(0) : target;
  check_class_targets("nll_loss", x, t, o.weight, o.ignore_index);
  Tensor loss = reduce_nll(nll_terms(x, t, o.weight, o.ignore_index), o.reduction);
  return unbatched && o.reduction == Reduction::None ? loss.squeeze(0) : loss;
}

// Probability targets: out = -Σ_c w_c q_c logp_c per row, with q = (1-ε) target + ε/C under label smoothing.
static Tensor cross_entropy_probabilities(const Tensor& x, const Tensor& target, const CrossEntropyOptions& o) {
  const char* name = "cross_entropy";
  check_pair(name, x, target);
  if (o.ignore_index >= 0)
    throw Error(str(name) + "ignore_index " + std::to_string(o.ignore_index) + " is not supported with class-probability targets");
  int64_t C = x.shape()[1];
  if (o.weight.defined() && (o.weight.shape() != Shape{C} || o.weight.dtype() != x.dtype()))
    throw Error(str(name) + "weight " + shape_str(o.weight.shape()) + " " + dtype_name(o.weight.dtype()) +
                " must be (" + std::to_string(C) + ") " + dtype_name(x.dtype()));
  Tensor q = o.label_smoothing > 0 ? target * (1.0 - o.label_smoothing) + o.label_smoothing / (double)C : target;
  Tensor terms = log_softmax(x, 1) * q;
  if (o.weight.defined()) terms = terms * along_classes(o.weight, x.dim());
  return reduce(-sum(terms, {1}), o.reduction);  // Mean: over rows (and spatial positions), as PyTorch
}

// Class indices: out = (1-ε) nll + ε/C · Σ_c -w_c logp_c, the second term being the loss against the
// uniform distribution (label smoothing, Szegedy et al. 2016). Both terms are reduced the same way.
static Tensor cross_entropy_indices(const Tensor& x, const Tensor& target, const CrossEntropyOptions& o) {
  Tensor logp = log_softmax(x, 1);
  NLLTerms nll = nll_terms(logp, target, o.weight, o.ignore_index);
  Tensor loss = reduce_nll(nll, o.reduction);
  if (o.label_smoothing == 0) return loss;
  int64_t C = x.shape()[1];
  Tensor wl = o.weight.defined() ? logp * along_classes(o.weight, x.dim()) : logp;
  Tensor smooth = where(nll.keep, -sum(wl, {1}), zeros_like(nll.loss));
  Tensor s = o.reduction == Reduction::Mean ? sum(smooth) / sum(nll.weight) : reduce(smooth, o.reduction);
  return loss * (1.0 - o.label_smoothing) + s * (o.label_smoothing / (double)C);
}

static void check_smoothing(double eps) {
  if (!(eps >= 0 && eps <= 1))
    throw Error("cross_entropy: label_smoothing must be in [0,1], got " + std::to_string(eps));
}

Tensor cross_entropy_composite(const Tensor& input, const Tensor& target, const CrossEntropyOptions& o) {
  check_target_dtype("cross_entropy", target, true);
  check_smoothing(o.label_smoothing);
  bool unbatched = input.dim() == 1;
  Tensor x = unbatched ? input.unsqueeze(0) : input;
  Tensor t = unbatched ? target.unsqueeze(0) : target;
  Tensor loss;
  if (is_floating(t.dtype())) {
    loss = cross_entropy_probabilities(x, t, o);
  } else {
    check_class_targets("cross_entropy", x, t, o.weight, o.ignore_index);
    loss = cross_entropy_indices(x, t, o);
  }
  return unbatched && o.reduction == Reduction::None ? loss.squeeze(0) : loss;
}

// ---- many classes: the fused kernel -------------------------------------------------------------------------
// For x (N,C) and class indices, one pass per row replaces log_softmax, gather, index_select and the masks.
// With lse_i = log Σ_c e^x[i,c], logp = x - lse, and W = Σ_c w_c:
//
//   out[i] = (1-ε) w[t_i] (lse_i - x[i,t_i])  +  ε/C Σ_c w_c (lse_i - x[i,c])        (0 if t_i is ignored)
//   dx[i,c] = dout[i] (softmax(x_i)_c a_i - b_i,c),   a_i = (1-ε) w[t_i] + ε W / C,
//                                                     b_i,c = (1-ε) w[t_i] [c = t_i] + ε w_c / C
//
// (the derivative of lse is softmax, and Σ_c of each term's weight gives a_i). a, the one-hot coefficient
// c_i = (1-ε) w[t_i] and the mean's denominator Σ_i w[t_i] depend only on the targets, so the forward
// computes them once.
//
// The backward has two forms of that one formula, picked when it runs. A plain backward (no graph being
// recorded, the usual case) runs a raw kernel: one pass per row, softmax straight into dx, then the
// corrections in place. Under create_graph it runs the formula in heed ops (softmax, scatter_add), so that
// a second derivative flows through softmax's own backward. tests/nn/test_loss.cpp checks both against
// the composite, and gradgradcheck checks the second.
namespace {

struct CrossEntropyRows {
  int64_t N = 0, C = 0;
  double eps = 0;
  std::vector<int64_t> target;     // (N); an ignored row holds class 0, and its a, c and keep are 0
  std::vector<double> weight;      // (C); ones without a weight
  std::vector<double> a, c, keep;  // (N)
  double weight_sum = 0;           // Σ w[t_i] over the counted rows
};

CrossEntropyRows row_constants(const Tensor& target, const Tensor& weight, int64_t C, int64_t ignore_index, double eps) {
  CrossEntropyRows r;
  r.N = target.numel();
  r.C = C;
  r.eps = eps;
  r.target = target.to_vector<int64_t>();
  r.weight = weight.defined() ? weight.to_vector<double>() : std::vector<double>(C, 1.0);
  double W = 0;
  for (double v : r.weight) W += v;
  r.a.assign(r.N, 0);
  r.c.assign(r.N, 0);
  r.keep.assign(r.N, 0);
  for (int64_t i = 0; i < r.N; i++) {
    if (r.target[i] == ignore_index) {
      r.target[i] = 0;
      continue;
    }
    r.keep[i] = 1;
    r.c[i] = (1.0 - eps) * r.weight[r.target[i]];
    r.a[i] = r.c[i] + eps * W / (double)C;
    r.weight_sum += r.weight[r.target[i]];
  }
  return r;
}

// Each row's log-softmax goes to a scratch row that stays in L1 cache, so x is read from memory once. The
// row kernel is simd::softmax_row, SIMD or its scalar reference as the tensor kernels are switched.
template <class T>
void cross_entropy_forward_kernel(const T* x, const CrossEntropyRows& r, T* loss) {
  const bool fast = kernels::use_simd();
  const int64_t C = r.C;
  ParallelGuard guard;  // a failed allocation inside the region would call std::terminate (tensor/parallel.h)
#pragma omp parallel if (r.N * C >= 32768)
  {
    std::vector<T> logp;
    const bool ready = guard.run([&] { logp.resize(C); });
#pragma omp for schedule(static)
    for (int64_t i = 0; i < r.N; i++) {
      if (!ready) continue;
      if (r.keep[i] == 0) {
        loss[i] = 0;
        continue;
      }
      if (fast) simd::softmax_row_simd(x + i * C, logp.data(), C, true);
      else simd::softmax_row_ref(x + i * C, logp.data(), C, true);
      const int64_t t = r.target[i];
      double out = -(1.0 - r.eps) * r.weight[t] * (double)logp[t];
      if (r.eps > 0) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += r.weight[c] * (double)logp[c];
        out -= r.eps / (double)C * s;
      }
      loss[i] = (T)out;
    }
  }
  guard.rethrow();
}

// dx = dout_i (a_i softmax(x_i) - b_i), first order: one pass per row.
template <class T>
void cross_entropy_backward_kernel(const T* x, const T* dout, const CrossEntropyRows& r, T* dx) {
  const bool fast = kernels::use_simd();
  const int64_t C = r.C;
#pragma omp parallel for schedule(static) if (r.N * C >= 32768)
  for (int64_t i = 0; i < r.N; i++) {
    T* row = dx + i * C;
    if (r.keep[i] == 0) {
      std::fill(row, row + C, T(0));
      continue;
    }
    if (fast) simd::softmax_row_simd(x + i * C, row, C, false);
    else simd::softmax_row_ref(x + i * C, row, C, false);
    const double d = (double)dout[i];
    const T scale = (T)(d * r.a[i]);
    for (int64_t c = 0; c < C; c++) row[c] *= scale;
    row[r.target[i]] -= (T)(d * r.c[i]);  // the one-hot term
    if (r.eps > 0) {
      const double k = d * r.eps / (double)C;
      for (int64_t c = 0; c < C; c++) row[c] -= (T)(k * r.weight[c]);
    }
  }
}

// The same dx in heed ops, differentiable again (used under create_graph).
Tensor cross_entropy_backward_ops(const Tensor& x, const Tensor& d, const CrossEntropyRows& r) {
  const DType dt = x.dtype();
  Tensor a = from_vector(r.a, {r.N}).to(dt), c = from_vector(r.c, {r.N}).to(dt);
  Tensor g = softmax(x, 1) * (d * a).unsqueeze(1);
  g = scatter_add(g, 1, from_vector(r.target, {r.N, 1}), (-(d * c)).unsqueeze(1));  // the one-hot term
  if (r.eps > 0) {
    Tensor keep = from_vector(r.keep, {r.N}).to(dt), w = from_vector(r.weight, {1, r.C}).to(dt);
    g = g - (d * keep * (r.eps / (double)r.C)).unsqueeze(1) * w;
  }
  return g;
}

// The per-row losses (N), and the mean's denominator.
std::pair<Tensor, double> cross_entropy_rows(const Tensor& x_in, const Tensor& target, const Tensor& weight,
                                             int64_t ignore_index, double eps) {
  Tensor x = x_in.contiguous();
  auto r = std::make_shared<const CrossEntropyRows>(row_constants(target, weight, x.shape()[1], ignore_index, eps));
  Tensor rows = empty({r->N}, x.dtype());
  dispatch_floating(x.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_forward_kernel<T>(x.data_ptr<T>(), *r, rows.data_ptr<T>());
  });
  Tensor out = record("cross_entropy", rows, {x_in}, [sx = SavedTensor(x_in), r](const Tensor& d, const Tensor&) {
    Tensor x = sx.get();
    if (grad_enabled()) return Grads{cross_entropy_backward_ops(x, d, *r)};
    Tensor xc = x.contiguous(), dc = d.contiguous(), dx = empty(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), "cross_entropy backward", [&](auto zero) {
      using T = decltype(zero);
      cross_entropy_backward_kernel<T>(xc.data_ptr<T>(), dc.data_ptr<T>(), *r, dx.data_ptr<T>());
    });
    return Grads{dx};
  });
  return {out, r->weight_sum};
}

}  // namespace

Tensor cross_entropy(const Tensor& input, const Tensor& target, const CrossEntropyOptions& o) {
  check_target_dtype("cross_entropy", target, true);
  check_smoothing(o.label_smoothing);
  // The fused kernel covers (N,C) or (C) logits with class indices and a constant weight; everything else
  // (spatial dims, probabilities, a weight being trained) takes the composite.
  bool fused = (input.dim() == 1 || input.dim() == 2) && target.dtype() == int64 &&
               !(o.weight.defined() && o.weight.requires_grad());
  if (!fused) return cross_entropy_composite(input, target, o);
  bool unbatched = input.dim() == 1;
  Tensor x = unbatched ? input.unsqueeze(0) : input;
  Tensor t = unbatched ? target.unsqueeze(0) : target;
  check_class_targets("cross_entropy", x, t, o.weight, o.ignore_index);
  auto [rows, weight_sum] = cross_entropy_rows(x, t, o.weight, o.ignore_index, o.label_smoothing);
  switch (o.reduction) {
    case Reduction::None: return unbatched ? rows.squeeze(0) : rows;
    case Reduction::Sum: return sum(rows);
    case Reduction::Mean: break;
  }
  return sum(rows) / weight_sum;  // 0/0 = nan when every target is ignored, as PyTorch
}

// ---- distributions --------------------------------------------------------------------------------------------
// out = t (log t - x), taken as 0 where t = 0 (the limit of t log t);  dx = -t,  dt = log t + 1 - x
// out = e^t (t - x) with log_target;                                   dx = -e^t, dt = e^t (t - x + 1)
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  check_pair("kl_div", input, target);
  if (log_target) return reduce(exp(target) * (target - input), reduction);
  // t log t with the double where of clamped_log: log never sees 0, so no nan reaches the gradient.
  Tensor pos = target > 0.0;
  Tensor t_log_t = target * log(where(pos, target, ones_like(target)));
  return reduce(t_log_t - target * input, reduction);
}

// ---- GANs -------------------------------------------------------------------------------------------------------
// The critic wants real logits above +1 and fake ones below -1; only the samples inside the margin count.
Tensor hinge_d(const Tensor& real_logits, const Tensor& fake_logits) {
  check_float("hinge_d", "real_logits", real_logits);
  check_float("hinge_d", "fake_logits", fake_logits);
  if (real_logits.dtype() != fake_logits.dtype())
    throw Error(std::string("hinge_d: real_logits are ") + dtype_name(real_logits.dtype()) + " but fake_logits are " +
                dtype_name(fake_logits.dtype()));
  return mean(relu(1.0 - real_logits)) + mean(relu(1.0 + fake_logits));
}

Tensor hinge_g(const Tensor& fake_logits) {
  check_float("hinge_g", "fake_logits", fake_logits);
  return -mean(fake_logits);
}

// x̂ = α real + (1-α) fake   real, fake: (B, ...)  α: (B, 1, ..., 1);  penalty = mean_b (‖dcritic/dx̂_b‖ - 1)²
// x̂ is a fresh leaf, so grad() gives ∂critic/∂x̂ alone; with create_graph that gradient is a graph over the
// critic's weights, and the penalty's backward is the critic's double backward.
Tensor gradient_penalty(const std::function<Tensor(const Tensor&)>& critic, const Tensor& real, const Tensor& fake,
                        Generator* gen) {
  check_float("gradient_penalty", "real", real);
  check_float("gradient_penalty", "fake", fake);
  if (real.shape() != fake.shape() || real.dtype() != fake.dtype() || real.dim() < 2)
    throw Error("gradient_penalty: real " + shape_str(real.shape()) + " " + dtype_name(real.dtype()) + " and fake " +
                shape_str(fake.shape()) + " " + dtype_name(fake.dtype()) +
                " must be batches (B, ...) of one shape and dtype");
  const int64_t B = real.size(0);
  Shape alpha_shape(real.dim(), 1);
  alpha_shape[0] = B;
  Tensor x_hat;
  {
    NoGradGuard no_grad;
    Tensor alpha = rand(alpha_shape, real.dtype(), gen);
    x_hat = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).detach();
  }
  x_hat.requires_grad_();
  Tensor scores = critic(x_hat);
  if (scores.numel() != B)
    throw Error("gradient_penalty: the critic gave " + shape_str(scores.shape()) + " for a batch of " +
                std::to_string(B) + "; expected one score per sample, (B) or (B,1)");
  Tensor dx;
  if (scores.requires_grad()) dx = grad({scores.sum()}, {x_hat}, {}, /*create_graph=*/true)[0];  // (B, ...)
  if (!dx.defined()) throw Error("gradient_penalty: the critic's output does not depend on its input");
  Tensor norms = sqrt(dx.reshape({B, -1}).square().sum({1}) + 1e-12);  // (B)
  return mean((norms - 1.0).square());
}

}  // namespace heed::nn

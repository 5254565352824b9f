// functional.cpp: torch.nn.functional's everyday functions, each a few lines of heed ops.
#include "nn/functional.h"

#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "nn/loss.h"

namespace heed::nn {

// out = x / max(‖x‖_p, eps), the norm along dim kept as size 1 so it broadcasts back.
Tensor normalize(const Tensor& x, double p, int64_t dim, double eps) {
  if (p <= 0) throw Error("normalize: p must be positive, got " + std::to_string(p));
  Tensor n = p == 2.0 ? sqrt(sum(x * x, {dim}, true)) : pow(sum(pow(abs(x), p), {dim}, true), 1.0 / p);
  return x / maximum(n, wrap_scalar(n, eps));
}

// The trailing dims that normalized_shape names, checked against x.
static std::vector<int64_t> trailing_dims(const char* op, const Tensor& x, const Shape& normalized_shape) {
  int64_t k = (int64_t)normalized_shape.size();
  bool ok = k >= 1 && k <= x.dim();
  for (int64_t i = 0; ok && i < k; i++) ok = x.size(x.dim() - k + i) == normalized_shape[i];
  if (!ok)
    throw Error(std::string(op) + ": normalized_shape " + shape_str(normalized_shape) +
                " is not the trailing shape of the input " + shape_str(x.shape()));
  std::vector<int64_t> dims;
  for (int64_t i = x.dim() - k; i < x.dim(); i++) dims.push_back(i);
  return dims;
}

// (x - mean) / √(var + eps) over the trailing dims, the variance biased (divided by their count).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  std::vector<int64_t> dims = trailing_dims("layer_norm", x, normalized_shape);
  Tensor xc = x - mean(x, dims, true);
  Tensor y = xc * rsqrt(mean(xc * xc, dims, true) + eps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

// The (1, C, 1, ...) shape that a per-channel vector broadcasts as against x (N, C, L...).
static Shape channel_shape(const Tensor& x) {
  Shape s(x.dim(), 1);
  s[1] = x.size(1);
  return s;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  if (x.dim() < 2) throw Error("batch_norm: expected input (N, C, ...), got " + shape_str(x.shape()));
  const int64_t C = x.size(1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined() && t->shape() != Shape{C})
      throw Error("batch_norm: per-channel tensors must have shape (" + std::to_string(C) + ") for input " +
                  shape_str(x.shape()) + ", got " + shape_str(t->shape()));
  Shape cs = channel_shape(x);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); d++) dims.push_back(d);
  Tensor y;
  if (training) {
    const int64_t count = x.numel() / C;
    if (count <= 1)
      throw Error("batch_norm: expected more than 1 value per channel in training, got input " + shape_str(x.shape()));
    Tensor mu = mean(x, dims, true);
    Tensor xc = x - mu;
    Tensor var = mean(xc * xc, dims, true);  // biased: what normalises
    y = xc * rsqrt(var + eps);
    if (running_mean.defined() && running_var.defined()) {
      NoGradGuard g;
      Tensor rm = running_mean, rv = running_var;  // handles: the in-place updates reach the caller's storage
      rm.mul_(1 - momentum).add_(mu.detach().reshape({C}).to(running_mean.dtype()), momentum);
      Tensor unbiased = var.detach().reshape({C}) * ((double)count / (count - 1));
      rv.mul_(1 - momentum).add_(unbiased.to(running_var.dtype()), momentum);
    }
  } else {
    if (!running_mean.defined() || !running_var.defined())
      throw Error("batch_norm: eval mode (training = false) needs running_mean and running_var");
    y = (x - running_mean.reshape(cs)) * rsqrt(running_var.reshape(cs) + eps);
  }
  if (weight.defined()) y = y * weight.reshape(cs);
  if (bias.defined()) y = y + bias.reshape(cs);
  return y;
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  if (x.dim() < 2) throw Error("group_norm: expected input (N, C, ...), got " + shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1);
  if (num_groups <= 0 || C % num_groups != 0)
    throw Error("group_norm: " + std::to_string(C) + " channels of input " + shape_str(x.shape()) +
                " cannot be split into " + std::to_string(num_groups) + " groups");
  Tensor g = x.reshape({N, num_groups, -1});  // each group's channels and positions in one row
  Tensor gc = g - mean(g, {2}, true);
  Tensor y = (gc * rsqrt(mean(gc * gc, {2}, true) + eps)).reshape(x.shape());
  Shape cs = channel_shape(x);
  if (weight.defined()) y = y * weight.reshape(cs);
  if (bias.defined()) y = y + bias.reshape(cs);
  return y;
}

Tensor embedding(const Tensor& input, const Tensor& weight) {
  if (input.dtype() != int64)
    throw Error(std::string("embedding: expected int64 indices, got ") + dtype_name(input.dtype()) + " " +
                shape_str(input.shape()));
  if (weight.dim() != 2) throw Error("embedding: expected weight (V, D), got " + shape_str(weight.shape()));
  const int64_t V = weight.size(0);
  std::vector<int64_t> idx = input.contiguous().to_vector<int64_t>();
  for (size_t i = 0; i < idx.size(); i++)
    if (idx[i] < 0 || idx[i] >= V)
      throw Error("embedding: index " + std::to_string(idx[i]) + " at position " + std::to_string(i) + " of input " +
                  shape_str(input.shape()) + " is out of range for " + std::to_string(V) +
                  " embeddings (valid: 0.." + std::to_string(V - 1) + ")");
  Shape out = input.shape();
  out.push_back(weight.size(1));
  return index_select(weight, 0, input.reshape({-1})).reshape(out);
}

// nn::kl_div (nn/loss.h) with PyTorch's reduction names, "batchmean" included: the sum over the batch size.
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction, bool log_target) {
  if (reduction == "none") return kl_div(input, target, Reduction::None, log_target);
  if (reduction == "sum") return kl_div(input, target, Reduction::Sum, log_target);
  if (reduction == "mean") return kl_div(input, target, Reduction::Mean, log_target);
  if (reduction == "batchmean")
    return kl_div(input, target, Reduction::Sum, log_target) / (double)(input.dim() == 0 ? 1 : input.size(0));
  throw Error("kl_div: unknown reduction '" + reduction + "' (none, sum, mean, batchmean)");
}

Tensor top_k_logits(const Tensor& logits, int64_t top_k, double temperature) {
  if (temperature <= 0) throw Error("top_k_logits: temperature must be positive, got " + std::to_string(temperature));
  Tensor l = logits / temperature;
  if (top_k <= 0 || top_k >= l.size(-1)) return l;
  Tensor kth = topk(l, top_k, -1).first.narrow(-1, top_k - 1, 1);  // the k-th largest, (..., 1)
  return masked_fill(l, l < kth, -std::numeric_limits<double>::infinity());
}

Tensor sample_next(const Tensor& logits, const SampleOptions& o) {
  if (logits.dim() != 1 && logits.dim() != 2)
    throw Error("sample_next: expected logits (V) or (B, V), got " + shape_str(logits.shape()));
  NoGradGuard g;
  if (o.temperature == 0) return argmax(logits, -1, true);  // greedy
  Tensor probs = softmax(top_k_logits(logits.detach(), o.top_k, o.temperature), -1);
  return multinomial(probs, 1, false, o.generator);
}

}  // namespace heed::nn

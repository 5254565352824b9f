// functional.h: PyTorch's torch.nn.functional names that model code calls every day, as plain functions
// of tensors (the modules in nn/ hold the parameters; these take them as arguments). All are composites
// of heed's differentiable ops, so their gradients (and second derivatives) come from those ops.
//
// Letters: N batch, C channels or classes, L any trailing dims, V vocabulary, D embedding width.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::nn {

/// x / max(‖x‖_p, eps) along dim, as F.normalize (default: unit L2 rows of an (N, C) tensor).
Tensor normalize(const Tensor& x, double p = 2.0, int64_t dim = 1, double eps = 1e-12);
/// F.layer_norm: normalises over the trailing dims `normalized_shape`; weight and bias (that shape) optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// F.batch_norm: x (N, C, L...). In training it normalises with the batch's statistics over N and L and,
/// when running_mean/var are given, updates them in place (running = (1-momentum)·running + momentum·batch,
/// the variance unbiased); in eval it uses the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), bool training = false,
                  double momentum = 0.1, double eps = 1e-5);
/// F.group_norm: x (N, C, L...), C split into num_groups groups, each normalised over its channels and L;
/// weight and bias (C) optional.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
/// F.embedding: rows of weight (V, D) at int64 `input` (any shape) -> input.shape + (D). An index outside
/// [0, V) throws, naming embedding (a negative index too, as PyTorch).
Tensor embedding(const Tensor& input, const Tensor& weight);
/// F.kl_div(input, target, reduction) with PyTorch's reduction strings: nn::kl_div of nn/loss.h
/// (input log-probabilities, target probabilities, or log-probabilities with log_target), reduced by
/// "batchmean" (the sum over the batch size: the KL divergence per sample), "sum", "mean" (over every
/// element, as PyTorch, which warns that it is not the KL divergence) or "none".
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction, bool log_target = false);

// ---- sampling from a language model ---------------------------------------------------------------------------
/// Options of sample_next: temperature divides the logits (below 1 sharper, above 1 flatter; 0 means
/// greedy argmax); top_k > 0 keeps only the k most likely tokens.
struct SampleOptions {
  double temperature = 1.0;
  int64_t top_k = 0;
  Generator* generator = nullptr;
};
/// Logits (V) or (B, V) scaled by 1/temperature, with every logit outside the top k set to -inf.
Tensor top_k_logits(const Tensor& logits, int64_t top_k, double temperature = 1.0);
/// One token per row from logits (V) or (B, V): int64 (1) or (B, 1), ready to cat onto the context.
Tensor sample_next(const Tensor& logits, const SampleOptions& options = {});

}  // namespace heed::nn

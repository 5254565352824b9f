// loss.h: the loss functions, with PyTorch's names and definitions (torch.nn.functional in 1.13).
//
//   regression          mse_loss, l1_loss, smooth_l1_loss
//   two classes         binary_cross_entropy (on probabilities), binary_cross_entropy_with_logits
//   many classes        cross_entropy (on logits), nll_loss (on log-probabilities)
//   distributions       kl_div
//   GANs                hinge_d, hinge_g, gradient_penalty (WGAN-GP)
//
// They are free functions in heed::nn (torch.nn.functional's, without the `functional`).
//
// Every loss is composed from heed's differentiable primitives, so its gradient and its gradient's
// gradient come from the primitives' backward formulas (WGAN-GP differentiates a loss twice). Two common
// cases call a fused op instead (autograd/ops_loss.cpp): binary_cross_entropy's elementwise loss, and
// cross_entropy on logits (N,C) with class indices (log-softmax and the pick of the target's
// log-probability in one pass over each row). Their backwards are raw loops too, except under
// create_graph, where the same formulas run in heed ops, so they are differentiable twice as well;
// tests/nn/test_loss.cpp checks both against the composites.
//
// Shapes use N for the batch and C for classes; (N,C,d1,...) means any number of trailing spatial dims,
// as in segmentation. A loss with one option takes it as an argument after the tensors (the order of
// PyTorch's keywords); a loss with several takes an options struct, so a call names what it changes:
//
//   Tensor loss = nn::cross_entropy(logits, labels, {.ignore_index = 0, .label_smoothing = 0.1});
//
// Mistakes (shapes that differ, a class index out of range, a dtype the loss cannot use) throw heed::Error
// with a message that starts with the loss's name and shows the shapes or the bad value.
#pragma once
#include <cstdint>
#include <functional>

#include "tensor/tensor.h"

namespace heed::nn {

/// What a loss does with its per-element values: keep them (None), average them (Mean) or add them (Sum).
enum class Reduction { None, Mean, Sum };

// ---- regression: input and target of one shape ----------------------------------------------------------
/// (input - target)²
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// |input - target|
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// ½d²/beta where |d| < beta, else |d| - ½beta, with d = input - target (beta = 0 is l1_loss).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                      double beta = 1.0);

// ---- two classes ---------------------------------------------------------------------------------------
struct BCEOptions {
  Tensor weight;  // multiplies each element's loss; broadcasts to the input's shape
  Reduction reduction = Reduction::Mean;
};
/// -w (y log p + (1-y) log(1-p)) for probabilities p in [0,1]; each log is clamped to >= -100 as in
/// PyTorch, so p = 0 or 1 costs at most 100 and never inf.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const BCEOptions& options = {});

struct BCEWithLogitsOptions {
  Tensor weight;      // multiplies each element's loss; broadcasts to the input's shape
  Tensor pos_weight;  // multiplies the positive (y = 1) term, one entry per class; broadcasts like weight
  Reduction reduction = Reduction::Mean;
};
/// binary_cross_entropy(sigmoid(x), y) without forming sigmoid(x):
///   (1-y) x + (1 + (pos_weight-1) y) softplus(-x),  softplus(-x) = max(-x,0) + log(1 + e^-|x|),
/// which is finite for every finite x.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const BCEWithLogitsOptions& options = {});

// ---- many classes --------------------------------------------------------------------------------------
struct CrossEntropyOptions {
  Tensor weight;               // (C): a weight per class
  int64_t ignore_index = -100; // targets equal to this add nothing, not even to the mean's count
  double label_smoothing = 0;  // in [0,1]: the target becomes (1-ε) one-hot + ε/C uniform
  Reduction reduction = Reduction::Mean;
};
/// input: logits (N,C), (N,C,d1,...) or unbatched (C). target either
///   - class indices, int64 of the input's shape without dim 1: (N), (N,d1,...) or (); or
///   - class probabilities, float of the input's shape (ignore_index is then not allowed).
/// Mean divides by the summed weights of the counted targets (indices) or by the number of rows
/// (probabilities), as PyTorch does; with every target ignored it is 0/0 = nan, also as PyTorch.
Tensor cross_entropy(const Tensor& input, const Tensor& target, const CrossEntropyOptions& options = {});
/// The same loss composed from log_softmax, gather and sums, for every case cross_entropy accepts:
/// the reference the fused kernel is tested and benchmarked against.
Tensor cross_entropy_composite(const Tensor& input, const Tensor& target, const CrossEntropyOptions& options = {});

struct NLLOptions {
  Tensor weight;  // (C)
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
};
/// -w[t] input[t]: input holds log-probabilities (N,C) or (N,C,d1,...); target int64 class indices.
Tensor nll_loss(const Tensor& input, const Tensor& target, const NLLOptions& options = {});

// ---- distributions -------------------------------------------------------------------------------------
/// KL(target ‖ input) elementwise: target (log t - input) for log-probabilities `input`, with 0 where
/// t = 0; with log_target, target holds log t too: e^t (t - input). Mean averages over every element, as
/// PyTorch's 'mean'; the mathematical KL per sample is the Sum divided by the batch size.
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
              bool log_target = false);

// ---- GANs (the hinge losses of Miyato et al. 2018, "Spectral Normalization for GANs") ---------------------
/// The critic's loss: mean(relu(1 - real)) + mean(relu(1 + fake)), on raw critic outputs.
Tensor hinge_d(const Tensor& real_logits, const Tensor& fake_logits);
/// The generator's loss: -mean(fake).
Tensor hinge_g(const Tensor& fake_logits);

// ---- GANs: WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs") ---------------------
/// The critic's gradient penalty, without λ: mean over the batch of (‖∇x̂ critic(x̂)‖ - 1)², at the
/// interpolates x̂ = α·real + (1-α)·fake, α ~ U(0,1) drawn per sample from `gen` (nullptr: the global
/// generator). real and fake have one shape (B, ...); fake is detached (the penalty trains the critic only);
/// critic maps (B, ...) to (B) or (B,1) scores. The gradient is taken with heed::grad(..., create_graph=true),
/// so the penalty is itself differentiable in the critic's weights: its backward is a double backward
/// through every op of the critic. The critic's loss is mean(critic(fake)) - mean(critic(real)) + λ·penalty,
/// λ = 10 in the paper. ‖·‖ is √(Σ g² + 1e-12) per sample: the 1e-12 keeps the gradient of √ finite where
/// g = 0, and moves the norm by at most 1e-6.
Tensor gradient_penalty(const std::function<Tensor(const Tensor&)>& critic, const Tensor& real, const Tensor& fake,
                        Generator* gen = nullptr);

}  // namespace heed::nn

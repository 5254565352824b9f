// spectral_norm.h: spectral normalisation (Miyato et al. 2018), as torch.nn.utils.spectral_norm.
//
// A layer's weight W is replaced by W / σ(W), σ the largest singular value, so the layer is (about)
// 1-Lipschitz: the discriminator of SN-GAN and SAGAN stays smooth without a gradient penalty. σ is
// estimated by power iteration on W viewed as a matrix (size(dim), rest), keeping the singular vector
// estimates u and v between calls: one iteration per training forward is enough, because W changes
// little between optimizer steps and u, v carry over.
//   v = normalize(W^T u),  u = normalize(W v),  σ = u^T W v      (u, v held constant: no gradient)
//   W_sn = W / σ,  so dW (through σ) = dW_sn/σ - (Σ dW_sn·W / σ²) u v^T
//
// HOW TO USE. Wrap the layer's type; the constructor takes the layer's own arguments:
//   nn::SpectralNorm<nn::Conv2d> conv(3, 64, 4, nn::Conv2d::Config{.stride = 2, .padding = 1});
//   nn::SpectralNorm<nn::Linear> fc(1024, 1);
//   Tensor y = conv(x);
// The wrapper *is* the layer as far as the state dict goes: it registers the layer's tensors under
// PyTorch's names, with no "layer." prefix:
//   weight_orig (parameter: the raw W), bias (parameter), weight_u (buffer, (size(dim))), weight_v (buffer, (rest)),
// so `spectral_norm(nn.Conv2d(...))` in PyTorch and this load each other's state dicts. The wrapped
// layer is the member `layer`; after each forward, `layer.weight` holds the W / σ that forward used.
//
// In training mode each forward runs n_power_iterations steps and updates weight_u, weight_v in place;
// in eval mode it uses them as they are. dim is 1 for ConvTranspose2d (whose weight is (in, out, kh, kw))
// and 0 otherwise, as PyTorch chooses. The wrapped type needs members `weight`, `bias` and
// Tensor forward(const Tensor&): Linear, Conv2d and ConvTranspose2d all qualify.
#pragma once
#include <concepts>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace heed::nn {

/// A layer SpectralNorm can wrap.
template <class M>
concept HasWeightAndBias = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.weight } -> std::convertible_to<Tensor>;
  { m.bias } -> std::convertible_to<Tensor>;
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

/// The u, v of a freshly wrapped weight: each a standard normal vector, normalised (PyTorch's start).
/// u: (weight.size(dim)), v: (weight.numel() / weight.size(dim)); drawn from `gen` or the global generator.
std::pair<Tensor, Tensor> spectral_norm_init(const Tensor& weight, int64_t dim, double eps, Generator* gen = nullptr);

/// weight / σ, σ = u^T W v with W = weight as the matrix (size(dim), rest). With power_iteration, first runs
/// n_power_iterations steps, writing the new estimates into u and v in place (under NoGradGuard).
/// Differentiable in weight (u and v are constants).
Tensor spectral_norm_weight(const Tensor& weight, const Tensor& u, const Tensor& v, int64_t dim, int n_power_iterations,
                            double eps, bool power_iteration);

template <HasWeightAndBias M>
struct SpectralNorm : Module {
  M layer;                                  // the wrapped layer; not registered as a child (see above)
  Tensor weight_orig, weight_u, weight_v;
  int n_power_iterations = 1;
  double eps = 1e-12;                       // guards the normalisation of u and v against a zero norm
  const int64_t dim = std::is_same_v<M, ConvTranspose2d> ? 1 : 0;

  template <class... Args>
  explicit SpectralNorm(Args&&... args) : layer(std::forward<Args>(args)...) {
    weight_orig = layer.weight;
    std::tie(weight_u, weight_v) = spectral_norm_init(weight_orig, dim, eps);
    register_parameter("bias", layer.bias);  // PyTorch's order: bias stays, weight_orig is added after it
    register_parameter("weight_orig", weight_orig);
    register_buffer("weight_u", weight_u);
    register_buffer("weight_v", weight_v);
  }

  Tensor forward(const Tensor& x) {
    layer.weight = spectral_norm_weight(weight_orig, weight_u, weight_v, dim, n_power_iterations, eps, is_training());
    return layer.forward(x);
  }
  std::string type_name() const override { return "SpectralNorm"; }
  std::string extra_repr() const override {
    return describe(layer) + ", n_power_iterations=" + std::to_string(n_power_iterations) + ", eps=" + py_float(eps) +
           ", dim=" + std::to_string(dim);
  }
};

}  // namespace heed::nn

// init.h: torch.nn.init, the weight initialisers. Each fills a tensor in place and returns it.
//
// Why the scale matters: a layer y = W x with fan_in inputs sums fan_in products, so Var(y) is
// fan_in · Var(W) · Var(x). Picking Var(W) = gain² / fan_in keeps the activations' variance steady from layer
// to layer (Kaiming/He 2015); Xavier/Glorot 2010 averages fan_in and fan_out so the backward pass is
// steady too. `gain` undoes what the nonlinearity does to the variance (relu halves it: gain √2).
//
// Every function here runs under NoGradGuard (so it may fill a parameter that requires grad), draws from
// `gen` or, when null, the global generator (heed::default_generator(), seeded by heed::manual_seed), and
// works in any floating dtype. The distributions are PyTorch's; the numbers are heed's own Philox stream.
//
//   init::kaiming_normal_(conv.weight, 0, "fan_out", "relu");
//   init::zeros_(conv.bias);
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::nn::init {

/// torch.nn.init.calculate_gain: "linear", "conv1d/2d/3d", "conv_transpose1d/2d/3d", "sigmoid" -> 1,
/// "tanh" -> 5/3, "relu" -> √2, "leaky_relu" -> √(2 / (1 + slope²)) (slope = param, default 0.01),
/// "selu" -> 3/4. Anything else throws.
double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt);
/// (fan_in, fan_out) of a weight of at least 2 dims: (size(1), size(0)) times the receptive field, the
/// product of the dims after the first two. For a ConvTranspose2d weight (in, out/groups, kh, kw) this is
/// fan_in = out/groups·kh·kw, exactly as PyTorch computes it.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& w);

/// U(a, b).
Tensor uniform_(const Tensor& t, double a = 0, double b = 1, Generator* gen = nullptr);
/// N(mean, std²).
Tensor normal_(const Tensor& t, double mean = 0, double std = 1, Generator* gen = nullptr);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);
/// U(-a, a) with a = gain·√(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(const Tensor& t, double gain = 1, Generator* gen = nullptr);
/// N(0, std²) with std = gain·√(2 / (fan_in + fan_out)).
Tensor xavier_normal_(const Tensor& t, double gain = 1, Generator* gen = nullptr);
/// U(-b, b) with b = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a), fan by mode "fan_in" or
/// "fan_out". nn::Linear and nn::Conv2d use a = √5, which makes b = 1/√fan_in.
Tensor kaiming_uniform_(const Tensor& t, double a = 0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// N(0, std²) with std = gain / √fan.
Tensor kaiming_normal_(const Tensor& t, double a = 0, const std::string& mode = "fan_in",
                       const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// A (semi-)orthogonal matrix times gain (Saxe et al. 2013). The tensor is viewed as (size(0), rest); its
/// rows (or columns, whichever are fewer) come out orthonormal. As PyTorch: Q of the QR of a standard
/// normal matrix, with signs fixed so that R's diagonal is positive, which makes Q uniformly (Haar)
/// distributed.
Tensor orthogonal_(const Tensor& t, double gain = 1, Generator* gen = nullptr);

}  // namespace heed::nn::init

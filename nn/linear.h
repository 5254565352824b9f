// linear.h: the layers without a spatial structure: Linear, Embedding, Flatten, Unflatten, Dropout and the
// activation modules. Read after nn/module.h.
//
// Every layer here is PyTorch's, with PyTorch's forward, parameter names (so a state dict maps 1:1),
// default initialisation (in distribution; heed draws from its own generator) and repr:
//
//   nn::Linear fc(784, 400);          // weight (400,784), bias (400): U(-1/√784, 1/√784)
//   Tensor y = fc(x);                 // x (B,784) -> (B,400)
//   std::cout << fc;                  // Linear(in_features=784, out_features=400, bias=True) ...
//
// A wrong input shape throws heed::Error naming the layer, e.g.
//   Linear(in_features=784, out_features=400, bias=True): expected input (..., 784), got (32,785)
#pragma once
#include <cstdint>
#include <string>

#include "nn/module.h"
#include "tensor/random.h"

namespace heed::nn {

// ---- declarations -------------------------------------------------------------------------------------

/// y = x W^T + b   x: (..., in_features) -> (..., out_features);  weight (out_features, in_features), bias
/// (out_features).
struct Linear;
/// A lookup table: indices (any shape, int64) -> (..., embedding_dim);  weight (num_embeddings, embedding_dim), N(0,1).
struct Embedding;
/// (N, C, H, W) -> (N, C*H*W): dims start_dim..end_dim merged into one.
struct Flatten;
/// The inverse: dim `dim` of size prod(sizes) split into `sizes` (one of them may be -1).
struct Unflatten;
/// Zeroes each element with probability p in training, and scales the rest by 1/(1-p); identity in eval.
struct Dropout;
/// Activation modules: the functions of tensor/tensor.h as layers, for nn::Sequential.
struct ReLU;
struct LeakyReLU;
struct GELU;
struct SiLU;
struct Tanh;
struct Sigmoid;
struct Softplus;
struct ELU;

/// Functional dropout: with `training`, keeps each element when a uniform draw u (heed::rand, from `gen` or
/// the global generator) satisfies u >= p, and scales it by 1/(1-p); without, returns x unchanged.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);

/// "Linear(in_features=3, out_features=4, bias=True)": how a layer names itself in an error message.
std::string describe(const Module& m);

// ---- definitions ---------------------------------------------------------------------------------------

struct Linear : Module {
  int64_t in_features, out_features;
  Tensor weight, bias;  // bias is undefined when built with bias = false

  /// weight ~ kaiming_uniform_(a = √5), i.e. U(-1/√in, 1/√in); bias ~ U(-1/√in, 1/√in).
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
};

struct Embedding : Module {
  int64_t num_embeddings, embedding_dim;
  Tensor weight;

  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  /// indices: int64 of any shape, each in [0, num_embeddings)  ->  indices.shape + (embedding_dim).
  Tensor forward(const Tensor& indices);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
};

struct Flatten : Module {
  int64_t start_dim, end_dim;
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override;
};

struct Unflatten : Module {
  int64_t dim;
  Shape unflattened_size;
  Unflatten(int64_t dim, Shape unflattened_size);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Unflatten"; }
  std::string extra_repr() const override;
};

struct Dropout : Module {
  double p;
  /// p in [0, 1]. Draws from the global generator, so a seeded run is reproducible, and
  /// heed::checkpoint's rerun draws the same mask.
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) { return dropout(x, p, is_training()); }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + py_float(p) + ", inplace=False"; }
};

struct ReLU : Module {
  Tensor forward(const Tensor& x) { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

struct LeakyReLU : Module {
  double negative_slope;
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override { return "negative_slope=" + py_float(negative_slope); }
};

struct GELU : Module {
  std::string approximate;  // "none" (the exact erf form) or "tanh"
  explicit GELU(std::string approximate = "none");
  Tensor forward(const Tensor& x) { return gelu(x, approximate == "tanh"); }
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
};

struct SiLU : Module {
  Tensor forward(const Tensor& x) { return silu(x); }
  std::string type_name() const override { return "SiLU"; }
};

struct Tanh : Module {
  Tensor forward(const Tensor& x) { return tanh(x); }
  std::string type_name() const override { return "Tanh"; }
};

struct Sigmoid : Module {
  Tensor forward(const Tensor& x) { return sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }
};

/// out = ln(1 + e^(βx)) / β, and x itself where βx > threshold (where the two agree to ~e^-threshold).
struct Softplus : Module {
  double beta, threshold;
  explicit Softplus(double beta = 1, double threshold = 20);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "Softplus"; }
  std::string extra_repr() const override;
};

struct ELU : Module {
  double alpha;
  explicit ELU(double alpha = 1.0) : alpha(alpha) {}
  Tensor forward(const Tensor& x) { return elu(x, alpha); }
  std::string type_name() const override { return "ELU"; }
  std::string extra_repr() const override { return "alpha=" + py_float(alpha); }
};

}  // namespace heed::nn

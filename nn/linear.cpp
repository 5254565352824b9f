// linear.cpp: Linear, Embedding, Flatten, Unflatten, Dropout and the activations that need more than a line.
//
// B is the batch (any number of leading dims), K in_features, N out_features.
#include "nn/linear.h"

#include "nn/functional.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "nn/init.h"

namespace heed::nn {

std::string describe(const Module& m) { return m.type_name() + "(" + m.extra_repr() + ")"; }

static std::string py_bool(bool b) { return b ? "True" : "False"; }

// ---- Linear ---------------------------------------------------------------------------------------------
Linear::Linear(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  if (in < 0 || out < 0)
    throw Error("Linear: in_features and out_features must be >= 0, got " + std::to_string(in) + " and " +
                std::to_string(out));
  // PyTorch's reset_parameters: kaiming_uniform_ with a = √5 gives gain √(2/(1+5)) = 1/√3 and a bound
  // of gain·√3/√fan_in = 1/√fan_in; the bias gets the same bound.
  weight = empty("Linear", {out, in}, float32);  // errors name the layer: "Linear: out of memory ..."
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  register_parameter("weight", weight);
  if (with_bias) {
    double bound = in > 0 ? 1.0 / std::sqrt((double)in) : 0.0;
    bias = empty("Linear", {out}, float32);
    init::uniform_(bias, -bound, bound);
  }
  register_parameter("bias", bias);
}

// y = x W^T + b   x: (B..., K)  weight: (N, K)  ->  y: (B..., N)
Tensor Linear::forward(const Tensor& x) {
  if (x.dim() == 0 || x.size(-1) != in_features)
    shape_error(describe(*this), "(..., " + std::to_string(in_features) + ")", x.shape());
  return linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
         ", bias=" + py_bool(bias.defined());
}

// ---- Embedding ------------------------------------------------------------------------------------------
Embedding::Embedding(int64_t num, int64_t dim) : num_embeddings(num), embedding_dim(dim) {
  if (num < 0 || dim < 0)
    throw Error("Embedding: num_embeddings and embedding_dim must be >= 0, got " + std::to_string(num) + " and " +
                std::to_string(dim));
  weight = empty("Embedding", {num, dim}, float32);
  init::normal_(weight);
  register_parameter("weight", weight);
}

// out[..., :] = weight[indices[...], :]   indices: (B...) int64  ->  (B..., D);
// the gradient (index_select's backward) adds each row of dout into the row it was read from.
Tensor Embedding::forward(const Tensor& indices) {
  if (indices.dtype() != int64)
    throw Error(describe(*this) + ": expected int64 indices, got " + dtype_name(indices.dtype()));
  // nn::embedding checks every index (a negative one too, as PyTorch); its message then names this layer.
  try {
    return embedding(indices, weight);
  } catch (const Error& e) {
    std::string what = e.what();
    throw Error(describe(*this) + what.substr(what.find(':')));
  }
}

std::string Embedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
}

// ---- Flatten, Unflatten ---------------------------------------------------------------------------------
Tensor Flatten::forward(const Tensor& x) {
  // Both dims must exist (a 0-d input counts as 1-d, as PyTorch's flatten treats it).
  int64_t nd = std::max<int64_t>(x.dim(), 1);
  auto fits = [&](int64_t d) { return d >= -nd && d < nd; };
  if (!fits(start_dim) || !fits(end_dim))
    shape_error(describe(*this), "with dims " + std::to_string(start_dim) + " and " + std::to_string(end_dim),
                x.shape());
  return x.flatten(start_dim, end_dim);
}

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

Unflatten::Unflatten(int64_t dim, Shape sizes) : dim(dim), unflattened_size(std::move(sizes)) {
  int free = 0;
  for (int64_t s : unflattened_size) {
    if (s == -1) free++;
    else if (s < 0) throw Error("Unflatten: sizes must be >= 0 or -1, got " + shape_str(unflattened_size));
  }
  if (free > 1 || unflattened_size.empty())
    throw Error("Unflatten: expected a non-empty size with at most one -1, got " + shape_str(unflattened_size));
}

// x: (..., prod(sizes), ...) -> (..., sizes..., ...)
Tensor Unflatten::forward(const Tensor& x) {
  int64_t known = 1;
  bool has_free = false;
  for (int64_t s : unflattened_size) {
    if (s == -1) has_free = true;
    else known *= s;
  }
  std::string want = "with dim " + std::to_string(dim) + " of size " +
                     (has_free ? "a multiple of " + std::to_string(known) : std::to_string(known));
  if (dim < -x.dim() || dim >= x.dim()) shape_error(describe(*this), want, x.shape());
  int64_t d = dim < 0 ? dim + x.dim() : dim;
  int64_t n = x.size(d);
  bool ok = has_free ? (known != 0 && n % known == 0) : n == known;
  if (!ok) shape_error(describe(*this), want, x.shape());
  Shape s(x.shape().begin(), x.shape().begin() + d);
  for (int64_t v : unflattened_size) s.push_back(v == -1 ? n / known : v);
  s.insert(s.end(), x.shape().begin() + d + 1, x.shape().end());
  return x.reshape(s);
}

std::string Unflatten::extra_repr() const {
  // Python prints a tuple, with a trailing comma for one element: (2, 3) or (6,).
  std::string t = "(";
  for (size_t i = 0; i < unflattened_size.size(); i++) t += (i ? ", " : "") + std::to_string(unflattened_size[i]);
  t += unflattened_size.size() == 1 ? ",)" : ")";
  return "dim=" + std::to_string(dim) + ", unflattened_size=" + t;
}

// ---- Dropout --------------------------------------------------------------------------------------------
// out = x · mask / (1 - p), mask_i = [u_i >= p], u ~ U[0,1). Scaling the kept elements by 1/(1-p) ("inverted
// dropout") keeps E[out] = x, so eval mode can be the identity. u takes the values k·2^-24, so [u >= p]
// holds with probability exactly 1 - p whenever p is a multiple of 2^-24, and p = 0 keeps everything.
// The mask is a constant: the gradient is dout · mask / (1 - p), through the ordinary mul.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  if (!(p >= 0 && p <= 1)) throw Error("dropout: p must be in [0, 1], got " + py_float(p));
  if (!training || p == 0) return x;
  if (p == 1) return x * 0.0;  // everything dropped; still a graph, so the gradient is 0, not missing
  Tensor scale;
  {
    NoGradGuard no_grad;
    Tensor u = rand(x.shape(), x.dtype(), gen);
    scale = where(ge(u, scalar_tensor(p, x.dtype())), scalar_tensor(1.0 / (1.0 - p), x.dtype()),
                  scalar_tensor(0.0, x.dtype()));
  }
  return x * scale;
}

Dropout::Dropout(double p) : p(p) {
  if (!(p >= 0 && p <= 1)) throw Error("Dropout: p must be in [0, 1], got " + py_float(p));
}

// ---- activations with parameters --------------------------------------------------------------------------
GELU::GELU(std::string approx) : approximate(std::move(approx)) {
  if (approximate != "none" && approximate != "tanh")
    throw Error("GELU: approximate must be 'none' or 'tanh', got '" + approximate + "'");
}

Softplus::Softplus(double beta, double threshold) : beta(beta), threshold(threshold) {
  if (!(beta > 0)) throw Error("Softplus: beta must be > 0, got " + py_float(beta));
}

// Composite: heed's softplus primitive is the β = 1, threshold 20 case; other β scale in and out, and
// `where` switches to the identity above the threshold, as torch.nn.functional.softplus does.
Tensor Softplus::forward(const Tensor& x) {
  Tensor bx = beta == 1 ? x : x * beta;
  Tensor sp = beta == 1 ? softplus(bx) : softplus(bx) / beta;
  return where(bx > threshold, x, sp);
}

std::string Softplus::extra_repr() const {
  // PyTorch's defaults are the ints 1 and 20, printed without ".0"; print whole numbers that way.
  auto num = [](double v) {
    return v == std::floor(v) && std::fabs(v) < 1e15 ? std::to_string((int64_t)v) : py_float(v);
  };
  return "beta=" + num(beta) + ", threshold=" + num(threshold);
}

}  // namespace heed::nn

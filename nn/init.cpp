// init.cpp: the initialisers. Each draws a fresh tensor (rand/randn from the generator), scales it, and
// copies it into the target under NoGradGuard, so the target may be a parameter that requires grad and
// need not be contiguous.
#include "nn/init.h"

#include <cmath>
#include <vector>

#include "autograd/node.h"

namespace heed::nn::init {

static void check_floating(const char* op, const Tensor& t) {
  if (!t.defined()) throw Error(std::string(op) + ": the tensor is undefined");
  if (!is_floating(t.dtype())) throw Error(std::string(op) + ": expected a float tensor, got " + dtype_name(t.dtype()));
}

// Writes `src` (any shape with t's numel, any float dtype) into t, as an initialisation: not recorded.
static Tensor fill_from(const Tensor& t, const Tensor& src) {
  NoGradGuard no_grad;
  Tensor dst = t.detach();  // same storage; detached so that copy_ is allowed on a leaf that requires grad
  dst.copy_(src.reshape(t.shape()));
  return t;
}

double calculate_gain(const std::string& nonlinearity, std::optional<double> param) {
  static const char* linear_like[] = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                                      "conv_transpose3d", "sigmoid"};
  for (const char* name : linear_like)
    if (nonlinearity == name) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") {
    double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  // SELU's gain is not derived from a variance argument: PyTorch picked 3/4 empirically (see its docs).
  if (nonlinearity == "selu") return 0.75;
  throw Error("calculate_gain: unsupported nonlinearity '" + nonlinearity +
              "' (expected linear, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid, tanh, relu, leaky_relu or selu)");
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& w) {
  if (w.dim() < 2)
    throw Error("calculate_fan_in_and_fan_out: needs a tensor with at least 2 dims, got " + shape_str(w.shape()));
  int64_t receptive = 1;  // kh·kw for a conv weight (out, in, kh, kw)
  for (int64_t d = 2; d < w.dim(); d++) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

static int64_t fan(const char* op, const Tensor& t, const std::string& mode) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  if (mode == "fan_in") return fan_in;
  if (mode == "fan_out") return fan_out;
  throw Error(std::string(op) + ": mode must be 'fan_in' or 'fan_out', got '" + mode + "'");
}

Tensor uniform_(const Tensor& t, double a, double b, Generator* gen) {
  check_floating("uniform_", t);
  if (a > b) throw Error("uniform_: expected a <= b, got a=" + std::to_string(a) + " b=" + std::to_string(b));
  NoGradGuard no_grad;
  return fill_from(t, rand(t.shape(), t.dtype(), gen) * (b - a) + a);
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_floating("normal_", t);
  if (std < 0) throw Error("normal_: expected std >= 0, got " + std::to_string(std));
  NoGradGuard no_grad;
  return fill_from(t, randn(t.shape(), t.dtype(), gen) * std + mean);
}

Tensor constant_(const Tensor& t, double value) {
  check_floating("constant_", t);
  NoGradGuard no_grad;
  Tensor dst = t.detach();
  dst.fill_(value);
  return t;
}
Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  check_floating("xavier_uniform_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  double std = gain * std::sqrt(2.0 / (double)(fan_in + fan_out));
  double a = std::sqrt(3.0) * std;  // U(-a, a) has variance a²/3
  return uniform_(t, -a, a, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  check_floating("xavier_normal_", t);
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / (double)(fan_in + fan_out)), gen);
}

Tensor kaiming_uniform_(const Tensor& t, double a, const std::string& mode, const std::string& nonlinearity,
                        Generator* gen) {
  check_floating("kaiming_uniform_", t);
  if (t.numel() == 0) return t;  // nothing to fill, and the fan may be 0 (PyTorch warns and returns too)
  double std = calculate_gain(nonlinearity, a) / std::sqrt((double)fan("kaiming_uniform_", t, mode));
  double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, const std::string& mode, const std::string& nonlinearity,
                       Generator* gen) {
  check_floating("kaiming_normal_", t);
  if (t.numel() == 0) return t;
  double std = calculate_gain(nonlinearity, a) / std::sqrt((double)fan("kaiming_normal_", t, mode));
  return normal_(t, 0.0, std, gen);
}

// Q of a QR factorisation by modified Gram-Schmidt, in double. A is m x n (m >= n), column-major here
// (a[j] is column j). Each column has the projections on the earlier (already orthonormal) columns
// subtracted one at a time, then is normalised; R's diagonal is that norm, positive by construction, so
// this Q is already the sign-fixed Q that PyTorch gets from Householder QR followed by Q·sign(diag R).
// Classical Gram-Schmidt loses orthogonality as cond(A)²; the modified form loses it as cond(A), and a
// second pass ("twice is enough", Giraud et al. 2005) brings it to rounding level. A square Gaussian
// matrix of size n has cond ~ n, so the second pass matters for big layers.
static void gram_schmidt(std::vector<std::vector<double>>& a) {
  size_t n = a.size(), m = n ? a[0].size() : 0;
  for (size_t j = 0; j < n; j++) {
    for (int pass = 0; pass < 2; pass++)
      for (size_t k = 0; k < j; k++) {
        double dot = 0;
        for (size_t i = 0; i < m; i++) dot += a[k][i] * a[j][i];
        for (size_t i = 0; i < m; i++) a[j][i] -= dot * a[k][i];
      }
    double norm = 0;
    for (size_t i = 0; i < m; i++) norm += a[j][i] * a[j][i];
    norm = std::sqrt(norm);
    if (norm == 0) throw Error("orthogonal_: the random matrix was rank deficient (probability 0); try again");
    for (size_t i = 0; i < m; i++) a[j][i] /= norm;
  }
}

Tensor orthogonal_(const Tensor& t, double gain, Generator* gen) {
  check_floating("orthogonal_", t);
  if (t.dim() < 2) throw Error("orthogonal_: needs a tensor with at least 2 dims, got " + shape_str(t.shape()));
  if (t.numel() == 0) return t;
  int64_t rows = t.size(0), cols = t.numel() / rows;
  // Orthonormalise along the longer side: with rows < cols, the rows of the result are orthonormal, so
  // we factor the transpose, whose columns are those rows.
  bool wide = rows < cols;
  int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  std::vector<double> g = randn({rows, cols}, float64, gen).to_vector<double>();
  // Column j of the m x n matrix A: A = G (tall) or G^T (wide), so column j is G's column j or row j.
  std::vector<std::vector<double>> a(n, std::vector<double>(m));
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) a[j][i] = wide ? g[j * cols + i] : g[i * cols + j];
  gram_schmidt(a);
  std::vector<double> q(rows * cols);  // back to (rows, cols), times gain
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) (wide ? q[j * cols + i] : q[i * cols + j]) = gain * a[j][i];
  return fill_from(t, from_vector(q, {rows, cols}));
}

}  // namespace heed::nn::init

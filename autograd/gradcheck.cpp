// gradcheck.cpp: the Jacobian two ways. Analytic: one backward per output element, seeded with a
// one-hot vector, gives one row. Numeric: nudging one input element by ±eps and re-running f gives one
// column. Small inputs only; this is a test tool.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "tensor/kernels/kernels.h"
#include "tensor/random.h"

namespace heed {

// Storage offsets of every element of t, in row-major order (t may be a non-contiguous view).
static std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs;
  offs.reserve(t.numel());
  std::vector<int64_t> idx(t.dim(), 0);
  for (int64_t lin = 0; lin < t.numel(); lin++) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < t.dim(); d++) off += idx[d] * t.stride(d);
    offs.push_back(off);
    for (int64_t d = t.dim() - 1; d >= 0; d--) {
      if (++idx[d] < t.size(d)) break;
      idx[d] = 0;
    }
  }
  return offs;
}

static std::vector<double> values(const Tensor& t) { return t.detach().to_vector<double>(); }

bool gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  for (size_t i = 0; i < inputs.size(); i++)
    if (inputs[i].requires_grad() && inputs[i].dtype() != float64)
      throw GradcheckError("gradcheck: input " + std::to_string(i) + " is " + dtype_name(inputs[i].dtype()) +
                           "; run gradcheck in float64 (finite differences are meaningless in float32)");
  Tensor y = f(inputs);
  int64_t ny = y.numel();
  std::vector<Tensor> wrt;
  std::vector<size_t> wrt_index;
  for (size_t i = 0; i < inputs.size(); i++)
    if (inputs[i].requires_grad()) wrt.push_back(inputs[i]), wrt_index.push_back(i);
  if (wrt.empty()) throw GradcheckError("gradcheck: no input requires grad");

  // analytic[k][j][e]: d y[j] / d input_k[e]
  std::vector<std::vector<std::vector<double>>> analytic(wrt.size(), std::vector<std::vector<double>>(ny));
  if (y.requires_grad()) {
    for (int64_t j = 0; j < ny; j++) {
      Tensor seed = zeros(y.shape(), y.dtype());
      seed.data_ptr<double>()[j] = 1.0;
      std::vector<Tensor> g = grad({y}, wrt, {seed}, /*retain_graph=*/true, /*create_graph=*/false);
      for (size_t k = 0; k < wrt.size(); k++)
        analytic[k][j] = g[k].defined() ? values(g[k]) : std::vector<double>(wrt[k].numel(), 0.0);
    }
  } else {
    for (size_t k = 0; k < wrt.size(); k++)
      for (int64_t j = 0; j < ny; j++) analytic[k][j].assign(wrt[k].numel(), 0.0);
  }

  for (size_t k = 0; k < wrt.size(); k++) {
    Tensor x = wrt[k];
    double* base = static_cast<double*>(x.storage()->data);
    std::vector<int64_t> offs = element_offsets(x);
    for (size_t e = 0; e < offs.size(); e++) {
      // Nudge the element through its storage: no version bump, since nothing saved may depend on it
      // once f is re-run from scratch.
      double orig = base[offs[e]];
      base[offs[e]] = orig + opts.eps;
      std::vector<double> plus = values(f(inputs));
      base[offs[e]] = orig - opts.eps;
      std::vector<double> minus = values(f(inputs));
      base[offs[e]] = orig;
      for (int64_t j = 0; j < ny; j++) {
        double num = (plus[j] - minus[j]) / (2 * opts.eps);
        double ana = analytic[k][j][e];
        if (!(std::fabs(ana - num) <= opts.atol + opts.rtol * std::fabs(num))) {
          std::ostringstream os;
          os << "gradcheck: input " << wrt_index[k] << " (shape " << shape_str(x.shape()) << "), element " << e
             << ", output element " << j << " (output shape " << shape_str(y.shape()) << "): analytic " << ana
             << " vs numeric " << num;
          throw GradcheckError(os.str());
        }
      }
    }
  }
  return true;
}

bool gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  // A fixed random upstream gradient v, so that the check does not depend on the global generator.
  Generator gen(1234);
  Tensor y = f(inputs);
  Tensor v = randn(y.shape(), float64, &gen).requires_grad_();
  std::vector<Tensor> all = inputs;
  all.push_back(v);
  size_t n = inputs.size();
  TensorFn first_order = [&f, n](const std::vector<Tensor>& xs) {
    std::vector<Tensor> ins(xs.begin(), xs.begin() + n), wrt;
    for (const Tensor& x : ins)
      if (x.requires_grad()) wrt.push_back(x);
    Tensor y = f(ins);
    std::vector<Tensor> g = grad({y}, wrt, {xs[n]}, /*retain_graph=*/true, /*create_graph=*/true);
    // Flatten and join the gradients into one output; an unused input contributes zeros.
    std::vector<Tensor> flat;
    for (size_t k = 0; k < g.size(); k++)
      flat.push_back(g[k].defined() ? g[k].reshape({-1}) : zeros({wrt[k].numel()}, float64));
    return cat(flat, 0);
  };
  return gradcheck(first_order, all, opts);
}

}  // namespace heed

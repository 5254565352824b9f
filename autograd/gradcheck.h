// gradcheck.h: checking backward formulas against finite differences. Public API: write a new op,
// then gradcheck it, exactly as heed's own test table does.
#pragma once
#include <functional>
#include <stdexcept>
#include <vector>

#include "autograd/engine.h"

namespace heed {

/// PyTorch's defaults. Run in float64: in float32 the central difference's rounding error (~1e-7/eps)
/// swamps the comparison.
struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

/// Thrown on a mismatch, naming the input, the element, and the analytic and numeric values.
struct GradcheckError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Compares the Jacobian of f from backward with central differences (f(x+eps) - f(x-eps)) / 2eps, for
/// every input that requires grad and every output element. Returns true or throws GradcheckError.
bool gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

/// gradcheck of the gradient itself: the function (inputs, v) -> grad(f(inputs), inputs, v,
/// create_graph=true), with a fixed random v. Passing it means backward's own backward is right.
bool gradgradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

}  // namespace heed

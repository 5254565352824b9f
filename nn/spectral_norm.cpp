// spectral_norm.cpp: the power iteration and W / σ, shared by every SpectralNorm<M>.
#include "nn/spectral_norm.h"

#include <algorithm>
#include <numeric>

namespace heed::nn {

// W as the matrix (size(dim), rest): dim moved to the front, the others flattened, as PyTorch's
// reshape_weight_to_matrix. A view when dim is 0 and W is contiguous.
static Tensor as_matrix(const Tensor& w, int64_t dim) {
  if (dim != 0) {
    std::vector<int64_t> perm(w.dim());
    std::iota(perm.begin(), perm.end(), 0);
    perm.erase(perm.begin() + dim);
    perm.insert(perm.begin(), dim);
    return w.permute(perm).reshape({w.size(dim), -1});
  }
  return w.reshape({w.size(0), -1});
}

// x / max(‖x‖, eps), as torch.nn.functional.normalize; only ever called without a graph.
static Tensor normalize(const Tensor& x, double eps) { return x / std::max(norm(x).item(), eps); }

std::pair<Tensor, Tensor> spectral_norm_init(const Tensor& weight, int64_t dim, double eps, Generator* gen) {
  if (weight.dim() < 2 || dim < 0 || dim >= weight.dim())
    throw Error("spectral_norm: needs a weight of at least 2 dims and a dim inside it, got " +
                shape_str(weight.shape()) + " and dim " + std::to_string(dim));
  NoGradGuard no_grad;
  int64_t h = weight.size(dim), w = weight.numel() / h;
  Tensor u = normalize(randn({h}, weight.dtype(), gen), eps);
  Tensor v = normalize(randn({w}, weight.dtype(), gen), eps);
  return {u, v};
}

// σ = u^T W v  after  (v = normalize(W^T u), u = normalize(W v)) x n   W: (h, w)  u: (h)  v: (w)
// The iteration runs on a detached W: u and v are estimates, and PyTorch treats them as constants too.
// The updated estimates are copied into the buffers, while the fresh tensors (which no later in-place
// update touches) are what σ's graph saves.
Tensor spectral_norm_weight(const Tensor& weight, const Tensor& u_buf, const Tensor& v_buf, int64_t dim,
                            int n_power_iterations, double eps, bool power_iteration) {
  Tensor w_mat = as_matrix(weight, dim);
  Tensor u = u_buf, v = v_buf;
  if (power_iteration && n_power_iterations > 0) {
    NoGradGuard no_grad;
    Tensor wd = w_mat.detach();
    for (int i = 0; i < n_power_iterations; i++) {
      v = normalize(matmul(wd.mT(), u), eps);
      u = normalize(matmul(wd, v), eps);
    }
    Tensor(u_buf).copy_(u);
    Tensor(v_buf).copy_(v);
  }
  Tensor sigma = matmul(u, matmul(w_mat, v));  // 0-d
  return weight / sigma;
}

}  // namespace heed::nn

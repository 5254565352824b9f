// ops_index.cpp: indexing and joining. The ops come in adjoint pairs, each the other's backward:
// index_select <-> index_add, gather <-> scatter_add, cat <-> slices. So double backward works through
// all of them.
#include <algorithm>

#include "autograd/node.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"index_select", "index_add", "gather", "scatter_add", "cat"});

// out = x.index_select(dim, idx);  dx = zeros with d's slices added at idx (repeats add up)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = wrap_dim_scalar_ok("index_select", dim, x.dim());  // a 0-d x is its own one slice, as in PyTorch
  return record("index_select", kernels::index_select(x, dim, index), {x},
                [shape = x.shape(), dim, index](const Tensor& d, const Tensor&) {
                  return Grads{index_add(zeros(shape, d.dtype()), dim, index, d)};
                });
}

// out = x with src's slices added at idx;  dx = d, dsrc = d.index_select(dim, idx)
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim_scalar_ok("index_add", dim, x.dim());
  return record("index_add", kernels::index_add(x, dim, index, src), {x, src},
                [dim, index](const Tensor& d, const Tensor&) {
                  return Grads{d, index_select(d, dim, index)};
                });
}

// out[i][j] = x[i][idx[i][j]] (dim 1);  dx = zeros with d scattered back to where each value came from
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = wrap_dim("gather", dim, x.dim());
  return record("gather", kernels::gather(x, dim, index), {x},
                [shape = x.shape(), dim, index](const Tensor& d, const Tensor&) {
                  return Grads{scatter_add(zeros(shape, d.dtype()), dim, index, d)};
                });
}

// out = x with out[i][idx[i][j]] += src[i][j] (dim 1);  dx = d, dsrc = gather(d, idx) (zero where idx
// does not reach, when src is larger than idx)
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim("scatter_add", dim, x.dim());
  return record("scatter_add", kernels::scatter_add(x, dim, index, src), {x, src},
                [dim, index, src_shape = src.shape()](const Tensor& d, const Tensor&) {
                  Tensor g = gather(d, dim, index);
                  // Pad with zeros up to src's shape, one dim at a time (a slice's backward does that).
                  for (int64_t k = 0; k < g.dim(); k++)
                    if (g.size(k) != src_shape[k]) {
                      Shape s = g.shape();
                      s[k] = src_shape[k];
                      g = cat({g, zeros({}, g.dtype())
                                      .expand(Shape(s.begin(), s.end()))
                                      .narrow(k, 0, src_shape[k] - g.size(k))},
                              k);
                    }
                  return Grads{d, g};
                });
}

// out = [x0, x1, ...] joined along dim;  dx_i = the matching slice of d
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  Tensor out = kernels::cat(xs, dim);
  dim = wrap_dim("cat", dim, xs[0].dim());
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(dim));
  return record("cat", out, xs, [dim, sizes](const Tensor& d, const Tensor&) {
    Grads g;
    int64_t at = 0;
    for (int64_t n : sizes) {
      g.push_back(d.narrow(dim, at, n));
      at += n;
    }
    return g;
  });
}

// Composites.
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw Error("stack: expected at least one tensor");
  dim = wrap_dim("stack", dim, xs[0].dim() + 1);
  for (size_t i = 1; i < xs.size(); i++)
    if (xs[i].shape() != xs[0].shape())
      throw Error("stack: tensor " + std::to_string(i) + " has shape " + shape_str(xs[i].shape()) +
                  " but tensor 0 has " + shape_str(xs[0].shape()));
  std::vector<Tensor> u;
  for (const Tensor& x : xs) u.push_back(x.unsqueeze(dim));
  return cat(u, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  dim = wrap_dim("split", dim, x.dim());
  if (split_size <= 0) throw Error("split: split_size must be positive, got " + std::to_string(split_size));
  std::vector<Tensor> parts;
  // Step by the part just taken, never past the end: at + split_size could overflow.
  const int64_t n = x.size(dim);
  for (int64_t at = 0, len; at < n; at += len) {
    len = std::min(split_size, n - at);
    parts.push_back(x.narrow(dim, at, len));
  }
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) throw Error("chunk: chunks must be positive, got " + std::to_string(chunks));
  dim = wrap_dim("chunk", dim, x.dim());
  const int64_t n = x.size(dim);
  // ceil(n / chunks), written so that n + chunks - 1 cannot overflow.
  return split(x, n == 0 ? 1 : 1 + (n - 1) / chunks, dim);
}

}  // namespace heed

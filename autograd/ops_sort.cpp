// ops_sort.cpp: sort, argsort, topk, multinomial and split by sizes.
//
// None of these needs a backward of its own. sort and topk find int64 indices with a plain loop (not
// differentiable, as the indices of max are not), then take the values with gather, so the gradient
// of the values is gather's: each element of dout goes back to the place its value came from. multinomial
// returns indices only. split by sizes is narrow views.
//
// Letters: the op works along `dim`, of size N; every other dim is a batch of independent rows.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/node.h"
#include "tensor/kernels/kernels.h"
#include "tensor/random.h"

namespace heed {

// The order PyTorch sorts in: NaN counts as larger than every number (so it comes last ascending, first
// descending). Ties keep their original order (a stable sort), so the result is deterministic.
template <class T>
static bool less_nan_last(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

// For each row along `dim`: the indices of its k first elements in sorted order, as int64, with the
// shape of x except size k along dim.
static Tensor sorted_indices(const char* name, const Tensor& x, int64_t dim, int64_t k, bool descending) {
  Tensor xt = x.transpose(dim, -1).contiguous();  // rows along the last dim
  const int64_t n = xt.size(-1), rows = n == 0 ? 0 : xt.numel() / n;
  Shape out_shape = xt.shape();
  out_shape.back() = k;
  Tensor idx = empty(out_shape, int64);
  int64_t* ip = idx.data_ptr<int64_t>();
  dispatch_all(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* xp = xt.data_ptr<T>();
    std::vector<int64_t> order(n);
    for (int64_t r = 0; r < rows; r++) {
      const T* row = xp + r * n;
      std::iota(order.begin(), order.end(), 0);
      auto cmp = [&](int64_t a, int64_t b) {
        return descending ? less_nan_last(row[b], row[a]) : less_nan_last(row[a], row[b]);
      };
      if (k < n) {
        // topk: only the first k need ordering; ties again go to the lower index.
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int64_t a, int64_t b) { return cmp(a, b) || (!cmp(b, a) && a < b); });
      } else {
        std::stable_sort(order.begin(), order.end(), cmp);
      }
      std::copy(order.begin(), order.begin() + k, ip + r * k);
    }
  });
  return idx.transpose(dim, -1).contiguous();
}

// values = gather(x, dim, indices);  dx = dout scattered back to where each value came from (gather's)
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  if (x.dim() == 0) return {x, zeros({}, int64)};
  dim = wrap_dim("sort", dim, x.dim());
  Tensor idx = sorted_indices("sort", x, dim, x.size(dim), descending);
  return {gather(x, dim, idx), idx};
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) { return sort(x, dim, descending).second; }

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  int64_t d = x.dim() == 0 ? 0 : wrap_dim("topk", dim, x.dim());
  int64_t n = x.dim() == 0 ? 1 : x.size(d);
  if (k < 0 || k > n)
    throw Error("topk: k = " + std::to_string(k) + " is out of range for dim " + std::to_string(dim) + " of size " +
                std::to_string(n) + " (input " + shape_str(x.shape()) + ")");
  if (x.dim() == 0) return {x, zeros({}, int64)};
  Tensor idx = sorted_indices("topk", x, d, k, largest);
  return {gather(x, d, idx), idx};
}

// Draws with the inverse-CDF method: u uniform in [0, total), then the first category whose running sum
// passes u. Without replacement, a drawn category's weight is set to 0 before the next draw (the
// sequential scheme torch.multinomial uses), so each row needs num_samples <= its nonzero categories.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement, Generator* gen) {
  if (probs.dim() != 1 && probs.dim() != 2)
    throw Error("multinomial: expected probs of shape (C) or (B, C), got " + shape_str(probs.shape()));
  if (!is_floating(probs.dtype()))
    throw Error(std::string("multinomial: expected float probabilities, got ") + dtype_name(probs.dtype()));
  const int64_t C = probs.size(-1), B = probs.dim() == 2 ? probs.size(0) : 1;
  if (C == 0) throw Error("multinomial: probs " + shape_str(probs.shape()) + " has no categories");
  if (num_samples <= 0) throw Error("multinomial: num_samples must be positive, got " + std::to_string(num_samples));
  if (!replacement && num_samples > C)
    throw Error("multinomial: cannot draw " + std::to_string(num_samples) + " samples from " + std::to_string(C) +
                " categories without replacement (pass replacement = true)");
  std::vector<double> w = probs.contiguous().to_vector<double>();
  Generator& g = gen ? *gen : default_generator();
  const uint64_t start = g.reserve(2 * (uint64_t)(B * num_samples));
  Tensor out = empty(probs.dim() == 2 ? Shape{B, num_samples} : Shape{num_samples}, int64);
  int64_t* op = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; b++) {
    double* row = w.data() + b * C;
    int64_t nonzero = 0;
    for (int64_t c = 0; c < C; c++) {
      if (!(row[c] >= 0) || std::isinf(row[c]))
        throw Error("multinomial: probabilities must be finite and non-negative, row " + std::to_string(b) + " has " +
                    std::to_string(row[c]) + " at " + std::to_string(c));
      nonzero += row[c] > 0;
    }
    if (nonzero == 0) throw Error("multinomial: row " + std::to_string(b) + " of probs sums to 0");
    if (!replacement && num_samples > nonzero)
      throw Error("multinomial: row " + std::to_string(b) + " has only " + std::to_string(nonzero) +
                  " nonzero categories, fewer than num_samples = " + std::to_string(num_samples) +
                  " without replacement");
    for (int64_t s = 0; s < num_samples; s++) {
      double total = 0;
      for (int64_t c = 0; c < C; c++) total += row[c];
      uint64_t i = start + 2 * (uint64_t)(b * num_samples + s);
      double u = uniform_double(philox_u32(g.seed(), i), philox_u32(g.seed(), i + 1)) * total;
      int64_t pick = -1;
      double run = 0;
      for (int64_t c = 0; c < C; c++) {
        if (row[c] <= 0) continue;
        pick = c;  // the last positive category catches rounding at the top end
        run += row[c];
        if (u < run) break;
      }
      op[b * num_samples + s] = pick;
      if (!replacement) row[pick] = 0;
    }
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& split_sizes, int64_t dim) {
  dim = wrap_dim("split", dim, x.dim());
  int64_t total = 0;
  for (int64_t s : split_sizes) {
    if (s < 0) throw Error("split: split sizes must be non-negative, got " + shape_str(split_sizes));
    total += s;
  }
  if (total != x.size(dim))
    throw Error("split: split sizes " + shape_str(split_sizes) + " sum to " + std::to_string(total) + ", but dim " +
                std::to_string(dim) + " of " + shape_str(x.shape()) + " has size " + std::to_string(x.size(dim)));
  std::vector<Tensor> parts;
  int64_t at = 0;
  for (int64_t s : split_sizes) {
    parts.push_back(x.narrow(dim, at, s));
    at += s;
  }
  return parts;
}

}  // namespace heed

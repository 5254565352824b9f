// loss.cpp: the loops of loss.h. Each forward is one pass that reads its input once; each plain backward
// is one more pass. The composites they replace (nn::cross_entropy_composite, and the double-where form
// of binary cross-entropy) make about ten passes with a temporary each.
#include "tensor/kernels/loss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "tensor/kernels/kernels.h"
#include "tensor/kernels/simd.h"
#include "tensor/parallel.h"

namespace heed::kernels {

// Below this many elements a loop runs on one thread (as kernels.cpp's kParallelGrain).
constexpr int64_t kParallelGrain = 32768;

// ---- binary cross-entropy ------------------------------------------------------------------------------
constexpr double kLogFloor = -100.0;

// loss[i] for contiguous p, y. The logs are taken by simd.h on chunks of 512 that stay in L1, after the
// range check has copied p and 1-p there. Returns the index of the first p outside [0, 1] (then stops), or
// n when there is none: the caller throws, outside any parallel region.
template <class T>
static int64_t bce_forward_loop(const T* p, const T* y, T* out, int64_t n) {
  constexpr int64_t kRow = 512;
  T lp[kRow], lq[kRow];
  const bool fast = use_simd();
  for (int64_t i0 = 0; i0 < n; i0 += kRow) {
    const int64_t m = std::min(kRow, n - i0);
    for (int64_t k = 0; k < m; k++) {
      const T v = p[i0 + k];
      if (!(v >= 0 && v <= 1)) return i0 + k;
      lp[k] = v, lq[k] = T(1) - v;
    }
    if (fast) {
      simd::unary_simd<T>(simd::Unary::Log, lp, lp, m, {});
      simd::unary_simd<T>(simd::Unary::Log, lq, lq, m, {});
    } else {
      simd::unary_ref<T>(simd::Unary::Log, lp, 1, lp, 1, m, {});
      simd::unary_ref<T>(simd::Unary::Log, lq, 1, lq, 1, m, {});
    }
    const T floor = T(kLogFloor);
    for (int64_t k = 0; k < m; k++) {
      const T yk = y[i0 + k];
      out[i0 + k] = -(yk * std::max(lp[k], floor) + (T(1) - yk) * std::max(lq[k], floor));
    }
  }
  return n;
}

template <class T>
static void bce_backward_loop(const T* p, const T* y, const T* d, T* dp, int64_t n) {
  const T tiny = T(std::exp(kLogFloor));
  for (int64_t i = 0; i < n; i++) {
    const T q = T(1) - p[i];
    const T inv_p = p[i] > tiny ? T(1) / p[i] : T(0), inv_q = q > tiny ? T(1) / q : T(0);
    dp[i] = d[i] * ((T(1) - y[i]) * inv_q - y[i] * inv_p);
  }
}

// f(begin, end) over [0, n) in chunks of kBceChunk, spread over threads when n is large. Every element is
// independent, so the split changes no result.
constexpr int64_t kBceChunk = 8192;
template <class F>
static void for_bce_chunks(int64_t n, F f) {
  const int64_t chunks = (n + kBceChunk - 1) / kBceChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t c = 0; c < chunks; c++) f(c * kBceChunk, std::min(n, (c + 1) * kBceChunk));
}

Tensor binary_cross_entropy_forward(const Tensor& p_in, const Tensor& y_in) {
  Tensor p = p_in.contiguous(), y = y_in.contiguous();
  Tensor loss = empty(p.shape(), p.dtype());
  dispatch_floating(p.dtype(), "binary_cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    const T* pp = p.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    T* lp = loss.data_ptr<T>();
    // The first bad index over all chunks: each chunk stops at its own first, so the smallest is the first.
    const int64_t n = p.numel();
    std::atomic<int64_t> bad{n};
    for_bce_chunks(n, [&](int64_t lo, int64_t hi) {
      const int64_t at = lo + bce_forward_loop<T>(pp + lo, yp + lo, lp + lo, hi - lo);
      if (at == hi) return;
      int64_t seen = bad.load();
      while (at < seen && !bad.compare_exchange_weak(seen, at)) {
      }
    });
    if (bad.load() < n)
      throw Error("binary_cross_entropy: input value " + std::to_string(pp[bad.load()]) + " at index " +
                  std::to_string(bad.load()) +
                  " is not a probability in [0,1] (for logits use binary_cross_entropy_with_logits)");
  });
  return loss;
}

Tensor binary_cross_entropy_backward(const Tensor& dout, const Tensor& p_in, const Tensor& y_in) {
  Tensor p = p_in.contiguous(), y = y_in.contiguous(), d = dout.contiguous(), dp = empty(p.shape(), p.dtype());
  dispatch_floating(p.dtype(), "binary_cross_entropy backward", [&](auto zero) {
    using T = decltype(zero);
    const T* pp = p.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    const T* gp = d.data_ptr<T>();
    T* out = dp.data_ptr<T>();
    for_bce_chunks(p.numel(), [&](int64_t lo, int64_t hi) {
      bce_backward_loop<T>(pp + lo, yp + lo, gp + lo, out + lo, hi - lo);
    });
  });
  return dp;
}

// ---- cross-entropy over class indices -------------------------------------------------------------------
CrossEntropyRows cross_entropy_row_constants(const Tensor& target, const Tensor& weight, int64_t C,
                                             int64_t ignore_index, double eps) {
  CrossEntropyRows r;
  r.N = target.numel();
  r.C = C;
  r.eps = eps;
  r.target = target.to_vector<int64_t>();
  r.weight = weight.defined() ? weight.to_vector<double>() : std::vector<double>(C, 1.0);
  double W = 0;
  for (double v : r.weight) W += v;
  r.a.assign(r.N, 0);
  r.c.assign(r.N, 0);
  r.keep.assign(r.N, 0);
  for (int64_t i = 0; i < r.N; i++) {
    if (r.target[i] == ignore_index) {
      r.target[i] = 0;
      continue;
    }
    if (r.target[i] < 0 || r.target[i] >= C)
      throw Error("cross_entropy: target " + std::to_string(r.target[i]) + " at index " + std::to_string(i) +
                  " is out of range for " + std::to_string(C) + " classes");
    r.keep[i] = 1;
    r.c[i] = (1.0 - eps) * r.weight[r.target[i]];
    r.a[i] = r.c[i] + eps * W / (double)C;
    r.weight_sum += r.weight[r.target[i]];
  }
  return r;
}

// Each row's log-softmax goes to a scratch row that stays in L1 cache, so x is read from memory once.
template <class T>
static void cross_entropy_forward_loop(const T* x, const CrossEntropyRows& r, T* loss) {
  const bool fast = use_simd();
  const int64_t C = r.C;
  ParallelGuard guard;  // a failed allocation inside the region would call std::terminate (tensor/parallel.h)
#pragma omp parallel if (r.N * C >= kParallelGrain) num_threads(parallel_threads())
  {
    std::vector<T> logp;
    const bool ready = guard.run([&] { logp.resize(C); });
#pragma omp for schedule(static)
    for (int64_t i = 0; i < r.N; i++) {
      if (!ready) continue;
      if (r.keep[i] == 0) {
        loss[i] = 0;
        continue;
      }
      if (fast) simd::softmax_row_simd(x + i * C, logp.data(), C, true);
      else simd::softmax_row_ref(x + i * C, logp.data(), C, true);
      const int64_t t = r.target[i];
      double out = -(1.0 - r.eps) * r.weight[t] * (double)logp[t];
      if (r.eps > 0) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += r.weight[c] * (double)logp[c];
        out -= r.eps / (double)C * s;
      }
      loss[i] = (T)out;
    }
  }
  guard.rethrow();
}

// dx = dout_i (a_i softmax(x_i) - b_i): softmax straight into the row of dx, then the corrections in place.
template <class T>
static void cross_entropy_backward_loop(const T* x, const T* dout, const CrossEntropyRows& r, T* dx) {
  const bool fast = use_simd();
  const int64_t C = r.C;
#pragma omp parallel for schedule(static) if (r.N * C >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t i = 0; i < r.N; i++) {
    T* row = dx + i * C;
    if (r.keep[i] == 0) {
      std::fill(row, row + C, T(0));
      continue;
    }
    if (fast) simd::softmax_row_simd(x + i * C, row, C, false);
    else simd::softmax_row_ref(x + i * C, row, C, false);
    const double d = (double)dout[i];
    const T scale = (T)(d * r.a[i]);
    for (int64_t c = 0; c < C; c++) row[c] *= scale;
    row[r.target[i]] -= (T)(d * r.c[i]);  // the one-hot term
    if (r.eps > 0) {
      const double k = d * r.eps / (double)C;
      for (int64_t c = 0; c < C; c++) row[c] -= (T)(k * r.weight[c]);
    }
  }
}

Tensor cross_entropy_forward(const Tensor& x_in, const CrossEntropyRows& r) {
  Tensor x = x_in.contiguous(), loss = empty({r.N}, x.dtype());
  dispatch_floating(x.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_forward_loop<T>(x.data_ptr<T>(), r, loss.data_ptr<T>());
  });
  return loss;
}

Tensor cross_entropy_backward(const Tensor& dout, const Tensor& x_in, const CrossEntropyRows& r) {
  Tensor x = x_in.contiguous(), d = dout.contiguous(), dx = empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "cross_entropy backward", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_backward_loop<T>(x.data_ptr<T>(), d.data_ptr<T>(), r, dx.data_ptr<T>());
  });
  return dx;
}

}  // namespace heed::kernels

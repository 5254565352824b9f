// Tests for tensor/kernels/optim.cpp: each optimizer's xsimd update loop against its scalar reference.
// (The optimizers themselves, against PyTorch's numbers, are tested in tests/nn/optim/test_optim.cpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "heed.h"
#include "tensor/kernels/optim.h"

using namespace heed;

namespace {

// Runs `update(simd?, arrays)` from the same random start at both levels and compares every array.
// With exact IEEE operations in the same order the two would agree bit for bit, and they do when built
// with -ffp-contract=off. GCC's default for GNU C++ contracts a*b + c into one fused multiply-add where it
// sees fit, not always at the same places in the scalar and the vector loop, and a fused operation rounds
// once instead of twice. So each element may differ by a few ulp of the terms it was computed from, which
// are O(1) here: the tolerance is 16 ulp of max(1, |value|). A wrong formula, offset or tail is off by O(1).
// The inputs keep the problem well conditioned: second moments >= 0.1, and square_avg - grad_avg² >= 0.5
// for centered RMSprop, whose square root would otherwise amplify the rounding of a near-cancellation.
template <class T>
void check_levels(const char* what, int64_t n, int arrays, const std::function<void(bool, std::vector<T*>&)>& update) {
  Generator g(n * 31 + arrays);
  std::vector<std::vector<T>> a(arrays), b(arrays);
  for (int k = 0; k < arrays; k++) {
    // array 0 is p, 1 is g, 2.. are buffers
    Tensor t = randn({n}, dtype_of<T>(), &g);
    if (k >= 2) t = abs(t) + 0.1;
    a[k] = b[k] = t.template to_vector<T>();
  }
  std::vector<T*> pa, pb;
  for (int k = 0; k < arrays; k++) pa.push_back(a[k].data()), pb.push_back(b[k].data());
  update(false, pa);
  update(true, pb);
  const double ulp = std::numeric_limits<T>::epsilon();
  for (int k = 0; k < arrays; k++) {
    for (int64_t i = 0; i < n; i++) {
      INFO(what, " ", sizeof(T) == 4 ? "float" : "double", " n=", n, " array ", k, " element ", i);
      CHECK(std::fabs((double)a[k][i] - (double)b[k][i]) <= 16 * ulp * std::max(1.0, std::fabs((double)a[k][i])));
    }
  }
}

template <class T>
void check_all_levels() {
  using namespace heed::kernels;
  for (int64_t n : {1, 7, 17, 1023}) {
    for (auto s :
         {SGDScalars{0.1, 0, 0, 0, false, false, false}, SGDScalars{0.1, 0.9, 0.1, 0, false, false, true},
          SGDScalars{0.1, 0.9, 0.1, 0.01, false, false, false}, SGDScalars{0.05, 0.9, 0, 0.01, true, true, false}})
      check_levels<T>("sgd", n, 3, [&](bool simd, std::vector<T*>& x) {
        T* buf = s.momentum != 0 ? x[2] : nullptr;
        simd ? sgd_update_simd(x[0], x[1], buf, n, s) : sgd_update_ref(x[0], x[1], buf, n, s);
      });
    for (auto s : {AdamScalars{0.9, 0.999, 1e-8, 0, 1, 0.01 / 0.1, std::sqrt(0.001), false, false},
                   AdamScalars{0.8, 0.9, 1e-6, 0.1, 1, 0.02, 0.5, true, true},
                   AdamScalars{0.9, 0.95, 1e-8, 0, 0.999, 0.003, 0.7, true, false}})
      check_levels<T>("adam", n, 5, [&](bool simd, std::vector<T*>& x) {
        T* vmax = s.amsgrad ? x[4] : nullptr;
        simd ? adam_update_simd(x[0], x[1], x[2], x[3], vmax, n, s)
             : adam_update_ref(x[0], x[1], x[2], x[3], vmax, n, s);
      });
    for (auto s :
         {RMSpropScalars{0.01, 0.99, 1e-8, 0, 0, false, false}, RMSpropScalars{0.01, 0.9, 1e-8, 0.01, 0.9, true, true}})
      check_levels<T>("rmsprop", n, 5, [&](bool simd, std::vector<T*>& x) {
        // square_avg = grad_avg² + |noise| + 0.5 (see above)
        for (int64_t i = 0; i < n; i++) x[2][i] += x[3][i] * x[3][i] + T(0.4);
        T* ga = s.centered ? x[3] : nullptr;
        T* buf = s.momentum > 0 ? x[4] : nullptr;
        simd ? rmsprop_update_simd(x[0], x[1], x[2], ga, buf, n, s)
             : rmsprop_update_ref(x[0], x[1], x[2], ga, buf, n, s);
      });
  }
}

}  // namespace

TEST_CASE("kernels optim: the SIMD update loops agree with the scalar reference (sizes 1, 7, 17, 1023)") {
  check_all_levels<float>();
  check_all_levels<double>();
}


// Tests for nn/init: gains and fans as torch.nn.init computes them, the distributions each initialiser
// draws (bounds, means and variances over many samples), orthogonality, reproducibility, error paths.
#include <doctest/doctest.h>

#include <cmath>

#include "heed.h"
#include "nn/init.h"

using namespace heed;
namespace init = heed::nn::init;

namespace {

double mean_of(const Tensor& t) { return t.to(float64).mean().item(); }
double var_of(const Tensor& t) { return var(t.to(float64).reshape({-1})).item(); }
double max_abs(const Tensor& t) { return max(abs(t)).item(); }

}  // namespace

TEST_CASE("nn init: calculate_gain and calculate_fan_in_and_fan_out as torch.nn.init") {
  CHECK(init::calculate_gain("linear") == 1.0);
  CHECK(init::calculate_gain("conv_transpose2d") == 1.0);
  CHECK(init::calculate_gain("sigmoid") == 1.0);
  CHECK(init::calculate_gain("tanh") == doctest::Approx(5.0 / 3.0));
  CHECK(init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)));
  CHECK(init::calculate_gain("leaky_relu") == doctest::Approx(std::sqrt(2.0 / (1 + 0.01 * 0.01))));
  CHECK(init::calculate_gain("leaky_relu", 0.2) == doctest::Approx(std::sqrt(2.0 / 1.04)));
  CHECK(init::calculate_gain("leaky_relu", std::sqrt(5.0)) == doctest::Approx(std::sqrt(1.0 / 3.0)));
  CHECK(init::calculate_gain("selu") == 0.75);
  CHECK_THROWS_AS(init::calculate_gain("swish"), Error);

  CHECK(init::calculate_fan_in_and_fan_out(zeros({400, 784})) == std::pair<int64_t, int64_t>{784, 400});
  CHECK(init::calculate_fan_in_and_fan_out(zeros({32, 3, 5, 5})) == std::pair<int64_t, int64_t>{75, 800});
  // A ConvTranspose2d weight (in=64, out/groups=16, 4, 4): PyTorch's fan_in is 16·16 = 256.
  CHECK(init::calculate_fan_in_and_fan_out(zeros({64, 16, 4, 4})) == std::pair<int64_t, int64_t>{256, 1024});
  CHECK_THROWS_AS(init::calculate_fan_in_and_fan_out(zeros({5})), Error);
}

TEST_CASE("nn init: uniform_, normal_, constant_, zeros_, ones_") {
  Generator g(1);
  Tensor t = empty({200, 300});
  init::uniform_(t, -2, 3, &g);
  CHECK(min(t).item() >= -2);
  CHECK(max(t).item() < 3);
  CHECK(mean_of(t) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(var_of(t) == doctest::Approx(25.0 / 12).epsilon(0.02));
  init::normal_(t, 1.5, 0.5, &g);
  CHECK(mean_of(t) == doctest::Approx(1.5).epsilon(0.005));
  CHECK(std::sqrt(var_of(t)) == doctest::Approx(0.5).epsilon(0.01));
  init::constant_(t, 0.25);
  CHECK(min(t).item() == 0.25);
  CHECK(max(t).item() == 0.25);
  init::zeros_(t);
  CHECK(max_abs(t) == 0);
  init::ones_(t);
  CHECK(mean_of(t) == 1);
  // float64 and non-contiguous targets work; the rest of the storage is untouched.
  Tensor d = zeros({4, 6}, float64);
  init::ones_(d.slice(1, 0, 6, 2));
  CHECK(d.sum().item() == 12);
  CHECK(d.at({0, 1}) == 0);
  CHECK_THROWS_AS(init::uniform_(t, 1, 0), Error);
  CHECK_THROWS_AS(init::normal_(t, 0, -1), Error);
  CHECK_THROWS_AS(init::ones_(zeros({3}, int64)), Error);
  CHECK_THROWS_AS(init::zeros_(Tensor()), Error);
}

TEST_CASE("nn init: xavier and kaiming scales") {
  Generator g(2);
  Tensor w = empty({256, 512});  // fan_in 512, fan_out 256
  init::xavier_uniform_(w, 2.0, &g);
  double a = 2.0 * std::sqrt(6.0 / 768.0);
  CHECK(max_abs(w) <= a);
  CHECK(max_abs(w) > 0.99 * a);
  CHECK(var_of(w) == doctest::Approx(a * a / 3).epsilon(0.02));
  init::xavier_normal_(w, 1.0, &g);
  CHECK(var_of(w) == doctest::Approx(2.0 / 768.0).epsilon(0.02));

  init::kaiming_uniform_(w, 0, "fan_in", "relu", &g);
  double b = std::sqrt(2.0) * std::sqrt(3.0 / 512.0);
  CHECK(max_abs(w) <= b);
  CHECK(var_of(w) == doctest::Approx(2.0 / 512).epsilon(0.02));
  init::kaiming_normal_(w, 0, "fan_out", "relu", &g);
  CHECK(var_of(w) == doctest::Approx(2.0 / 256).epsilon(0.02));
  // nn.Linear's choice: a = √5 gives the bound 1/√fan_in.
  init::kaiming_uniform_(w, std::sqrt(5.0), "fan_in", "leaky_relu", &g);
  CHECK(max_abs(w) <= 1.0 / std::sqrt(512.0));
  CHECK(max_abs(w) > 0.99 / std::sqrt(512.0));
  // Conv weights: the receptive field counts in the fan.
  Tensor c = empty({64, 32, 3, 3});
  init::kaiming_normal_(c, 0, "fan_in", "relu", &g);
  CHECK(var_of(c) == doctest::Approx(2.0 / (32 * 9)).epsilon(0.02));
  CHECK_THROWS_AS(init::kaiming_uniform_(w, 0, "fan_avg"), Error);
  CHECK_THROWS_AS(init::kaiming_normal_(zeros({5}), 0), Error);
  CHECK_THROWS_AS(init::xavier_uniform_(zeros({5})), Error);
}

TEST_CASE("nn init: orthogonal_ gives orthonormal rows or columns, times gain") {
  Generator g(3);
  for (Shape s : {Shape{6, 6}, Shape{4, 9}, Shape{10, 3}, Shape{8, 2, 2, 2}, Shape{64, 64}}) {
    INFO("shape ", shape_str(s));
    Tensor t = empty(s);
    init::orthogonal_(t, 2.0, &g);
    Tensor m = t.reshape({s[0], -1}).to(float64) / 2.0;
    int64_t r = m.size(0), c = m.size(1);
    // The shorter side is orthonormal: M M^T = I for wide M, M^T M = I for tall.
    Tensor gram = r <= c ? matmul(m, m.mT()) : matmul(m.mT(), m);
    CHECK(allclose(gram, eye(std::min(r, c), float64), 0, 1e-6));
  }
  // A square orthogonal matrix from a seeded generator is reproducible, and the global generator is used
  // when none is given.
  Tensor a = empty({5, 5}), b = empty({5, 5});
  Generator g1(4), g2(4);
  init::orthogonal_(a, 1, &g1);
  init::orthogonal_(b, 1, &g2);
  CHECK(allclose(a, b, 0, 0));
  manual_seed(6);
  init::orthogonal_(a);
  manual_seed(6);
  init::orthogonal_(b);
  CHECK(allclose(a, b, 0, 0));
  CHECK_THROWS_AS(init::orthogonal_(zeros({4})), Error);
}

TEST_CASE("nn init: fills a parameter that requires grad, records no graph, draws from the global generator") {
  Tensor p = zeros({3, 4}).requires_grad_();
  manual_seed(7);
  init::normal_(p);
  CHECK(p.is_leaf());
  CHECK(p.requires_grad());
  CHECK(max_abs(p) > 0);
  Tensor q = zeros({3, 4});
  manual_seed(7);
  init::normal_(q);
  CHECK(allclose(p.detach(), q, 0, 0));
  CHECK(grad_enabled());  // the guard was released
}

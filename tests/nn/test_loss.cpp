// Tests for nn/loss.cpp: hand-computed values, PyTorch's numbers (tests/fixtures/loss), a gradcheck of
// every loss in float64 (gradgradcheck where a second derivative is needed), the fused cross-entropy
// against the composite, and every error path.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>

#include "heed.h"
#include "nn/loss.h"
#include "io/safetensors.h"
#include "tensor/kernels/kernels.h"

using namespace heed;
using nn::Reduction;

namespace {

// |got - want| <= atol + rtol |want| everywhere; on failure, names the worst element and both values.
void check_close(const Tensor& got, const Tensor& want, const std::string& what, double rtol = 1.3e-6,
                 double atol = 1e-5) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(shape_str(got.shape()) == shape_str(want.shape()));
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  size_t worst = 0;
  double excess = -INFINITY;
  for (size_t i = 0; i < a.size(); i++) {
    double e = (std::isnan(a[i]) != std::isnan(b[i])) ? INFINITY
               : std::isnan(a[i])                      ? -INFINITY
               : a[i] == b[i]                          ? -INFINITY
                                                       : std::fabs(a[i] - b[i]) - (atol + rtol * std::fabs(b[i]));
    if (e > excess) excess = e, worst = i;
  }
  CHECK_MESSAGE(excess <= 0, what, ": element ", worst, " is ", a.empty() ? 0 : a[worst], ", expected ",
                b.empty() ? 0 : b[worst]);
}

const Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};
const char* reduction_name(Reduction r) {
  return r == Reduction::None ? "none" : r == Reduction::Mean ? "mean" : "sum";
}

Generator gen(77);
Tensor R(const Shape& s) { return randn(s, float64, &gen).requires_grad_(); }
Tensor U(const Shape& s, double lo, double hi) {  // uniform on [lo, hi), a float64 leaf
  NoGradGuard g;
  return (rand(s, float64, &gen) * (hi - lo) + lo).detach().requires_grad_();
}
Tensor I(std::vector<int64_t> v, Shape s = {}) {
  return s.empty() ? from_vector<int64_t>(v) : from_vector<int64_t>(v, s);
}

}  // namespace

// ---- hand-computed ------------------------------------------------------------------------------------------
TEST_CASE("nn loss: hand-computed values and gradients") {
  Tensor x = tensor({1.0, 2.0, 4.0}).requires_grad_();
  Tensor y = tensor({0.0, 2.0, 1.0});
  Tensor l = nn::mse_loss(x, y);  // (1 + 0 + 9) / 3
  CHECK(l.item() == doctest::Approx(10.0 / 3));
  l.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{2.0f / 3, 0.0f, 2.0f});  // 2(x - y)/3

  CHECK(nn::l1_loss(x, y, Reduction::Sum).item() == doctest::Approx(4.0));
  // smooth_l1 with beta 1: |d| = 1, 0, 3 -> 0.5, 0, 2.5;  |d| < 1 is quadratic, so 1 takes the linear branch
  CHECK(nn::smooth_l1_loss(x, y, Reduction::Sum).item() == doctest::Approx(3.0));
  CHECK(nn::smooth_l1_loss(x, y, Reduction::Sum, 0.0).item() == doctest::Approx(4.0));  // beta 0 is l1

  // A logit of 0 is p = 1/2 whatever the label: log 2.
  CHECK(nn::binary_cross_entropy_with_logits(zeros({4}), tensor({0, 1, 0, 1})).item() ==
        doctest::Approx(std::log(2.0)));
  // Uniform logits over C classes: log C, and the gradient softmax - onehot = 1/C - [c = t], over N.
  Tensor z = zeros({2, 4}).requires_grad_();
  Tensor ce = nn::cross_entropy(z, I({1, 3}));
  CHECK(ce.item() == doctest::Approx(std::log(4.0)));
  ce.backward();
  CHECK(z.grad().to_vector<float>() ==
        std::vector<float>{0.125f, -0.375f, 0.125f, 0.125f, 0.125f, 0.125f, 0.125f, -0.375f});

  // hinge: real 0.5 -> relu(0.5), real 2 -> 0;  fake -2 -> 0, fake 0 -> 1
  Tensor real = tensor({0.5, 2.0}), fake = tensor({-2.0, 0.0});
  CHECK(nn::hinge_d(real, fake).item() == doctest::Approx(0.25 + 0.5));
  CHECK(nn::hinge_g(fake).item() == doctest::Approx(1.0));
}

TEST_CASE("nn loss: binary cross-entropy is finite at p = 0 and 1, and with huge logits") {
  Tensor p = tensor({0.0, 1.0, 0.0, 1.0}).requires_grad_();
  Tensor y = tensor({1.0, 0.0, 0.0, 1.0});
  Tensor l = nn::binary_cross_entropy(p, y, {.reduction = Reduction::None});
  CHECK(l.to_vector<float>() == std::vector<float>{100, 100, 0, 0});  // log clamped at -100
  l.sum().backward();
  for (float g : p.grad().to_vector<float>()) CHECK(std::isfinite(g));

  Tensor z = tensor({-1000.0, -80.0, 80.0, 1000.0}).requires_grad_();
  Tensor lz = nn::binary_cross_entropy_with_logits(z, tensor({1.0, 0.0, 1.0, 0.0}), {.reduction = Reduction::None});
  std::vector<float> want = {1000, 0, 0, 1000}, dwant = {-1, 0, 0, 1};  // the loss, and σ(x) - y
  std::vector<float> got = lz.to_vector<float>();
  lz.sum().backward();
  std::vector<float> dgot = z.grad().to_vector<float>();
  for (int i = 0; i < 4; i++) {
    CHECK(got[i] == doctest::Approx(want[i]));  // e^-80 ≈ 2e-35 is what separates some of these from 0
    CHECK(dgot[i] == doctest::Approx(dwant[i]));
  }
}

// ---- against PyTorch 1.13 -------------------------------------------------------------------------------------
// Each case names an entry of tests/fixtures/loss/loss.safetensors (make_loss_fixtures.py) and repeats
// its options. `values_only`: PyTorch's gradient at p = 0 or 1 is +-1e12 (its own 1e-12 guard), heed's is
// 0 (the clamp is flat there), so only the values are compared.
struct FixtureCase {
  std::string name;
  std::function<Tensor(const Tensor& x, const Tensor& t, const TensorMap& f, Reduction r)> loss;
  bool values_only = false;
};

std::vector<FixtureCase> fixture_cases(bool composite) {
  auto ce = [composite](const Tensor& x, const Tensor& t, const nn::CrossEntropyOptions& o) {
    return composite ? nn::cross_entropy_composite(x, t, o) : nn::cross_entropy(x, t, o);
  };
  using T = const Tensor&;
  using M = const TensorMap&;
  return {
      {"mse", [](T x, T t, M, Reduction r) { return nn::mse_loss(x, t, r); }},
      {"l1", [](T x, T t, M, Reduction r) { return nn::l1_loss(x, t, r); }},
      {"smooth_l1", [](T x, T t, M, Reduction r) { return nn::smooth_l1_loss(x, t, r, 1.0); }},
      {"smooth_l1_beta", [](T x, T t, M, Reduction r) { return nn::smooth_l1_loss(x, t, r, 0.5); }},
      {"bce", [](T x, T t, M, Reduction r) { return nn::binary_cross_entropy(x, t, {.reduction = r}); }},
      {"bce_weight",
       [](T x, T t, M f, Reduction r) {
         return nn::binary_cross_entropy(x, t, {.weight = f.at("bce_weight.weight"), .reduction = r});
       }},
      {"bce_edge", [](T x, T t, M, Reduction r) { return nn::binary_cross_entropy(x, t, {.reduction = r}); }, true},
      {"bce_logits",
       [](T x, T t, M, Reduction r) { return nn::binary_cross_entropy_with_logits(x, t, {.reduction = r}); }},
      {"bce_logits_pos_weight",
       [](T x, T t, M f, Reduction r) {
         return nn::binary_cross_entropy_with_logits(x, t, {.weight = f.at("bce_logits_pos_weight.weight"),
                                                            .pos_weight = f.at("bce_logits_pos_weight.pos_weight"),
                                                            .reduction = r});
       }},
      {"ce", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.reduction = r}); }},
      {"ce_weight",
       [ce](T x, T t, M f, Reduction r) { return ce(x, t, {.weight = f.at("ce_weight.weight"), .reduction = r}); }},
      {"ce_ignore", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.reduction = r}); }},
      {"ce_ignore2_weight",
       [ce](T x, T t, M f, Reduction r) {
         return ce(x, t, {.weight = f.at("ce_ignore2_weight.weight"), .ignore_index = 2, .reduction = r});
       }},
      {"ce_smooth", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.label_smoothing = 0.1, .reduction = r}); }},
      {"ce_smooth_weight_ignore",
       [ce](T x, T t, M f, Reduction r) {
         return ce(x, t, {.weight = f.at("ce_smooth_weight_ignore.weight"), .label_smoothing = 0.2, .reduction = r});
       }},
      {"ce_nd", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.reduction = r}); }},
      {"ce_nd_weight_smooth",
       [ce](T x, T t, M f, Reduction r) {
         return ce(x, t, {.weight = f.at("ce_nd_weight_smooth.weight"), .label_smoothing = 0.15, .reduction = r});
       }},
      {"ce_prob", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.reduction = r}); }},
      {"ce_prob_weight_smooth",
       [ce](T x, T t, M f, Reduction r) {
         return ce(x, t, {.weight = f.at("ce_prob_weight_smooth.weight"), .label_smoothing = 0.1, .reduction = r});
       }},
      {"ce_prob_nd", [ce](T x, T t, M, Reduction r) { return ce(x, t, {.reduction = r}); }},
      {"nll", [](T x, T t, M, Reduction r) { return nn::nll_loss(x, t, {.reduction = r}); }},
      {"nll_weight_ignore",
       [](T x, T t, M f, Reduction r) {
         return nn::nll_loss(x, t, {.weight = f.at("nll_weight_ignore.weight"), .ignore_index = 2, .reduction = r});
       }},
      {"kl_div", [](T x, T t, M, Reduction r) { return nn::kl_div(x, t, r); }},
      {"kl_div_log_target", [](T x, T t, M, Reduction r) { return nn::kl_div(x, t, r, true); }},
  };
}

TEST_CASE("nn loss: values and gradients match PyTorch 1.13 (tests/fixtures/loss)") {
  TensorMap f = load(std::string(HEED_SOURCE_DIR) + "/tests/fixtures/loss/loss.safetensors");
  int compared = 0;
  for (bool composite : {false, true}) {
    for (const FixtureCase& c : fixture_cases(composite)) {
      for (Reduction r : kReductions) {
        std::string key = c.name + "." + reduction_name(r);
        INFO("case ", key, composite ? " (cross_entropy_composite)" : "");
        Tensor x = f.at(c.name + ".input").clone().detach().requires_grad_();
        Tensor t = f.at(c.name + ".target").clone().detach();
        bool dtarget = f.count(key + ".dtarget") > 0;
        if (dtarget) t.requires_grad_();
        Tensor out = c.loss(x, t, f, r);
        check_close(out, f.at(key + ".out"), key + ".out");
        if (c.values_only) continue;
        out.sum().backward();
        check_close(x.grad(), f.at(key + ".dinput"), key + ".dinput");
        if (dtarget) check_close(t.grad(), f.at(key + ".dtarget"), key + ".dtarget");
        compared++;
      }
    }
  }
  // The GAN hinges have no PyTorch function; the fixture writes their definition out in torch ops.
  Tensor real = f.at("hinge.real").clone().requires_grad_(), fake = f.at("hinge.fake").clone().requires_grad_();
  Tensor d = nn::hinge_d(real, fake);
  check_close(d, f.at("hinge.d"), "hinge.d");
  d.backward();
  check_close(real.grad(), f.at("hinge.d.dreal"), "hinge.d.dreal");
  check_close(fake.grad(), f.at("hinge.d.dfake"), "hinge.d.dfake");
  Tensor fake2 = f.at("hinge.fake").clone().requires_grad_();
  Tensor g = nn::hinge_g(fake2);
  check_close(g, f.at("hinge.g"), "hinge.g");
  g.backward();
  check_close(fake2.grad(), f.at("hinge.g.dfake"), "hinge.g.dfake");
  MESSAGE("loss configurations compared with PyTorch: ", compared);
}

// ---- gradcheck (float64) ------------------------------------------------------------------------------------------
// Every loss against central differences, with respect to the input and to the target where the loss is
// differentiable in it. Inputs stay away from kinks (|x - y| = 0 for l1, beta for smooth_l1, the hinge's
// margins), where finite differences straddle two slopes. `second`: also gradgradcheck.
struct GradCase {
  std::string name;
  std::function<std::vector<Tensor>()> inputs;
  TensorFn f;
  bool second = false;
};

std::vector<GradCase> grad_cases() {
  using V = std::vector<Tensor>;
  // Differences x - y kept in [0.2, 0.8] or [1.2, 2] in size: off l1's kink at 0 and smooth_l1's at 1.
  auto scaled = [](const Shape& s, double k) {  // a float64 leaf, normal with standard deviation k
    NoGradGuard g;
    return (randn(s, float64, &gen) * k).detach().requires_grad_();
  };
  auto pair_away = [] {
    Tensor y = R({3, 4});
    NoGradGuard g;
    Tensor u = rand({3, 4}, float64, &gen);
    Tensor d = where(u > 0.5, (u - 0.5) * 1.2 + 0.2, -(u * 1.6 + 1.2));  // [0.2,0.8] or [-2,-1.2]
    return V{(y + d).detach().requires_grad_(), y};
  };
  Tensor labels = I({0, 3, 1, -100, 2}), labels_nd = I({0, 2, 1, 1, 0, 2, -100, 1}, {2, 4});
  Tensor cw = tensor({0.5, 1.5, 1.0, 2.0}, float64);
  return {
      {"mse_loss",
       [] {
         return V{R({3, 4}), R({3, 4})};
       },
       [](const V& x) { return nn::mse_loss(x[0], x[1], Reduction::None); }, true},
      {"mse_loss mean",
       [] {
         return V{R({5}), R({5})};
       },
       [](const V& x) { return nn::mse_loss(x[0], x[1]); }, true},
      {"l1_loss", pair_away, [](const V& x) { return nn::l1_loss(x[0], x[1], Reduction::None); }},
      {"smooth_l1_loss", pair_away, [](const V& x) { return nn::smooth_l1_loss(x[0], x[1], Reduction::Mean, 1.0); },
       true},
      {"binary_cross_entropy",
       [] {
         return V{U({2, 3}, 0.05, 0.95), U({2, 3}, 0, 1), U({3}, 0.5, 2)};
       },
       [](const V& x) { return nn::binary_cross_entropy(x[0], x[1], {.weight = x[2], .reduction = Reduction::None}); },
       true},
      {"binary_cross_entropy_with_logits",
       [scaled] {
         return V{scaled({3, 4}, 3.0), U({3, 4}, 0, 1), U({4}, 0.2, 3)};
       },
       [](const V& x) {
         return nn::binary_cross_entropy_with_logits(x[0], x[1], {.pos_weight = x[2], .reduction = Reduction::None});
       },
       true},
      {"binary_cross_entropy_with_logits mean",
       [] {
         return V{R({6}), U({6}, 0, 1)};
       },
       [](const V& x) { return nn::binary_cross_entropy_with_logits(x[0], x[1]); }, true},
      {"cross_entropy (fused)",
       [] {
         return V{R({5, 4})};
       },
       [labels, cw](const V& x) {
         return nn::cross_entropy(x[0], labels, {.weight = cw, .label_smoothing = 0.1, .reduction = Reduction::None});
       },
       true},
      {"cross_entropy (fused) mean",
       [] {
         return V{R({5, 4})};
       },
       [labels](const V& x) { return nn::cross_entropy(x[0], labels); }, true},
      {"cross_entropy_composite",
       [] {
         return V{R({5, 4})};
       },
       [labels, cw](const V& x) {
         return nn::cross_entropy_composite(x[0], labels, {.weight = cw, .label_smoothing = 0.2});
       },
       true},
      {"cross_entropy (N,C,d)",
       [] {
         return V{R({2, 3, 4})};
       },
       [labels_nd](const V& x) {
         return nn::cross_entropy(x[0], labels_nd, {.label_smoothing = 0.1, .reduction = Reduction::None});
       },
       true},
      {"cross_entropy probabilities",
       [] {
         return V{R({3, 4}), U({3, 4}, 0, 1)};
       },
       [cw](const V& x) { return nn::cross_entropy(x[0], x[1], {.weight = cw, .label_smoothing = 0.1}); }, true},
      {"nll_loss",
       [] {
         return V{R({5, 4})};
       },
       [labels, cw](const V& x) { return nn::nll_loss(x[0], labels, {.weight = cw}); }},
      {"kl_div",
       [] {
         return V{R({2, 3}), U({2, 3}, 0.1, 1)};
       },
       [](const V& x) { return nn::kl_div(x[0], x[1], Reduction::None); }, true},
      {"kl_div log_target",
       [] {
         return V{R({2, 3}), R({2, 3})};
       },
       [](const V& x) { return nn::kl_div(x[0], x[1], Reduction::Sum, true); }, true},
      // Logits at least 0.2 away from the margins +-1, where relu(1 - x) and relu(1 + x) bend.
      {"hinge_d",
       [] {
         return V{tensor({-0.5, 0.3, 1.4, 2.0}, float64).requires_grad_(),
                  tensor({-2.0, -0.7, 0.1, 1.5}, float64).requires_grad_()};
       },
       [](const V& x) { return nn::hinge_d(x[0], x[1]); }, true},
      {"hinge_g", [] { return V{R({4})}; }, [](const V& x) { return nn::hinge_g(x[0]) * nn::hinge_g(x[0]); }, true},
  };
}

TEST_CASE("nn loss: gradcheck every loss, gradgradcheck the second-order ones (float64)") {
  int first = 0, second = 0;
  for (const GradCase& c : grad_cases()) {
    INFO("loss case: ", c.name);
    std::vector<Tensor> in = c.inputs();
    CHECK_NOTHROW(gradcheck(c.f, in));
    first++;
    if (c.second) {
      CHECK_NOTHROW(gradgradcheck(c.f, in));
      second++;
    }
  }
  MESSAGE("loss gradcheck cases: ", first, ", gradgradcheck cases: ", second);
}

// ---- the fused cross-entropy --------------------------------------------------------------------------------------
TEST_CASE("nn loss: fused cross_entropy matches the composite (values, both backwards, both kernel levels)") {
  Generator g(5);
  for (DType dt : {float32, float64}) {
    for (bool simd : {true, false}) {
      heed::kernels::set_use_simd(simd);
      for (int64_t C : {1, 7, 17, 40}) {
        const int64_t N = 37;
        Tensor logits = (randn({N, C}, dt, &g) * 3.0).detach();
        Tensor t = randint(0, C, {N}, &g);
        std::vector<int64_t> tv = t.to_vector<int64_t>();
        tv[3] = tv[20] = -100;  // two ignored rows
        t = from_vector(tv);
        Tensor w = (rand({C}, dt, &g) + 0.5).detach();
        Tensor upstream = randn({N}, dt, &g);
        for (double eps : {0.0, 0.15}) {
          for (bool weighted : {false, true}) {
            for (Reduction r : kReductions) {
              INFO(dtype_name(dt), simd ? " simd" : " reference", " C=", C, " eps=", eps, " weighted=", weighted, " ",
                   reduction_name(r));
              nn::CrossEntropyOptions o{.weight = weighted ? w : Tensor(), .label_smoothing = eps, .reduction = r};
              Tensor a = logits.clone().requires_grad_(), b = logits.clone().requires_grad_();
              Tensor fused = nn::cross_entropy(a, t, o), composite = nn::cross_entropy_composite(b, t, o);
              if (r == Reduction::None) CHECK(std::string(fused.grad_fn()->name) == "cross_entropy");
              double tol = dt == float32 ? 2e-6 : 1e-12;
              check_close(fused, composite, "value", tol, tol);
              Tensor seed = r == Reduction::None ? upstream : ones({}, dt);
              // The backward under create_graph (heed ops) before the plain one (the raw row kernel).
              Tensor graph_grad = grad({fused}, {a}, {seed}, true)[0];
              CHECK(graph_grad.requires_grad());
              fused.backward(seed);
              composite.backward(seed);
              check_close(a.grad(), b.grad(), "gradient", tol, tol);
              check_close(graph_grad, b.grad(), "gradient under create_graph", tol, tol);
            }
          }
        }
      }
    }
  }
  heed::kernels::set_use_simd(true);
}

TEST_CASE("nn loss: cross_entropy with every target ignored is nan under mean, as PyTorch") {
  Tensor x = randn({3, 4});
  CHECK(std::isnan(nn::cross_entropy(x, I({-100, -100, -100})).item()));
  CHECK(nn::cross_entropy(x, I({-100, -100, -100}), {.reduction = Reduction::Sum}).item() == 0.0);
  // unbatched: logits (C) with a 0-d target
  Tensor x1 = tensor({1.0, 2.0, 0.5});
  double batched = nn::cross_entropy(x1.unsqueeze(0), I({1}, {1})).item();
  CHECK(nn::cross_entropy(x1, scalar_tensor(1, int64)).item() == doctest::Approx(batched));
  CHECK(nn::cross_entropy(x1, scalar_tensor(1, int64), {.reduction = Reduction::None}).dim() == 0);
}

// ---- errors ---------------------------------------------------------------------------------------------------------
TEST_CASE("nn loss: bad input is a heed::Error naming the loss and the shapes or values") {
  Tensor a = zeros({4, 1}), b = zeros({4});
  CHECK_THROWS_WITH_AS(nn::mse_loss(a, b),
                       doctest::Contains("mse_loss: input (4,1) and target (4) must have the same shape"), Error);
  CHECK_THROWS_AS(nn::l1_loss(a, b), Error);
  CHECK_THROWS_AS(nn::smooth_l1_loss(b, b, Reduction::Mean, -1.0), Error);
  CHECK_THROWS_WITH_AS(nn::mse_loss(b, b.to(float64)), doctest::Contains("input is float32 but target is float64"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::mse_loss(arange(4), arange(4)),
                       doctest::Contains("mse_loss: input must be float32 or float64, got int64"), Error);

  CHECK_THROWS_WITH_AS(nn::binary_cross_entropy(tensor({0.5, 1.5}), tensor({0.0, 1.0})),
                       doctest::Contains("input value 1.500000 at index 1 is not a probability"), Error);
  {
    // Large enough to be split over threads: the message names the first bad value, whichever thread met one.
    Tensor p = full({200000}, 0.5);
    p.narrow(0, 150001, 1).fill_(-2.0);
    p.narrow(0, 120000, 1).fill_(3.0);
    CHECK_THROWS_WITH_AS(nn::binary_cross_entropy(p, zeros({200000})),
                         doctest::Contains("input value 3.000000 at index 120000 is not a probability"), Error);
  }
  CHECK_THROWS_WITH_AS(nn::binary_cross_entropy(full({2, 3}, 0.5), zeros({2, 3}), {.weight = ones({2})}),
                       doctest::Contains("weight (2) does not broadcast to the input's shape (2,3)"), Error);
  CHECK_THROWS_AS(nn::binary_cross_entropy_with_logits(zeros({2, 3}), zeros({2, 3}), {.pos_weight = ones({4})}), Error);

  Tensor logits = zeros({4, 3});
  CHECK_THROWS_WITH_AS(nn::cross_entropy(logits, I({0, 1, 5, 2})),
                       doctest::Contains("cross_entropy: target 5 at index 2 is out of range for 3 classes "
                                         "(input (4,3), target (4))"),
                       Error);
  CHECK_THROWS_AS(nn::cross_entropy(logits, I({0, 1, -1, 2})), Error);
  CHECK_THROWS_AS(nn::cross_entropy_composite(logits, I({0, 1, 3, 2})), Error);
  CHECK_THROWS_WITH_AS(nn::cross_entropy(logits, I({0, 1, 2})),
                       doctest::Contains("input (4,3) needs a target of shape (4), got (3)"), Error);
  CHECK_THROWS_WITH_AS(nn::cross_entropy(logits, arange(4) < I({2})),
                       doctest::Contains("target must be int64 class indices or float class probabilities, got bool"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::cross_entropy(logits, I({0, 1, 2, 0}), {.weight = ones({4})}),
                       doctest::Contains("weight (4) must have one entry per class, (3)"), Error);
  CHECK_THROWS_AS(nn::cross_entropy(logits, I({0, 1, 2, 0}), {.weight = ones({3}, float64)}), Error);
  CHECK_THROWS_AS(nn::cross_entropy(logits, I({0, 1, 2, 0}), {.label_smoothing = 1.5}), Error);
  CHECK_THROWS_WITH_AS(nn::cross_entropy(logits, zeros({4, 3}), {.ignore_index = 1}),
                       doctest::Contains("ignore_index 1 is not supported with class-probability targets"), Error);
  CHECK_THROWS_AS(nn::cross_entropy(logits, zeros({4, 2})), Error);  // probabilities of the wrong shape
  CHECK_THROWS_AS(nn::cross_entropy(arange(12).reshape({4, 3}), I({0, 1, 2, 0})), Error);
  CHECK_THROWS_WITH_AS(nn::nll_loss(logits, zeros({4})),
                       doctest::Contains("nll_loss: target must be int64 class indices, got float32"), Error);
  CHECK_THROWS_AS(nn::nll_loss(logits, I({0, 1, 2, 3})), Error);
  CHECK_THROWS_AS(nn::kl_div(zeros({2, 3}), zeros({3, 2})), Error);
  CHECK_THROWS_AS(nn::hinge_d(zeros({2}), zeros({2}, float64)), Error);
  CHECK_THROWS_AS(nn::hinge_g(arange(3)), Error);
}

// ---- WGAN-GP's gradient penalty ----------------------------------------------------------------------------

TEST_CASE("nn gradient_penalty: a linear critic by hand, finite and non-zero on a conv critic, reaching its weights") {
  // critic(x) = x·w + b has the gradient w at every x, so the penalty is (‖w‖ - 1)² whatever α is, and its
  // gradient is 2 (‖w‖ - 1) w / ‖w‖:  w = (3, 4): penalty 16, dw = 2·4·(0.6, 0.8) = (4.8, 6.4), db = 0.
  Tensor w = tensor({3.0, 4.0}, float64).requires_grad_(), b = tensor({0.5}, float64).requires_grad_();
  auto linear_critic = [&](const Tensor& x) { return matmul(x, w) + b; };
  Tensor real = randn({5, 2}, float64), fake = randn({5, 2}, float64);
  Tensor penalty = nn::gradient_penalty(linear_critic, real, fake);
  CHECK(penalty.item() == doctest::Approx(16.0).epsilon(1e-9));
  penalty.backward();
  CHECK(w.grad().to_vector<double>()[0] == doctest::Approx(4.8).epsilon(1e-9));
  CHECK(w.grad().to_vector<double>()[1] == doctest::Approx(6.4).epsilon(1e-9));
  CHECK((!b.grad().defined() || b.grad().item() == 0.0));

  // A small convolutional critic as gan.cpp's: the penalty is finite and non-zero, and its backward (a double
  // backward through conv2d, leaky_relu and linear) leaves a finite, non-zero gradient on both weights.
  manual_seed(5);
  nn::Conv2d conv(1, 4, 4, {.stride = 2, .padding = 1});
  nn::Linear fc(4 * 4 * 4, 1);
  auto conv_critic = [&](const Tensor& x) { return fc(leaky_relu(conv(x), 0.2).flatten(1)).reshape({-1}); };
  Tensor p = nn::gradient_penalty(conv_critic, randn({6, 1, 8, 8}), randn({6, 1, 8, 8}));
  CHECK(std::isfinite(p.item()));
  CHECK(p.item() > 0);
  p.backward();
  for (Tensor* t : {&conv.weight, &fc.weight}) {
    REQUIRE(t->grad().defined());
    CHECK(std::isfinite(t->grad().abs().sum().item()));
    CHECK(t->grad().abs().sum().item() > 0);
  }
  // This critic is piecewise linear in x, and its biases only move it along a linear piece (leaky_relu's slope
  // is 0.2 or 1, constant on each side of the kink): the input gradient, and so the penalty, ignores them.
  for (Tensor* t : {&conv.bias, &fc.bias}) CHECK((!t->grad().defined() || t->grad().abs().sum().item() == 0.0));
}

TEST_CASE("nn gradient_penalty: its gradient in the critic's weights matches finite differences (float64)") {
  // A tiny SAGAN critic: spectrally normalised conv, leaky_relu, the self-attention block with spectral norm,
  // a linear head. Eval mode keeps spectral norm's u and v fixed, so the penalty is a function of the weights.
  manual_seed(6);
  nn::SpectralNorm<nn::Conv2d> conv(1, 8, 4, nn::Conv2d::Config{.stride = 2, .padding = 1});
  nn::SelfAttention2d attn(8, {.spectral_norm = true});
  nn::Linear fc(8 * 4 * 4, 1);
  for (nn::Module* m : std::initializer_list<nn::Module*>{&conv, &attn, &fc}) m->to(float64), m->eval();
  { NoGradGuard g; attn.gamma.fill_(0.7); }  // at 0 the attention would not reach the output
  Tensor real = randn({3, 1, 8, 8}, float64), fake = randn({3, 1, 8, 8}, float64);
  auto critic = [&](const Tensor& x) { return fc(attn(leaky_relu(conv(x), 0.2)).flatten(1)).reshape({-1}); };
  auto penalty = [&](const std::vector<Tensor>&) {
    Generator gen(11);  // the same interpolates α at every evaluation
    return nn::gradient_penalty(critic, real, fake, &gen);
  };
  CHECK(gradcheck(penalty, {conv.weight_orig, conv.layer.bias, attn.f.sn->weight_orig, attn.h.sn->weight_orig,
                            attn.out.sn->weight_orig, attn.gamma, fc.weight}));
}

TEST_CASE("nn gradient_penalty: bad input is a heed::Error naming the shapes") {
  auto critic = [](const Tensor& x) { return x.flatten(1).sum({1}); };
  CHECK_THROWS_WITH_AS(nn::gradient_penalty(critic, zeros({4, 1, 8, 8}), zeros({4, 1, 8, 7})),
                       doctest::Contains("(4,1,8,8)"), Error);
  CHECK_THROWS_AS(nn::gradient_penalty(critic, zeros({4, 2}), zeros({4, 2}, float64)), Error);
  CHECK_THROWS_AS(nn::gradient_penalty(critic, arange(4), arange(4)), Error);
  CHECK_THROWS_WITH_AS(nn::gradient_penalty([](const Tensor& x) { return x; }, zeros({4, 2}), zeros({4, 2})),
                       doctest::Contains("one score per sample"), Error);
  CHECK_THROWS_WITH_AS(nn::gradient_penalty([](const Tensor& x) { return zeros({4}); }, zeros({4, 2}), zeros({4, 2})),
                       doctest::Contains("does not depend on its input"), Error);
}

// Tests for nn/distributions.cpp: torch.distributions' numbers (tests/fixtures/loss/distributions.safetensors),
// hand formulas, gradchecks of every differentiable method, sampling statistics, and the error paths.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "heed.h"
#include "nn/distributions.h"
#include "io/safetensors.h"

using namespace heed;
using namespace heed::distributions;

namespace {

// float64 throughout: torch.distributions in float64 against heed in float64, so the tolerance is tight.
void check_close(const Tensor& got, const Tensor& want, const std::string& what, double rtol = 1e-9,
                 double atol = 1e-12) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(shape_str(got.shape()) == shape_str(want.shape()));
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  for (size_t i = 0; i < a.size(); i++)
    CHECK_MESSAGE(std::fabs(a[i] - b[i]) <= atol + rtol * std::fabs(b[i]), what, ": element ", i, " is ", a[i],
                  ", expected ", b[i]);
}

TensorMap fixture() { return load(std::string(HEED_SOURCE_DIR) + "/tests/fixtures/loss/distributions.safetensors"); }
Tensor leaf(const Tensor& t) { return t.clone().detach().requires_grad_(); }

Generator gen(31);
Tensor R(const Shape& s) { return randn(s, float64, &gen).requires_grad_(); }
Tensor P(const Shape& s) {  // positive, a float64 leaf
  NoGradGuard g;
  return (rand(s, float64, &gen) + 0.3).detach().requires_grad_();
}

}  // namespace

TEST_CASE("nn distributions: Normal matches torch.distributions (log_prob, entropy, kl and their gradients)") {
  TensorMap f = fixture();
  Tensor loc = leaf(f.at("normal.loc")), scale = leaf(f.at("normal.scale")), value = leaf(f.at("normal.value"));
  Tensor lp = Normal(loc, scale).log_prob(value);
  check_close(lp, f.at("normal.log_prob"), "log_prob");
  lp.sum().backward();
  check_close(loc.grad(), f.at("normal.log_prob.dloc"), "dloc");
  check_close(scale.grad(), f.at("normal.log_prob.dscale"), "dscale");
  check_close(value.grad(), f.at("normal.log_prob.dvalue"), "dvalue");

  Tensor s2 = leaf(f.at("normal.scale"));
  Tensor ent = Normal(f.at("normal.loc"), s2).entropy();
  check_close(ent, f.at("normal.entropy"), "entropy");
  ent.sum().backward();
  check_close(s2.grad(), f.at("normal.entropy.dscale"), "entropy dscale");

  std::vector<Tensor> t = {leaf(f.at("normal.loc")), leaf(f.at("normal.scale")), leaf(f.at("normal.loc2")),
                           leaf(f.at("normal.scale2"))};
  Tensor kl = kl_divergence(Normal(t[0], t[1]), Normal(t[2], t[3]));
  check_close(kl, f.at("normal.kl"), "kl");
  kl.sum().backward();
  const char* names[] = {"dloc", "dscale", "dloc2", "dscale2"};
  for (int i = 0; i < 4; i++) check_close(t[i].grad(), f.at(std::string("normal.kl.") + names[i]), names[i]);
}

TEST_CASE("nn distributions: Bernoulli and Categorical match torch.distributions") {
  TensorMap f = fixture();
  Tensor logits = leaf(f.at("bernoulli.logits"));
  Bernoulli b({.logits = logits});
  Tensor lp = b.log_prob(f.at("bernoulli.value"));
  check_close(lp, f.at("bernoulli.log_prob"), "bernoulli log_prob");  // logits +-40: finite, exact
  check_close(b.entropy(), f.at("bernoulli.entropy"), "bernoulli entropy");
  lp.sum().backward();
  check_close(logits.grad(), f.at("bernoulli.log_prob.dlogits"), "bernoulli dlogits");
  Tensor l2 = leaf(f.at("bernoulli.logits"));
  Bernoulli({.logits = l2}).entropy().sum().backward();
  check_close(l2.grad(), f.at("bernoulli.entropy.dlogits"), "bernoulli entropy dlogits");

  Tensor probs = leaf(f.at("bernoulli.probs"));
  Bernoulli bp({.probs = probs});
  Tensor lpp = bp.log_prob(f.at("bernoulli.pvalue"));
  check_close(lpp, f.at("bernoulli.probs.log_prob"), "bernoulli(probs) log_prob");
  check_close(bp.entropy(), f.at("bernoulli.probs.entropy"), "bernoulli(probs) entropy");
  lpp.sum().backward();
  check_close(probs.grad(), f.at("bernoulli.probs.log_prob.dprobs"), "bernoulli dprobs");

  Tensor cl = leaf(f.at("categorical.logits"));
  Categorical c({.logits = cl});
  check_close(c.probs(), f.at("categorical.probs"), "categorical probs");
  Tensor clp = c.log_prob(f.at("categorical.value"));
  check_close(clp, f.at("categorical.log_prob"), "categorical log_prob");
  clp.sum().backward();
  check_close(cl.grad(), f.at("categorical.log_prob.dlogits"), "categorical dlogits");
  Tensor cl2 = leaf(f.at("categorical.logits"));
  Tensor ce = Categorical({.logits = cl2}).entropy();
  check_close(ce, f.at("categorical.entropy"), "categorical entropy");
  ce.sum().backward();
  check_close(cl2.grad(), f.at("categorical.entropy.dlogits"), "categorical entropy dlogits");
}

TEST_CASE("nn distributions: hand formulas") {
  const double half_log_2pi = 0.5 * std::log(2 * M_PI);
  Normal n(zeros({}, float64), ones({}, float64));
  CHECK(n.log_prob(zeros({}, float64)).item() == doctest::Approx(-half_log_2pi));
  CHECK(n.entropy().item() == doctest::Approx(0.5 + half_log_2pi));
  Normal m(tensor({1.0}, float64), tensor({2.0}, float64));
  // log N(3; 1, 2) = -(2/2)²/2 - log 2 - ½ log 2π
  CHECK(m.log_prob(tensor({3.0}, float64)).item() == doctest::Approx(-0.5 - std::log(2.0) - half_log_2pi));
  CHECK(kl_divergence(m, m).item() == doctest::Approx(0.0));
  // KL(N(0,1) ‖ N(1,2)) = log 2 + (1 + 1)/8 - ½
  CHECK(kl_divergence(n, m).item() == doctest::Approx(std::log(2.0) + 0.25 - 0.5));
  CHECK(m.variance().item() == 4.0);

  Bernoulli b({.probs = tensor({0.25}, float64)});
  CHECK(b.log_prob(tensor({1.0}, float64)).item() == doctest::Approx(std::log(0.25)));
  CHECK(b.log_prob(tensor({0.0}, float64)).item() == doctest::Approx(std::log(0.75)));
  CHECK(b.entropy().item() == doctest::Approx(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))));

  Categorical c({.probs = tensor({1.0, 1.0, 2.0}, float64)});  // normalised to 1/4, 1/4, 1/2
  CHECK(c.probs().to_vector<double>()[2] == doctest::Approx(0.5));
  CHECK(c.log_prob(scalar_tensor(2, int64)).item() == doctest::Approx(std::log(0.5)));
  CHECK(c.entropy().item() == doctest::Approx(-(0.5 * std::log(0.25) + 0.5 * std::log(0.5))));
  // A category with logit -inf has probability 0 and adds 0 to the entropy, not nan.
  Categorical masked({.logits = tensor({0.0, -INFINITY, 0.0}, float64)});
  CHECK(masked.entropy().item() == doctest::Approx(std::log(2.0)));
}

TEST_CASE("nn distributions: gradcheck of log_prob, rsample, entropy and kl (float64)") {
  using V = std::vector<Tensor>;
  Tensor cvalue = from_vector<int64_t>({2, 0, 3, 3}, {2, 2});
  struct Case {
    const char* name;
    V inputs;
    TensorFn f;
    bool second;
  };
  std::vector<Case> cases = {
      {"Normal.log_prob",
       {R({2, 3}), P({3}), R({2, 3})},
       [](const V& x) { return Normal(x[0], x[1]).log_prob(x[2]); },
       true},
      // rsample with a generator made afresh in every call: each evaluation sees the same ε.
      {"Normal.rsample",
       {R({3}), P({3})},
       [](const V& x) {
         Generator g(9);
         return Normal(x[0], x[1]).rsample({2}, &g);
       },
       true},
      {"Normal.entropy", {R({3}), P({3})}, [](const V& x) { return Normal(x[0], x[1]).entropy(); }, true},
      {"kl_divergence",
       {R({3}), P({3}), R({3}), P({3})},
       [](const V& x) { return kl_divergence(Normal(x[0], x[1]), Normal(x[2], x[3])); },
       true},
      {"Bernoulli(logits).log_prob",
       {R({4})},
       [](const V& x) {
         return Bernoulli({.logits = x[0]}).log_prob(tensor({1.0, 0.0, 0.3, 1.0}, float64));
       },
       true},
      {"Bernoulli(probs).log_prob",
       {P({4}) * 0.7},
       [](const V& x) {
         return Bernoulli({.probs = x[0]}).log_prob(tensor({1.0, 0.0, 0.0, 1.0}, float64));
       },
       false},
      {"Bernoulli.entropy", {R({4})}, [](const V& x) { return Bernoulli({.logits = x[0]}).entropy(); }, true},
      {"Categorical.log_prob",
       {R({2, 2, 4})},
       [cvalue](const V& x) { return Categorical({.logits = x[0]}).log_prob(cvalue); },
       true},
      {"Categorical(probs).log_prob",
       {P({2, 4})},
       [](const V& x) {
         return Categorical({.probs = x[0]}).log_prob(from_vector<int64_t>({1, 3}));
       },
       false},
      {"Categorical.entropy", {R({3, 5})}, [](const V& x) { return Categorical({.logits = x[0]}).entropy(); }, true},
  };
  for (Case& c : cases) {
    INFO("distribution case: ", c.name);
    for (Tensor& t : c.inputs)
      if (!t.is_leaf()) t = t.detach().requires_grad_();
    CHECK_NOTHROW(gradcheck(c.f, c.inputs));
    if (c.second) CHECK_NOTHROW(gradgradcheck(c.f, c.inputs));
  }
}

TEST_CASE("nn distributions: sampling shapes, statistics and reproducibility") {
  Normal n(tensor({1.0, -2.0}), tensor({0.5, 3.0}));
  Generator g1(4), g2(4);
  Tensor s = n.sample({20000}, &g1);
  CHECK(s.shape() == Shape{20000, 2});
  CHECK_FALSE(s.requires_grad());
  CHECK(allclose(s, n.sample({20000}, &g2)));  // same seed, same draws
  Tensor mean = s.mean(0), sd = heed::std(s, 0);
  CHECK(mean.to_vector<float>()[0] == doctest::Approx(1.0).epsilon(0.01));
  CHECK(mean.to_vector<float>()[1] == doctest::Approx(-2.0).epsilon(0.03));
  CHECK(sd.to_vector<float>()[0] == doctest::Approx(0.5).epsilon(0.02));
  CHECK(sd.to_vector<float>()[1] == doctest::Approx(3.0).epsilon(0.02));

  // rsample: d mean(x) / d loc = 1 and d mean(x) / d scale = mean(ε) (the ε the draw used).
  Tensor loc = zeros({1}, float64).requires_grad_(), scale = ones({1}, float64).requires_grad_();
  Generator g3(8), g4(8);
  Tensor x = Normal(loc, scale).rsample({1000}, &g3);
  x.mean().backward();
  CHECK(loc.grad().item() == doctest::Approx(1.0));
  CHECK(scale.grad().item() == doctest::Approx(randn({1000, 1}, float64, &g4).mean().item()));

  Bernoulli b({.probs = tensor({0.1, 0.8})});
  Tensor bs = b.sample({20000}, &g1);
  CHECK(bs.dtype() == float32);
  CHECK(bs.shape() == Shape{20000, 2});
  CHECK(bs.mean(0).to_vector<float>()[0] == doctest::Approx(0.1).epsilon(0.05));
  CHECK(bs.mean(0).to_vector<float>()[1] == doctest::Approx(0.8).epsilon(0.02));

  // Categorical: frequencies within 4 standard errors of the probabilities; a zero-probability
  // category is never drawn.
  Categorical c({.probs = tensor({{0.2, 0.0, 0.5, 0.3}, {0.7, 0.1, 0.1, 0.1}})});
  Tensor cs = c.sample({4000}, &g1);
  CHECK(cs.dtype() == int64);
  CHECK(cs.shape() == Shape{4000, 2});
  std::vector<int64_t> v = cs.to_vector<int64_t>();
  std::vector<double> p = c.probs().to_vector<double>();
  for (int64_t row = 0; row < 2; row++) {
    for (int64_t k = 0; k < 4; k++) {
      double count = 0;
      for (int64_t i = 0; i < 4000; i++) count += v[i * 2 + row] == k;
      double pk = p[row * 4 + k], se = std::sqrt(pk * (1 - pk) / 4000);
      INFO("row ", row, " category ", k);
      CHECK(std::fabs(count / 4000 - pk) <= 4 * se + 1e-12);
    }
  }
  CHECK(Categorical({.logits = zeros({3, 5})}).sample({}).shape() == Shape{3});
}

TEST_CASE("nn distributions: bad arguments are heed::Errors") {
  CHECK_THROWS_WITH_AS(Normal(zeros({2}), tensor({1.0, -1.0})), doctest::Contains("Normal: scale must be > 0, got -1"),
                       Error);
  CHECK_THROWS_AS(Normal(zeros({2}), ones({2}, float64)), Error);
  CHECK_THROWS_AS(Normal(zeros({2}), ones({3})), Error);
  CHECK_THROWS_AS(Normal(zeros({2}), ones({2})).log_prob(zeros({2}, float64)), Error);
  CHECK_THROWS_WITH_AS(Bernoulli({.probs = ones({2}), .logits = ones({2})}),
                       doctest::Contains("pass exactly one of .probs and .logits"), Error);
  CHECK_THROWS_AS(Bernoulli({}), Error);
  CHECK_THROWS_AS(Bernoulli({.probs = tensor({0.5, 1.5})}), Error);
  CHECK_THROWS_AS(Categorical({.probs = tensor({0.5, -0.5})}), Error);
  Categorical c({.logits = zeros({2, 3})});
  CHECK_THROWS_WITH_AS(c.log_prob(from_vector<int64_t>({0, 3})),
                       doctest::Contains("Categorical.log_prob: value 3 at index 1 is out of range for 3 categories"),
                       Error);
  CHECK_THROWS_AS(c.log_prob(zeros({2})), Error);
  CHECK_THROWS_AS(c.log_prob(from_vector<int64_t>({0, 1, 2})), Error);  // (3) does not broadcast with (2)
}

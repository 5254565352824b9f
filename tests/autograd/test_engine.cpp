// Tests for autograd/engine.cpp: hand-computed cases, second derivatives, the engine's rules and errors,
// anomaly mode, hooks, DOT export and checkpointing.
#include <doctest/doctest.h>

#include <cmath>

#include "heed.h"

using namespace heed;

static Tensor leaf(std::initializer_list<double> v) { return tensor(v, float64).requires_grad_(); }
static Tensor leaf1(double v) { return scalar_tensor(v, float64).requires_grad_(); }

TEST_CASE("micrograd by hand: (a*b + c).relu() and friends") {
  Tensor a = leaf1(2.0), b = leaf1(-3.0), c = leaf1(10.0);
  Tensor e = (a * b + c).relu();  // relu(2*-3 + 10) = 4
  e.backward();
  CHECK(e.item() == 4);
  CHECK(a.grad().item() == -3);  // de/da = b
  CHECK(b.grad().item() == 2);   // de/db = a
  CHECK(c.grad().item() == 1);

  // Below the kink relu passes no gradient.
  Tensor x = leaf1(1.0);
  Tensor y = (x * -5.0 + 1.0).relu();
  y.backward();
  CHECK(x.grad().item() == 0);

  // micrograd's README example, f = a*b + b^3 at a = -4, b = 2: df/da = b = 2, df/db = a + 3b^2 = 8.
  Tensor p = leaf1(-4.0), q = leaf1(2.0);
  Tensor f = p * q + q.pow(3);
  f.backward();
  CHECK(f.item() == 0);
  CHECK(p.grad().item() == 2);
  CHECK(q.grad().item() == 8);
}

TEST_CASE("a value used twice gets the sum of both gradients") {
  Tensor x = leaf1(3.0);
  Tensor y = x * x + x;  // dy/dx = 2x + 1 = 7
  y.backward();
  CHECK(x.grad().item() == 7);
}

TEST_CASE("broadcast gradients are summed back to the input's shape") {
  Tensor a = tensor({1, 2, 3}, float64).reshape({3, 1}).requires_grad_();  // (3,1)
  Tensor b = ones({3, 4}, float64).requires_grad_();
  (a * b).sum().backward();
  CHECK(a.grad().shape() == Shape{3, 1});
  CHECK(a.grad().to_vector<double>() == std::vector<double>{4, 4, 4});
  CHECK(b.grad().at({2, 3}) == 3);
}

TEST_CASE("matmul backward gives each gradient its input's layout: linear's weight gradient is contiguous") {
  // y = x @ w^T, as nn.Linear: w.mT() is column-major, and its gradient must reach w as a plain row-major
  // array (a transposed one would be added and copied element by element later; see ops_linalg.cpp).
  Tensor x = randn({5, 4}, float64), w = randn({3, 4}, float64).requires_grad_();
  Tensor x3 = randn({2, 5, 4}, float64);
  (matmul(x, w.mT()).square().sum() + matmul(x3, w.mT()).sum()).backward();
  CHECK(w.grad().is_contiguous());
  // The values are the usual a^T d, summed over both uses.
  Tensor expect = (2.0 * matmul(x, w.mT())).mT().contiguous();
  Tensor dw = matmul(expect, x) + ones({3, 10}, float64).matmul(x3.reshape({10, 4}));
  CHECK(allclose(w.grad(), dw));
}

TEST_CASE("the fused first-order backwards of relu, leaky_relu and gelu agree with their composites") {
  // A plain backward takes the one-pass kernels of tensor/kernels/activation.cpp; create_graph takes the composite
  // (which is what makes second derivatives possible). Both must give the same gradient.
  for (DType dt : {float32, float64})
    for (int64_t n : {1, 7, 1023, 40000}) {
      Tensor x = randn({n}, dt).requires_grad_(), d = randn({n}, dt);
      if (n > 1) {  // exact zeros too: relu's kink sends no gradient
        NoGradGuard g;
        x.narrow(0, 0, 1).zero_();
      }
      for (int op = 0; op < 3; op++) {
        auto f = [&] { return op == 0 ? relu(x) : op == 1 ? leaky_relu(x, 0.2) : gelu(x); };
        Tensor fast = grad({f()}, {x}, {d}, false)[0];
        Tensor composite = grad({f()}, {x}, {d}, true)[0].detach();
        CAPTURE(op);
        CAPTURE(n);
        CHECK(allclose(fast, composite, dt == float32 ? 1e-6 : 1e-12, dt == float32 ? 1e-6 : 1e-12));
      }
    }
  // gelu's fused backward reads Φ(x) = out / x from its output; an output changed in place since (outside
  // the graph) is not used, and the gradient still comes from x.
  {
    Tensor x = randn({1000}).requires_grad_(), d = randn({1000});
    Tensor y = gelu(x);
    {
      NoGradGuard g;
      y.mul_(3.0);
    }
    CHECK(allclose(grad({y}, {x}, {d}, false)[0], grad({gelu(x)}, {x}, {d}, true)[0].detach(), 1e-6, 1e-6));
  }
  // A strided gradient and a strided input (the gradient of a transposed view, as conv_transpose2d's input
  // receives) take the fused path too, through contiguous copies.
  for (DType dt : {float32, float64}) {
    Tensor x = randn({37, 21}, dt).mT().requires_grad_(), d = randn({37, 21}, dt).mT();
    for (int op = 0; op < 3; op++) {
      auto f = [&] { return op == 0 ? relu(x) : op == 1 ? leaky_relu(x, 0.2) : gelu(x); };
      CAPTURE(op);
      CHECK(allclose(grad({f()}, {x}, {d}, false)[0], grad({f()}, {x}, {d}, true)[0].detach(), 1e-6, 1e-6));
    }
  }
}

TEST_CASE("views send their gradient back to the base") {
  Tensor x = arange(0, 12, 1, float64).reshape({3, 4}).detach().requires_grad_();
  Tensor y = x.slice(1, 1, 4, 2).sum() + 10.0 * x.transpose(0, 1).select(0, 0).sum();
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{10, 1, 0, 1, 10, 1, 0, 1, 10, 1, 0, 1});
}

TEST_CASE("second derivatives: x^3 and tanh") {
  Tensor x = leaf1(1.5);
  Tensor y = x * x * x;
  Tensor dy = grad({y}, {x}, {}, true)[0];
  CHECK(dy.item() == doctest::Approx(3 * 1.5 * 1.5));
  Tensor d2y = grad({dy}, {x})[0];
  CHECK(d2y.item() == doctest::Approx(6 * 1.5));

  Tensor t = leaf1(0.7);
  Tensor th = tanh(t);
  Tensor g1 = grad({th}, {t}, {}, true)[0];
  double s = std::tanh(0.7);
  CHECK(g1.item() == doctest::Approx(1 - s * s));
  Tensor g2 = grad({g1}, {t})[0];
  CHECK(g2.item() == doctest::Approx(-2 * s * (1 - s * s)));
}

TEST_CASE("the WGAN-GP gradient penalty, differentiated with respect to D's weights") {
  // A tiny critic D(x) = w2 . tanh(W1 x); penalty = (||dD/dx|| - 1)^2. Its gradient with respect to W1
  // needs the second derivative of D. Compare it with central differences on W1.
  manual_seed(11);
  Tensor W1 = randn({4, 3}, float64).requires_grad_();
  Tensor w2 = randn({4}, float64).requires_grad_();
  Tensor x = randn({3}, float64).requires_grad_();
  auto penalty = [&](const std::vector<Tensor>& ws) {
    Tensor D = matmul(ws[1], tanh(matmul(ws[0], x)));
    Tensor g = grad({D}, {x}, {}, true)[0];
    return (g.norm() - 1.0).square();
  };
  Tensor p = penalty({W1, w2});
  std::vector<Tensor> gw = grad({p}, {W1, w2});
  CHECK(p.item() > 0);
  CHECK(gw[0].abs().sum().item() > 0);
  CHECK(gradcheck(penalty, {W1, w2}));
}

TEST_CASE("leaf gradients accumulate across backward calls; zero them to reset") {
  Tensor x = leaf1(2.0);
  (x * 3.0).backward();
  (x * 3.0).backward();
  CHECK(x.grad().item() == 6);
  x.set_grad(Tensor());
  (x * 3.0).backward();
  CHECK(x.grad().item() == 3);
}

TEST_CASE("NoGradGuard records nothing; detach stops the gradient") {
  Tensor x = leaf1(2.0);
  {
    NoGradGuard g;
    Tensor y = x * x;
    CHECK(!y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_enabled());
  Tensor z = x * x.detach();  // only the first factor carries gradient: dz/dx = x = 2
  z.backward();
  CHECK(x.grad().item() == 2);
  CHECK(!x.detach().requires_grad());
  CHECK(x.detach().storage() == x.storage());
}

TEST_CASE("engine errors are clear") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("one-element output; got shape (3)"), AutogradError);
  y.backward(ones({3}, float64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
  CHECK_THROWS_AS(y.backward(ones({2}, float64)), AutogradError);  // wrong seed shape
  // A second backward through a freed graph.
  Tensor z = (x * x).sum();
  z.backward();
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("second time"), AutogradError);
  // ... unless the first kept it.
  Tensor w = (x * x).sum();
  w.backward(Tensor(), true);
  CHECK_NOTHROW(w.backward());
  // backward on something that needs no grad
  CHECK_THROWS_AS(ones({1}).backward(), AutogradError);
  CHECK_THROWS_AS(grad({(x * 2.0).sum()}, {ones({3}, float64)}), AutogradError);
  // requires_grad_ on a non-leaf or an int tensor
  CHECK_THROWS_AS((x * 2.0).requires_grad_(), Error);
  CHECK_THROWS_AS(arange(3).requires_grad_(), Error);
}

TEST_CASE("an in-place change to a saved tensor is caught, naming both ops") {
  Tensor x = leaf({1, 2, 3});
  Tensor h = x * 2.0;
  Tensor y = h.exp();  // exp saves its output ...
  Tensor s = (y * h).sum();  // ... and mul saves h and y
  {
    NoGradGuard g;
    h.detach().add_(ones({3}, float64));  // ... which is then changed in place
  }
  std::string message;
  try {
    s.backward();
  } catch (const AutogradError& e) {
    message = e.what();
  }
  CHECK(message.find("that 'mul' saved for backward was modified in place by 'add_'") != std::string::npos);
  // Issue 15: a changed saved *output* was reported as saved by '?'.
  Tensor z = x.exp();
  Tensor t = z.sum();
  {
    NoGradGuard g;
    z.detach().mul_(2.0);
  }
  try {
    t.backward();
    FAIL("backward read a changed output");
  } catch (const AutogradError& e) {
    CHECK_MESSAGE(std::string(e.what()).find("that 'exp' saved for backward was modified in place by 'mul_'") !=
                      std::string::npos,
                  e.what());
  }
  // In-place ops on a tensor that requires grad are refused while recording.
  CHECK_THROWS_AS(x.add_(ones({3}, float64)), Error);
  NoGradGuard g;
  CHECK_NOTHROW(x.add_(ones({3}, float64)));
}

TEST_CASE("a chain of 200,000 ops runs backward without recursion") {
  Tensor x = leaf1(1.0);
  Tensor y = x;
  for (int i = 0; i < 200000; i++) y = y + 1e-6;
  y.backward();
  CHECK(x.grad().item() == 1);
}

TEST_CASE("hooks see and replace gradients") {
  Tensor x = leaf({1, 2});
  Tensor h = x * 3.0;
  Tensor seen;
  h.register_hook([&](const Tensor& g) {
    seen = g;
    return g * 10.0;  // replace
  });
  x.register_hook([](const Tensor& g) { return Tensor(); });  // inspect only
  h.sum().backward();
  CHECK(seen.to_vector<double>() == std::vector<double>{1, 1});
  CHECK(x.grad().to_vector<double>() == std::vector<double>{30, 30});
  CHECK_THROWS_AS(ones({2}).register_hook([](const Tensor& g) { return g; }), Error);
}

TEST_CASE("anomaly mode names the forward op that made a NaN") {
  Tensor x = leaf({-1, 2});
  {
    DetectAnomalyGuard anomaly;
    CHECK_THROWS_WITH_AS(log(x), doctest::Contains("forward op 'log' produced NaN or Inf; input shapes (2)"),
                         AnomalyError);
    // A finite forward whose backward is not: sqrt at 0 has an infinite derivative.
    Tensor z = leaf({0, 4});
    Tensor s = sqrt(z).sum();
    CHECK_THROWS_WITH_AS(s.backward(), doctest::Contains("backward of 'sqrt' produced NaN or Inf"), AnomalyError);
  }
  CHECK_NOTHROW(log(x));  // outside the guard: NaN is allowed through, as in PyTorch
}

TEST_CASE("to_dot draws the graph and marks reduced broadcasts") {
  Tensor a = ones({3, 1}, float64).requires_grad_();
  Tensor b = ones({3, 4}, float64).requires_grad_();
  std::string dot = to_dot((a * b).exp().sum());
  CHECK(dot.find("digraph heed") == 0);
  CHECK(dot.find("mul\\n(3,4) float64\\nbroadcast grad reduced") != std::string::npos);
  CHECK(dot.find("exp\\n(3,4) float64\"") != std::string::npos);
  CHECK(dot.find("leaf (3,1) float64") != std::string::npos);
  CHECK(dot.find("->") != std::string::npos);
}

TEST_CASE("checkpoint: same gradients, lower peak memory on a deep MLP") {
  manual_seed(12);
  const int layers = 12;
  std::vector<Tensor> ws;
  for (int i = 0; i < layers; i++) ws.push_back((randn({256, 256}, float64) * 0.05).requires_grad_());
  Tensor x = randn({128, 256}, float64);
  // Several saved intermediates per block (matmul's input, gelu's input, sigmoid's output, mul's inputs),
  // which a checkpoint replaces by the block's input alone.
  auto block = [](const std::vector<Tensor>& in) {
    Tensor b = gelu(matmul(in[0], in[1]));
    return b * sigmoid(b);
  };

  auto run = [&](bool ckpt) {
    for (Tensor& w : ws) w.set_grad(Tensor());
    reset_peak_memory();
    int64_t base = memory_stats().current;
    Tensor h = x;
    for (int i = 0; i < layers; i++) h = ckpt ? checkpoint(block, {h, ws[i]}) : block({h, ws[i]});
    h.square().sum().backward();
    int64_t peak = memory_stats().peak - base;
    std::vector<Tensor> grads;
    for (Tensor& w : ws) grads.push_back(w.grad());
    return std::pair{grads, peak};
  };
  auto [plain, plain_peak] = run(false);
  auto [ckpt, ckpt_peak] = run(true);
  for (int i = 0; i < layers; i++) CHECK(allclose(plain[i], ckpt[i], 1e-10, 1e-12));
  MESSAGE("peak bytes above baseline: plain ", plain_peak, ", checkpointed ", ckpt_peak);
  CHECK(ckpt_peak < plain_peak * 0.7);
  // create_graph through a checkpoint is refused, not silently wrong.
  Tensor w = ws[0];
  Tensor y = checkpoint(block, {x, w}).sum();
  CHECK_THROWS_WITH_AS(grad({y}, {w}, {}, true), doctest::Contains("first-order-only"), AutogradError);
}

TEST_CASE("the fused softmax and log_softmax agree with their composite definitions, forward and backward") {
  manual_seed(13);
  for (int64_t dim : {0, 1, -1}) {
    Tensor x = randn({5, 7}, float64).requires_grad_();
    Tensor g = randn({5, 7}, float64);
    // composites: softmax = exp(x - logsumexp(x)), log_softmax = x - logsumexp(x)
    Tensor lse = logsumexp(x, dim, true);
    Tensor comp_sm = exp(x - lse), comp_lsm = x - lse;
    for (auto [fused, comp] : {std::pair{softmax(x, dim), comp_sm}, {log_softmax(x, dim), comp_lsm}}) {
      CHECK(allclose(fused, comp, 1e-12, 1e-14));
      Tensor gf = grad({fused}, {x}, {g}, true, false)[0];
      Tensor gc = grad({comp}, {x}, {g}, true, false)[0];
      CHECK(allclose(gf, gc, 1e-10, 1e-12));
    }
  }
}

TEST_CASE("post-accumulate-grad hooks see the leaf with its gradient updated") {
  Tensor w = ones({3}).requires_grad_();
  std::vector<double> seen;
  w.register_post_accumulate_grad_hook([&](const Tensor& leaf) { seen.push_back(leaf.grad().sum().item()); });
  (w * w).sum().backward();  // dw = 2w: the hook runs once, after both uses of w were summed
  (3.0 * w).sum().backward();  // accumulated: 2 + 3 per element
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == 6.0);
  CHECK(seen[1] == 15.0);
  Tensor y = w * 2.0;
  CHECK_THROWS_AS(y.register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
  CHECK_THROWS_AS(ones({2}).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
}

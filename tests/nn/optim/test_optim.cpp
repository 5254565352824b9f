// Tests for nn/optim/optim.cpp, nn/optim/schedule.cpp and nn/clip.cpp: five steps of every optimizer against PyTorch
// 1.13 (tests/fixtures/optim), state dicts, groups, schedules, clipping, and the error paths. The update
// loops' two levels are tested in tests/tensor/kernels/test_optim.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <unistd.h>

#include "heed.h"
#include "nn/clip.h"
#include "nn/loss.h"
#include "nn/module.h"
#include "nn/optim/optim.h"
#include "io/safetensors.h"
#include "nn/optim/schedule.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/optim.h"

using namespace heed;

namespace {

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
    double e =
        std::isnan(a[i]) || std::isnan(b[i]) ? INFINITY : std::fabs(a[i] - b[i]) - (atol + rtol * std::fabs(b[i]));
    if (e > excess) excess = e, worst = i;
  }
  CHECK_MESSAGE(excess <= 0, what, ": element ", worst, " is ", a.empty() ? 0 : a[worst], ", expected ",
                b.empty() ? 0 : b[worst]);
}

// The fixture's model, 4-8-3 with tanh, from raw parameter tensors: fc2(tanh(fc1(x))).
struct Mlp {
  Tensor w1, b1, w2, b2;
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor forward(const Tensor& x) const { return linear(tanh(linear(x, w1, b1)), w2, b2); }
};
const char* kParamNames[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};

Mlp initial(const TensorMap& f, const std::string& tag) {
  auto p = [&](const char* name) { return f.at(tag + ".step0." + name).clone().detach().requires_grad_(); };
  return {p("fc1.weight"), p("fc1.bias"), p("fc2.weight"), p("fc2.bias")};
}

// The configurations of make_optim_fixtures.py, by name, with the same options.
std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name, const Mlp& m) {
  std::vector<Tensor> ps = m.params();
  using optim::Adam, optim::AdamW, optim::RMSprop, optim::SGD;
  if (name == "sgd") return std::make_unique<SGD>(ps, SGD::Options{.lr = 0.1});
  if (name == "sgd_momentum") return std::make_unique<SGD>(ps, SGD::Options{.lr = 0.1, .momentum = 0.9});
  if (name == "sgd_nesterov_wd")
    return std::make_unique<SGD>(ps, SGD::Options{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  if (name == "sgd_dampening_maximize")
    return std::make_unique<SGD>(ps, SGD::Options{.lr = 0.05, .momentum = 0.5, .dampening = 0.1, .maximize = true});
  if (name == "adam" || name == "adam_skip") return std::make_unique<Adam>(ps, Adam::Options{.lr = 1e-2});
  if (name == "adam_amsgrad_wd")
    return std::make_unique<Adam>(
        ps, Adam::Options{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.9, .weight_decay = 0.1, .amsgrad = true});
  if (name == "adamw") return std::make_unique<AdamW>(ps, AdamW::Options{.lr = 1e-2, .weight_decay = 0.1});
  if (name == "adamw_amsgrad")
    return std::make_unique<AdamW>(
        ps, AdamW::Options{.lr = 2e-2, .beta1 = 0.85, .beta2 = 0.95, .eps = 1e-6, .amsgrad = true});
  if (name == "rmsprop") return std::make_unique<RMSprop>(ps, RMSprop::Options{.lr = 1e-2});
  if (name == "rmsprop_centered_momentum")
    return std::make_unique<RMSprop>(
        ps, RMSprop::Options{.lr = 1e-2, .alpha = 0.9, .weight_decay = 0.01, .momentum = 0.9, .centered = true});
  if (name == "adamw_groups")
    return std::make_unique<AdamW>(std::vector<AdamW::Group>{{{m.w1, m.w2}, {.lr = 1e-2, .weight_decay = 0.1}},
                                                             {{m.b1, m.b2}, {.lr = 5e-3, .weight_decay = 0}}});
  FAIL("unknown optimizer configuration ", name);
  return nullptr;
}

const char* kConfigs[] = {"sgd",     "sgd_momentum",    "sgd_nesterov_wd", "sgd_dampening_maximize",
                          "adam",    "adam_amsgrad_wd", "adamw",           "adamw_amsgrad",
                          "rmsprop", "rmsprop_centered_momentum", "adamw_groups", "adam_skip"};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("heed_optim_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

// ---- against PyTorch 1.13 -------------------------------------------------------------------------------------
TEST_CASE("nn optim: five steps of every optimizer match PyTorch 1.13 (tests/fixtures/optim)") {
  TensorMap f = load(std::string(HEED_SOURCE_DIR) + "/tests/fixtures/optim/optim.safetensors");
  for (const char* tag : {"f32", "f64"}) {
    for (bool simd : {true, false}) {
      heed::kernels::set_use_simd(simd);
      for (std::string config : kConfigs) {
        INFO(tag, " ", config, simd ? " (simd)" : " (reference loops)");
        Mlp m = initial(f, tag);
        std::unique_ptr<optim::Optimizer> opt = make_optimizer(config, m);
        for (int k = 1; k <= 5; k++) {
          opt->zero_grad();
          nn::mse_loss(m.forward(f.at(std::string(tag) + ".x")), f.at(std::string(tag) + ".y")).backward();
          if (config == "adam_skip" && k == 3) m.b2.set_grad(Tensor());  // skipped: its step count lags
          opt->step();
          std::vector<Tensor> ps = m.params();
          for (int i = 0; i < 4; i++) {
            std::string key = std::string(tag) + "." + config + ".step" + std::to_string(k) + "." + kParamNames[i];
            check_close(ps[i], f.at(key), key);
          }
        }
        // The state after five steps: the same names and the same numbers as torch's state_dict().
        optim::StateDict sd = opt->state_dict();
        std::string prefix = std::string(tag) + "." + config + ".";
        int expected = 0, ours = 0;
        for (const auto& [key, want] : f) {
          if (key.rfind(prefix + "state.", 0) != 0) continue;
          expected++;
          std::string name = key.substr(prefix.size());
          REQUIRE_MESSAGE(sd.count(name), "missing ", name);
          check_close(sd.at(name), want, key);
        }
        for (const auto& [key, t] : sd) ours += key.rfind("state.", 0) == 0;
        CHECK(ours == expected);
      }
    }
  }
  heed::kernels::set_use_simd(true);
}

TEST_CASE("nn optim: a large parameter is updated in threaded chunks exactly as in one pass") {
  const int64_t n = 100003;  // several chunks and an odd tail
  Generator g(3);
  Tensor p0 = randn({n}, float32, &g), g0 = randn({n}, float32, &g);
  Tensor p = p0.clone().requires_grad_();
  p.set_grad(g0);
  heed::kernels::set_use_simd(false);
  optim::Adam opt({p}, {.lr = 1e-3, .weight_decay = 0.01, .amsgrad = true});
  opt.step();
  heed::kernels::set_use_simd(true);
  // The same update as one call of the reference loop over the whole array.
  std::vector<float> pv = p0.to_vector<float>(), gv = g0.to_vector<float>(), m(n), v(n), vmax(n);
  heed::kernels::adam_update_ref(pv.data(), gv.data(), m.data(), v.data(), vmax.data(), n,
                                 {0.9, 0.999, 1e-8, 0.01, 1.0, 1e-3 / (1 - std::pow(0.9, 1.0)),
                                  std::sqrt(1 - std::pow(0.999, 1.0)), true, false});
  CHECK(p.to_vector<float>() == pv);
  CHECK(opt.state_dict().at("state.0.exp_avg").to_vector<float>() == m);
}

// ---- behaviour ------------------------------------------------------------------------------------------------------
TEST_CASE("nn optim: every optimizer brings a regression loss down") {
  Generator g(11);
  Tensor x = randn({64, 5}, float32, &g), w_true = randn({5, 1}, float32, &g);
  Tensor y = matmul(x, w_true);
  using Ps = std::vector<Tensor>;
  std::vector<std::function<std::unique_ptr<optim::Optimizer>(const Tensor&)>> makers = {
      [](const Tensor& w) {
        return std::make_unique<optim::SGD>(Ps{w}, optim::SGD::Options{.lr = 0.05, .momentum = 0.9});
      },
      [](const Tensor& w) { return std::make_unique<optim::Adam>(Ps{w}, optim::Adam::Options{.lr = 0.05}); },
      [](const Tensor& w) { return std::make_unique<optim::AdamW>(Ps{w}, optim::AdamW::Options{.lr = 0.05}); },
      [](const Tensor& w) { return std::make_unique<optim::RMSprop>(Ps{w}, optim::RMSprop::Options{.lr = 0.01}); },
  };
  for (auto& make : makers) {
    Tensor w = zeros({5, 1}).requires_grad_();
    auto opt = make(w);
    double first = 0, last = 0;
    for (int i = 0; i < 100; i++) {
      opt->zero_grad();
      Tensor loss = nn::mse_loss(matmul(x, w), y);
      loss.backward();
      opt->step();
      (i == 0 ? first : last) = loss.item();
    }
    CHECK(last < 0.05 * first);
  }
}

TEST_CASE("nn optim: parameters without a gradient are skipped; each update bumps the storage version") {
  Tensor a = ones({3}).requires_grad_(), b = ones({2}).requires_grad_();
  optim::Adam opt({a, b}, {.lr = 0.1});
  uint64_t va = a.storage()->version, vb = b.storage()->version;
  (a * 2.0).sum().backward();  // b gets no gradient
  opt.step();
  CHECK(a.storage()->version == va + 1);
  CHECK(std::string(a.storage()->last_inplace_op) == "adam.step");
  CHECK(b.storage()->version == vb);
  CHECK(b.to_vector<float>() == std::vector<float>{1, 1});
  optim::StateDict sd = opt.state_dict();
  CHECK(sd.count("state.0.exp_avg") == 1);
  CHECK(sd.count("state.1.exp_avg") == 0);
  CHECK(sd.at("state.0.step").item() == 1.0);

  // A graph that saved `a` cannot be run backward after the optimizer changed it.
  Tensor y = (a * a).sum();
  opt.step();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("adam.step"), AutogradError);
}

TEST_CASE("nn optim: parameter groups, lr and set_lr") {
  Tensor w = ones({2, 2}).requires_grad_(), bias = ones({2}).requires_grad_();
  optim::AdamW opt({{{w}, {.lr = 1e-3, .weight_decay = 0.1}}, {{bias}, {.weight_decay = 0}}});
  CHECK(opt.num_groups() == 2);
  CHECK(opt.lr(0) == 1e-3);
  CHECK(opt.lr(1) == 1e-3);  // the Options default
  CHECK(opt.options_of(0).weight_decay == 0.1);
  CHECK(opt.options_of(1).weight_decay == 0.0);
  opt.set_lr(1, 0.5);
  CHECK(opt.lr(1) == 0.5);
  opt.set_lr(0.25);
  CHECK(opt.lr(0) == 0.25);
  CHECK(opt.lr(1) == 0.25);
  CHECK(opt.params(1)[0].is_same(bias));
  CHECK_THROWS_AS(opt.lr(2), Error);
  CHECK_THROWS_AS(opt.set_lr(-1.0), Error);

  // AdamW's decay acts on the weights only: with zero gradients Adam's update is 0, leaving p *= 1 - lr·wd.
  w.set_grad(zeros({2, 2}));
  bias.set_grad(zeros({2}));
  opt.set_lr(0.5);
  opt.step();
  CHECK(w.to_vector<float>()[0] == doctest::Approx(1 - 0.5 * 0.1));
  CHECK(bias.to_vector<float>()[0] == 1.0f);

  // an nn::Module's parameters, the everyday form
  struct Net : nn::Module {
    Tensor weight = ones({3, 2});
    Net() { register_parameter("weight", weight); }
  } net;
  optim::SGD sgd(net.parameters(), {.lr = 0.1});
  net.weight.set_grad(ones({3, 2}));
  sgd.step();
  CHECK(net.weight.to_vector<float>()[0] == doctest::Approx(0.9));
  sgd.zero_grad();
  CHECK_FALSE(net.weight.grad().defined());
}

TEST_CASE("nn optim: state_dict names every buffer, survives safetensors, and resumes exactly") {
  Generator g(21);
  Tensor x = randn({16, 3}, float32, &g), y = randn({16, 2}, float32, &g);
  auto train = [&](optim::Optimizer& opt, const Tensor& w, const Tensor& b, int steps) {
    for (int i = 0; i < steps; i++) {
      opt.zero_grad();
      nn::mse_loss(linear(x, w, b), y).backward();
      opt.step();
    }
  };
  Tensor w = randn({2, 3}, float32, &g).requires_grad_(), b = zeros({2}).requires_grad_();
  optim::Adam opt({w, b}, {.lr = 0.01, .beta2 = 0.99, .amsgrad = true});
  train(opt, w, b, 3);
  optim::StateDict sd = opt.state_dict();
  for (const char* key : {"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq",
                          "state.1.exp_avg", "param_groups.0.params", "param_groups.0.lr", "param_groups.0.beta1",
                          "param_groups.0.beta2", "param_groups.0.eps", "param_groups.0.weight_decay",
                          "param_groups.0.amsgrad", "param_groups.0.maximize"})
    CHECK_MESSAGE(sd.count(key), "missing ", key);
  CHECK(sd.size() == 13 + 3);  // and state.1.{step, exp_avg_sq, max_exp_avg_sq}
  CHECK(sd.at("param_groups.0.beta2").dim() == 0);
  CHECK(sd.at("param_groups.0.beta2").dtype() == float64);
  CHECK(sd.at("param_groups.0.beta2").item() == 0.99);
  CHECK(sd.at("param_groups.0.amsgrad").item() == 1.0);
  CHECK(sd.at("state.0.step").item() == 3.0);
  CHECK(sd.at("param_groups.0.params").to_vector<int64_t>() == std::vector<int64_t>{0, 1});

  std::string path = temp_path("adam.safetensors");
  save(path, sd);
  Tensor w2 = w.detach().clone().requires_grad_(), b2 = b.detach().clone().requires_grad_();
  optim::Adam resumed({w2, b2}, {.lr = 0.5});  // options come from the dict
  resumed.load_state_dict(load(path));
  std::filesystem::remove(path);
  CHECK(resumed.lr() == 0.01);
  CHECK(resumed.options_of(0).amsgrad);
  train(opt, w, b, 4);
  train(resumed, w2, b2, 4);
  CHECK(w.to_vector<float>() == w2.to_vector<float>());  // bit for bit
  CHECK(b.to_vector<float>() == b2.to_vector<float>());
  // Loaded buffers are copies: changing the source dict does not change the optimizer.
  optim::StateDict copy = resumed.state_dict();
  CHECK_FALSE(copy.at("state.0.exp_avg").storage() == sd.at("state.0.exp_avg").storage());
}

TEST_CASE("nn optim: load_state_dict lists every problem and changes nothing when it fails") {
  Tensor w = ones({2, 3}).requires_grad_();
  optim::SGD opt({w}, {.lr = 0.1, .momentum = 0.9});
  w.set_grad(ones({2, 3}));
  opt.step();
  optim::StateDict good = opt.state_dict();
  CHECK(good.count("state.0.momentum_buffer") == 1);
  CHECK(good.count("state.0.step") == 0);  // SGD counts no steps, as PyTorch

  optim::StateDict bad = good;
  bad["state.0.momentum_buffer"] = zeros({3, 2});
  bad["param_groups.0.lr"] = scalar_tensor(7.0, float64);
  bad.erase("param_groups.0.momentum");
  bad["state.5.momentum_buffer"] = zeros({2, 3});
  bad["param_groups.0.betas"] = scalar_tensor(0.9, float64);
  try {
    opt.load_state_dict(bad);
    FAIL("load_state_dict accepted a bad dict");
  } catch (const nn::StateDictError& e) {
    std::string msg = e.what();
    CHECK(msg.find("SGD.load_state_dict: 4 problems") != std::string::npos);
    CHECK(msg.find("state.0.momentum_buffer has shape (3,2), expected (2,3)") != std::string::npos);
    CHECK(msg.find("missing param_groups.0.momentum") != std::string::npos);
    CHECK(msg.find("unexpected state.5.momentum_buffer") != std::string::npos);
    CHECK(msg.find("unexpected param_groups.0.betas") != std::string::npos);
  }
  CHECK(opt.lr() == 0.1);  // the options were put back
  CHECK(opt.options_of(0).momentum == 0.9);

  optim::Adam adam({w});
  CHECK_THROWS_AS(adam.load_state_dict(good), nn::StateDictError);  // an SGD dict in an Adam
  Tensor other = ones({3}).requires_grad_();
  optim::SGD two({w, other}, {.momentum = 0.9});
  CHECK_THROWS_WITH_AS(two.load_state_dict(good), doctest::Contains("param_groups.0.params does not list"),
                       nn::StateDictError);
}

TEST_CASE("nn optim: bad parameters and options are heed::Errors") {
  Tensor w = ones({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(optim::SGD({w, w}), doctest::Contains("SGD: parameter 1 (2) appears twice (in groups 0 and 0)"),
                       Error);
  CHECK_THROWS_AS(optim::Adam(std::vector<optim::Adam::Group>{{{w}}, {{w}}}), Error);
  CHECK_THROWS_WITH_AS(optim::Adam({arange(3)}), doctest::Contains("Adam: parameter 0 is int64"), Error);
  Tensor transposed = ones({3, 2}).transpose(0, 1).requires_grad_();
  CHECK_THROWS_WITH_AS(optim::Adam({transposed}), doctest::Contains("is not contiguous"), Error);
  CHECK_THROWS_WITH_AS(optim::Adam(std::vector<Tensor>{}), doctest::Contains("Adam: got no parameters"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD({w}, {.lr = 0.1, .nesterov = true}), doctest::Contains("nesterov needs momentum > 0"),
                       Error);
  CHECK_THROWS_AS(optim::SGD({w}, {.lr = -1}), Error);
  CHECK_THROWS_WITH_AS(optim::Adam({w}, {.beta1 = 1.0}),
                       doctest::Contains("Adam: group 0: beta1 must be in [0,1), got 1"), Error);
  CHECK_THROWS_AS(optim::AdamW({w}, {.eps = -1}), Error);
  CHECK_THROWS_AS(optim::RMSprop({w}, {.alpha = -0.5}), Error);
  optim::SGD opt({w});
  w.set_grad(ones({3}));
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("has a gradient (3)"), Error);
}

// ---- schedules ------------------------------------------------------------------------------------------------------
TEST_CASE("nn schedule: StepLR and WarmupCosineLR give the expected learning rates") {
  Tensor w = ones({1}).requires_grad_(), b = ones({1}).requires_grad_();
  optim::SGD opt(std::vector<optim::SGD::Group>{{{w}, {.lr = 1.0}}, {{b}, {.lr = 0.1}}});
  optim::StepLR step_lr(opt, 3, 0.5);
  // torch.optim.lr_scheduler.StepLR(opt, 3, 0.5) from lr 1: 1, 1, 1, .5, .5, .5, .25, .25, .25
  std::vector<double> want = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25};
  for (size_t t = 0; t < want.size(); t++) {
    CHECK(opt.lr(0) == doctest::Approx(want[t]));
    CHECK(opt.lr(1) == doctest::Approx(0.1 * want[t]));  // each group from its own base
    step_lr.step();
  }
  optim::StateDict sd = step_lr.state_dict();
  CHECK(sd.at("last_epoch").item() == 9.0);
  optim::SGD opt2({w}, {.lr = 1.0});
  Tensor w3 = ones({1}).requires_grad_(), b3 = ones({1}).requires_grad_();
  optim::SGD opt3(std::vector<optim::SGD::Group>{{{w3}, {.lr = 3.0}}, {{b3}, {.lr = 3.0}}});
  optim::StepLR resumed(opt3, 3, 0.5);
  resumed.load_state_dict(sd);
  CHECK(opt3.lr(0) == doctest::Approx(0.125));  // base 1 at t = 9, set on load
  CHECK(resumed.last_epoch() == 9);
  optim::StepLR one_group(opt2, 3);
  CHECK_THROWS_AS(one_group.load_state_dict(sd), nn::StateDictError);  // base_lrs.1 is unexpected

  optim::SGD opt4({w}, {.lr = 1.0});
  optim::WarmupCosineLR cosine(opt4, 4, 12, 0.1);
  std::vector<double> lrs;
  for (int t = 0; t <= 14; t++) {
    lrs.push_back(opt4.lr());
    cosine.step();
  }
  CHECK(lrs[0] == doctest::Approx(0.25));  // warmup: (t+1)/4
  CHECK(lrs[2] == doctest::Approx(0.75));
  CHECK(lrs[3] == doctest::Approx(1.0));
  CHECK(lrs[4] == doctest::Approx(1.0));  // the cosine starts at the base lr
  CHECK(lrs[8] == doctest::Approx(0.1 + 0.9 * 0.5));  // halfway
  CHECK(lrs[12] == doctest::Approx(0.1));
  CHECK(lrs[14] == doctest::Approx(0.1));  // min_lr after total_steps
  for (int t = 5; t <= 12; t++) CHECK(lrs[t] < lrs[t - 1]);
  CHECK_THROWS_AS(optim::WarmupCosineLR(opt4, 10, 10), Error);
  CHECK_THROWS_AS(optim::StepLR(opt4, 0), Error);
}

TEST_CASE("nn schedule: ReduceLROnPlateau follows torch's sequence") {
  Tensor w = ones({1}).requires_grad_();
  optim::SGD opt({w}, {.lr = 1.0});
  optim::ReduceLROnPlateau sched(opt, {.factor = 0.5, .patience = 2, .cooldown = 1, .min_lr = 0.2});
  // Recorded from torch.optim.lr_scheduler.ReduceLROnPlateau(opt, 'min', factor=0.5, patience=2, cooldown=1,
  // min_lr=0.2): (lr, num_bad_epochs) after each metric. 0.89995 is not below 0.9·(1 - 1e-4), so not better.
  std::vector<double> metrics = {1.0, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.89995, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2};
  std::vector<double> lr = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2};
  std::vector<int64_t> bad = {0, 0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 0};
  optim::StateDict mid;
  for (size_t i = 0; i < metrics.size(); i++) {
    sched.step(metrics[i]);
    INFO("epoch ", i + 1);
    CHECK(opt.lr() == doctest::Approx(lr[i]));
    CHECK(sched.num_bad_epochs() == bad[i]);
    if (i == 9) mid = sched.state_dict();
  }
  CHECK(sched.best() == 0.5);
  // Resume from epoch 10 and replay the rest.
  Tensor w2 = ones({1}).requires_grad_();
  optim::SGD opt2({w2}, {.lr = 0.5});
  optim::ReduceLROnPlateau again(opt2, {.factor = 0.5, .patience = 2, .cooldown = 1, .min_lr = 0.2});
  again.load_state_dict(mid);
  CHECK(again.last_epoch() == 10);
  for (size_t i = 10; i < metrics.size(); i++) {
    again.step(metrics[i]);
    CHECK(opt2.lr() == doctest::Approx(lr[i]));
  }
  CHECK_THROWS_AS(again.load_state_dict({}), nn::StateDictError);
  CHECK_THROWS_AS(optim::ReduceLROnPlateau(opt2, {.factor = 1.5}), Error);
}

// ---- clipping -------------------------------------------------------------------------------------------------------
TEST_CASE("nn clip: clip_grad_norm_ and clip_grad_value_") {
  Tensor a = zeros({2}).requires_grad_(), b = zeros({1}, float64).requires_grad_(), c = zeros({3}).requires_grad_();
  a.set_grad(tensor({3.0, 4.0}));
  b.set_grad(tensor({12.0}, float64));  // c has no grad: skipped
  double total = nn::clip_grad_norm_({a, b, c}, 6.5);
  CHECK(total == doctest::Approx(13.0));  // sqrt(9 + 16 + 144)
  double k = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().to_vector<float>()[1] == doctest::Approx(4.0 * k));
  CHECK(b.grad().item() == doctest::Approx(12.0 * k));
  CHECK_FALSE(c.grad().defined());
  CHECK(nn::clip_grad_norm_({a, b}, 100.0) == doctest::Approx(6.5).epsilon(1e-6));  // below: unchanged
  CHECK(b.grad().item() == doctest::Approx(12.0 * k));

  a.set_grad(tensor({3.0, -4.0}));
  b.set_grad(tensor({1.0}, float64));
  CHECK(nn::clip_grad_norm_({a, b}, 2.0, INFINITY) == 4.0);
  CHECK(a.grad().to_vector<float>()[1] == doctest::Approx(-4.0 * 2.0 / (4.0 + 1e-6)));
  a.set_grad(tensor({3.0, -4.0}));
  CHECK(nn::clip_grad_norm_({a}, 100.0, 1.0) == 7.0);

  // Two leaves holding the very same gradient tensor (the backward of a + b hands dout to both) are each
  // scaled once, not twice.
  Tensor p = ones({2}).requires_grad_(), q = ones({2}).requires_grad_();
  (p + q).backward(tensor({3.0, 4.0}));
  REQUIRE(p.grad().storage() == q.grad().storage());
  nn::clip_grad_norm_({p, q}, 1.0);
  CHECK(p.grad().to_vector<float>()[0] == doctest::Approx(3.0 / std::sqrt(50.0)).epsilon(1e-5));
  CHECK(q.grad().to_vector<float>()[0] == doctest::Approx(3.0 / std::sqrt(50.0)).epsilon(1e-5));

  a.set_grad(tensor({NAN, 1.0}));
  CHECK_THROWS_AS(nn::clip_grad_norm_({a}, 1.0, 2.0, true), Error);
  CHECK(std::isnan(nn::clip_grad_norm_({a}, 1.0)));
  CHECK_THROWS_AS(nn::clip_grad_norm_({a}, 1.0, 0.0), Error);

  a.set_grad(tensor({-3.0, 0.5}));
  nn::clip_grad_value_({a, c}, 1.0);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{-1.0f, 0.5f});
  CHECK_THROWS_AS(nn::clip_grad_value_({a}, -1.0), Error);
}

// Issue 15: a crafted checkpoint with beta1 = 5, eps = -1 or step = 2^62 was accepted.
TEST_CASE("nn optim: options and step counts loaded from a file are validated like options given in code") {
  Tensor w = ones({2}).requires_grad_();
  optim::Adam opt({w}, {.lr = 0.1});
  w.set_grad(ones({2}));
  opt.step();
  const optim::StateDict good = opt.state_dict();
  auto problem = [&](const std::string& key, double v) {
    optim::StateDict bad = good;
    bad[key] = scalar_tensor(v, float64);
    try {
      opt.load_state_dict(bad);
    } catch (const nn::StateDictError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(problem("param_groups.0.beta1", 5).find("beta1 must be in [0,1), got 5") != std::string::npos);
  CHECK(problem("param_groups.0.eps", -1).find("eps must be >= 0, got -1") != std::string::npos);
  CHECK(problem("param_groups.0.lr", INFINITY).find("lr must be finite") != std::string::npos);
  CHECK(problem("state.0.step", std::ldexp(1.0, 62)).find("state.0.step must be a whole number") != std::string::npos);
  CHECK(problem("state.0.step", 1.5).find("state.0.step must be a whole number") != std::string::npos);
  CHECK(opt.options_of(0).beta1 == 0.9);  // nothing changed
  CHECK(opt.lr() == 0.1);
  CHECK_NOTHROW(opt.load_state_dict(good));
  CHECK_THROWS_AS(optim::SGD({w}, {.lr = INFINITY}), Error);
}

// Tests for nn/optim/training_state.cpp: resuming is bit-exact, and a bad checkpoint is a clear error.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include "heed.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim/schedule.h"
#include "nn/optim/training_state.h"

using namespace heed;
using namespace heed::nn;
using namespace heed::optim;

namespace {

// A small model with dropout, so that resuming must restore the generator too.
struct Net : Module {
  Linear fc1{6, 16}, fc2{16, 3};
  Dropout drop{0.3};
  Net() {
    register_module("fc1", fc1);
    register_module("drop", drop);
    register_module("fc2", fc2);
  }
  Tensor forward(const Tensor& x) { return fc2(drop(tanh(fc1(x)))); }
};

// One training run segment: `steps` Adam steps on batches drawn from the global generator.
void train(Net& net, optim::Adam& opt, optim::StepLR& sched, int steps) {
  for (int i = 0; i < steps; i++) {
    Tensor x = randn({8, 6});
    Tensor y = randn({8, 3});
    opt.zero_grad();
    mse_loss(net(x), y).backward();
    opt.step();
    sched.step();
  }
}

std::vector<std::vector<float>> weights(const Net& net) {
  std::vector<std::vector<float>> w;
  for (auto& [name, p] : net.named_parameters()) w.push_back(p.to_vector<float>());
  return w;
}

}  // namespace

TEST_CASE("nn training state: N steps, save, load into fresh objects, N more == 2N steps, bit for bit") {
  const int N = 7;
  std::string path =
      (std::filesystem::temp_directory_path() / ("heed_resume_" + std::to_string(::getpid()) + ".safetensors"))
          .string();

  manual_seed(5);
  Net a;
  optim::Adam opt_a(a.parameters(), {.lr = 1e-2});
  optim::StepLR sched_a(opt_a, 3, 0.5);
  train(a, opt_a, sched_a, 2 * N);

  manual_seed(5);
  Net b;
  optim::Adam opt_b(b.parameters(), {.lr = 1e-2});
  optim::StepLR sched_b(opt_b, 3, 0.5);
  train(b, opt_b, sched_b, N);
  save_training_state(path, b, opt_b, sched_b, N, {{"model", "Net"}});

  // A fresh model, optimizer and schedule, and a generator somewhere else entirely.
  manual_seed(999);
  Net c;
  optim::Adam opt_c(c.parameters(), {.lr = 1e-2});
  optim::StepLR sched_c(opt_c, 3, 0.5);
  ResumeInfo info = load_training_state(path, c, opt_c, sched_c);
  CHECK(info.step == N);
  CHECK(info.metadata["model"] == "Net");
  CHECK(opt_c.lr() == opt_b.lr());
  train(c, opt_c, sched_c, N);

  CHECK(weights(c) == weights(a));  // exact equality, not closeness
  CHECK(opt_c.lr() == opt_a.lr());
  std::filesystem::remove(path);
}

TEST_CASE("nn training state: a checkpoint of another model is refused, naming the keys") {
  std::string path =
      (std::filesystem::temp_directory_path() / ("heed_resume_bad_" + std::to_string(::getpid()) + ".safetensors"))
          .string();
  Net a;
  optim::Adam opt(a.parameters());
  optim::StepLR sched(opt, 3);
  save_training_state(path, a, opt, sched, 1);
  struct Other : Module {
    Linear fc1{6, 17};
    Other() { register_module("fc1", fc1); }
  } other;
  optim::Adam opt2(other.parameters());
  CHECK_THROWS_WITH_AS(load_training_state(path, other, opt2), doctest::Contains("fc1.weight: expected (17,6)"),
                       StateDictError);
  CHECK_THROWS_AS(load_training_state(path + ".missing", a, opt), SafetensorsError);
  std::filesystem::remove(path);
}

// Issue 15: a crafted checkpoint with step = 2^62 was accepted.
TEST_CASE("nn training state: a step count no run reaches is refused") {
  Net net;
  optim::Adam opt(net.parameters());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("heed_ts_step_" + std::to_string(::getpid()))).string();
  save_training_state(path, net, opt, optim::StateDict{}, 1LL << 62);
  CHECK_THROWS_WITH_AS(load_training_state(path, net, opt), doctest::Contains("step 4611686018427387904"),
                       SafetensorsError);
  save_training_state(path, net, opt, optim::StateDict{}, -1);
  CHECK_THROWS_AS(load_training_state(path, net, opt), SafetensorsError);
  save_training_state(path, net, opt, optim::StateDict{}, 12);
  CHECK(load_training_state(path, net, opt).step == 12);
  std::filesystem::remove(path);
}

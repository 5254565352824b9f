// Tests for models/vae.cpp, through the program itself (its modules live in that one file): resuming from
// its checkpoint is bit-exact, the loss goes down, and bad input is one line and exit code 2.
//
// The zoo programs are built next to heed_tests (every target lands in the build folder), so the tests run
// <folder of this executable>/vae. Without it (a build with HEED_BUILD_MODELS=OFF) they say so and pass.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "heed.h"
#include "io/safetensors.h"

#include "tests/models/zoo_program.h"

using namespace heed;
namespace fs = std::filesystem;
using namespace heed::test;


TEST_CASE("vae: N steps, save, --resume, N more == 2N steps, bit for bit, and the loss goes down") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_resume");
  // --quick has 512 images in batches of 128: 4 steps an epoch. 3 steps stop mid-epoch; 6 cross into epoch 2.
  const std::string common = "--quick --eval=false --threads 1 ";
  Result whole = run(vae, common + "--steps 6 --out " + (dir / "whole").string(), dir);
  REQUIRE_MESSAGE(whole.exit_code == 0, whole.output);
  Result first = run(vae, common + "--steps 3 --out " + (dir / "first").string(), dir);
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  Result second = run(vae, common + "--steps 6 --resume " + (dir / "first" / "checkpoint.safetensors").string() +
                               " --out " + (dir / "second").string(), dir);
  REQUIRE_MESSAGE(second.exit_code == 0, second.output);
  CHECK_MESSAGE(second.output.find("training from step 3 of 6") != std::string::npos, second.output);

  // Everything: the model, Adam's moments and step counts, the generator's position, the step.
  TensorMap a = load((dir / "whole" / "checkpoint.safetensors").string());
  TensorMap b = load((dir / "second" / "checkpoint.safetensors").string());
  REQUIRE(a.size() == b.size());
  int64_t model_tensors = 0;
  for (const auto& [name, t] : a) {
    REQUIRE_MESSAGE(b.count(name), "the resumed checkpoint lacks ", name);
    CHECK_MESSAGE(t.to_vector<double>() == b.at(name).to_vector<double>(), name, " differs after resuming");
    model_tensors += name.rfind("model.", 0) == 0;
  }
  CHECK(model_tensors == 10);  // MlpVAE: fc1, fc21, fc22, fc3, fc4, each a weight and a bias

  // metrics.csv of the whole run: epoch 1 (steps 1-4) and epoch 2 (steps 5-6); the second's mean is lower.
  std::istringstream csv(read_text(dir / "whole" / "metrics.csv"));
  std::string header, row1, row2;
  std::getline(csv, header), std::getline(csv, row1), std::getline(csv, row2);
  REQUIRE(header.rfind("epoch,train_loss", 0) == 0);
  const double loss1 = std::stod(row1.substr(row1.find(',') + 1)), loss2 = std::stod(row2.substr(row2.find(',') + 1));
  CHECK(loss2 < loss1);
  fs::remove_all(dir);
}

TEST_CASE("vae: each arch trains (the loss goes down) and writes metrics.json and its pictures") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_archs");
  for (std::string arch :
       {"conv", "attn", "conv-attn"}) {  // mlp: the resume test above and the zoo_vae_quick ctest entry
    INFO("--arch ", arch);
    // --quick's 512 images are 4 steps an epoch: 8 steps are two epochs, whose mean losses must fall.
    const fs::path out = dir / arch;
    Result r = run(vae, "--quick --threads 1 --steps 8 --arch " + arch + " --out " + out.string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const nlohmann::json m = nlohmann::json::parse(read_text(out / "metrics.json"));
    CHECK(m["status"] == "finished");
    REQUIRE(m["epochs"].size() == 2);
    CHECK(m["epochs"][1]["train_loss"].get<double>() < m["epochs"][0]["train_loss"].get<double>());
    CHECK(m["epochs"][1]["test_loss"].get<double>() < m["epochs"][0]["test_loss"].get<double>());
    // The bounds: 0 < IW-NLL <= neg-ELBO (k samples tighten the one-sample bound), and a finite FD.
    const double elbo = m["final"]["neg_elbo"], iw = m["final"]["iw_nll"], fd = m["final"]["fd_fmnist"];
    CHECK(iw > 0);
    CHECK(iw <= elbo);
    CHECK(std::isfinite(fd));
    CHECK(fd > 0);
    std::vector<std::string> pictures = {"samples.png", "reconstructions.png", "traversal.png"};
    if (arch == "attn") pictures.insert(pictures.end(), {"attention.png", "self_attention.png"});
    for (const std::string& png : pictures) {
      CHECK_MESSAGE(fs::exists(out / png), png, " was not written");
      if (fs::exists(out / png)) CHECK(fs::file_size(out / png) > 100);
    }
  }
  fs::remove_all(dir);
}

// Issue 21: equal wall-clock budgets. --minutes stops training once that much training time has passed (the
// evaluations between epochs do not count), and --fd-every scores the samples after each epoch.
TEST_CASE("vae: --minutes stops at the budget, and --fd-every 1 scores every epoch") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_budget");
  // --quick: 4 steps an epoch; 800 steps (200 epochs) are far more than 0.003 minutes (0.18 s) of training allow.
  Result r = run(vae, "--quick --threads 1 --steps 800 --minutes 0.003 --fd-every 1 --out " + (dir / "run").string(),
                 dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const nlohmann::json m = read_json(dir / "run" / "metrics.json");
  CHECK(m["status"] == "finished");
  const double steps = m["final"]["steps"], minutes = m["final"]["train_minutes"];
  CHECK(steps >= 1);
  CHECK(steps < 800);
  CHECK(minutes >= 0.003);
  CHECK(minutes < 0.05);  // the clock stops for the evaluations, which take longer than the training here
  REQUIRE(m["epochs"].size() >= 1);
  CHECK(m["epochs"].size() < 200);
  double last = 0;
  for (const auto& e : m["epochs"]) {
    CHECK(std::isfinite(e["fd_fmnist"].get<double>()));
    CHECK(e["train_minutes"].get<double>() >= last);
    last = e["train_minutes"];
  }
  fs::remove_all(dir);
}

// Issue 21: conv-attn attends at 14x14 and 7x7, or at one of them: the blocks it holds are those, and no others.
// Issue 21: --until-gain stops a run whose test loss has stopped gaining: with a threshold of 1000 nats an epoch,
// as soon as there are 5 epochs after the first to compare (after epoch 6), whatever the gains were.
TEST_CASE("vae: --until-gain stops once the test loss gains less than that per epoch") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_until_gain");
  Result r = run(vae, "--quick --threads 1 --steps 40 --until-gain 1000 --out " + (dir / "big").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  nlohmann::json m = read_json(dir / "big" / "metrics.json");
  CHECK(m["epochs"].size() == 6);
  CHECK(m["final"]["steps"] == 24);
  // Without --until-gain the same run trains all 10 epochs.
  r = run(vae, "--quick --threads 1 --steps 40 --out " + (dir / "none").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(read_json(dir / "none" / "metrics.json")["epochs"].size() == 10);
  r = run(vae, "--quick --threads 1 --eval=false --until-gain 0.1 --out " + (dir / "noeval").string(), dir);
  CHECK(r.exit_code == 2);
  CHECK_MESSAGE(r.output.find("vae: --until-gain needs the test loss") != std::string::npos, r.output);
  fs::remove_all(dir);
}

TEST_CASE("vae: conv-attn --attn-at holds the attention blocks of the sizes asked for") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_attn_at");
  struct Case {
    std::string at;
    std::vector<std::string> blocks;  // attn1, attn4 at 14x14 (encoder, decoder); attn2, attn3 at 7x7
  };
  for (const Case& c : {Case{"14,7", {"attn1", "attn2", "attn3", "attn4"}}, Case{"14", {"attn1", "attn4"}},
                        Case{"7", {"attn2", "attn3"}}}) {
    INFO("--attn-at ", c.at);
    const fs::path out = dir / std::to_string(c.blocks.size() + c.at.size());
    Result r = run(vae, "--quick --threads 1 --steps 2 --eval=false --arch conv-attn --attn-at " + c.at + " --out " +
                            out.string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    std::vector<std::string> held;
    for (const auto& [name, t] : load((out / "checkpoint.safetensors").string()))
      for (std::string block : {"attn1", "attn2", "attn3", "attn4"})
        if (name.rfind("model." + block + ".gamma", 0) == 0) held.push_back(block);
    std::sort(held.begin(), held.end());
    CHECK(held == c.blocks);
  }
  fs::remove_all(dir);
}

TEST_CASE("vae: bad input is one line on stderr and exit code 2") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_errors");
  const std::string out = " --out " + (dir / "run").string();
  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"--arch transformer" + out, "vae: --arch must be mlp, conv, attn or conv-attn, got 'transformer'"},
      {"--minutes -0.5" + out, "vae: --minutes must be >= 0, got -0.5"},
      {"--iw-images 0" + out, "vae: --iw-images must be in [1, 10000], got 0"},
      {"--arch conv-attn --attn-at 28" + out, "vae: --attn-at must be 14,7, 14 or 7, got '28'"},
      {"--latent 0" + out, "vae: --latent must be >= 1, got 0"},
      {"--data " + (dir / "no_such_folder").string() + out, "vae: "},
      {"--out /proc/heed_cannot_write_here", "vae: --out '/proc/heed_cannot_write_here' cannot be created"},
      {"--resume " + (dir / "missing.safetensors").string() + out, "vae: "},
  };
  for (const Case& c : cases) {
    Result r = run(vae, c.args, dir);
    CHECK_MESSAGE(r.exit_code == 2, c.args, " -> ", r.output);
    CHECK_MESSAGE(r.output.find(c.expected) != std::string::npos, c.args, " -> ", r.output);
    CHECK_MESSAGE(r.output.find("terminate") == std::string::npos, r.output);
  }

  // A checkpoint of another architecture does not fit: the state dict error names the keys, exit code 2.
  Result mlp = run(vae, "--quick --eval=false --threads 1 --steps 1" + out, dir);
  REQUIRE_MESSAGE(mlp.exit_code == 0, mlp.output);
  const fs::path checkpoint = dir / "run" / "checkpoint.safetensors";
  Result conv = run(vae, "--quick --eval=false --threads 1 --arch conv --resume " + checkpoint.string() + " --out " +
                             (dir / "conv").string(), dir);
  CHECK_MESSAGE(conv.exit_code == 2, conv.output);
  CHECK_MESSAGE(conv.output.find("conv1") != std::string::npos, conv.output);
  fs::remove_all(dir);
}

// Issue 15: reusing --out overwrote a finished run; resuming into it dropped its history; --lr and --seed on
// resume were ignored or unchecked; --lr 1e300 said "Normal: scale must be > 0, got -nan" with exit 2.
TEST_CASE("vae: --out of a finished run is refused; --resume appends to it and records what ran; divergence exits 1") {
  const fs::path vae = zoo_program("vae");
  if (!fs::exists(vae)) {
    MESSAGE("skipped: " << vae << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("vae_rerun"), a = dir / "a";
  const fs::path checkpoint = a / "checkpoint.safetensors";
  // --quick has 512 images: batches of 256 make 2 steps an epoch.
  const std::string common = "--quick --eval=false --threads 1 --batch-size 256 ";
  Result first = run(vae, common + "--steps 2 --seed 3 --out " + a.string(), dir);
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);

  Result again = run(vae, common + "--steps 1 --out " + a.string(), dir);
  CHECK_MESSAGE(again.exit_code == 2, again.output);
  CHECK_MESSAGE(again.output.find("holds a run already") != std::string::npos, again.output);
  CHECK(load(checkpoint.string()).at("step").item() == 2);  // untouched

  Result seed = run(vae, common + "--steps 4 --seed 4 --resume " + checkpoint.string() + " --out " + a.string(), dir);
  CHECK_MESSAGE(seed.exit_code == 2, seed.output);
  CHECK_MESSAGE(seed.output.find("--seed 4 differs from the seed 3") != std::string::npos, seed.output);

  Result resumed =
      run(vae, common + "--steps 4 --lr 0.0005 --resume " + checkpoint.string() + " --out " + a.string(), dir);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  nlohmann::json j = nlohmann::json::parse(read_text(a / "metrics.json"));
  REQUIRE(j["epochs"].size() == 2);  // epoch 1 from the first run, epoch 2 from the resumed one
  CHECK(j["epochs"][0]["epoch"] == 1);
  CHECK(j["epochs"][1]["epoch"] == 2);
  CHECK(j["config"]["seed"] == 3);        // the checkpoint's, taken since --seed was not given
  CHECK(j["config"]["lr"] == 0.0005);     // the flag, applied
  TensorMap ck = load(checkpoint.string());
  CHECK(ck.at("step").item() == 4);
  CHECK(ck.at("optim.param_groups.0.lr").item() == doctest::Approx(0.0005));
  const std::string csv = read_text(a / "metrics.csv");
  CHECK_MESSAGE(csv.find("\n1,") != std::string::npos, csv);
  CHECK_MESSAGE(csv.find("\n2,") != std::string::npos, csv);

  Result forced = run(vae, common + "--steps 1 --force --out " + a.string(), dir);
  CHECK_MESSAGE(forced.exit_code == 0, forced.output);

  Result diverged = run(vae, common + "--steps 4 --lr 1e300 --out " + (dir / "b").string(), dir);
  CHECK_MESSAGE(diverged.exit_code == 1, diverged.output);
  CHECK_MESSAGE(diverged.output.find("vae: error: diverged at step ") != std::string::npos, diverged.output);
  fs::remove_all(dir);
}

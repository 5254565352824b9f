// Tests for models/gan.cpp, through the program itself (its modules live in that one file): each recipe's
// --quick run trains (D's loss goes down) and leaves metrics.json, the checkpoint and the pictures; resuming
// is bit-exact; bad input is one line and exit code 2. The gradient penalty itself is tested in
// tests/nn/test_loss.cpp, beside nn::gradient_penalty's other losses.
//
// The zoo programs are built next to heed_tests, so the tests run <folder of this executable>/gan. Without it
// (a build with HEED_BUILD_MODELS=OFF) they say so and pass.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "heed.h"
#include "io/safetensors.h"
#include "viz/viz.h"

#include "tests/models/zoo_program.h"

using namespace heed;
namespace fs = std::filesystem;
using namespace heed::test;

namespace {

// One column of a CSV file with a header line, by name; empty cells are NaN.
std::vector<double> csv_column(const fs::path& path, const std::string& column) {
  std::istringstream csv(read_text(path));
  std::string line, cell;
  std::getline(csv, line);
  std::istringstream header(line);
  int index = -1;
  for (int i = 0; std::getline(header, cell, ','); ++i)
    if (cell == column) index = i;
  REQUIRE_MESSAGE(index >= 0, path, " has no column ", column);
  std::vector<double> values;
  while (std::getline(csv, line)) {
    std::istringstream row(line);
    double value = NAN;  // also when the row ends before the column ("2,0.5,,": getline yields no last cell)
    for (int i = 0; std::getline(row, cell, ',') && i <= index; ++i)
      if (i == index && !cell.empty()) value = std::stod(cell);
    values.push_back(value);
  }
  return values;
}

// A --quick run of `gan args`, and what every recipe must leave behind.
void check_quick_run(const std::string& name, const std::string& args, const std::string& loss) {
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) {
    MESSAGE("skipped: " << gan << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch(name), out = dir / "run";
  // Batches of 64 (the default is 32): 1024 images make 16 steps, as the checks below count.
  Result r = run(gan, "--quick --threads 1 --batch-size 64 " + args + " --out " + out.string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);

  // metrics.json: the recipe, one epoch with both losses, and a finite FD-FMNIST at the end.
  nlohmann::json j = nlohmann::json::parse(read_text(out / "metrics.json"));
  CHECK(j["model"] == "gan");
  CHECK(j["status"] == "finished");
  CHECK(j["config"]["loss"] == loss);
  REQUIRE(j["epochs"].size() == 1);
  CHECK(std::isfinite(j["epochs"][0]["d_loss"].get<double>()));
  CHECK(std::isfinite(j["epochs"][0]["g_loss"].get<double>()));
  REQUIRE(j["final"]["fd_fmnist"].is_number());
  CHECK(j["final"]["fd_fmnist"].get<double>() > 0);

  // D's loss, averaged over every 2 steps (steps.csv under --quick), is lower at the end than at the start:
  // 16 steps of a fresh D against a fresh G are enough for D to start winning, under every loss.
  std::vector<double> d = csv_column(out / "steps.csv", "d_loss");
  REQUIRE(d.size() == 8);
  CHECK_MESSAGE(d.back() < d.front(), "d_loss went from ", d.front(), " to ", d.back());

  // The pictures: 64 samples from the fixed noise, 8 x 8 tiles of 28 + 2 padding pixels, after the epoch and at
  // the end; the loss curves when gnuplot is installed.
  for (const char* png : {"samples_epoch_01.png", "samples.png"}) {
    viz::Image im = viz::load_png((out / png).string());
    CHECK(im.width == 8 * 30 + 2);
    CHECK(im.height == 8 * 30 + 2);
  }
  if (!viz::gnuplot_program().empty()) {
    CHECK(fs::exists(out / "loss.png"));
    CHECK(fs::exists(out / "steps.png"));
  }
  CHECK(fs::exists(out / "checkpoint.safetensors"));
  const bool attention =
      (args.find("sagan") != std::string::npos && args.find("--attention=false") == std::string::npos) ||
      args.find("--attention ") != std::string::npos || args.ends_with("--attention");
  if (attention) {  // 8 rows: the image and four overlays, 56x56 each
    viz::Image im = viz::load_png((out / "attention.png").string());
    CHECK(im.width == 5 * 58 + 2);
    CHECK(im.height == 8 * 58 + 2);
  } else {
    CHECK(!fs::exists(out / "attention.png"));
  }
  fs::remove_all(dir);
}

}  // namespace

TEST_CASE("gan: --quick dcgan trains, and writes metrics.json, the checkpoint and the pictures") {
  check_quick_run("gan_dcgan", "--arch dcgan", "bce");
}

TEST_CASE("gan: --quick sagan trains, and writes metrics.json, the checkpoint and the pictures") {
  check_quick_run("gan_sagan", "--arch sagan", "hinge");
}

// Issue 21: attention on or off in either recipe, to measure it apart from hinge loss, spectral norm and TTUR:
// sagan without its blocks, dcgan with them (and its attention.png); the blocks' weights are there or not.
TEST_CASE("gan: --attention turns the self-attention blocks on and off in either recipe") {
  check_quick_run("gan_sagan_noattn", "--arch sagan --attention=false", "hinge");
  check_quick_run("gan_dcgan_attn", "--arch dcgan --attention", "bce");
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) return;
  const fs::path dir = scratch("gan_attention_keys");
  struct Case {
    std::string args;
    bool attention;
  };
  int n = 0;
  for (const Case& c : {Case{"--arch sagan", true}, Case{"--arch sagan --attention=false", false},
                        Case{"--arch dcgan", false}, Case{"--arch dcgan --attention", true}}) {
    INFO(c.args);
    const fs::path out = dir / std::to_string(++n);
    Result r = run(gan, "--quick --threads 1 --steps 1 --fd-every 0 " + c.args + " --out " + out.string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    int64_t g_attn = 0, d_attn = 0;
    for (const auto& [name, t] : load((out / "checkpoint.safetensors").string())) {
      if (name.rfind("model.G.attn.", 0) == 0) ++g_attn;
      if (name.rfind("model.D.attn.", 0) == 0) ++d_attn;
    }
    CHECK((g_attn > 0) == c.attention);
    CHECK((d_attn > 0) == c.attention);
  }
  fs::remove_all(dir);
}

// Issue 21: equal budgets. --fd-g-steps N puts an FD-FMNIST point in steps.csv every N G steps, with its G steps
// and training minutes; --minutes stops training at the budget, mid-epoch.
TEST_CASE("gan: --fd-g-steps scores every N G steps, and --minutes stops at the budget") {
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) {
    MESSAGE("skipped: " << gan << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("gan_budget");
  // wgan-gp: 5 D steps per G step. 1024 images in batches of 64 are 16 D steps an epoch; 30 D steps are 6 G steps.
  Result r = run(gan, "--quick --threads 1 --batch-size 64 --steps 30 --loss wgan-gp --fd-g-steps 2 --out " +
                          (dir / "points").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  std::vector<double> fd = csv_column(dir / "points" / "steps.csv", "fd_fmnist");
  std::vector<double> g = csv_column(dir / "points" / "steps.csv", "g_steps");
  std::vector<double> minutes = csv_column(dir / "points" / "steps.csv", "train_minutes");
  std::vector<double> points, at, when;  // when: the training minutes of each point, which never go back
  for (size_t i = 0; i < fd.size(); ++i)
    if (!std::isnan(fd[i])) points.push_back(fd[i]), at.push_back(g[i]), when.push_back(minutes[i]);
  CHECK(std::is_sorted(when.begin(), when.end()));
  for (double m : when) CHECK(m >= 0);
  CHECK(at == std::vector<double>{2, 4, 6});
  for (double v : points) CHECK((std::isfinite(v) && v > 0));
  nlohmann::json m = read_json(dir / "points" / "metrics.json");
  CHECK(m["final"]["g_steps"] == 6);
  CHECK(m["epochs"][1]["g_steps"] == 6);

  // A budget of 0.002 minutes (0.12 s) ends a run of 1600 steps (100 epochs) long before its end.
  r = run(gan, "--quick --threads 1 --batch-size 64 --steps 1600 --fd-every 0 --minutes 0.002 --out " +
                   (dir / "budget").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  m = read_json(dir / "budget" / "metrics.json");
  CHECK(m["status"] == "finished");
  CHECK(m["final"]["train_minutes"].get<double>() >= 0.002);
  CHECK(m["final"]["g_steps"].get<double>() >= 1);
  CHECK(m["final"]["g_steps"].get<double>() < 1600);
  CHECK(m["epochs"].size() < 100);
  CHECK(std::isfinite(m["final"]["fd_fmnist"].get<double>()));
  fs::remove_all(dir);
}

TEST_CASE("gan: --quick --loss wgan-gp trains the critic through the penalty's double backward") {
  check_quick_run("gan_wgan_gp", "--loss wgan-gp", "wgan-gp");
}

TEST_CASE("gan: N steps, save, --resume, N more == 2N steps, bit for bit") {
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) {
    MESSAGE("skipped: " << gan << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("gan_resume");
  // sagan: G and D, their BatchNorm and spectral-norm buffers, Adam's two groups, and the generator's position.
  // --quick has 32 batches an epoch (1024 images, batches of 32): 3 steps stop mid-epoch.
  const std::string common = "--quick --threads 1 --arch sagan --fd-every 0 ";
  Result whole = run(gan, common + "--steps 6 --out " + (dir / "whole").string(), dir);
  REQUIRE_MESSAGE(whole.exit_code == 0, whole.output);
  Result first = run(gan, common + "--steps 3 --out " + (dir / "first").string(), dir);
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  Result second = run(gan, common + "--steps 6 --resume " + (dir / "first" / "checkpoint.safetensors").string() +
                               " --out " + (dir / "second").string(), dir);
  REQUIRE_MESSAGE(second.exit_code == 0, second.output);
  CHECK_MESSAGE(second.output.find("training from step 3 of 6") != std::string::npos, second.output);

  TensorMap a = load((dir / "whole" / "checkpoint.safetensors").string());
  TensorMap b = load((dir / "second" / "checkpoint.safetensors").string());
  REQUIRE(a.size() == b.size());
  int64_t g_tensors = 0, d_tensors = 0;
  for (const auto& [name, t] : a) {
    REQUIRE_MESSAGE(b.count(name), "the resumed checkpoint lacks ", name);
    CHECK_MESSAGE(t.to_vector<double>() == b.at(name).to_vector<double>(), name, " differs after resuming");
    g_tensors += name.rfind("model.G.", 0) == 0;
    d_tensors += name.rfind("model.D.", 0) == 0;
  }
  CHECK(a.count("model.D.attn.f.weight_u") == 1);
  CHECK(a.count("model.G.bn1.running_mean") == 1);
  CHECK(g_tensors > 0);
  CHECK(d_tensors > 0);
  fs::remove_all(dir);
}

TEST_CASE("gan: bad input is one line on stderr and exit code 2") {
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) {
    MESSAGE("skipped: " << gan << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("gan_errors");
  const std::string out = " --out " + (dir / "run").string();
  { std::ofstream(dir / "garbage.safetensors") << "this is not a safetensors file"; }
  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"--arch biggan" + out, "gan: --arch must be dcgan or sagan, got 'biggan'"},
      {"--loss wgan" + out, "gan: --loss must be bce, hinge or wgan-gp, got 'wgan'"},
      {"--minutes -1" + out, "gan: --minutes must be >= 0, got -1"},
      {"--data " + (dir / "no_such_folder").string() + out, "gan: "},
      {"--out /proc/heed_cannot_write_here", "gan: --out '/proc/heed_cannot_write_here' cannot be created"},
      {"--quick --resume " + (dir / "missing.safetensors").string() + out, "missing.safetensors"},
      {"--quick --resume " + (dir / "garbage.safetensors").string() + out, "garbage.safetensors"},
  };
  for (const Case& c : cases) {
    Result r = run(gan, c.args, dir);
    CHECK_MESSAGE(r.exit_code == 2, c.args, " -> ", r.output);
    CHECK_MESSAGE(r.output.find(c.expected) != std::string::npos, c.args, " -> ", r.output);
    CHECK_MESSAGE(r.output.find("terminate") == std::string::npos, r.output);
  }
  fs::remove_all(dir);
}

// Issue 15: --lr-d 0 set D's learning rate to 0 (the help says 0 means the recipe's), and a damaged judge
// cache failed the evaluation before the epoch's checkpoint was saved, losing the epoch.
TEST_CASE("gan: --lr-d 0 keeps the recipe's, and the checkpoint is saved before the evaluation can fail") {
  const fs::path gan = zoo_program("gan");
  if (!fs::exists(gan)) {
    MESSAGE("skipped: " << gan << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("gan_lr_d");
  fs::create_directories(dir / "cache");
  std::ofstream(dir / "cache" / "fmnist_classifier.safetensors") << "not a safetensors file at all";
  // The judge fails (exit 2, naming the file), but the 2 steps are on disk.
  const std::string cmd_env = "HEED_CACHE=" + (dir / "cache").string() + " ";
  Result damaged =
      run(cmd_env + gan.string(), "--quick --threads 1 --steps 2 --lr-d 0 --out " + (dir / "damaged").string(), dir);
  CHECK_MESSAGE(damaged.exit_code == 2, damaged.output);
  CHECK_MESSAGE(damaged.output.find("fmnist judge: cannot use") != std::string::npos, damaged.output);
  REQUIRE(fs::exists(dir / "damaged" / "checkpoint.safetensors"));
  CHECK(load((dir / "damaged" / "checkpoint.safetensors").string()).at("step").item() == 2);
  nlohmann::json j = nlohmann::json::parse(read_text(dir / "damaged" / "metrics.json"));
  CHECK(j["config"]["lr-d"] == 2e-4);  // dcgan's recipe, not 0
  CHECK(load((dir / "damaged" / "checkpoint.safetensors").string()).at("optim.param_groups.1.lr").item() ==
        doctest::Approx(2e-4));
  fs::remove_all(dir);
}

// Tests for models/zoo/zoo.cpp: the command line (defaults, overrides, every bad argument with its message, the
// real exit codes), main_guard, the progress bar's log lines, and a zoo-style run through RunLog.
#include "models/zoo/zoo.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "heed.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "nn/layers.h"
#include "viz/viz.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("heed_zoo_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& file) const { return (path / file).string(); }
};

// argv as main receives it, from strings.
struct Args {
  std::vector<std::string> words;
  std::vector<const char*> ptrs;
  Args(std::initializer_list<std::string> w) : words(w) {
    for (const auto& s : words) ptrs.push_back(s.c_str());
    ptrs.push_back(nullptr);
  }
  int argc() const { return (int)words.size(); }
  const char* const* argv() const { return ptrs.data(); }
};

// The vae-like command line every test starts from.
zoo::Cli make_cli() {
  zoo::Cli cli("vae", "A test model", {.epochs = 5, .batch_size = 32, .lr = 0.01});
  cli.option("latent", "size of the latent code", 20, 1);
  cli.option("beta", "KL weight", 1.0, 0, 10);
  cli.option("dataset", "which data", std::string("fashion"));
  cli.option("sample", "save samples", false);
  return cli;
}

// The UsageError message for a command line, or "(parsed)".
std::string usage_error(std::initializer_list<std::string> words) {
  zoo::Cli cli = make_cli();
  Args args(words);
  try {
    cli.try_parse(args.argc(), args.argv());
  } catch (const zoo::UsageError& e) {
    return e.what();
  }
  return "(parsed)";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What `f` writes to a C FILE*, read back from a temporary file.
std::string capture(const std::function<void(std::FILE*)>& f) {
  std::FILE* tmp = std::tmpfile();
  f(tmp);
  std::fflush(tmp);
  std::rewind(tmp);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, tmp)) out += buf;
  std::fclose(tmp);
  return out;
}

// What the process writes to its stderr (fd 2) while `f` runs.
std::string capture_stderr(const std::function<void()>& f) {
  std::fflush(stderr);
  std::FILE* tmp = std::tmpfile();
  int saved = ::dup(2);
  ::dup2(::fileno(tmp), 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::rewind(tmp);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, tmp)) out += buf;
  std::fclose(tmp);
  return out;
}

// Runs `child` in a forked process with stdout and stderr captured; returns (exit code, stdout, stderr).
struct ChildResult {
  int code = -1;
  std::string out, err;
};
ChildResult run_child(const std::function<void()>& child) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(::fileno(out), 1);
    ::dup2(::fileno(err), 2);
    child();
    std::fflush(stdout);
    ::_exit(99);  // the child was expected to exit by itself
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ChildResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  for (auto [f, s] : {std::make_pair(out, &r.out), std::make_pair(err, &r.err)}) {
    std::rewind(f);
    char buf[512];
    while (std::fgets(buf, sizeof buf, f)) *s += buf;
    std::fclose(f);
  }
  return r;
}

}  // namespace

TEST_CASE("zoo: Cli defaults come from the model and overrides from the command line") {
  TempDir dir("defaults");
  zoo::Cli cli = make_cli();
  Args args{"vae", "--out", dir / "run"};
  std::optional<zoo::RunConfig> cfg = cli.try_parse(args.argc(), args.argv());
  REQUIRE(cfg);
  CHECK(cfg->model == "vae");
  CHECK(cfg->epochs == 5);
  CHECK(cfg->batch_size == 32);
  CHECK(cfg->lr == 0.01);
  CHECK(cfg->seed == 0);
  CHECK(cfg->threads == 0);
  CHECK_FALSE(cfg->quick);
  CHECK(cfg->out == dir / "run");
  CHECK(fs::is_directory(dir / "run"));  // parse creates the run directory
  CHECK(cli.get<int>("latent") == 20);
  CHECK(cli.get<double>("beta") == 1.0);
  CHECK(cli.get<std::string>("dataset") == "fashion");
  CHECK_FALSE(cli.get<bool>("sample"));
  CHECK_FALSE(cli.given("epochs"));

  Args more{"vae",    "--epochs", "3",    "--batch-size=16", "--lr",       "1e-4",  "--seed", "7",
            "--quick", "--latent", "8",   "--beta=0.5",      "--dataset", "mnist", "--sample", "--out",
            dir / "run2"};
  cfg = cli.try_parse(more.argc(), more.argv());
  REQUIRE(cfg);
  CHECK(cfg->epochs == 3);
  CHECK(cfg->batch_size == 16);
  CHECK(cfg->lr == 1e-4);
  CHECK(cfg->seed == 7);
  CHECK(cfg->quick);
  CHECK(cli.get<int>("latent") == 8);
  CHECK(cli.get<int64_t>("latent") == 8);
  CHECK(cli.get<double>("latent") == 8.0);
  CHECK(cli.get<double>("beta") == 0.5);
  CHECK(cli.get<std::string>("dataset") == "mnist");
  CHECK(cli.get<bool>("sample"));
  CHECK(cli.get<int>("batch-size") == 16);
  CHECK(cli.given("epochs"));
  CHECK_FALSE(cli.given("threads"));
  CHECK(cli.command().find("vae --epochs 3 --batch-size=16") == 0);

  // A second parse starts from the defaults again; --quick=false turns a switch off.
  Args again{"vae", "--quick=false", "--out", dir / "run3"};
  cfg = cli.try_parse(again.argc(), again.argv());
  CHECK(cfg->epochs == 5);
  CHECK_FALSE(cfg->quick);
  CHECK(cli.get<int>("latent") == 20);

  // values() lists every option in order, standard flags first.
  auto values = cli.values();
  REQUIRE(values.size() == 12);
  CHECK(values[0].first == "epochs");
  CHECK(values[7].first == "force");
  CHECK(values[8].first == "latent");
  CHECK(std::get<std::string>(values[5].second) == dir / "run3");
}

TEST_CASE("zoo: --help is reported and not parsed and the help lists every flag") {
  zoo::Cli cli = make_cli();
  Args args{"vae", "--help"};
  CHECK_FALSE(cli.try_parse(args.argc(), args.argv()));
  Args short_form{"vae", "-h"};
  CHECK_FALSE(cli.try_parse(short_form.argc(), short_form.argv()));
  std::string help = cli.help();
  for (const char* flag : {"--epochs", "--batch-size", "--lr", "--seed", "--threads", "--out", "--quick", "--latent",
                           "--beta", "vae options", "A test model", "runs/vae/<date_time>"})
    CHECK_MESSAGE(help.find(flag) != std::string::npos, flag);
}

TEST_CASE("zoo: every bad argument is one clear message") {
  TempDir dir("bad");
  { std::ofstream f(dir / "file.txt"); }
  const std::string o = dir / "ok";
  CHECK(usage_error({"vae", "--epochs", "-3", "--out", o}) == "--epochs must be >= 1, got -3");
  CHECK(usage_error({"vae", "--epochs=0", "--out", o}) == "--epochs must be >= 1, got 0");
  CHECK(usage_error({"vae", "--epochs", "ten", "--out", o}) == "--epochs expects an integer, got 'ten'");
  CHECK(usage_error({"vae", "--epochs", "2.5", "--out", o}) == "--epochs expects an integer, got '2.5'");
  CHECK(usage_error({"vae", "--epochs", "99999999999", "--out", o}) == "--epochs is out of range, got 99999999999");
  CHECK(usage_error({"vae", "--epochs", "--out", o}) == "--epochs expects an integer, got '--out'");
  CHECK(usage_error({"vae", "--epochs"}) == "--epochs needs a value");
  CHECK(usage_error({"vae", "--batch-size", "0", "--out", o}) == "--batch-size must be >= 1, got 0");
  CHECK(usage_error({"vae", "--lr", "0", "--out", o}) == "--lr must be > 0, got 0");
  CHECK(usage_error({"vae", "--lr", "-0.1", "--out", o}) == "--lr must be > 0, got -0.1");
  CHECK(usage_error({"vae", "--lr", "abc", "--out", o}) == "--lr expects a number, got 'abc'");
  CHECK(usage_error({"vae", "--lr", "nan", "--out", o}) == "--lr expects a number, got 'nan'");
  CHECK(usage_error({"vae", "--seed", "-1", "--out", o}) == "--seed must be >= 0, got -1");
  CHECK(usage_error({"vae", "--threads", "-2", "--out", o}) == "--threads must be in [0, 256], got -2");
  CHECK(usage_error({"vae", "--latent", "0", "--out", o}) == "--latent must be >= 1, got 0");
  CHECK(usage_error({"vae", "--beta", "11", "--out", o}) == "--beta must be in [0, 10], got 11");
  CHECK(usage_error({"vae", "--sample=maybe", "--out", o}) == "--sample expects true or false, got 'maybe'");
  CHECK(usage_error({"vae", "--bogus", "--out", o}) == "unknown option --bogus (see --help)");
  CHECK(usage_error({"vae", "-x", "--out", o}) == "unknown option -x (see --help)");
  CHECK(usage_error({"vae", "extra", "--out", o}) == "unexpected argument 'extra' (see --help)");
  CHECK(usage_error({"vae", "--quick", "false", "--out", o}) ==
        "unexpected argument 'false' (a switch takes its value after '=': --quick=false)");
  CHECK(usage_error({"vae", "--out", ""}) == "--out must not be empty");
  // --out below a regular file cannot be created; a regular file is not a directory.
  CHECK(usage_error({"vae", "--out", dir / "file.txt/run"}).find("--out '" + (dir / "file.txt/run") +
                                                                 "' cannot be created: ") == 0);
  CHECK(usage_error({"vae", "--out", dir / "file.txt"}).find("--out '" + (dir / "file.txt") + "'") == 0);
  CHECK(usage_error({"vae", "--epochs", "3", "--out", o}) == "(parsed)");
}

TEST_CASE("zoo: declaring an option wrongly is a bug in the model caught at start") {
  zoo::Cli cli = make_cli();
  CHECK_THROWS_AS(cli.option("latent", "again", 3), Error);
  CHECK_THROWS_AS(cli.option("help", "reserved", 3), Error);
  CHECK_THROWS_AS(cli.option("Bad_Name", "no", 3), Error);
  CHECK_THROWS_AS(cli.option("width", "default outside its range", 0, 1), Error);
  CHECK_THROWS_AS(cli.option("name", "a string has no range", std::string("x"), 1), Error);
  CHECK_THROWS_AS(cli.get<int>("nope"), Error);
  CHECK_THROWS_AS(cli.get<std::string>("epochs"), Error);
  CHECK_THROWS_AS(cli.get<bool>("latent"), Error);
  CHECK_THROWS_AS(zoo::Cli("", "no name"), Error);
  CHECK_THROWS_AS(cli.require(false, "--latent must divide --batch-size"), zoo::UsageError);
  CHECK_NOTHROW(cli.require(true, "fine"));
}

TEST_CASE("zoo: --threads sets heed's thread count") {
  TempDir dir("threads");
  const int before = get_num_threads();
  zoo::Cli cli = make_cli();
  Args args{"vae", "--threads", "1", "--out", dir / "run"};
  REQUIRE(cli.try_parse(args.argc(), args.argv()));
  CHECK(get_num_threads() == 1);
  set_num_threads(before);
}

TEST_CASE("zoo: the default --out is runs/MODEL/TIME and unique") {
  TempDir dir("default_out");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);  // parse creates runs/ relative to the working directory
  zoo::Cli cli = make_cli();
  Args args{"vae"};
  auto a = cli.try_parse(args.argc(), args.argv());
  auto b = cli.try_parse(args.argc(), args.argv());
  fs::current_path(cwd);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->out.rfind("runs/vae/", 0) == 0);
  CHECK(a->out.size() == std::string("runs/vae/2024-05-01_12-30-05").size());
  CHECK(a->out != b->out);  // the second run in the same second gets a suffix
  CHECK(fs::is_directory(dir.path / a->out));
}

TEST_CASE("zoo: parse exits 2 with one line on a bad argument and 0 on --help") {
  // The real exit paths, in a child process so that this one survives them.
  ChildResult bad = run_child([] {
    zoo::Cli cli = make_cli();
    Args args{"vae", "--epochs", "-3"};
    cli.parse(args.argc(), args.argv());
  });
  CHECK(bad.code == 2);
  CHECK(bad.err == "vae: --epochs must be >= 1, got -3\n");
  CHECK(bad.out.empty());

  ChildResult help = run_child([] {
    zoo::Cli cli = make_cli();
    Args args{"vae", "--help"};
    cli.parse(args.argc(), args.argv());
  });
  CHECK(help.code == 0);
  CHECK(help.out.find("--epochs") != std::string::npos);
  CHECK(help.err.empty());

  TempDir dir("banner");
  ChildResult good = run_child([&] {
    zoo::Cli cli = make_cli();
    Args args{"vae", "--epochs", "2", "--out", dir / "run"};
    zoo::RunConfig cfg = cli.parse(args.argc(), args.argv());
    std::fflush(stdout);
    ::_exit(cfg.epochs == 2 ? 0 : 1);
  });
  CHECK(good.code == 0);
  CHECK(good.out.find("vae: heed ") == 0);
  CHECK(good.out.find("OpenBLAS") != std::string::npos);
  CHECK(good.out.find("vae: epochs=2 batch-size=32 lr=0.01 seed=0 threads=0 quick=false force=false latent=20") !=
        std::string::npos);
  CHECK(good.out.find("-> " + (dir / "run")) != std::string::npos);
}

TEST_CASE("zoo: main_guard turns exceptions into one line and an exit code") {
  int code = -1;
  std::string err = capture_stderr([&] { code = zoo::main_guard("vae", [] { return 0; }); });
  CHECK(code == 0);
  CHECK(err.empty());
  err = capture_stderr([&] {
    code = zoo::main_guard("vae", []() -> int { throw zoo::UsageError("--epochs must be >= 1, got -3"); });
  });
  CHECK(code == 2);
  CHECK(err == "vae: --epochs must be >= 1, got -3\n");
  err = capture_stderr([&] {
    code = zoo::main_guard("vae", []() -> int { throw Error("load_fashion_mnist: no directory '/x'\n(install it)"); });
  });
  CHECK(code == 2);
  CHECK(err == "vae: load_fashion_mnist: no directory '/x' (install it)\n");  // one line
  err = capture_stderr([&] {
    code = zoo::main_guard("vae", []() -> int { throw std::runtime_error("loss is NaN"); });
  });
  CHECK(code == 1);
  CHECK(err == "vae: error: loss is NaN\n");
  err = capture_stderr([&] { code = zoo::main_guard("vae", []() -> int { throw 42; }); });
  CHECK(code == 1);
  CHECK(err.find("vae: error: ") == 0);
  CHECK(zoo::main_guard("vae", [] { return 3; }) == 3);
}

TEST_CASE("zoo: progress bar prints quarter lines when not on a terminal") {
  double mean = 0;
  std::string out = capture([&](std::FILE* f) {
    zoo::ProgressBar bar("epoch 1/2", 8, f);
    for (int i = 1; i <= 8; ++i) bar.update(i, 10);
    bar.finish();
    mean = bar.mean_loss();
  });
  CHECK(mean == doctest::Approx(4.5));
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].find("epoch 1/2  25%  2/8  loss 1.5  ") == 0);
  CHECK(lines[1].find(" 50%  4/8  loss 2.5") != std::string::npos);
  CHECK(lines[2].find(" 75%  6/8") != std::string::npos);
  CHECK(lines[3].find("100%  8/8  loss 4.5") != std::string::npos);
  CHECK(lines[0].find("items/s  ETA ") != std::string::npos);
  CHECK(lines[3].find("took ") != std::string::npos);

  // Stopped between quarters: finish says where it stopped. Items weight the mean.
  out = capture([&](std::FILE* f) {
    zoo::ProgressBar bar("e", 8, f);
    bar.update(1.0, 1);
    bar.update(3.0, 3);
    bar.update(3.0, 0);
    mean = bar.mean_loss();
  });
  CHECK(mean == doctest::Approx((1.0 + 9.0 + 3.0) / 5.0));
  CHECK(out.find(" 25%  2/8") != std::string::npos);
  CHECK(out.find(" 38%  3/8") != std::string::npos);  // from the destructor's finish()

  // Few batches: one line, at 100%. No output at all without a FILE.
  out = capture([&](std::FILE* f) {
    zoo::ProgressBar bar("e", 1, f);
    bar.update(0.5);
  });
  CHECK(out.find("100%  1/1  loss 0.5") != std::string::npos);
  CHECK(out.find("batches/s") != std::string::npos);
  zoo::ProgressBar silent("e", 3, nullptr);
  silent.update(2.0);
  CHECK(silent.mean_loss() == 2.0);
  CHECK_THROWS_AS(zoo::ProgressBar("e", 0), Error);
}

TEST_CASE("zoo: a quick run through RunLog writes metrics.json and the CSV files and the plots") {
  TempDir dir("runlog");
  zoo::Cli cli("toy", "A toy model", {.epochs = 3});
  cli.option("hidden", "hidden units", 16, 1);
  Args args{"toy", "--hidden", "32", "--out", dir / "run", "--quick"};
  std::optional<zoo::RunConfig> parsed = cli.try_parse(args.argc(), args.argv());
  REQUIRE(parsed);
  zoo::RunConfig cfg = *parsed;
  cfg.epochs = 2;  // what a model might do under --quick: the record must show what ran

  std::string console = capture([&](std::FILE* f) {
    zoo::RunLog log(cli, cfg, f);
    log.set_config("train_size", int64_t(512));
    for (int e = 1; e <= 2; ++e) {
      for (int s = 1; s <= 3; ++s) log.step((e - 1) * 3 + s, {{"loss", 1.0 / s}});
      log.epoch(e, {{"train_loss", 1.0 / e}, {"test_loss", 1.2 / e}, {"accuracy", 0.5 + 0.1 * e}});
      if (e == 1) {
        auto j = nlohmann::json::parse(read_file(dir / "run/metrics.json"));
        CHECK(j["status"] == "running");  // an interrupted run keeps its epochs
        CHECK(j["epochs"].size() == 1);
      }
    }
    log.final({{"accuracy", 0.7}, {"nll", 1.5}});
    log.final({{"accuracy", 0.75}});  // replaces, keeps the order
    CHECK(log.epoch_label(2) == "epoch 2/2");
    log.finish();
  });

  auto j = nlohmann::json::parse(read_file(dir / "run/metrics.json"));
  CHECK(j["model"] == "toy");
  CHECK(j["status"] == "finished");
  CHECK(j["heed_version"].is_string());
  CHECK(j["git_commit"].is_string());
  CHECK_FALSE(j["blas_core"].get<std::string>().empty());
  CHECK(j["blas"].get<std::string>().find("OpenBLAS") != std::string::npos);
  CHECK(j["command"] == "toy --hidden 32 --out " + (dir / "run") + " --quick");
  CHECK(j["wall_time_s"].get<double>() >= 0);
  CHECK(j["config"]["epochs"] == 2);
  CHECK(j["config"]["batch-size"] == 64);
  CHECK(j["config"]["lr"] == 1e-3);
  CHECK(j["config"]["quick"] == true);
  CHECK(j["config"]["hidden"] == 32);
  CHECK(j["config"]["train_size"] == 512);
  CHECK(j["config"]["out"] == dir / "run");
  REQUIRE(j["epochs"].size() == 2);
  CHECK(j["epochs"][1]["epoch"] == 2);
  CHECK(j["epochs"][1]["train_loss"] == 0.5);
  CHECK(j["epochs"][1]["time_s"].get<double>() >= j["epochs"][0]["time_s"].get<double>());
  CHECK(j["final"]["accuracy"] == 0.75);
  CHECK(j["final"]["nll"] == 1.5);
  CHECK(j["final"].begin().key() == "accuracy");

  std::string csv = read_file(dir / "run/metrics.csv");
  CHECK(csv.find("epoch,train_loss,test_loss,accuracy,time_s\n1,1,1.2,0.6,") == 0);
  CHECK(csv.find("\n2,0.5,0.6,0.7,") != std::string::npos);
  std::string steps = read_file(dir / "run/steps.csv");
  CHECK(steps.find("step,loss\n1,1\n2,0.5\n") == 0);
  for (const auto& entry : fs::directory_iterator(dir.path / "run"))
    CHECK_MESSAGE(entry.path().string().find(".tmp") == std::string::npos, entry.path());  // renamed, not left

  CHECK(console.find("epoch 1/2  train_loss 1  test_loss 1.2  accuracy 0.6  (") == 0);
  CHECK(console.find("toy: finished in ") != std::string::npos);
  CHECK(console.find("  metric         epoch 1     epoch 2\n") != std::string::npos);
  CHECK(console.find("  train_loss           1         0.5\n") != std::string::npos);
  CHECK(console.find("  final\n  accuracy          0.75\n  nll                1.5\n") != std::string::npos);

  if (viz::gnuplot_program().empty()) {
    CHECK_FALSE(fs::exists(dir / "run/loss.png"));
  } else {
    for (const char* png : {"loss.png", "metrics.png", "steps.png"}) {
      INFO(png);
      viz::Image img = viz::load_png(dir / ("run/" + std::string(png)));
      CHECK(img.width == 800);
      CHECK(img.height == 500);
    }
  }
}

TEST_CASE("zoo: a RunLog that never finishes is marked incomplete") {
  TempDir dir("incomplete");
  zoo::RunConfig cfg{.model = "toy", .epochs = 5, .out = dir / "run"};
  try {
    zoo::RunLog log(cfg, nullptr);
    log.epoch(1, {{"train_loss", 0.9}});
    throw std::runtime_error("diverged");
  } catch (const std::runtime_error&) {
  }
  auto j = nlohmann::json::parse(read_file(dir / "run/metrics.json"));
  CHECK(j["status"] == "incomplete");
  CHECK(j["epochs"].size() == 1);
  CHECK(j["config"]["epochs"] == 5);
  CHECK(j["command"] == "toy");
}

TEST_CASE("zoo: RunLog refuses metric names that would break the CSV") {
  TempDir dir("names");
  zoo::RunLog log(zoo::RunConfig{.model = "toy", .out = dir / "run"}, nullptr);
  CHECK_THROWS_AS(log.epoch(1, {{"a,b", 1.0}}), Error);
  CHECK_THROWS_AS(log.epoch(1, {{"", 1.0}}), Error);
  CHECK_THROWS_AS(log.step(1, {{"step", 1.0}}), Error);
  CHECK_THROWS_AS(log.final({{"time_s", 1.0}}), Error);
  CHECK_THROWS_AS(zoo::RunLog(zoo::RunConfig{.model = "toy"}, nullptr), Error);  // no out directory
  // NaN is a legal value: null in JSON, nan in the CSV. A plot of nothing but NaN fails in gnuplot, and
  // finish reports that in one line instead of throwing: the numbers are on disk already.
  log.epoch(1, {{"loss", std::nan("")}});
  std::string err = capture_stderr([&] { log.finish(); });
  if (!viz::gnuplot_program().empty()) {
    CHECK(err.find("toy: could not draw loss.png: plot_lines: gnuplot failed on '") == 0);
    CHECK(err.find("all points y value undefined") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
  auto j = nlohmann::json::parse(read_file(dir / "run/metrics.json"));
  CHECK(j["epochs"][0]["loss"].is_null());
  CHECK(read_file(dir / "run/metrics.csv").find("\n1,nan,") != std::string::npos);
}

// ---- issue 15 ---------------------------------------------------------------------------------------------------

TEST_CASE("zoo: TrainClock counts training time only, and a budget is over once it has passed") {
  zoo::TrainClock unlimited;  // a budget of 0 minutes is no budget
  unlimited.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(!unlimited.over());
  CHECK(unlimited.minutes() > 0);

  zoo::TrainClock clock(0.0005);  // 30 ms
  CHECK(clock.minutes() == 0);
  CHECK(!clock.over());
  clock.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  clock.stop();
  const double stretch = clock.minutes();
  CHECK(stretch >= 10.0 / 60000);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));  // stopped: an evaluation, say, does not count
  CHECK(clock.minutes() == stretch);
  CHECK(!clock.over());
  clock.start();
  clock.start();  // a second start is no restart: the stretch goes on
  std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK(clock.over());
  clock.stop();
  CHECK(clock.minutes() >= stretch + 25.0 / 60000);

  CHECK_THROWS_WITH_AS(zoo::TrainClock(-1), doctest::Contains("TrainClock"), heed::Error);
  CHECK_THROWS_AS(zoo::TrainClock(std::nan("")), heed::Error);
}

TEST_CASE("zoo: --threads has an upper bound (100000 crashed inside libgomp)") {
  TempDir dir("threads_max");
  CHECK(usage_error({"vae", "--threads", "100000", "--out", dir / "run"}) ==
        "--threads must be in [0, 256], got 100000");
  CHECK(usage_error({"vae", "--threads", "257", "--out", dir / "run"}) == "--threads must be in [0, 256], got 257");
}

TEST_CASE("zoo: parse_args only reads argv: no folder is created") {
  TempDir dir("parse_args");
  zoo::Cli cli = make_cli();
  Args args{"vae", "--out", dir / "never"};
  REQUIRE(cli.parse_args(args.argc(), args.argv()));
  CHECK_FALSE(fs::exists(dir / "never"));
}

TEST_CASE("zoo: an --out that holds a run is refused unless --resume or --force") {
  TempDir dir("reuse");
  std::ofstream(dir / "metrics.json") << "{}";
  const std::string e = usage_error({"vae", "--out", dir.path.string()});
  CHECK(e.find("holds a run already (metrics.json)") != std::string::npos);
  CHECK(e.find("--force") != std::string::npos);
  CHECK(usage_error({"vae", "--out", dir.path.string(), "--force"}) == "(parsed)");
  CHECK(usage_error({"vae", "--out", dir / "fresh"}) == "(parsed)");
}

TEST_CASE("zoo: --resume checks --seed against the checkpoint and takes its seed otherwise") {
  TempDir dir("resume_seed");
  const std::string ck = dir / "ck.safetensors";
  save(ck, {{"x", zeros({1})}}, {{"seed", "7"}});
  auto cli_with_resume = [] {
    zoo::Cli cli = make_cli();
    cli.option("resume", "checkpoint", std::string());
    return cli;
  };
  {
    zoo::Cli cli = cli_with_resume();
    Args args{"vae", "--resume", ck, "--seed", "8", "--out", dir / "a"};
    CHECK_THROWS_WITH_AS(cli.try_parse(args.argc(), args.argv()), doctest::Contains("--seed 8 differs from the seed 7"),
                         zoo::UsageError);
  }
  {
    zoo::Cli cli = cli_with_resume();
    Args args{"vae", "--resume", ck, "--out", dir / "b"};
    std::optional<zoo::RunConfig> cfg = cli.try_parse(args.argc(), args.argv());
    REQUIRE(cfg);
    CHECK(cfg->seed == 7);
    CHECK(cli.get<int64_t>("seed") == 7);
  }
  {
    zoo::Cli cli = cli_with_resume();
    std::ofstream(dir / "metrics.json") << "{}";
    Args args{"vae", "--resume", ck, "--seed", "7", "--out", dir.path.string()};  // resuming in place is allowed
    CHECK(cli.try_parse(args.argc(), args.argv()));
  }
}

TEST_CASE("zoo: a resumed RunLog keeps the epochs and steps written before, and replaces those it redoes") {
  TempDir dir("append");
  const std::string out = dir / "run";
  {
    zoo::RunLog log(zoo::RunConfig{.model = "toy", .epochs = 3, .out = out}, nullptr);
    for (int e = 1; e <= 3; ++e) {
      log.step(e * 10, {{"loss", 1.0 / e}});
      log.epoch(e, {{"train_loss", 1.0 / e}});
    }
    log.finish();
  }
  zoo::Cli cli("toy", "A toy model", {.epochs = 6});
  cli.option("resume", "checkpoint", std::string());
  save(dir / "ck.safetensors", {{"x", zeros({1})}});
  Args args{"toy", "--resume", dir / "ck.safetensors", "--out", out};
  std::optional<zoo::RunConfig> cfg = cli.try_parse(args.argc(), args.argv());
  REQUIRE(cfg);
  {
    zoo::RunLog log(cli, *cfg, nullptr);
    for (int e = 3; e <= 6; ++e) {  // resumed from the middle of epoch 3: it is redone
      log.step(e * 10, {{"loss", 0.5 / e}});
      log.epoch(e, {{"train_loss", 0.5 / e}});
    }
    log.finish();
  }
  auto j = nlohmann::json::parse(read_file(out + "/metrics.json"));
  REQUIRE(j["epochs"].size() == 6);
  for (int e = 1; e <= 6; ++e) CHECK(j["epochs"][e - 1]["epoch"] == e);
  CHECK(j["epochs"][0]["train_loss"] == 1.0);
  CHECK(j["epochs"][2]["train_loss"] == doctest::Approx(0.5 / 3));
  std::string csv = read_file(out + "/metrics.csv");
  CHECK(csv.find("epoch,train_loss,time_s\n1,1,") == 0);
  CHECK(csv.find("\n6,") != std::string::npos);
  std::string steps = read_file(out + "/steps.csv");
  CHECK(steps.find("step,loss\n10,1\n20,0.5\n30,0.166666667\n40,0.125\n") == 0);
}

TEST_CASE("zoo: divergence, a full disk and out of memory are failures of the run: exit 1") {
  CHECK_THROWS_WITH_AS(zoo::check_finite_loss(std::nan(""), 12), "diverged at step 12 (loss nan)", zoo::Diverged);
  CHECK_NOTHROW(zoo::check_finite_loss(0.5, 1));
  nn::Linear fc(2, 2);
  CHECK_NOTHROW(zoo::check_finite_parameters(fc, 3));
  {
    NoGradGuard g;
    fc.weight.fill_(INFINITY);
  }
  CHECK_THROWS_WITH_AS(zoo::check_finite_parameters(fc, 3), "diverged at step 3 (parameter weight is not finite)",
                       zoo::Diverged);
  std::string err = capture_stderr([] {
    CHECK(zoo::main_guard("vae", [] () -> int { throw zoo::Diverged("diverged at step 4 (loss nan)"); }) == 1);
    CHECK(zoo::main_guard("vae",
                          []() -> int { throw io::IoError("save: cannot write 'x': No space left on device"); }) == 1);
    CHECK(zoo::main_guard("vae", [] () -> int { return (int)zeros({1LL << 60}).numel(); }) == 1);
  });
  CHECK(err.find("vae: error: diverged at step 4 (loss nan)\n") != std::string::npos);
  CHECK(err.find("No space left on device") != std::string::npos);
  CHECK(err.find("out of memory allocating") != std::string::npos);
}

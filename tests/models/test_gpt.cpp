// Tests for models/gpt.cpp, through the program itself (its model lives in that one file): each attention
// trains (the loss goes down) and writes metrics.json, the loss curves and the attention pictures; a checkpoint
// samples with --sample-only; bad input is one line and exit code 2.
//
// The zoo programs are built next to heed_tests, so the tests run <folder of this executable>/gpt. Without it
// (a build with HEED_BUILD_MODELS=OFF) they say so and pass.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/models/zoo_program.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace heed::test;


TEST_CASE("gpt: dense, local and block-sparse attention train, write their files, and sample from a checkpoint") {
  const fs::path gpt = zoo_program("gpt");
  if (!fs::exists(gpt)) {
    MESSAGE("skipped: " << gpt << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("gpt");
  for (const std::string attn : {"dense", "local --window 8", "block-sparse --block 16"}) {
    CAPTURE(attn);
    const fs::path out = dir / attn.substr(0, attn.find(' '));
    Result r = run(gpt, "--quick --steps 40 --attn " + attn + " --out " + out.string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const json m = read_json(out / "metrics.json");
    CHECK(m["status"] == "finished");
    // 113 characters: a uniform guess costs ln 113 = 4.73 nats; 40 steps of AdamW learn the frequent ones.
    const double val = m["final"]["val_loss"].get<double>();
    CHECK(val < 3.6);
    CHECK(m["final"]["peak_mb"].get<double>() > 0);
    CHECK(r.output.find("gpt: a sample (temperature 0.80, top-k 20):\nQ: ") != std::string::npos);
    // steps.csv: every 10 steps, the train and validation loss; the last validation loss is the final one.
    std::ifstream csv(out / "steps.csv");
    std::string header, first, line, last;
    std::getline(csv, header), std::getline(csv, first);
    while (std::getline(csv, line)) last = line;
    CHECK(header.rfind("step,train_loss,val_loss", 0) == 0);
    CHECK(first.rfind("10,", 0) == 0);
    CHECK(last.rfind("40,", 0) == 0);
    CHECK(fs::exists(out / "attention_layer1.png"));
    CHECK(fs::exists(out / "attention_layer2.png"));
  }
  // --sample-only: the dense run's weights, a prompt of our own, 30 characters after it.
  Result s = run(gpt, "--quick --sample-only " + (dir / "dense" / "checkpoint.safetensors").string() +
                          " --prompt 'What is' --sample-chars 30 --top-k 1 --out " + (dir / "sample").string(), dir);
  REQUIRE_MESSAGE(s.exit_code == 0, s.output);
  CHECK(s.output.find("trained for 40 steps") != std::string::npos);
  const size_t at = s.output.find("top-k 1):\nWhat is");
  REQUIRE_MESSAGE(at != std::string::npos, s.output);
  // top-k 1 is greedy: the same prompt gives the same text again.
  Result again = run(gpt, "--quick --sample-only " + (dir / "dense" / "checkpoint.safetensors").string() +
                              " --prompt 'What is' --sample-chars 30 --top-k 1 --force --out " +
                              (dir / "sample").string(), dir);
  CHECK(again.output.substr(again.output.find("top-k 1):")) == s.output.substr(at));
  fs::remove_all(dir);
}

TEST_CASE("gpt: bad input is one line on stderr and exit code 2") {
  const fs::path gpt = zoo_program("gpt");
  if (!fs::exists(gpt)) return;
  const fs::path dir = scratch("gpt_errors");
  const std::string out = " --out " + (dir / "run").string();
  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"--attn sparse" + out, "gpt: --attn must be dense, local or block-sparse, got 'sparse'"},
      {"--block 24" + out, "gpt: --block 24 must divide --context 64"},
      {"--d-model 100 --heads 3" + out, "gpt: --d-model 100 must be a multiple of --heads 3"},
      {"--quick --steps 1 --prompt '€'" + out, "gpt: the prompt holds a character (U+8364)"},
      {"--sample-only " + (dir / "missing.safetensors").string() + out, "gpt: "},
  };
  for (const Case& c : cases) {
    Result r = run(gpt, c.args, dir);
    CHECK_MESSAGE(r.exit_code == 2, c.args, "\n", r.output);
    CHECK_MESSAGE(r.output.find(c.expected) != std::string::npos, c.args, "\n", r.output);
    fs::remove_all(dir / "run");
  }
  fs::remove_all(dir);
}

// Tests for models/recommender.cpp, through the program itself (its models live in that one file): the
// baselines on data whose answer is known by hand, SASRec learning on the synthetic data, resuming, the dump for
// the PyTorch reference, and bad input as one line and exit code 2. The ranking metrics are tested in
// tests/metrics/test_metrics.cpp and the MovieLens loader in tests/data/test_data.cpp.
//
// The zoo programs are built next to heed_tests, so the tests run <folder of this executable>/recommender.
// Without it (a build with HEED_BUILD_MODELS=OFF) they say so and pass.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

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


TEST_CASE("recommender: the Markov chain and popularity on a cycle of items, where the answers are known") {
  const fs::path program = zoo_program("recommender");
  if (!fs::exists(program)) {
    MESSAGE("skipped: " << program << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("recommender_cycle");
  // 30 users; user u has items u, u+1, ..., u+5 (mod 30), one per second, in u.data's format. Every transition
  // j -> j+1 appears in other users' training items, so the Markov chain puts each test target first: HR@10 and
  // NDCG@10 are 1. Every item is equally popular in training (4 times), so popularity ties everything, and ties
  // count against the target: it is ranked last, HR@10 0, with full ranking and with sampled negatives.
  {
    std::ofstream f(dir / "u.data");
    for (int u = 0; u < 30; ++u)
      for (int t = 0; t < 6; ++t) f << u + 1 << '\t' << (u + t) % 30 + 1 << "\t5\t" << 1000 + t << '\n';
  }
  Result r = run(program, "--movielens " + (dir / "u.data").string() + " --epochs 1 --d-model 16 --out " +
                              (dir / "out").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const json f = read_json(dir / "out" / "metrics.json")["final"];
  CHECK(f["markov_hr10"].get<double>() == 1.0);
  CHECK(f["markov_ndcg10"].get<double>() == 1.0);
  CHECK(f["markov_hr10_full"].get<double>() == 1.0);
  CHECK(f["popularity_hr10"].get<double>() == 0.0);
  CHECK(f["popularity_hr10_full"].get<double>() == 0.0);
  CHECK(!f.contains("oracle_hr10"));  // MovieLens has no oracle
  CHECK(fs::exists(dir / "out" / "attention.png"));
  fs::remove_all(dir);
}

TEST_CASE("recommender: --quick learns, the oracle leads, and the files are written") {
  const fs::path program = zoo_program("recommender");
  if (!fs::exists(program)) return;
  const fs::path dir = scratch("recommender_quick");
  Result r = run(program, "--quick --epochs 4 --out " + (dir / "out").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const json m = read_json(dir / "out" / "metrics.json");
  CHECK(m["status"] == "finished");
  const json& f = m["final"];
  for (const char* key : {"hr10", "ndcg10", "oracle_hr10", "hr10_full", "gap_to_oracle", "bpr_hr10"})
    REQUIRE_MESSAGE(f.contains(key), key);
  // 120 items and 100 sampled negatives: chance HR@10 is 10/101. The oracle knows the true model.
  CHECK(f["oracle_hr10"].get<double>() > 0.3);
  CHECK(f["oracle_hr10"].get<double>() >= f["popularity_hr10"].get<double>());
  CHECK(f["hr10"].get<double>() > 10.0 / 101);
  const double gap = 1 - f["hr10"].get<double>() / f["oracle_hr10"].get<double>();
  CHECK(f["gap_to_oracle"].get<double>() == doctest::Approx(gap));
  // SASRec's training loss goes down from the first epoch to the last (cross-entropy over 120 items).
  std::ifstream csv(dir / "out" / "metrics.csv");
  std::string header, first, last, line;
  std::getline(csv, header), std::getline(csv, first);
  while (std::getline(csv, line)) last = line;
  REQUIRE(header.rfind("epoch,train_loss,bpr_loss,popularity_hr10,markov_hr10,bpr_hr10,sasrec_hr10,oracle_hr10", 0) ==
          0);
  const double loss1 = std::stod(first.substr(first.find(',') + 1));
  const double loss4 = std::stod(last.substr(last.find(',') + 1));
  CHECK(loss4 < loss1);
  CHECK(fs::exists(dir / "out" / "attention.png"));
  CHECK(fs::exists(dir / "out" / "checkpoint.safetensors"));
  fs::remove_all(dir);
}

TEST_CASE("recommender: 1 epoch, --resume, 1 more == 2 epochs; --dump-data writes what the reference reads") {
  const fs::path program = zoo_program("recommender");
  if (!fs::exists(program)) return;
  const fs::path dir = scratch("recommender_resume");
  REQUIRE(run(program, "--quick --epochs 2 --out " + (dir / "whole").string(), dir).exit_code == 0);
  REQUIRE(run(program, "--quick --epochs 1 --out " + (dir / "half").string(), dir).exit_code == 0);
  Result r = run(program, "--quick --epochs 2 --resume " + (dir / "half" / "checkpoint.safetensors").string() +
                              " --out " + (dir / "half").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const json a = read_json(dir / "whole" / "metrics.json")["final"];
  const json b = read_json(dir / "half" / "metrics.json")["final"];
  CHECK(a["hr10"].get<double>() == b["hr10"].get<double>());
  CHECK(a["ndcg10_full"].get<double>() == b["ndcg10_full"].get<double>());
  CHECK(a["bpr_hr10"].get<double>() == b["bpr_hr10"].get<double>());

  r = run(program, "--quick --dump-data " + (dir / "data.txt").string() + " --out " + (dir / "dump").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  std::ifstream f(dir / "data.txt");
  std::string line;
  std::getline(f, line);
  CHECK(line == "n_items 120");
  int seqs = 0, negs = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string tag;
    int count = 0, value, out_of_range = 0;
    in >> tag;
    while (in >> value) ++count, out_of_range += value < 0 || value >= 120;
    CHECK(out_of_range == 0);
    CHECK(count == (tag == "seq" ? 20 : 100));
    (tag == "seq" ? seqs : negs) += 1;
  }
  CHECK(seqs == 300);
  CHECK(negs == 600);
  fs::remove_all(dir);
}

TEST_CASE("recommender: --window 1 masks the history: a different model, recorded in metrics.json") {
  const fs::path program = zoo_program("recommender");
  if (!fs::exists(program)) return;
  const fs::path dir = scratch("recommender_window");
  // The same seed and data: only the attention mask differs (position t sees item t alone with --window 1).
  Result all = run(program, "--quick --epochs 1 --out " + (dir / "all").string(), dir);
  REQUIRE_MESSAGE(all.exit_code == 0, all.output);
  Result one = run(program, "--quick --epochs 1 --window 1 --out " + (dir / "one").string(), dir);
  REQUIRE_MESSAGE(one.exit_code == 0, one.output);
  const json a = read_json(dir / "all" / "metrics.json"), w = read_json(dir / "one" / "metrics.json");
  CHECK(a["config"]["window"] == 0);
  CHECK(w["config"]["window"] == 1);
  // The baselines do not attend, so they agree; SASRec's scores must not.
  CHECK(w["final"]["popularity_hr10"] == a["final"]["popularity_hr10"]);
  CHECK(w["final"]["ndcg10"].get<double>() != a["final"]["ndcg10"].get<double>());
  fs::remove_all(dir);
}

TEST_CASE("recommender: bad input is one line on stderr and exit code 2") {
  const fs::path program = zoo_program("recommender");
  if (!fs::exists(program)) return;
  const fs::path dir = scratch("recommender_errors");
  const std::string out = " --out " + (dir / "run").string();
  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"--d-model 30 --heads 4" + out, "recommender: --d-model 30 must be a multiple of --heads 4"},
      {"--items 50" + out, "recommender: --items must be at least 102, got 50"},
      {"--dropout 1.5" + out, "recommender: --dropout must be in [0, 0.9], got 1.5"},
      {"--window -1" + out, "recommender: --window must be >= 0, got -1"},
      {"--movielens " + (dir / "missing.dat").string() + out, "recommender: load_movielens: cannot open"},
  };
  for (const Case& c : cases) {
    Result r = run(program, c.args, dir);
    CHECK_MESSAGE(r.exit_code == 2, c.args, "\n", r.output);
    CHECK_MESSAGE(r.output.find(c.expected) != std::string::npos, c.args, "\n", r.output);
    fs::remove_all(dir / "run");
  }
  fs::remove_all(dir);
}

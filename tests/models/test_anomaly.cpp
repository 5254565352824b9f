// Tests for models/anomaly.cpp, through the program itself (its modules live in that one file): a transformation
// net learns (its loss goes down, its AUROC beats chance) and writes metrics.json and its pictures; an
// --all-classes run resumes from its per-class checkpoints; bad input is one line and exit code 2.
// The metrics themselves (auroc, average_precision, detection_rate) are tested in tests/metrics/test_metrics.cpp.
//
// The zoo programs are built next to heed_tests, so the tests run <folder of this executable>/anomaly. Without
// it (a build with HEED_BUILD_MODELS=OFF) they say so and pass.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/models/zoo_program.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace heed::test;


TEST_CASE("anomaly: geom-attn learns its transformations and writes metrics.json and the pictures") {
  const fs::path anomaly = zoo_program("anomaly");
  if (!fs::exists(anomaly)) {
    MESSAGE("skipped: " << anomaly << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("anomaly_geom");
  // --quick: 256 images of class 1 (trousers, an easy class), 8 steps an epoch, two epochs; 500 test images.
  Result r = run(anomaly, "--quick --threads 1 --epochs 2 --width 8 --class 1 --out " + (dir / "out").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("the recall of anomalies at the threshold that flags 5% of the normal test images") !=
        std::string::npos);
  const json m = read_json(dir / "out" / "metrics.json");
  CHECK(m["status"] == "finished");
  const json& f = m["final"];
  CHECK(f["auroc"].get<double>() > 0.6);  // chance is 0.5; a trained run of this size gives about 0.9
  CHECK(f["ap"].get<double>() > 0.9);     // 9 in 10 test images are anomalies: chance is about 0.9
  CHECK(f["detection_rate"].get<double>() >= 0.0);
  CHECK(f["detection_rate"].get<double>() <= 1.0);
  // steps.csv: one row per class, "step" being the class: its metrics and each epoch's mean training loss.
  std::ifstream csv(dir / "out" / "steps.csv");
  std::string header, row;
  std::getline(csv, header), std::getline(csv, row);
  REQUIRE(header == "step,auroc,ap,detection_rate,train_loss_epoch1,train_loss_epoch2");
  std::vector<double> cells;
  std::stringstream cells_in(row);
  for (std::string cell; std::getline(cells_in, cell, ',');) cells.push_back(std::stod(cell));
  REQUIRE(cells.size() == 6);
  CHECK(cells[0] == 1);
  CHECK(cells[1] == doctest::Approx(f["auroc"].get<double>()));
  CHECK(cells[5] < cells[4]);  // the loss goes down
  for (const std::string png : {"class1_extremes.png", "class1_where.png"}) {
    CHECK_MESSAGE(fs::exists(dir / "out" / png), png, " was not written");
    if (fs::exists(dir / "out" / png)) CHECK(fs::file_size(dir / "out" / png) > 100);
  }
  CHECK(fs::exists(dir / "out" / "class1_histogram.csv"));
  CHECK(fs::exists(dir / "out" / "class1.safetensors"));
  fs::remove_all(dir);
}

TEST_CASE("anomaly: --score dirichlet, --with-pca, --rescore and --gamma") {
  const fs::path anomaly = zoo_program("anomaly");
  if (!fs::exists(anomaly)) {
    MESSAGE("skipped: " << anomaly << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("anomaly_dirichlet");
  // The default score: GEOM's Dirichlet score (metrics::dirichlet_mle is tested against GEOM's code in
  // tests/metrics/) plus pca's error.
  Result r = run(anomaly, "--quick --threads 1 --epochs 2 --width 8 --class 1 --arch geom --score dirichlet --out " +
                              (dir / "d").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(read_json(dir / "d" / "metrics.json")["final"]["auroc"].get<double>() > 0.6);
  // Its checkpoint does not resume a run with the other score: exit 2, and the message names both.
  Result wrong = run(anomaly,
                     "--quick --threads 1 --epochs 2 --width 8 --class 1 --arch geom --score loglik "
                     "--with-pca=false --resume " +
                         (dir / "d").string() + " --out " + (dir / "l").string(),
                     dir);
  CHECK(wrong.exit_code == 2);
  CHECK_MESSAGE(wrong.output.find("holds arch 'geom', score dirichlet+pca and 500 scores, this run is geom, score "
                                  "loglik on") != std::string::npos, wrong.output);
  // ... but with --rescore it takes the weights and scores again (training does not depend on the score), here
  // with geom's simple score alone: the same net, another score.
  Result again = run(anomaly, "--quick --threads 1 --epochs 2 --width 8 --class 1 --arch geom --score loglik "
                                  "--with-pca=false --resume " +
                                  (dir / "d").string() + " --rescore --out " + (dir / "p").string(), dir);
  REQUIRE_MESSAGE(again.exit_code == 0, again.output);
  CHECK(again.output.find("resumed from " + (dir / "d" / "class1.safetensors").string() + ", scoring") !=
        std::string::npos);
  CHECK(read_json(dir / "p" / "metrics.json")["final"]["auroc"].get<double>() > 0.6);
  // geom-attn with the attention switched on from the start.
  Result g = run(anomaly, "--quick --threads 1 --epochs 2 --width 8 --class 1 --gamma 1 --out " + (dir / "g").string(),
                 dir);
  REQUIRE_MESSAGE(g.exit_code == 0, g.output);
  CHECK(read_json(dir / "g" / "metrics.json")["final"]["auroc"].get<double>() > 0.6);
  Result bad = run(anomaly, "--quick --score mean --out " + (dir / "b").string(), dir);
  CHECK(bad.exit_code == 2);
  CHECK_MESSAGE(bad.output.find("--score must be loglik or dirichlet, got 'mean'") != std::string::npos, bad.output);
  fs::remove_all(dir);
}

TEST_CASE("anomaly: --all-classes writes every class, and --resume takes finished classes from their checkpoints") {
  const fs::path anomaly = zoo_program("anomaly");
  if (!fs::exists(anomaly)) {
    MESSAGE("skipped: " << anomaly << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("anomaly_resume");
  Result whole = run(anomaly, "--quick --threads 1 --arch pca --all-classes --out " + (dir / "whole").string(), dir);
  REQUIRE_MESSAGE(whole.exit_code == 0, whole.output);
  const json a = read_json(dir / "whole" / "metrics.json");
  for (int k = 0; k < 10; ++k) CHECK(a["final"].contains("auroc_class" + std::to_string(k)));
  CHECK(a["final"]["auroc"].get<double>() > 0.7);  // PCA of 256 images already ranks most anomalies first
  // A run interrupted after some classes: keep two checkpoints, resume, and get the same table.
  fs::create_directories(dir / "partial");
  for (const char* name : {"class0.safetensors", "class3.safetensors"})
    fs::copy_file(dir / "whole" / name, dir / "partial" / name);
  Result resumed = run(anomaly, "--quick --threads 1 --arch pca --all-classes --resume " + (dir / "partial").string() +
                                    " --out " + (dir / "resumed").string(), dir);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(resumed.output.find("class0 (T-shirt/top) 1/10: resumed from") != std::string::npos);
  CHECK(resumed.output.find("class3 (Dress) 4/10: resumed from") != std::string::npos);
  const json b = read_json(dir / "resumed" / "metrics.json");
  CHECK(b["final"] == a["final"]);
  // A checkpoint of another arch does not fit: exit 2 and one line that says why.
  Result wrong = run(anomaly, "--quick --threads 1 --arch cae --resume " + (dir / "partial").string() + " --out " +
                                  (dir / "wrong").string(), dir);
  CHECK(wrong.exit_code == 2);
  CHECK_MESSAGE(wrong.output.find("holds arch 'pca', score error") != std::string::npos, wrong.output);
  fs::remove_all(dir);
}

TEST_CASE("anomaly: bad input is one line on stderr and exit code 2") {
  const fs::path anomaly = zoo_program("anomaly");
  if (!fs::exists(anomaly)) {
    MESSAGE("skipped: " << anomaly << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("anomaly_bad");
  Result arch = run(anomaly, "--quick --arch lstm --out " + (dir / "a").string(), dir);
  CHECK(arch.exit_code == 2);
  CHECK_MESSAGE(
      arch.output.find("anomaly: --arch must be pca, cae, geom or geom-attn, got 'lstm'") != std::string::npos,
      arch.output);
  Result cls = run(anomaly, "--quick --class 10 --out " + (dir / "b").string(), dir);
  CHECK(cls.exit_code == 2);
  CHECK_MESSAGE(cls.output.find("--class") != std::string::npos, cls.output);
  fs::remove_all(dir);
}

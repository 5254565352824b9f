// Tests for models/cluster.cpp, through the program itself (its modules live in that one file): each --arch
// trains on the first 2000 images and writes metrics.json (final acc, nmi, ari) and its pictures; a resumed run
// continues from the checkpoint; --synthetic, stages 2 and 3 (kNN graph, spectral embedding, k-means) on 10
// well-separated Gaussians, finds them exactly (ACC 1); bad input is one line and exit code 2.
// The metrics themselves (clustering_accuracy, nmi, ari, kmeans) are tested against scikit-learn in
// tests/metrics/test_metrics.cpp.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/models/zoo_program.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace heed::test;

TEST_CASE("cluster: every --arch clusters 2000 images better than chance and writes metrics.json and pictures") {
  const fs::path cluster = zoo_program("cluster");
  if (!fs::exists(cluster)) {
    MESSAGE("skipped: " << cluster << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("cluster_arch");
  for (const std::string arch : {"ae", "patch-attn", "cos-attn"}) {
    CAPTURE(arch);
    // --quick: 3 epochs of 32 batches; cos-attn's last is self-training.
    Result r = run(cluster, "--quick --threads 1 --arch " + arch + " --out " + (dir / arch).string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const json m = read_json(dir / arch / "metrics.json");
    CHECK(m["status"] == "finished");
    // Chance is ACC ~0.1 + the best match's bias (about 0.15 for 2000 points), NMI and ARI ~0.
    CHECK(m["final"]["acc"].get<double>() > 0.3);
    CHECK(m["final"]["nmi"].get<double>() > 0.2);
    CHECK(m["final"]["ari"].get<double>() > 0.05);
    CHECK(m["final"]["acc"].get<double>() <= 1.0);
    for (const char* picture : {"nearest.png", "confusion.png"})
      CHECK_MESSAGE(fs::exists(dir / arch / picture), picture);
    CHECK(fs::exists(dir / arch / "attention.png") == (arch != "ae"));
    CHECK(fs::exists(dir / arch / "checkpoint.safetensors"));
  }
  fs::remove_all(dir);
}

TEST_CASE("cluster: --resume continues from the checkpoint's epoch") {
  const fs::path cluster = zoo_program("cluster");
  if (!fs::exists(cluster)) {
    MESSAGE("skipped: " << cluster << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("cluster_resume");
  Result first = run(cluster, "--quick --threads 1 --epochs 1 --out " + (dir / "a").string(), dir);
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  const std::string checkpoint = (dir / "a" / "checkpoint.safetensors").string();
  Result more = run(cluster, "--quick --threads 1 --epochs 2 --resume " + checkpoint + " --out " + (dir / "b").string(),
                    dir);
  REQUIRE_MESSAGE(more.exit_code == 0, more.output);
  CHECK_MESSAGE(more.output.find("epochs 2 to 2 of 2") != std::string::npos, more.output);
  CHECK(read_json(dir / "b" / "metrics.json")["status"] == "finished");
  fs::remove_all(dir);
}

TEST_CASE("cluster: --synthetic: the kNN graph, spectral embedding and k-means find 10 separated Gaussians exactly") {
  const fs::path cluster = zoo_program("cluster");
  if (!fs::exists(cluster)) {
    MESSAGE("skipped: " << cluster << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("cluster_synthetic");
  for (const char* seed : {"0", "1", "2"}) {
    CAPTURE(seed);
    Result r = run(cluster, std::string("--synthetic --threads 1 --seed ") + seed + " --out " +
                                (dir / seed).string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const json f = read_json(dir / seed / "metrics.json")["final"];
    CHECK(f["acc"].get<double>() == 1.0);
    CHECK(f["nmi"].get<double>() == doctest::Approx(1.0));
    CHECK(f["ari"].get<double>() == doctest::Approx(1.0));
  }
  fs::remove_all(dir);
}

TEST_CASE("cluster: bad input is one line on stderr and exit code 2") {
  const fs::path cluster = zoo_program("cluster");
  if (!fs::exists(cluster)) {
    MESSAGE("skipped: " << cluster << " is not built (HEED_BUILD_MODELS=OFF?)");
    return;
  }
  const fs::path dir = scratch("cluster_bad");
  Result arch = run(cluster, "--quick --arch dec --out " + (dir / "a").string(), dir);
  CHECK(arch.exit_code == 2);
  CHECK_MESSAGE(arch.output.find("cluster: --arch must be ae, patch-attn or cos-attn, got 'dec'") != std::string::npos,
                arch.output);
  Result self = run(cluster, "--quick --arch cos-attn --epochs 2 --self-train 3 --out " + (dir / "b").string(), dir);
  CHECK(self.exit_code == 2);
  CHECK_MESSAGE(self.output.find("--self-train 3 must be <= --epochs 2") != std::string::npos, self.output);
  Result k = run(cluster, "--quick --neighbours 0 --out " + (dir / "c").string(), dir);
  CHECK(k.exit_code == 2);
  Result data = run(cluster, "--quick --data /nonexistent --out " + (dir / "d").string(), dir);
  CHECK(data.exit_code == 2);
  CHECK_MESSAGE(data.output.find("cluster: ") != std::string::npos, data.output);
  fs::remove_all(dir);
}

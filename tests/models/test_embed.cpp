// Tests for models/embed.cpp, through the program itself (its modules live in that one file): both encoders learn
// (the contrastive loss goes down) and write metrics.json with the five metrics and the pictures; --resume continues
// from the checkpoint; bad input is one line and exit code 2. The metrics themselves (trustworthiness,
// knn_cv_accuracy, kmeans, clustering_accuracy, nmi) are tested against scikit-learn in tests/metrics/.
#include <doctest/doctest.h>

#include <string>

#include "data/data.h"
#include "metrics/metrics.h"
#include "tests/models/zoo_program.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace heed::test;

namespace {

bool built(const fs::path& program) {
  if (!fs::exists(program)) MESSAGE("skipped: " << program << " is not built (HEED_BUILD_MODELS=OFF?)");
  return fs::exists(program);
}

}  // namespace

TEST_CASE("embed: a known answer: well-separated Gaussian clusters in 2-D score 1 on every class metric") {
  // What embed scores a perfect 2-D map with: 10 tight, far-apart clusters, as a good embedding of 10 classes.
  heed::data::Mixture m = heed::data::mixture_of_gaussians(2000, 10, 2, 1, 100.0);
  CHECK(heed::metrics::knn_cv_accuracy(m.points, m.labels, 5, 5) == 1.0);
  heed::metrics::KMeansResult km = heed::metrics::kmeans(m.points, 10);
  CHECK(heed::metrics::clustering_accuracy(m.labels, km.labels) == 1.0);
  CHECK(heed::metrics::nmi(m.labels, km.labels) == doctest::Approx(1.0));
  // The same points as "pixels" and as the embedding: every neighbourhood kept.
  CHECK(heed::metrics::trustworthiness(m.points.narrow(0, 0, 500), m.points.narrow(0, 0, 500), 12) == 1.0);
}

TEST_CASE("embed: mlp and attn learn and write metrics.json and the pictures") {
  const fs::path embed = zoo_program("embed");
  if (!built(embed)) return;
  const fs::path dir = scratch("embed");
  for (const std::string arch : {"mlp", "attn"}) {
    CAPTURE(arch);
    // --quick: 2,000 training images, 3 steps an epoch; 1,000 test images.
    Result r = run(embed, "--quick --threads 1 --epochs 3 --arch " + arch + " --out " + (dir / arch).string(), dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const json m = read_json(dir / arch / "metrics.json");
    CHECK(m["status"] == "finished");
    const json& f = m["final"];
    for (const char* key : {"trust5", "trust12", "knn5_acc", "acc", "nmi"}) {
      CAPTURE(key);
      REQUIRE(f.contains(key));
      CHECK(f[key].get<double>() > 0.3);  // chance is 0.1 for the class metrics, about 0.5 for trustworthiness
      CHECK(f[key].get<double>() <= 1.0);
    }
    const json& epochs = m["epochs"];
    REQUIRE(epochs.size() == 3);
    CHECK(epochs[2]["train_loss"].get<double>() < epochs[0]["train_loss"].get<double>());
    for (const std::string file : {"embedding.png", "embedding.csv", "checkpoint.safetensors"}) {
      CAPTURE(file);
      CHECK(fs::exists(dir / arch / file));
      if (fs::exists(dir / arch / file)) CHECK(fs::file_size(dir / arch / file) > 100);
    }
  }
  // Resume the mlp run for two more epochs: it starts where the checkpoint left off.
  Result more = run(embed, "--quick --threads 1 --epochs 5 --arch mlp --resume " +
                               (dir / "mlp" / "checkpoint.safetensors").string() + " --out " + (dir / "more").string(),
                    dir);
  REQUIRE_MESSAGE(more.exit_code == 0, more.output);
  CHECK_MESSAGE(more.output.find("15 steps of 512 pairs, from step 9") != std::string::npos, more.output);
  fs::remove_all(dir);
}

TEST_CASE("embed: --arch pca needs no training and scores like PCA") {
  const fs::path embed = zoo_program("embed");
  if (!built(embed)) return;
  const fs::path dir = scratch("embed_pca");
  Result r = run(embed, "--quick --threads 1 --arch pca --out " + (dir / "p").string(), dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const json m = read_json(dir / "p" / "metrics.json");
  const json& f = m["final"];
  // On the 10,000 test images sklearn's PCA scores trust5 0.911 and 5-NN 0.503; 1,000 images score alike.
  CHECK(f["trust5"].get<double>() == doctest::Approx(0.91).epsilon(0.03));
  CHECK(f["knn5_acc"].get<double>() == doctest::Approx(0.5).epsilon(0.1));
  fs::remove_all(dir);
}

TEST_CASE("embed: bad input is one line on stderr and exit code 2") {
  const fs::path embed = zoo_program("embed");
  if (!built(embed)) return;
  const fs::path dir = scratch("embed_bad");
  Result arch = run(embed, "--quick --arch tsne --out " + (dir / "a").string(), dir);
  CHECK(arch.exit_code == 2);
  CHECK_MESSAGE(arch.output.find("embed: --arch must be mlp, attn or pca, got 'tsne'") != std::string::npos,
                arch.output);
  Result width = run(embed, "--quick --width 30 --out " + (dir / "w").string(), dir);
  CHECK(width.exit_code == 2);
  CHECK_MESSAGE(width.output.find("--width must be a multiple of 4") != std::string::npos, width.output);
  Result batch = run(embed, "--quick --batch-size 0 --out " + (dir / "b").string(), dir);
  CHECK(batch.exit_code == 2);
  Result data = run(embed, "--quick --data " + (dir / "nowhere").string() + " --out " + (dir / "d").string(), dir);
  CHECK(data.exit_code == 2);
  fs::remove_all(dir);
}

// Tests for metrics/metrics.h: hand-computed cases first, then scikit-learn's (and SciPy's) outputs from the
// fixtures in tests/fixtures/metrics/ (written by make_metrics_fixtures.py there; no Python needed here).
#include "metrics/metrics.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "data/data.h"
#include "tensor/random.h"

using namespace heed;
using namespace heed::metrics;
using json = nlohmann::json;

namespace {

// A fixture file, parsed. Keep it in a variable: `for (auto& c : fixture(name)["cases"])` would iterate
// inside a temporary that is already destroyed.
json fixture(const std::string& name) {
  std::string path = std::string(HEED_SOURCE_DIR) + "/tests/fixtures/metrics/" + name;
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "missing fixture " << path);
  return json::parse(f);
}

Tensor longs(const std::vector<int64_t>& v) { return from_vector(v, Shape{(int64_t)v.size()}); }
Tensor doubles(const std::vector<double>& v) { return from_vector(v, Shape{(int64_t)v.size()}); }

// A JSON list of lists as an (N,D) float64 tensor.
Tensor matrix(const json& rows) {
  std::vector<double> v;
  for (const json& row : rows)
    for (double x : row) v.push_back(x);
  return from_vector(v, Shape{(int64_t)rows.size(), (int64_t)rows[0].size()});
}

// The least total cost over all assignments, by trying every one (rows <= cols).
double brute_force_assignment(const std::vector<double>& cost, int64_t rows, int64_t cols) {
  std::vector<int64_t> cols_perm(cols);
  std::iota(cols_perm.begin(), cols_perm.end(), 0);
  double best = INFINITY;
  do {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) total += cost[r * cols + cols_perm[r]];
    best = std::min(best, total);
  } while (std::next_permutation(cols_perm.begin(), cols_perm.end()));
  return best;
}

double assignment_total(const std::vector<double>& cost, int64_t rows, int64_t cols,
                        const std::vector<int64_t>& col_of) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r)
    if (col_of[r] >= 0) total += cost[r * cols + col_of[r]];
  return total;
}

}  // namespace

// ---- the Hungarian algorithm -------------------------------------------------------------------------

TEST_CASE("metrics: linear_sum_assignment matches brute force and SciPy") {
  Generator gen(3);
  for (int64_t rows = 1; rows <= 6; ++rows)
    for (int64_t cols = 1; cols <= 6; ++cols) {
      std::vector<double> cost(rows * cols);
      // Small integers make ties (several optimal assignments) common.
      for (double& c : cost) c = std::floor(gen.next_double() * 10) - 3;
      std::vector<int64_t> col_of = linear_sum_assignment(cost, rows, cols);
      CAPTURE(rows);
      CAPTURE(cols);
      REQUIRE(col_of.size() == (size_t)rows);
      // A valid matching: distinct columns, and exactly min(rows, cols) rows matched.
      std::vector<int64_t> used;
      for (int64_t c : col_of)
        if (c >= 0) used.push_back(c);
      std::sort(used.begin(), used.end());
      CHECK(std::adjacent_find(used.begin(), used.end()) == used.end());
      CHECK((int64_t)used.size() == std::min(rows, cols));
      // Optimal: brute force over the transpose when rows > cols.
      double best;
      if (rows <= cols) {
        best = brute_force_assignment(cost, rows, cols);
      } else {
        std::vector<double> t(cols * rows);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = cost[r * cols + c];
        best = brute_force_assignment(t, cols, rows);
      }
      CHECK(assignment_total(cost, rows, cols, col_of) == doctest::Approx(best));
    }
  json f = fixture("clustering.json");
  for (const json& a : f["assignments"]) {
    int64_t rows = a["rows"], cols = a["cols"];
    std::vector<double> cost = a["cost"];
    CHECK(assignment_total(cost, rows, cols, linear_sum_assignment(cost, rows, cols)) ==
          doctest::Approx(a["total"].get<double>()).epsilon(1e-12));
  }
  CHECK(linear_sum_assignment({}, 0, 3).empty());
  CHECK_THROWS_WITH_AS(linear_sum_assignment({1, 2, 3}, 2, 2), doctest::Contains("needs 4 costs, got 3"), Error);
  CHECK_THROWS_WITH_AS(linear_sum_assignment({1, NAN}, 1, 2), doctest::Contains("at (0,1) is not finite"), Error);
}

// ---- clustering scores -------------------------------------------------------------------------------

TEST_CASE("metrics: clustering_accuracy nmi and ari on hand-computed cases") {
  // Clusters 1,0,2 map to classes 0,1,2; one sample of class 2 sits in cluster 0: 5 of 6 right.
  CHECK(clustering_accuracy(longs({0, 0, 1, 1, 2, 2}), longs({1, 1, 0, 0, 0, 2})) == doctest::Approx(5.0 / 6));
  // More clusters than classes: the extra cluster maps to nothing. Best: 10->0 (2), 20->1 (2); 30 unmatched.
  CHECK(clustering_accuracy(longs({0, 0, 1, 1, 1}), longs({10, 10, 20, 20, 30})) == doctest::Approx(4.0 / 5));
  // Fewer clusters than classes: one class goes unmatched.
  CHECK(clustering_accuracy(longs({0, 1, 2, 2}), longs({5, 5, 5, 6})) == doctest::Approx(2.0 / 4));

  // Labels (0,0,0,1,1,1) against clusters (0,0,1,1,2,2): cells n = [[2,1,0],[0,1,2]], a = (3,3), b = (2,2,2).
  //   MI = 2 * (2/6) log((2/6)/((1/2)(1/3))) = (2/3) log 2 (the cells of 1 add log 1 = 0)
  //   H(labels) = log 2,  H(clusters) = log 3,  NMI = (2/3) log 2 / ((log 2 + log 3)/2) = (4/3) log 2 / log 6
  //   ARI: sum C(n_ij,2) = 2, sum C(a_i,2) = 6, sum C(b_j,2) = 3, C(6,2) = 15, expected = 6*3/15 = 1.2,
  //        max = (6+3)/2 = 4.5, so ARI = (2 - 1.2)/(4.5 - 1.2) = 8/33
  Tensor labels = longs({0, 0, 0, 1, 1, 1}), clusters = longs({0, 0, 1, 1, 2, 2});
  CHECK(nmi(labels, clusters) == doctest::Approx(4.0 / 3 * std::log(2.0) / std::log(6.0)).epsilon(1e-14));
  CHECK(ari(labels, clusters) == doctest::Approx(8.0 / 33).epsilon(1e-14));
  CHECK(clustering_accuracy(labels, clusters) == doctest::Approx(4.0 / 6));

  // sklearn's documented examples.
  CHECK(nmi(longs({0, 0, 1, 1}), longs({1, 1, 0, 0})) == doctest::Approx(1.0));
  CHECK(nmi(longs({0, 0, 0, 0}), longs({0, 1, 2, 3})) == 0.0);
  CHECK(ari(longs({0, 0, 1, 1}), longs({0, 1, 0, 1})) == doctest::Approx(-0.5));
  CHECK(ari(longs({0, 0, 1, 1}), longs({1, 1, 0, 0})) == 1.0);
  // Both labellings a single group: a perfect match (sklearn's special case).
  CHECK(nmi(longs({4, 4, 4}), longs({1, 1, 1})) == 1.0);
  CHECK(ari(longs({4, 4, 4}), longs({1, 1, 1})) == 1.0);
  CHECK(ari(longs({7}), longs({3})) == 1.0);

  CHECK_THROWS_WITH_AS(nmi(longs({0, 1}), longs({0})), doctest::Contains("nmi: 2 labels but 1 clusters"), Error);
  CHECK_THROWS_WITH_AS(ari(zeros({3}), longs({0, 1, 2})),
                       doctest::Contains("ari: labels must be a 1-d int64 tensor, got float32 (3)"), Error);
  CHECK_THROWS_WITH_AS(clustering_accuracy(longs({}), longs({})), doctest::Contains("clustering_accuracy: no samples"),
                       Error);
}

TEST_CASE("metrics: nmi ari and clustering_accuracy match scikit-learn") {
  json f = fixture("clustering.json");
  for (const json& c : f["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    Tensor labels = longs(c["labels"]), clusters = longs(c["clusters"]);
    CHECK(nmi(labels, clusters) == doctest::Approx(c["nmi"].get<double>()).epsilon(1e-12));
    CHECK(ari(labels, clusters) == doctest::Approx(c["ari"].get<double>()).epsilon(1e-12));
    CHECK(clustering_accuracy(labels, clusters) == doctest::Approx(c["accuracy"].get<double>()).epsilon(1e-12));
  }
}

// ---- ranking scores ----------------------------------------------------------------------------------

TEST_CASE("metrics: auroc and average_precision on hand-computed cases") {
  // sklearn's documented example: 3 of the 4 (positive, negative) pairs are ordered right.
  Tensor s = doubles({0.1, 0.4, 0.35, 0.8}), y = longs({0, 0, 1, 1});
  CHECK(auroc(s, y) == doctest::Approx(0.75));
  // AP: thresholds 0.8 (P=1, R=1/2), 0.4 (P=1/2, R=1/2), 0.35 (P=2/3, R=1): 1/2*1 + 0 + 1/2*2/3 = 5/6.
  CHECK(average_precision(s, y) == doctest::Approx(5.0 / 6));
  // All scores tied: AUC 1/2 (every pair a tie), AP = the positive rate (one threshold, R = 1).
  Tensor tied = doubles({0.3, 0.3, 0.3, 0.3, 0.3});
  CHECK(auroc(tied, longs({0, 1, 0, 1, 1})) == doctest::Approx(0.5));
  CHECK(average_precision(tied, longs({0, 1, 0, 1, 1})) == doctest::Approx(0.6));
  // A tie between one positive and one negative at the top: ranks 1, 2, (3.5, 3.5) for scores 1, 2, 3, 3.
  //   positives at ranks 2 and 3.5: U = 5.5 - 3 = 2.5 of 4 pairs.
  CHECK(auroc(doubles({1, 2, 3, 3}), longs({0, 1, 1, 0})) == doctest::Approx(2.5 / 4));
  // Perfect and reversed rankings; float32 scores and bool or float labels work too.
  CHECK(auroc(tensor({0.1, 0.2, 0.9}), tensor({0, 0, 1})) == 1.0);
  CHECK(auroc(tensor({0.9, 0.2, 0.1}), tensor({0, 0, 1})) == 0.0);
  CHECK(average_precision(tensor({0.1, 0.2, 0.9}), tensor({0, 0, 1}) > 0.5) == 1.0);

  CHECK_THROWS_WITH_AS(auroc(doubles({0.1, 0.2}), longs({1, 1})),
                       doctest::Contains("auroc: needs both classes, got 2 positives and 0 negatives"), Error);
  CHECK_THROWS_WITH_AS(average_precision(doubles({0.1, 0.2}), longs({0, 0})),
                       doctest::Contains("average_precision: needs both classes"), Error);
  CHECK_THROWS_WITH_AS(auroc(doubles({0.1, 0.2}), longs({0, 2})), doctest::Contains("label 1 is 2"), Error);
  CHECK_THROWS_WITH_AS(auroc(doubles({NAN, 0.2}), longs({0, 1})), doctest::Contains("score 0 is NaN"), Error);
  CHECK_THROWS_WITH_AS(auroc(doubles({0.1, 0.2, 0.3}), longs({0, 1})),
                       doctest::Contains("same length, got (3) and (2)"), Error);
}

TEST_CASE("metrics: auroc and average_precision match scikit-learn with ties") {
  json f = fixture("ranking.json");
  for (const json& c : f["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    Tensor s = doubles(c["scores"]), y = longs(c["labels"]);
    CHECK(auroc(s, y) == doctest::Approx(c["auroc"].get<double>()).epsilon(1e-12));
    CHECK(average_precision(s, y) == doctest::Approx(c["average_precision"].get<double>()).epsilon(1e-12));
  }
}

TEST_CASE("metrics: roc_curve and detection_rate on hand-computed cases") {
  // Scores 0.8 (anomaly), 0.4 (normal), 0.35 (anomaly), 0.1 (normal): one point per distinct score.
  RocCurve roc = roc_curve(doubles({0.1, 0.4, 0.35, 0.8}), longs({0, 0, 1, 1}));
  CHECK(roc.fpr == std::vector<double>{0, 0, 0.5, 0.5, 1});
  CHECK(roc.tpr == std::vector<double>{0, 0.5, 0.5, 1, 1});
  CHECK(roc.thresholds[1] == 0.8);
  CHECK(detection_rate(doubles({0.1, 0.4, 0.35, 0.8}), longs({0, 0, 1, 1})) == 0.5);
  CHECK(detection_rate(doubles({0.1, 0.4, 0.35, 0.8}), longs({0, 0, 1, 1}), 0.5) == 1.0);
  // A normal tied with the top anomalies: flagging them would flag 1 of 2 normals, over budget, so none is.
  CHECK(detection_rate(doubles({0.9, 0.9, 0.9, 0.1}), longs({1, 1, 0, 0})) == 0.0);
  CHECK_THROWS_WITH_AS(detection_rate(doubles({0.1, 0.2}), longs({0, 1}), 1.5),
                       doctest::Contains("detection_rate: max_fpr must be in [0,1]"), Error);
  CHECK_THROWS_WITH_AS(roc_curve(doubles({0.1, 0.2}), longs({1, 1})),
                       doctest::Contains("roc_curve: needs both classes"), Error);
}

TEST_CASE("metrics: roc_curve and detection_rate match scikit-learn with ties") {
  json f = fixture("detection.json");
  for (const json& c : f["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    Tensor s = doubles(c["scores"]), y = longs(c["labels"]);
    RocCurve roc = roc_curve(s, y);
    REQUIRE(roc.fpr.size() == c["fpr"].size());
    for (size_t i = 0; i < roc.fpr.size(); ++i) {
      CHECK(roc.fpr[i] == doctest::Approx(c["fpr"][i].get<double>()).epsilon(1e-12));
      CHECK(roc.tpr[i] == doctest::Approx(c["tpr"][i].get<double>()).epsilon(1e-12));
      if (i > 0) CHECK(roc.thresholds[i] == c["thresholds"][i - 1].get<double>());
    }
    CHECK(detection_rate(s, y, c["max_fpr"].get<double>()) ==
          doctest::Approx(c["detection_rate"].get<double>()).epsilon(1e-12));
  }
}

// ---- top-k ranking -----------------------------------------------------------------------------------

TEST_CASE("metrics: target_rank, hit_rate_at_k and ndcg_at_k on a hand-computed case") {
  // Row 0: 0.9 and the tied 0.5 beat the target's 0.5 -> rank 2. Row 1: the target is first -> 0. Row 2:
  // all tied -> last, 3 (ties count against the target). Row 3: the lowest -> 3.
  Tensor scores = tensor({{0.1, 0.9, 0.5, 0.5}, {3, 1, 2, 0}, {0, 0, 0, 0}, {4, 3, 2, 1}});
  Tensor ranks = target_rank(scores, from_vector(std::vector<int64_t>{2, 0, 1, 3}, Shape{4}));
  CHECK(ranks.to_vector<int64_t>() == std::vector<int64_t>{2, 0, 3, 3});
  CHECK(hit_rate_at_k(ranks, 1) == doctest::Approx(0.25));
  CHECK(hit_rate_at_k(ranks, 3) == doctest::Approx(0.5));
  CHECK(hit_rate_at_k(ranks, 4) == doctest::Approx(1.0));
  // NDCG@3: (1/log2(4) + 1/log2(2)) / 4 = (0.5 + 1) / 4; @10 adds 2/log2(5) for the two rank-3 rows.
  CHECK(ndcg_at_k(ranks, 3) == doctest::Approx(0.375));
  CHECK(ndcg_at_k(ranks, 10) == doctest::Approx((1.5 + 2 / std::log2(5.0)) / 4));
  // -inf (a masked item) ranks below everything; float32 scores work as float64.
  Tensor masked = tensor({{-INFINITY, 1.0, 2.0}}, float32);
  CHECK(target_rank(masked, from_vector(std::vector<int64_t>{1}, Shape{1})).to_vector<int64_t>()[0] == 1);
  CHECK_THROWS_WITH_AS(target_rank(scores, from_vector(std::vector<int64_t>{0, 0, 0, 4}, Shape{4})),
                       doctest::Contains("target 3 is 4, outside 0..3"), Error);
  CHECK_THROWS_WITH_AS(target_rank(scores, zeros({4})), doctest::Contains("targets (N) int64"), Error);
  CHECK_THROWS_WITH_AS(target_rank(tensor({{NAN, 1.0}}), from_vector(std::vector<int64_t>{1}, Shape{1})),
                       doctest::Contains("is NaN"), Error);
  CHECK_THROWS_WITH_AS(hit_rate_at_k(ranks, 0), doctest::Contains("k must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(ndcg_at_k(zeros({3}), 10), doctest::Contains("ranks must be (N) int64"), Error);
}

// ---- reconstruction and likelihood -------------------------------------------------------------------

TEST_CASE("metrics: reconstruction_error nats_per_sample and bits_per_dim") {
  Tensor x = tensor({{0, 1}, {1, 1}}), x_hat = tensor({{0, 0}, {1, 1}});
  CHECK(reconstruction_error(x, x_hat).to_vector<float>() == std::vector<float>{0.5f, 0.0f});
  // bce: x = (1, 0) under means (1/2, 1/2) costs log 2 per feature; a certain miss is clamped at 100 nats.
  std::vector<double> bce =
      reconstruction_error(tensor({{1, 0}, {1, 1}}, float64), tensor({{0.5, 0.5}, {0, 1}}, float64), "bce")
          .to_vector<double>();
  CHECK(bce[0] == doctest::Approx(2 * std::log(2.0)));
  CHECK(bce[1] == doctest::Approx(100.0));
  // Images (N,C,H,W) are flattened per sample.
  Tensor imgs = full({3, 1, 2, 2}, 0.5), recon = full({3, 1, 2, 2}, 0.25);
  CHECK(allclose(reconstruction_error(imgs, recon, "mse"), full({3}, 0.0625)));
  CHECK(reconstruction_error(imgs, recon, "mse").shape() == Shape{3});

  CHECK(nats_per_sample(tensor({1.0, 2.0, 6.0})) == doctest::Approx(3.0));
  CHECK(bits_per_dim(784 * std::log(2.0), 784) == doctest::Approx(1.0));
  CHECK(bits_per_dim(std::log(2.0) * 3 * 8, 3) == doctest::Approx(8.0));

  CHECK_THROWS_WITH_AS(reconstruction_error(x, x_hat, "l1"), doctest::Contains("unknown kind \"l1\""), Error);
  CHECK_THROWS_WITH_AS(reconstruction_error(x, zeros({2, 3})),
                       doctest::Contains("same shape (N,...) with N >= 1, got (2,2) and (2,3)"), Error);
  CHECK_THROWS_WITH_AS(reconstruction_error(x, tensor({{0, 1.5}, {0, 0}}), "bce"),
                       doctest::Contains("needs x_hat in [0,1], but it spans [0, 1.5]"), Error);
  CHECK_THROWS_WITH_AS(reconstruction_error(x, x_hat.to(float64)), doctest::Contains("share a float dtype"), Error);
  CHECK_THROWS_WITH_AS(bits_per_dim(1.0, 0), doctest::Contains("dims must be >= 1"), Error);
}

TEST_CASE("metrics: digamma and dirichlet_mle on hand-computed cases and against GEOM's code") {
  // ψ(1) = -γ, ψ(1/2) = -γ - 2 ln 2, and ψ(x + 1) = ψ(x) + 1/x; ψ(7.3) and ψ(0.01) from scipy.special.psi.
  const double euler_gamma = 0.5772156649015329;
  CHECK(digamma(1.0) == doctest::Approx(-euler_gamma).epsilon(1e-12));
  CHECK(digamma(0.5) == doctest::Approx(-euler_gamma - 2 * std::log(2.0)).epsilon(1e-12));
  CHECK(digamma(3.5) == doctest::Approx(digamma(2.5) + 1 / 2.5).epsilon(1e-12));
  CHECK(digamma(7.3) == doctest::Approx(1.917820335637986).epsilon(1e-12));
  CHECK(digamma(0.01) == doctest::Approx(-100.56088545786868).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(digamma(0.0), doctest::Contains("digamma: needs x > 0, got 0"), Error);

  // Four points on the 3-simplex. At the MLE, ψ(α_k) - ψ(Σα) equals the mean of log p_k (the stationarity
  // condition, checked by hand below), and α is what GEOM's fixed_point_dirichlet_mle (NumPy and SciPy) gives.
  const std::vector<double> p = {0.7, 0.2, 0.1, 0.5, 0.3, 0.2, 0.6, 0.1, 0.3, 0.8, 0.15, 0.05};  // (4,3)
  const std::vector<double> alpha = dirichlet_mle(from_vector(p, {4, 3}).log()).to_vector<double>();
  REQUIRE(alpha.size() == 3);
  const std::vector<double> expected = {11.764584675446, 3.535021771128, 2.798740646818};
  const double sum = alpha[0] + alpha[1] + alpha[2];
  for (int k = 0; k < 3; ++k) {
    CHECK(alpha[k] == doctest::Approx(expected[k]).epsilon(1e-9));
    double mean_log = 0;
    for (int n = 0; n < 4; ++n) mean_log += std::log(p[n * 3 + k]) / 4;
    CHECK(digamma(alpha[k]) - digamma(sum) == doctest::Approx(mean_log).epsilon(1e-9));
  }
  // GEOM's normality score of the first point, Σ_k (α_k - 1) log p_k, as anomaly.cpp's --score dirichlet uses it.
  double normality = 0;
  for (int k = 0; k < 3; ++k) normality += (alpha[k] - 1) * std::log(p[k]);
  CHECK(normality == doctest::Approx(-12.061171182465).epsilon(1e-9));
  CHECK_THROWS_WITH_AS(
      dirichlet_mle(tensor({0.5, 0.5})),
      doctest::Contains(
          "dirichlet_mle: needs the logs of N >= 1 points on a simplex of K >= 2, a float (N,K), got float32 (2)"),
      Error);
}

// ---- k-means -----------------------------------------------------------------------------------------

TEST_CASE("metrics: kmeans recovers well-separated Gaussian clusters") {
  data::Mixture m = data::mixture_of_gaussians(600, 5, 8, 3, 10.0);
  KMeansResult r = kmeans(m.points, 5, 10, 300, 1e-4, 0);
  CHECK(r.labels.shape() == Shape{600});
  CHECK(r.centres.shape() == Shape{5, 8});
  CHECK(r.centres.dtype() == float32);
  CHECK(clustering_accuracy(m.labels, r.labels) == 1.0);
  CHECK(nmi(m.labels, r.labels) == doctest::Approx(1.0));
  // The inertia is the noise: about N * D for unit variance.
  CHECK(r.inertia / (600 * 8) == doctest::Approx(1.0).epsilon(0.1));
  CHECK(r.n_iter >= 1);
  // The inertia agrees with the labels and centres it returns.
  Tensor diff = m.points - index_select(r.centres, 0, r.labels);
  CHECK(diff.to(float64).square().sum().item() == doctest::Approx(r.inertia).epsilon(1e-5));
  // Deterministic given the seed.
  KMeansResult again = kmeans(m.points, 5, 10, 300, 1e-4, 0);
  CHECK(again.labels.to_vector<int64_t>() == r.labels.to_vector<int64_t>());
  CHECK(again.inertia == r.inertia);
}

TEST_CASE("metrics: kmeans inertia matches scikit-learn") {
  json f = fixture("kmeans.json");
  Tensor x = matrix(f["x"]);
  KMeansResult r = kmeans(x, f["k"].get<int>());
  CHECK(r.inertia == doctest::Approx(f["inertia"].get<double>()).epsilon(1e-10));
  CHECK(clustering_accuracy(longs(f["labels"]), r.labels) == 1.0);
}

TEST_CASE("metrics: kmeans handles duplicates and empty clusters and bad input") {
  // Three distinct points, four clusters: one centre is always a duplicate, so a cluster empties and is
  // refilled; nothing crashes and the inertia is 0.
  Tensor x = tensor({{0, 0}, {0, 0}, {5, 5}, {5, 5}, {9, 0}}, float64);
  KMeansResult r = kmeans(x, 4, 3, 50, 1e-4, 1);
  CHECK(r.inertia == doctest::Approx(0.0));
  CHECK(kmeans(x, 1).inertia == doctest::Approx((x - x.mean(std::vector<int64_t>{0}, true)).square().sum().item()));
  CHECK_THROWS_WITH_AS(kmeans(x, 6), doctest::Contains("kmeans: need 1 <= k <= N, got k=6 for 5 points"), Error);
  CHECK_THROWS_WITH_AS(kmeans(zeros({5}), 2),
                       doctest::Contains("x must be a 2-d float32 or float64 tensor, got float32 (5)"), Error);
  CHECK_THROWS_WITH_AS(kmeans(x, 2, 0), doctest::Contains("n_init >= 1"), Error);
  CHECK_THROWS_WITH_AS(kmeans(tensor({{0, NAN}, {1, 1}}), 1), doctest::Contains("holds nan at flat index 1"), Error);
}

TEST_CASE("metrics: kmeans timing on 10k points in 64-d") {
  data::Mixture m = data::mixture_of_gaussians(10000, 10, 64, 1, 3.0);
  auto t0 = std::chrono::steady_clock::now();
  std::clock_t cpu0 = std::clock();
  KMeansResult r = kmeans(m.points, 10);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu_seconds = (double)(std::clock() - cpu0) / CLOCKS_PER_SEC;  // all threads, OpenBLAS's included
  MESSAGE("kmeans(10000x64, k=10, n_init=10): " << seconds << " s wall, " << cpu_seconds << " s CPU, best run "
                                                << r.n_iter << " iterations, inertia " << r.inertia);
  CHECK(clustering_accuracy(m.labels, r.labels) > 0.99);
}

// ---- PCA and trustworthiness -------------------------------------------------------------------------

TEST_CASE("metrics: pca on hand-computed cases") {
  // Points on the line y = 2x: one component, along (1,2)/sqrt(5), with all the variance. The x are
  // lopsided (-2,-1,0,1,3), so the sign rule has no tie: the last point, farthest out, projects positively.
  Tensor x = tensor({{-2, -4}, {-1, -2}, {0, 0}, {1, 2}, {3, 6}}, float64);
  PCAResult p = pca(x, 2);
  std::vector<double> c = p.components.to_vector<double>();
  CHECK(c[0] == doctest::Approx(1 / std::sqrt(5.0)));
  CHECK(c[1] == doctest::Approx(2 / std::sqrt(5.0)));
  // Centred x: c = (-2.2,-1.2,-0.2,0.8,2.8), projections sqrt(5) c, variance 5 * sum(c^2) / (N-1) = 5 * 14.8 / 4.
  CHECK(p.mean.to_vector<double>() == std::vector<double>{0.2, 0.4});
  CHECK(p.explained_variance.to_vector<double>()[0] == doctest::Approx(18.5));
  CHECK(p.explained_variance.to_vector<double>()[1] == doctest::Approx(0.0));
  CHECK(p.explained_variance_ratio.to_vector<double>()[0] == doctest::Approx(1.0));
  // Orthonormal rows, and an exact round trip with all components.
  CHECK(allclose(matmul(p.components, p.components.mT()), eye(2, float64), 1e-12, 1e-12));
  CHECK(allclose(p.inverse_transform(p.transform(x)), x, 1e-12, 1e-12));
  CHECK(p.transform(x).shape() == Shape{5, 2});

  CHECK_THROWS_WITH_AS(pca(x, 3), doctest::Contains("pca: n_components must be in 1..min(N, D) = 2, got 3"), Error);
  CHECK_THROWS_WITH_AS(pca(x.narrow(0, 0, 1), 1), doctest::Contains("at least 2 samples"), Error);
  CHECK_THROWS_WITH_AS(p.transform(zeros({3, 3}, float64)),
                       doctest::Contains("PCAResult::transform: x must be (M,2), got (3,3)"), Error);
}

TEST_CASE("metrics: pca matches scikit-learn including component signs") {
  json f = fixture("pca.json");
  Tensor x = matrix(f["x"]);
  PCAResult p = pca(x, f["n_components"].get<int>());
  CHECK(allclose(p.mean, doubles(f["mean"]), 1e-12, 1e-12));
  CHECK(allclose(p.explained_variance, doubles(f["explained_variance"]), 1e-10, 1e-12));
  CHECK(allclose(p.explained_variance_ratio, doubles(f["explained_variance_ratio"]), 1e-10, 1e-12));
  // sklearn's svd_flip fixes each component's sign, and pca follows the same rule, so no "up to sign".
  CHECK(allclose(p.components, matrix(f["components"]), 1e-8, 1e-10));
  CHECK(allclose(p.transform(x.narrow(0, 0, 5)), matrix(f["transformed_first_5"]), 1e-8, 1e-10));
  // float32 input gives float32 results with the same values to float precision.
  PCAResult p32 = pca(x.to(float32), 3);
  CHECK(p32.components.dtype() == float32);
  CHECK(allclose(p32.components.to(float64), p.components, 1e-3, 1e-4));
}

TEST_CASE("metrics: trustworthiness matches scikit-learn") {
  json f = fixture("trustworthiness.json");
  Tensor X = matrix(f["x"]), Y = matrix(f["y"]);
  for (const json& c : f["cases"]) {
    int k = c["k"];
    CAPTURE(k);
    CHECK(trustworthiness(X, Y, k) == doctest::Approx(c["trustworthiness"].get<double>()).epsilon(1e-12));
  }
  // An embedding that is the data itself, or an isometry of it, keeps every neighbourhood.
  CHECK(trustworthiness(X, X, 5) == 1.0);
  CHECK(trustworthiness(X, X * 3.0 + 1.0, 7) == 1.0);
  CHECK_THROWS_WITH_AS(trustworthiness(X, Y, 30), doctest::Contains("1 <= k < N/2 (as sklearn), got k=30 for N=60"),
                       Error);
  CHECK_THROWS_WITH_AS(trustworthiness(X, Y.narrow(0, 0, 10), 2), doctest::Contains("X has 60 samples but Y has 10"),
                       Error);
}

TEST_CASE("metrics: knn_cv_accuracy on hand-computed cases and well-separated clusters") {
  // Two classes at 0 and 10 on a line, alternating: every fold's 1-NN is a point of the same class.
  Tensor y = from_vector(std::vector<double>{0, 10, 0.1, 10.1, 0.2, 10.2, 0.3, 10.3, 0.4, 10.4}, Shape{10, 1});
  Tensor labels = longs({0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
  CHECK(knn_cv_accuracy(y, labels, 1, 5) == 1.0);
  // Pairs of close points with different labels, one point per fold (8 folds): each point's nearest
  // neighbour is its partner, of the other label.
  Tensor crossed = from_vector(std::vector<double>{0, 0.01, 10, 10.01, 20, 20.01, 30, 30.01}, Shape{8, 1});
  CHECK(knn_cv_accuracy(crossed, longs({0, 1, 1, 0, 0, 1, 1, 0}), 1, 8) == 0.0);
  // A tied vote (k = 2, one of each) goes to the smallest label.
  Tensor pairs = from_vector(std::vector<double>{0, 1, 2, 3}, Shape{4, 1});
  CHECK(knn_cv_accuracy(pairs, longs({5, 5, 5, 5}), 2, 2) == 1.0);
  // Well-separated Gaussian clusters in 2-d: the answer is known, every vote right.
  data::Mixture m = data::mixture_of_gaussians(500, 10, 2, 7, 30.0);
  CHECK(knn_cv_accuracy(m.points, m.labels) == 1.0);
  CHECK_THROWS_WITH_AS(knn_cv_accuracy(y, labels, 5, 1), doctest::Contains("need folds >= 2 and k >= 1"), Error);
  CHECK_THROWS_WITH_AS(knn_cv_accuracy(y, labels.narrow(0, 0, 4)), doctest::Contains("Y has 10 samples but labels "
                                                                                      "has 4"), Error);
}

TEST_CASE("metrics: knn_cv_accuracy matches scikit-learn's cross_val_score with StratifiedKFold") {
  json f = fixture("knn_cv.json");
  for (const json& c : f["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    std::vector<int64_t> labels = c["labels"];
    CHECK(knn_cv_accuracy(matrix(c["y"]), longs(labels), c["k"], c["folds"]) ==
          doctest::Approx(c["accuracy"].get<double>()).epsilon(1e-12));
  }
}

// ---- mean, covariance and the Fréchet distance ---------------------------------------------------------

TEST_CASE("metrics: frechet_distance on hand-computed cases") {
  // 1-d: (m1 - m2)^2 + (sqrt(a) - sqrt(b))^2.
  CHECK(frechet_distance(doubles({1.0}), full({1, 1}, 4.0, float64), doubles({3.0}), full({1, 1}, 9.0, float64)) ==
        doctest::Approx(4 + 1));
  // Diagonal covariances: coordinate by coordinate.
  Tensor c1 = tensor({{1, 0, 0}, {0, 4, 0}, {0, 0, 9}}, float64),
         c2 = tensor({{4, 0, 0}, {0, 4, 0}, {0, 0, 1}}, float64);
  CHECK(frechet_distance(zeros({3}, float64), c1, ones({3}, float64), c2) == doctest::Approx(3 + 1 + 0 + 4));
  // Identical Gaussians: 0, also for a singular covariance (rank 1).
  Tensor singular = tensor({{1, 2}, {2, 4}}, float64);
  CHECK(std::abs(frechet_distance(ones({2}, float64), singular, ones({2}, float64), singular)) < 1e-9);
  Tensor a = randn({40, 6}, float64);
  auto [mu, cov] = mean_and_cov(a);
  CHECK(std::abs(frechet_distance(mu, cov, mu, cov)) < 1e-9);

  CHECK_THROWS_WITH_AS(frechet_distance(zeros({2}), tensor({{1, 5}, {0, 1}}), zeros({2}), eye(2)),
                       doctest::Contains("frechet_distance: cov1 is not symmetric"), Error);
  CHECK_THROWS_WITH_AS(frechet_distance(zeros({2}), eye(3), zeros({2}), eye(2)),
                       doctest::Contains("cov1 must be (2,2), got (3,3)"), Error);
  CHECK_THROWS_WITH_AS(frechet_distance(zeros({2}), eye(2), zeros({3}), eye(2)),
                       doctest::Contains("same length, got (2) and (3)"), Error);
  CHECK_THROWS_WITH_AS(mean_and_cov(zeros({1, 3})), doctest::Contains("mean_and_cov: needs at least 2 samples"), Error);
}

TEST_CASE("metrics: mean_and_cov and frechet_distance match NumPy and SciPy") {
  json f = fixture("frechet.json");
  for (const json& c : f["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    auto [mu1, cov1] = mean_and_cov(matrix(c["features1"]));
    auto [mu2, cov2] = mean_and_cov(matrix(c["features2"]));
    CHECK(allclose(mu1, doubles(c["mu1"]), 1e-12, 1e-12));
    CHECK(allclose(cov1, matrix(c["cov1"]), 1e-12, 1e-12));
    CHECK(allclose(mu2, doubles(c["mu2"]), 1e-12, 1e-12));
    CHECK(allclose(cov2, matrix(c["cov2"]), 1e-12, 1e-12));
    // SciPy's sqrtm (a Schur method) and our eigendecompositions agree to about 1e-10 relative.
    double expected = c["frechet_distance"];
    CHECK(frechet_distance(mu1, cov1, mu2, cov2) == doctest::Approx(expected).epsilon(1e-8));
    // float32 statistics are accepted; the arithmetic still runs in double.
    CHECK(frechet_distance(mu1.to(float32), cov1.to(float32), mu2.to(float32), cov2.to(float32)) ==
          doctest::Approx(expected).epsilon(1e-4));
  }
}

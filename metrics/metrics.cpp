// metrics.cpp: the scores of metrics.h, computed in double on plain row-major arrays. Where a metric has a
// scikit-learn definition with special cases, the code follows sklearn 1.2's source, and the comments say
// where.
#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "autograd/node.h"
#include "tensor/kernels/blas.h"
#include "tensor/random.h"

namespace heed::metrics {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// ---- input checks shared by the metrics --------------------------------------------------------------

// A 1-d int64 tensor as a vector.
std::vector<int64_t> int_labels(const std::string& op, const char* what, const Tensor& t) {
  if (!t.defined() || t.dim() != 1 || t.dtype() != int64)
    throw Error(
        op + ": " + what + " must be a 1-d int64 tensor, got " +
        (t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()) : "an undefined tensor"));
  return t.to_vector<int64_t>();
}

// labels and clusters of one labelling each: same length, at least one sample.
void check_same_length(const std::string& op, const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size())
    throw Error(op + ": " + std::to_string(a.size()) + " labels but " + std::to_string(b.size()) + " clusters");
  if (a.empty()) throw Error(op + ": no samples");
}

// A 2-d floating tensor (N,D) as row-major doubles; every value finite.
std::vector<double> matrix_of(const std::string& op, const char* what, const Tensor& t) {
  if (!t.defined() || t.dim() != 2 || !is_floating(t.dtype()))
    throw Error(
        op + ": " + what + " must be a 2-d float32 or float64 tensor, got " +
        (t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()) : "an undefined tensor"));
  std::vector<double> v = t.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw Error(op + ": " + what + " holds " + num(v[i]) + " at flat index " + std::to_string(i));
  return v;
}

// Values turned into 0..n-1 by rank among the distinct values; returns n.
int64_t compact(std::vector<int64_t>& values) {
  std::vector<int64_t> distinct = values;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (int64_t& v : values) v = std::lower_bound(distinct.begin(), distinct.end(), v) - distinct.begin();
  return (int64_t)distinct.size();
}

// The contingency table n[i][j] = #samples with label class i and cluster j, (R,C) row-major.
struct Contingency {
  int64_t R = 0, C = 0, N = 0;
  std::vector<int64_t> n;
  std::vector<int64_t> row_sums, col_sums;  // a_i (class sizes) and b_j (cluster sizes)
};
Contingency contingency(const std::string& op, const Tensor& labels, const Tensor& clusters) {
  std::vector<int64_t> a = int_labels(op, "labels", labels), b = int_labels(op, "clusters", clusters);
  check_same_length(op, a, b);
  Contingency c;
  c.R = compact(a);
  c.C = compact(b);
  c.N = (int64_t)a.size();
  c.n.assign(c.R * c.C, 0);
  c.row_sums.assign(c.R, 0);
  c.col_sums.assign(c.C, 0);
  for (int64_t s = 0; s < c.N; ++s) {
    c.n[a[s] * c.C + b[s]]++;
    c.row_sums[a[s]]++;
    c.col_sums[b[s]]++;
  }
  return c;
}

// ---- pairwise squared distances by GEMM --------------------------------------------------------------

// Squared norms of the rows of A (n,D).
std::vector<double> row_sq_norms(const double* A, int64_t n, int64_t D) {
  std::vector<double> s(n);
  for (int64_t i = 0; i < n; ++i) {
    double acc = 0;
    for (int64_t d = 0; d < D; ++d) acc += A[i * D + d] * A[i * D + d];
    s[i] = acc;
  }
  return s;
}

// out (na,nb) = |a_i - b_j|^2 = |a_i|^2 - 2 a_i . b_j + |b_j|^2, with the middle term as one GEMM
// (A @ B^T). Rounding can make a distance a hair below zero; it is clamped to 0.
void sq_dists(const double* A, const double* a_sq, int64_t na, const double* B, const double* b_sq, int64_t nb,
              int64_t D, double* out) {
  blas::gemm<double>(false, true, na, nb, D, -2.0, A, D, B, D, 0.0, out, nb);
  for (int64_t i = 0; i < na; ++i)
    for (int64_t j = 0; j < nb; ++j) out[i * nb + j] = std::max(0.0, out[i * nb + j] + a_sq[i] + b_sq[j]);
}

}  // namespace

// =====================================================================================================
// the Hungarian algorithm
// =====================================================================================================
//
// The Kuhn–Munkres algorithm in its O(n^3) shortest-augmenting-path form (as in e-maxx's write-up and in
// Jonker–Volgenant). It keeps a potential u_i per row and v_j per column with u_i + v_j <= a_ij, so every
// reduced cost a_ij - u_i - v_j is >= 0, and a matched pair always has reduced cost 0. Rows are added one
// at a time. For the new row, a Dijkstra-like search over reduced costs grows a tree of columns until it
// reaches a free column: minv[j] is the cheapest reduced cost found so far to reach column j, and way[j]
// the column before it on that path. Each step shifts the potentials by the smallest minv (delta), which
// keeps the tree tight and makes at least one more column reachable at zero reduced cost. Then the
// matching is flipped along the path. After n rows, the matching is optimal: the potentials certify it
// (linear-programming duality). A rectangular matrix is padded to a square with zero-cost dummy rows or
// columns; a row matched to a dummy column is left out.

std::vector<int64_t> linear_sum_assignment(const std::vector<double>& cost, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || (int64_t)cost.size() != rows * cols)
    throw Error("linear_sum_assignment: a (" + std::to_string(rows) + "," + std::to_string(cols) + ") matrix needs " +
                std::to_string(rows * cols) + " costs, got " + std::to_string(cost.size()));
  for (size_t i = 0; i < cost.size(); ++i)
    if (!std::isfinite(cost[i]))
      throw Error("linear_sum_assignment: cost " + num(cost[i]) + " at (" + std::to_string(i / cols) + "," +
                  std::to_string(i % cols) + ") is not finite");
  const int64_t n = std::max(rows, cols);
  auto a = [&](int64_t i, int64_t j) {  // 1-based, padded with zeros
    return (i <= rows && j <= cols) ? cost[(i - 1) * cols + (j - 1)] : 0.0;
  };
  const double INF = std::numeric_limits<double>::infinity();
  // Index 0 is a sentinel column: p[0] holds the row being added.
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0);
  std::vector<int64_t> p(n + 1, 0), way(n + 1, 0);  // p[j]: the row matched to column j (0: none)
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(n + 1, INF);
    std::vector<char> used(n + 1, 0);
    do {  // grow the tree until it reaches a free column
      used[j0] = 1;
      int64_t i0 = p[j0], j1 = 0;
      double delta = INF;
      for (int64_t j = 1; j <= n; ++j)
        if (!used[j]) {
          double cur = a(i0, j) - u[i0] - v[j];
          if (cur < minv[j]) minv[j] = cur, way[j] = j0;
          if (minv[j] < delta) delta = minv[j], j1 = j;
        }
      for (int64_t j = 0; j <= n; ++j)
        if (used[j])
          u[p[j]] += delta, v[j] -= delta;
        else
          minv[j] -= delta;
      j0 = j1;
    } while (p[j0] != 0);
    do {  // flip the matching along the path back to the sentinel
      int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int64_t> col_of(rows, -1);
  for (int64_t j = 1; j <= n; ++j)
    if (p[j] >= 1 && p[j] <= rows && j <= cols) col_of[p[j] - 1] = j - 1;
  return col_of;
}

// =====================================================================================================
// clustering scores
// =====================================================================================================

double clustering_accuracy(const Tensor& labels, const Tensor& clusters) {
  Contingency c = contingency("clustering_accuracy", labels, clusters);
  // Rows are clusters, columns classes; the cost of mapping cluster j to class i is minus their overlap.
  std::vector<double> cost(c.C * c.R);
  for (int64_t i = 0; i < c.R; ++i)
    for (int64_t j = 0; j < c.C; ++j) cost[j * c.R + i] = -(double)c.n[i * c.C + j];
  std::vector<int64_t> class_of = linear_sum_assignment(cost, c.C, c.R);
  int64_t correct = 0;
  for (int64_t j = 0; j < c.C; ++j)
    if (class_of[j] >= 0) correct += c.n[class_of[j] * c.C + j];
  return (double)correct / (double)c.N;
}

double nmi(const Tensor& labels, const Tensor& clusters) {
  Contingency c = contingency("nmi", labels, clusters);
  // sklearn: both labellings a single group -> a perfect match, 1; one of them a single group -> MI = 0.
  if (c.R == 1 && c.C == 1) return 1.0;
  if (c.R == 1 || c.C == 1) return 0.0;
  // MI = sum_ij (n_ij/N) log(N n_ij / (a_i b_j)), over the non-zero cells. Like sklearn, each term is
  // zeroed when it is below machine epsilon in size, and the sum clipped at 0, so that independent
  // labellings score exactly 0 rather than a rounding error.
  const double N = (double)c.N, logN = std::log(N), eps = std::numeric_limits<double>::epsilon();
  double mi = 0;
  for (int64_t i = 0; i < c.R; ++i)
    for (int64_t j = 0; j < c.C; ++j) {
      int64_t nij = c.n[i * c.C + j];
      if (nij == 0) continue;
      double p = (double)nij / N;
      double term = p * (std::log((double)nij) - logN) +
                    p * (-std::log((double)c.row_sums[i] * (double)c.col_sums[j]) + 2 * logN);
      if (std::abs(term) >= eps) mi += term;
    }
  mi = std::max(mi, 0.0);
  if (mi == 0) return 0.0;
  // The entropies H = -sum_i (a_i/N) log(a_i/N), with log(a/N) as log a - log N for precision.
  auto entropy = [&](const std::vector<int64_t>& sizes) {
    double h = 0;
    for (int64_t s : sizes)
      if (s > 0) h -= (double)s / N * (std::log((double)s) - logN);
    return h;
  };
  return mi / ((entropy(c.row_sums) + entropy(c.col_sums)) / 2);
}

double ari(const Tensor& labels, const Tensor& clusters) {
  Contingency c = contingency("ari", labels, clusters);
  // sklearn's pair confusion matrix: over ordered pairs of distinct samples, tp = together in both
  // labellings, fp = together only in `clusters`, fn = together only in `labels`, tn = apart in both.
  //   tp = sum n_ij^2 - N,  fp = sum_ij n_ij b_j - sum n_ij^2,  fn = sum_ij n_ij a_i - sum n_ij^2,
  //   tn = N^2 - tp - fp - fn - N.
  // The products below reach N^4, past int64 for N ~ 10^5, so they run in 128-bit integers: exact, like
  // sklearn's Python ints.
  using i128 = __int128;
  i128 sum_sq = 0, sum_b = 0, sum_a = 0;
  for (int64_t i = 0; i < c.R; ++i)
    for (int64_t j = 0; j < c.C; ++j) {
      i128 nij = c.n[i * c.C + j];
      sum_sq += nij * nij;
      sum_b += nij * c.col_sums[j];
      sum_a += nij * c.row_sums[i];
    }
  const i128 N = c.N;
  i128 tp = sum_sq - N, fp = sum_b - sum_sq, fn = sum_a - sum_sq, tn = N * N - fp - fn - sum_sq;
  if (fn == 0 && fp == 0) return 1.0;  // identical partitions (and sklearn's empty case)
  // ARI = (RI - E[RI]) / (max RI - E[RI]), which over the pair counts simplifies to:
  i128 numer = 2 * (tp * tn - fn * fp);
  i128 denom = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn);
  return (double)numer / (double)denom;
}

// =====================================================================================================
// top-k: next-item recommendation
// =====================================================================================================

Tensor target_rank(const Tensor& scores, const Tensor& targets) {
  if (!scores.defined() || scores.dim() != 2 || !targets.defined() || targets.dtype() != int64 ||
      targets.dim() != 1 || targets.size(0) != scores.size(0))
    throw Error("target_rank: scores must be (N,C) and targets (N) int64, got " +
                (scores.defined() ? shape_str(scores.shape()) : "undefined") + " and " +
                (targets.defined() ? std::string(dtype_name(targets.dtype())) + " " + shape_str(targets.shape())
                                   : "undefined"));
  const int64_t N = scores.size(0), C = scores.size(1);
  std::vector<double> s = scores.to_vector<double>();
  std::vector<int64_t> t = targets.to_vector<int64_t>(), rank(N, 0);
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] < 0 || t[i] >= C)
      throw Error("target_rank: target " + std::to_string(i) + " is " + std::to_string(t[i]) + ", outside 0.." +
                  std::to_string(C - 1));
    const double* row = s.data() + i * C;
    const double mine = row[t[i]];
    for (int64_t j = 0; j < C; ++j) {
      if (std::isnan(row[j]))
        throw Error("target_rank: score (" + std::to_string(i) + "," + std::to_string(j) + ") is NaN");
      rank[i] += j != t[i] && row[j] >= mine;
    }
  }
  return from_vector(rank, Shape{N});
}

namespace {
std::vector<int64_t> ranks_of(const std::string& op, const Tensor& ranks, int64_t k) {
  if (!ranks.defined() || ranks.dtype() != int64 || ranks.dim() != 1 || ranks.size(0) == 0)
    throw Error(op + ": ranks must be (N) int64 with N >= 1, got " +
                (ranks.defined() ? std::string(dtype_name(ranks.dtype())) + " " + shape_str(ranks.shape())
                                 : "undefined"));
  if (k < 1) throw Error(op + ": k must be >= 1, got " + std::to_string(k));
  return ranks.to_vector<int64_t>();
}
}  // namespace

double hit_rate_at_k(const Tensor& ranks, int64_t k) {
  std::vector<int64_t> r = ranks_of("hit_rate_at_k", ranks, k);
  double hits = 0;
  for (int64_t x : r) hits += x < k;
  return hits / (double)r.size();
}

double ndcg_at_k(const Tensor& ranks, int64_t k) {
  std::vector<int64_t> r = ranks_of("ndcg_at_k", ranks, k);
  double total = 0;
  for (int64_t x : r) total += x < k ? 1.0 / std::log2((double)x + 2.0) : 0.0;
  return total / (double)r.size();
}

// =====================================================================================================
// ranking scores
// =====================================================================================================

namespace {

// scores (N) float and labels (N) in {0,1}, as doubles; both classes present.
void ranking_inputs(const std::string& op, const Tensor& scores, const Tensor& labels, std::vector<double>& s,
                    std::vector<double>& y, int64_t& n_pos) {
  if (!scores.defined() || scores.dim() != 1 || !labels.defined() || labels.dim() != 1 ||
      scores.size(0) != labels.size(0))
    throw Error(op + ": scores and labels must be 1-d of the same length, got " +
                (scores.defined() ? shape_str(scores.shape()) : "undefined") + " and " +
                (labels.defined() ? shape_str(labels.shape()) : "undefined"));
  s = scores.to_vector<double>();
  y = labels.to_vector<double>();
  n_pos = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (std::isnan(s[i])) throw Error(op + ": score " + std::to_string(i) + " is NaN");
    if (y[i] != 0 && y[i] != 1)
      throw Error(op + ": label " + std::to_string(i) + " is " + num(y[i]) + "; labels must be 0 or 1");
    n_pos += y[i] == 1;
  }
  int64_t n_neg = (int64_t)s.size() - n_pos;
  if (n_pos == 0 || n_neg == 0)
    throw Error(op + ": needs both classes, got " + std::to_string(n_pos) + " positives and " + std::to_string(n_neg) +
                " negatives; the score is undefined with only one class");
}

}  // namespace

double auroc(const Tensor& scores, const Tensor& labels) {
  std::vector<double> s, y;
  int64_t P;
  ranking_inputs("auroc", scores, labels, s, y, P);
  const int64_t N = (int64_t)s.size(), Nn = N - P;
  // Rank all scores ascending (1-based); a run of tied scores shares the average of its ranks.
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
  double rank_sum_pos = 0;
  for (int64_t lo = 0; lo < N;) {
    int64_t hi = lo;
    while (hi < N && s[order[hi]] == s[order[lo]]) ++hi;
    double avg_rank = (double)(lo + 1 + hi) / 2;  // ranks lo+1 .. hi
    for (int64_t t = lo; t < hi; ++t) rank_sum_pos += y[order[t]] * avg_rank;
    lo = hi;
  }
  // Mann–Whitney: U = R_pos - P(P+1)/2 counts the (positive, negative) pairs in the right order, ties as
  // one half; AUC = U / (P * Nn).
  return (rank_sum_pos - (double)P * (double)(P + 1) / 2) / ((double)P * (double)Nn);
}

double average_precision(const Tensor& scores, const Tensor& labels) {
  std::vector<double> s, y;
  int64_t P;
  ranking_inputs("average_precision", scores, labels, s, y, P);
  const int64_t N = (int64_t)s.size();
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  // Lower the threshold one distinct score at a time: all tied samples enter together.
  double tp = 0, fp = 0, recall_prev = 0, ap = 0;
  for (int64_t lo = 0; lo < N;) {
    int64_t hi = lo;
    for (; hi < N && s[order[hi]] == s[order[lo]]; ++hi) (y[order[hi]] == 1 ? tp : fp) += 1;
    double precision = tp / (tp + fp), recall = tp / (double)P;
    ap += (recall - recall_prev) * precision;
    recall_prev = recall;
    lo = hi;
  }
  return ap;
}

RocCurve roc_curve(const Tensor& scores, const Tensor& labels) {
  std::vector<double> s, y;
  int64_t P;
  ranking_inputs("roc_curve", scores, labels, s, y, P);
  const int64_t N = (int64_t)s.size();
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  RocCurve roc{{0.0}, {0.0}, {std::numeric_limits<double>::infinity()}};
  double tp = 0, fp = 0;  // as in average_precision: tied samples cross the threshold together
  for (int64_t lo = 0; lo < N;) {
    int64_t hi = lo;
    for (; hi < N && s[order[hi]] == s[order[lo]]; ++hi) (y[order[hi]] == 1 ? tp : fp) += 1;
    roc.fpr.push_back(fp / (double)(N - P)), roc.tpr.push_back(tp / (double)P), roc.thresholds.push_back(s[order[lo]]);
    lo = hi;
  }
  return roc;
}

double detection_rate(const Tensor& scores, const Tensor& labels, double max_fpr) {
  if (!(max_fpr >= 0 && max_fpr <= 1))
    throw Error("detection_rate: max_fpr must be in [0,1], got " + std::to_string(max_fpr));
  RocCurve roc = roc_curve(scores, labels);
  double best = 0;  // tpr grows along the curve, so this is the tpr of the last point inside the budget
  for (size_t i = 0; i < roc.fpr.size() && roc.fpr[i] <= max_fpr; ++i) best = roc.tpr[i];
  return best;
}

// =====================================================================================================
// reconstruction and likelihood
// =====================================================================================================

Tensor reconstruction_error(const Tensor& x, const Tensor& x_hat, const std::string& kind) {
  const std::string op = "reconstruction_error";
  if (!x.defined() || !x_hat.defined() || x.shape() != x_hat.shape() || x.dim() < 1 || x.size(0) < 1)
    throw Error(op + ": x and x_hat must have the same shape (N,...) with N >= 1, got " +
                (x.defined() ? shape_str(x.shape()) : "undefined") + " and " +
                (x_hat.defined() ? shape_str(x_hat.shape()) : "undefined"));
  if (!is_floating(x.dtype()) || x.dtype() != x_hat.dtype())
    throw Error(op + ": x and x_hat must share a float dtype, got " + dtype_name(x.dtype()) + " and " +
                dtype_name(x_hat.dtype()));
  if (x.numel() == 0) throw Error(op + ": samples of shape " + shape_str(x.shape()) + " have no features");
  NoGradGuard no_grad;
  const int64_t N = x.size(0);
  Tensor a = x.reshape({N, -1}), b = x_hat.reshape({N, -1});
  if (kind == "mse") return (a - b).square().mean(1);
  if (kind == "bce") {
    // Probabilities must lie in [0,1]; outside, the logs are NaN.
    for (auto [t, name] : {std::pair{a, "x"}, std::pair{b, "x_hat"}}) {
      double lo = min(t).item(), hi = max(t).item();
      if (!(lo >= 0 && hi <= 1))
        throw Error(op + ": \"bce\" needs " + name + " in [0,1], but it spans [" + num(lo) + ", " + num(hi) + "]");
    }
    const double inf = std::numeric_limits<double>::infinity();
    Tensor log_p = clamp(log(b), -100, inf), log_1mp = clamp(log(1.0 - b), -100, inf);
    return -(a * log_p + (1.0 - a) * log_1mp).sum(1);
  }
  throw Error(op + ": unknown kind \"" + kind + "\"; use \"mse\" or \"bce\"");
}

double nats_per_sample(const Tensor& nats) {
  if (!nats.defined() || nats.numel() == 0 || !is_floating(nats.dtype()))
    throw Error("nats_per_sample: needs a non-empty float tensor of per-sample nats");
  std::vector<double> v = nats.to_vector<double>();
  return std::accumulate(v.begin(), v.end(), 0.0) / (double)v.size();
}

double bits_per_dim(double nats_per_sample, int64_t dims) {
  if (dims < 1) throw Error("bits_per_dim: dims must be >= 1, got " + std::to_string(dims));
  return nats_per_sample / ((double)dims * std::log(2.0));
}

double digamma(double x) {
  if (!(x > 0)) throw Error("digamma: needs x > 0, got " + std::to_string(x));
  double shift = 0;  // ψ(x) = ψ(x + n) - Σ_{i<n} 1/(x + i)
  for (; x < 10; x += 1) shift -= 1 / x;
  const double r = 1 / (x * x);
  return shift + std::log(x) - 0.5 / x - r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r / 132))));
}

namespace {

// ψ'(x), the trigamma function, the same way: ψ'(x) = ψ'(x + 1) + 1/x², then its asymptotic series.
double trigamma(double x) {
  double shift = 0;
  for (; x < 10; x += 1) shift += 1 / (x * x);
  const double r = 1 / (x * x);
  return shift + 1 / x + r / 2 + r / x * (1.0 / 6 - r * (1.0 / 30 - r * (1.0 / 42 - r / 30)));
}

// The x with ψ(x) = y: Minka's starting point, then 5 Newton steps (GEOM's inv_psi).
double inverse_digamma(double y) {
  double x = y >= -2.22 ? std::exp(y) + 0.5 : -1 / (y - digamma(1));
  for (int i = 0; i < 5; ++i) x -= (digamma(x) - y) / trigamma(x);
  return x;
}

}  // namespace

Tensor dirichlet_mle(const Tensor& log_p) {
  const bool ok = log_p.defined() && log_p.dim() == 2 && log_p.size(0) >= 1 && log_p.size(1) >= 2;
  if (!ok || !is_floating(log_p.dtype()))
    throw Error("dirichlet_mle: needs the logs of N >= 1 points on a simplex of K >= 2, a float (N,K), got " +
                (log_p.defined() ? std::string(dtype_name(log_p.dtype())) + " " + shape_str(log_p.shape())
                                 : "undefined"));
  NoGradGuard no_grad;
  const int64_t N = log_p.size(0), K = log_p.size(1);
  const std::vector<double> lp = log_p.to(float64).contiguous().to_vector<double>();
  std::vector<double> mean_p(K), mean_log_p(K), alpha(K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) mean_p[k] += std::exp(lp[n * K + k]) / N, mean_log_p[k] += lp[n * K + k] / N;
  // Start: α = mean p · s, with s the moment-style estimate of Σα of GEOM's calc_approx_alpha_sum.
  double entropy_term = 0, cross_term = 0;
  for (int64_t k = 0; k < K; ++k)
    entropy_term += mean_p[k] * std::log(mean_p[k]), cross_term += mean_p[k] * mean_log_p[k];
  const double s = (K - 1) * -digamma(1) / (entropy_term - cross_term);
  for (int64_t k = 0; k < K; ++k) alpha[k] = mean_p[k] * (std::isfinite(s) && s > 0 ? s : 1);
  for (int iter = 0; iter < 1000; ++iter) {
    const double psi_sum = digamma(std::accumulate(alpha.begin(), alpha.end(), 0.0));
    double change = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double next = inverse_digamma(psi_sum + mean_log_p[k]);
      change += (next - alpha[k]) * (next - alpha[k]), alpha[k] = next;
    }
    if (std::sqrt(change) < 1e-9) break;
  }
  return from_vector(alpha, {K});
}

// =====================================================================================================
// k-means
// =====================================================================================================

namespace {

struct KMeansRun {
  std::vector<double> centres;  // (k,D)
  std::vector<int64_t> labels;  // (N)
  double inertia = 0;
  int n_iter = 0;
};

// Greedy k-means++ (Arthur and Vassilvitskii 2007, as sklearn's _kmeans_plusplus): the first centre is a
// uniform random point; each next one is the best of 2 + floor(ln k) candidates drawn with probability
// proportional to their squared distance from the nearest centre so far, "best" meaning the one that
// leaves the smallest total squared distance (potential).
std::vector<double> kmeans_plus_plus(const std::vector<double>& X, const std::vector<double>& x_sq, int64_t N,
                                     int64_t D, int64_t k, Generator& gen) {
  std::vector<double> centres(k * D);
  const int64_t trials = 2 + (int64_t)std::log((double)k);
  int64_t first = std::min(N - 1, (int64_t)(gen.next_double() * (double)N));
  std::copy_n(&X[first * D], D, &centres[0]);
  std::vector<double> closest(N);
  sq_dists(&X[first * D], &x_sq[first], 1, X.data(), x_sq.data(), N, D, closest.data());
  double potential = std::accumulate(closest.begin(), closest.end(), 0.0);

  std::vector<double> cumsum(N), cand(trials * D), cand_sq(trials), d(trials * N);
  std::vector<int64_t> cand_ids(trials);
  for (int64_t c = 1; c < k; ++c) {
    std::partial_sum(closest.begin(), closest.end(), cumsum.begin());
    for (int64_t t = 0; t < trials; ++t) {
      // The first point whose running sum reaches the draw (numpy's searchsorted, side left).
      double r = gen.next_double() * potential;
      int64_t id = std::lower_bound(cumsum.begin(), cumsum.end(), r) - cumsum.begin();
      cand_ids[t] = std::min(id, N - 1);
      std::copy_n(&X[cand_ids[t] * D], D, &cand[t * D]);
      cand_sq[t] = x_sq[cand_ids[t]];
    }
    sq_dists(cand.data(), cand_sq.data(), trials, X.data(), x_sq.data(), N, D, d.data());
    int64_t best = 0;
    double best_potential = std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < trials; ++t) {
      double pot = 0;
      for (int64_t i = 0; i < N; ++i) pot += (d[t * N + i] = std::min(d[t * N + i], closest[i]));
      if (pot < best_potential) best_potential = pot, best = t;
    }
    potential = best_potential;
    std::copy_n(&d[best * N], N, closest.begin());
    std::copy_n(&X[cand_ids[best] * D], D, &centres[c * D]);
  }
  return centres;
}

// Labels each point with its nearest centre (the first on ties); dist[i] is that squared distance.
void assign(const std::vector<double>& X, const std::vector<double>& x_sq, int64_t N, int64_t D,
            const std::vector<double>& centres, int64_t k, std::vector<double>& d, std::vector<int64_t>& labels,
            std::vector<double>& dist) {
  std::vector<double> c_sq = row_sq_norms(centres.data(), k, D);
  sq_dists(X.data(), x_sq.data(), N, centres.data(), c_sq.data(), k, D, d.data());
  for (int64_t i = 0; i < N; ++i) {
    const double* row = &d[i * k];
    int64_t best = std::min_element(row, row + k) - row;
    labels[i] = best;
    dist[i] = row[best];
  }
}

// Lloyd's iterations from `centres`, as sklearn's _kmeans_single_lloyd.
KMeansRun lloyd(const std::vector<double>& X, const std::vector<double>& x_sq, int64_t N, int64_t D, int64_t k,
                std::vector<double> centres, int max_iter, double tol) {
  KMeansRun run;
  std::vector<int64_t> labels(N), labels_old(N, -1);
  std::vector<double> d(N * k), dist(N), sums(k * D), counts(k);
  bool strict = false;
  int it = 0;
  for (; it < max_iter; ++it) {
    assign(X, x_sq, N, D, centres, k, d, labels, dist);
    // New centres: the mean of each cluster's points.
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0.0);
    for (int64_t i = 0; i < N; ++i) {
      counts[labels[i]] += 1;
      for (int64_t f = 0; f < D; ++f) sums[labels[i] * D + f] += X[i * D + f];
    }
    // An empty cluster takes over the point farthest from its centre (sklearn's
    // _relocate_empty_clusters): the farthest point for the first empty cluster, and so on.
    std::vector<int64_t> empty_clusters;
    for (int64_t c = 0; c < k; ++c)
      if (counts[c] == 0) empty_clusters.push_back(c);
    if (!empty_clusters.empty()) {
      std::vector<int64_t> far(N);
      std::iota(far.begin(), far.end(), 0);
      std::stable_sort(far.begin(), far.end(), [&](int64_t a, int64_t b) { return dist[a] > dist[b]; });
      for (size_t e = 0; e < empty_clusters.size() && e < far.size(); ++e) {
        int64_t p = far[e], from = labels[p], to = empty_clusters[e];
        for (int64_t f = 0; f < D; ++f) {
          sums[from * D + f] -= X[p * D + f];
          sums[to * D + f] = X[p * D + f];
        }
        counts[from] -= 1;
        counts[to] = 1;
      }
    }
    double shift = 0;  // the sum over centres of the squared distance each one moved
    for (int64_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;  // only possible with fewer distinct points than k: keep the centre
      for (int64_t f = 0; f < D; ++f) {
        double updated = sums[c * D + f] / counts[c];
        shift += (updated - centres[c * D + f]) * (updated - centres[c * D + f]);
        centres[c * D + f] = updated;
      }
    }
    if (labels == labels_old) {  // nothing moved: converged exactly, and the labels match the centres
      strict = true;
      break;
    }
    if (shift <= tol) break;
    labels_old = labels;
  }
  run.n_iter = std::min(it + 1, max_iter);
  // Stopped on the tolerance or max_iter: one more assignment, so that the labels match the centres.
  if (!strict) assign(X, x_sq, N, D, centres, k, d, labels, dist);
  // Inertia from the differences themselves: more accurate than the GEMM expansion.
  double inertia = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) {
      double diff = X[i * D + f] - centres[labels[i] * D + f];
      inertia += diff * diff;
    }
  run.centres = std::move(centres);
  run.labels = std::move(labels);
  run.inertia = inertia;
  return run;
}

}  // namespace

KMeansResult kmeans(const Tensor& x, int k, int n_init, int max_iter, double tol, uint64_t seed) {
  std::vector<double> X = matrix_of("kmeans", "x", x);
  const int64_t N = x.size(0), D = x.size(1);
  if (k < 1 || k > N)
    throw Error("kmeans: need 1 <= k <= N, got k=" + std::to_string(k) + " for " + std::to_string(N) + " points");
  if (n_init < 1 || max_iter < 1 || !(tol >= 0))
    throw Error("kmeans: need n_init >= 1, max_iter >= 1 and tol >= 0, got " + std::to_string(n_init) + ", " +
                std::to_string(max_iter) + ", " + num(tol));
  std::vector<double> x_sq = row_sq_norms(X.data(), N, D);
  // sklearn's _tolerance: tol is relative to the data's scale, the mean over columns of their variance.
  // Column means, then the columns' variances (divisor N, as np.var), in row-major passes over x.
  std::vector<double> col_mean(D, 0.0), col_var(D, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) col_mean[f] += X[i * D + f];
  for (double& m : col_mean) m /= (double)N;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) col_var[f] += (X[i * D + f] - col_mean[f]) * (X[i * D + f] - col_mean[f]);
  double sum_var = 0;
  for (double v : col_var) sum_var += v / (double)N;
  const double tol_abs = tol * sum_var / (double)D;

  Generator gen(seed);
  KMeansRun best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int r = 0; r < n_init; ++r) {
    KMeansRun run = lloyd(X, x_sq, N, D, k, kmeans_plus_plus(X, x_sq, N, D, k, gen), max_iter, tol_abs);
    if (run.inertia < best.inertia) best = std::move(run);
  }
  KMeansResult out;
  out.labels = from_vector(best.labels, Shape{N});
  out.centres = from_vector(best.centres, Shape{(int64_t)k, D}).to(x.dtype());
  out.inertia = best.inertia;
  out.n_iter = best.n_iter;
  return out;
}

// =====================================================================================================
// PCA and trustworthiness
// =====================================================================================================

PCAResult pca(const Tensor& x, int n_components) {
  std::vector<double> X = matrix_of("pca", "x", x);
  const int64_t N = x.size(0), D = x.size(1);
  if (N < 2) throw Error("pca: needs at least 2 samples, got " + std::to_string(N));
  if (n_components < 1 || n_components > std::min(N, D))
    throw Error("pca: n_components must be in 1..min(N, D) = " + std::to_string(std::min(N, D)) + ", got " +
                std::to_string(n_components));
  // Centre the columns, then the covariance C = Xc^T Xc / (N-1): (D,D), one GEMM.
  std::vector<double> mean(D, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) mean[f] += X[i * D + f];
  for (double& m : mean) m /= (double)N;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) X[i * D + f] -= mean[f];
  std::vector<double> C(D * D), evals(D);
  blas::gemm<double>(true, false, D, D, N, 1.0 / (double)(N - 1), X.data(), D, X.data(), D, 0.0, C.data(), D);
  double total_var = 0;
  for (int64_t f = 0; f < D; ++f) total_var += C[f * D + f];
  // Eigenvalues come back ascending with eigenvector i in row i of C (blas.h); take them from the top.
  blas::syevd<double>(D, C.data(), evals.data());
  const int64_t K = n_components;
  std::vector<double> comps(K * D), ev(K), ratio(K), proj(N);
  for (int64_t c = 0; c < K; ++c) {
    const double* vec = &C[(D - 1 - c) * D];
    std::copy_n(vec, D, &comps[c * D]);
    ev[c] = std::max(0.0, evals[D - 1 - c]);
    ratio[c] = total_var > 0 ? ev[c] / total_var : 0.0;
    // svd_flip: make the largest |projection| positive (sklearn decides the sign from U = Xc V / S).
    blas::gemm<double>(false, false, N, 1, D, 1.0, X.data(), D, &comps[c * D], 1, 0.0, proj.data(), 1);
    int64_t arg = 0;
    for (int64_t i = 1; i < N; ++i)
      if (std::abs(proj[i]) > std::abs(proj[arg])) arg = i;
    if (proj[arg] < 0)
      for (int64_t f = 0; f < D; ++f) comps[c * D + f] = -comps[c * D + f];
  }
  PCAResult r;
  r.mean = from_vector(mean, Shape{D}).to(x.dtype());
  r.components = from_vector(comps, Shape{K, D}).to(x.dtype());
  r.explained_variance = from_vector(ev, Shape{K}).to(x.dtype());
  r.explained_variance_ratio = from_vector(ratio, Shape{K}).to(x.dtype());
  return r;
}

Tensor PCAResult::transform(const Tensor& x) const {
  if (!x.defined() || x.dim() != 2 || x.size(1) != mean.size(0))
    throw Error("PCAResult::transform: x must be (M," + std::to_string(mean.size(0)) + "), got " +
                (x.defined() ? shape_str(x.shape()) : "undefined"));
  return matmul(x - mean, components.mT());
}

Tensor PCAResult::inverse_transform(const Tensor& z) const {
  if (!z.defined() || z.dim() != 2 || z.size(1) != components.size(0))
    throw Error("PCAResult::inverse_transform: z must be (M," + std::to_string(components.size(0)) + "), got " +
                (z.defined() ? shape_str(z.shape()) : "undefined"));
  return matmul(z, components) + mean;
}

double trustworthiness(const Tensor& X, const Tensor& Y, int k) {
  std::vector<double> A = matrix_of("trustworthiness", "X", X), B = matrix_of("trustworthiness", "Y", Y);
  const int64_t N = X.size(0), DA = X.size(1), DB = Y.size(1);
  if (Y.size(0) != N)
    throw Error("trustworthiness: X has " + std::to_string(N) + " samples but Y has " + std::to_string(Y.size(0)));
  if (k < 1 || 2 * (int64_t)k >= N)
    throw Error("trustworthiness: k must satisfy 1 <= k < N/2 (as sklearn), got k=" + std::to_string(k) +
                " for N=" + std::to_string(N));
  std::vector<double> a_sq = row_sq_norms(A.data(), N, DA), b_sq = row_sq_norms(B.data(), N, DB);
  // Rows are done in blocks, so that memory is (block, N) and not (N, N).
  const int64_t block = 256;
  std::vector<double> dA(block * N), dB(block * N);
  std::vector<int64_t> order(N), rank(N), nn(N);
  double penalty = 0;
  for (int64_t i0 = 0; i0 < N; i0 += block) {
    int64_t rows = std::min(block, N - i0);
    sq_dists(&A[i0 * DA], &a_sq[i0], rows, A.data(), a_sq.data(), N, DA, dA.data());
    sq_dists(&B[i0 * DB], &b_sq[i0], rows, B.data(), b_sq.data(), N, DB, dB.data());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      const double* da = &dA[r * N];
      const double* db = &dB[r * N];
      // r(i,j): j's rank (1-based) among i's neighbours in X, i itself excluded; ties by index.
      auto closer = [](const double* d) {
        return [d](int64_t a, int64_t b) { return d[a] < d[b] || (d[a] == d[b] && a < b); };
      };
      int64_t m = 0;
      for (int64_t j = 0; j < N; ++j)
        if (j != i) order[m++] = j;
      std::sort(order.begin(), order.begin() + m, closer(da));
      for (int64_t p = 0; p < m; ++p) rank[order[p]] = p + 1;
      // i's k nearest neighbours in Y.
      m = 0;
      for (int64_t j = 0; j < N; ++j)
        if (j != i) nn[m++] = j;
      std::partial_sort(nn.begin(), nn.begin() + k, nn.begin() + m, closer(db));
      for (int64_t p = 0; p < k; ++p) penalty += (double)std::max<int64_t>(0, rank[nn[p]] - k);
    }
  }
  const double n = (double)N, kk = (double)k;
  return 1.0 - penalty * (2.0 / (n * kk * (2.0 * n - 3.0 * kk - 1.0)));
}

double knn_cv_accuracy(const Tensor& Y, const Tensor& labels, int k, int folds) {
  const std::string op = "knn_cv_accuracy";
  std::vector<double> A = matrix_of(op, "Y", Y);
  std::vector<int64_t> y = int_labels(op, "labels", labels);
  const int64_t N = Y.size(0), D = Y.size(1);
  if ((int64_t)y.size() != N)
    throw Error(op + ": Y has " + std::to_string(N) + " samples but labels has " + std::to_string(y.size()));
  if (folds < 2 || k < 1 || N < folds || N - (N + folds - 1) / folds < k)
    throw Error(op + ": need folds >= 2 and k >= 1 with k points in every fold's training set, got k=" +
                std::to_string(k) + ", folds=" + std::to_string(folds) + " for N=" + std::to_string(N));
  // StratifiedKFold's test folds, as sklearn 1.2's _make_test_folds: the classes numbered in order of first
  // appearance; the labels sorted by that number and dealt round robin (position p to fold p % folds) say how
  // many of each class each fold gets; then each class's samples, in data order, fill fold 0's share, then 1's...
  std::vector<int64_t> code(N), seen;
  for (int64_t i = 0; i < N; ++i) {
    auto at = std::find(seen.begin(), seen.end(), y[i]);
    code[i] = at - seen.begin();
    if (at == seen.end()) seen.push_back(y[i]);
  }
  const int64_t C = (int64_t)seen.size();
  std::vector<int64_t> sorted = code, share(folds * C, 0), fold_of(N), filled(C, 0), next_fold(C, 0);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t p = 0; p < N; ++p) share[(p % folds) * C + sorted[p]]++;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t c = code[i];
    while (filled[c] == share[next_fold[c] * C + c]) filled[c] = 0, next_fold[c]++;
    fold_of[i] = next_fold[c], filled[c]++;
  }
  // Each fold: its points against the others', by GEMM in blocks of rows; the k closest vote.
  double total = 0;
  for (int f = 0; f < folds; ++f) {
    std::vector<int64_t> test, train;
    for (int64_t i = 0; i < N; ++i) (fold_of[i] == f ? test : train).push_back(i);
    const int64_t nt = (int64_t)test.size(), nr = (int64_t)train.size(), block = 256;
    std::vector<double> T(nt * D), R(nr * D), dist(block * nr);
    for (int64_t i = 0; i < nt; ++i) std::copy_n(&A[test[i] * D], D, &T[i * D]);
    for (int64_t i = 0; i < nr; ++i) std::copy_n(&A[train[i] * D], D, &R[i * D]);
    std::vector<double> t_sq = row_sq_norms(T.data(), nt, D), r_sq = row_sq_norms(R.data(), nr, D);
    std::vector<int64_t> nn(nr);
    int64_t correct = 0;
    for (int64_t i0 = 0; i0 < nt; i0 += block) {
      const int64_t rows = std::min(block, nt - i0);
      sq_dists(&T[i0 * D], &t_sq[i0], rows, R.data(), r_sq.data(), nr, D, dist.data());
      for (int64_t r = 0; r < rows; ++r) {
        const double* d = &dist[r * nr];
        std::iota(nn.begin(), nn.end(), 0);
        std::partial_sort(nn.begin(), nn.begin() + k, nn.end(),
                          [d](int64_t a, int64_t b) { return d[a] < d[b] || (d[a] == d[b] && a < b); });
        // The vote: the most frequent label among the k, the smallest label on a tie (scipy.stats.mode).
        std::vector<int64_t> votes(k);
        for (int64_t p = 0; p < k; ++p) votes[p] = y[train[nn[p]]];
        std::sort(votes.begin(), votes.end());
        int64_t best = votes[0], best_count = 0;
        for (int64_t p = 0; p < k;) {
          int64_t q = p;
          while (q < k && votes[q] == votes[p]) ++q;
          if (q - p > best_count) best = votes[p], best_count = q - p;
          p = q;
        }
        correct += best == y[test[i0 + r]];
      }
    }
    total += (double)correct / (double)nt;
  }
  return total / folds;
}

// =====================================================================================================
// mean, covariance and the Fréchet distance
// =====================================================================================================

std::pair<Tensor, Tensor> mean_and_cov(const Tensor& features) {
  std::vector<double> X = matrix_of("mean_and_cov", "features", features);
  const int64_t N = features.size(0), D = features.size(1);
  if (N < 2) throw Error("mean_and_cov: needs at least 2 samples for a covariance, got " + std::to_string(N));
  std::vector<double> mean(D, 0.0), cov(D * D);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) mean[f] += X[i * D + f];
  for (double& m : mean) m /= (double)N;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t f = 0; f < D; ++f) X[i * D + f] -= mean[f];
  blas::gemm<double>(true, false, D, D, N, 1.0 / (double)(N - 1), X.data(), D, X.data(), D, 0.0, cov.data(), D);
  // GEMM may round (i,j) and (j,i) differently; the covariance is symmetric by definition.
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = i + 1; j < D; ++j) cov[j * D + i] = cov[i * D + j];
  return {from_vector(mean, Shape{D}), from_vector(cov, Shape{D, D})};
}

namespace {

// A (D,D) covariance as doubles: square, finite, symmetric up to rounding (then made exactly symmetric).
std::vector<double> covariance_of(const char* what, const Tensor& c, int64_t D) {
  const std::string op = "frechet_distance";
  if (!c.defined() || c.dim() != 2 || c.size(0) != D || c.size(1) != D)
    throw Error(op + ": " + what + " must be (" + std::to_string(D) + "," + std::to_string(D) + "), got " +
                (c.defined() ? shape_str(c.shape()) : "undefined"));
  std::vector<double> m = matrix_of(op, what, c);
  double scale = 0, asym = 0;
  for (double v : m) scale = std::max(scale, std::abs(v));
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = i + 1; j < D; ++j) asym = std::max(asym, std::abs(m[i * D + j] - m[j * D + i]));
  if (asym > 1e-4 * std::max(scale, 1e-300))
    throw Error(op + ": " + what + " is not symmetric: entries differ from their transposes by up to " + num(asym) +
                " (largest entry " + num(scale) + ")");
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = i + 1; j < D; ++j) m[i * D + j] = m[j * D + i] = (m[i * D + j] + m[j * D + i]) / 2;
  return m;
}

// The eigenvalues of a symmetric (D,D) matrix; `m` is overwritten with the eigenvectors (rows).
std::vector<double> eigenvalues(std::vector<double>& m, int64_t D) {
  std::vector<double> w(D);
  blas::syevd<double>(D, m.data(), w.data());
  return w;
}

}  // namespace

double frechet_distance(const Tensor& mu1, const Tensor& cov1, const Tensor& mu2, const Tensor& cov2) {
  if (!mu1.defined() || !mu2.defined() || mu1.dim() != 1 || mu1.shape() != mu2.shape() || !is_floating(mu1.dtype()) ||
      !is_floating(mu2.dtype()))
    throw Error("frechet_distance: mu1 and mu2 must be float vectors (D) of the same length, got " +
                (mu1.defined() ? shape_str(mu1.shape()) : "undefined") + " and " +
                (mu2.defined() ? shape_str(mu2.shape()) : "undefined"));
  const int64_t D = mu1.size(0);
  std::vector<double> m1 = mu1.to_vector<double>(), m2 = mu2.to_vector<double>();
  std::vector<double> C1 = covariance_of("cov1", cov1, D), C2 = covariance_of("cov2", cov2, D);

  double mean_term = 0, trace = 0;
  for (int64_t f = 0; f < D; ++f) {
    mean_term += (m1[f] - m2[f]) * (m1[f] - m2[f]);
    trace += C1[f * D + f] + C2[f * D + f];
  }
  // S = C1^{1/2} = Q diag(sqrt(max(lambda, 0))) Q^T, with Q's columns the eigenvectors (syevd's rows).
  // Tiny negative eigenvalues are rounding in a PSD matrix, hence the max.
  std::vector<double> Q = C1;
  std::vector<double> lambda = eigenvalues(Q, D);
  std::vector<double> scaled(D * D);  // row k = sqrt(lambda_k) q_k
  for (int64_t k = 0; k < D; ++k) {
    double s = std::sqrt(std::max(lambda[k], 0.0));
    for (int64_t f = 0; f < D; ++f) scaled[k * D + f] = s * Q[k * D + f];
  }
  // S = sum_k q_k sqrt(lambda_k) q_k^T: the rows of Q (the q_k) transposed, times the scaled rows.
  std::vector<double> S(D * D), T(D * D), M(D * D);
  blas::gemm<double>(true, false, D, D, D, 1.0, Q.data(), D, scaled.data(), D, 0.0, S.data(), D);
  // M = S C2 S: symmetric PSD and similar to C1 C2, so it has the same eigenvalues.
  blas::gemm<double>(false, false, D, D, D, 1.0, S.data(), D, C2.data(), D, 0.0, T.data(), D);
  blas::gemm<double>(false, false, D, D, D, 1.0, T.data(), D, S.data(), D, 0.0, M.data(), D);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = i + 1; j < D; ++j) M[i * D + j] = M[j * D + i] = (M[i * D + j] + M[j * D + i]) / 2;
  double tr_sqrt = 0;
  for (double l : eigenvalues(M, D)) tr_sqrt += std::sqrt(std::max(l, 0.0));
  return mean_term + trace - 2.0 * tr_sqrt;
}

}  // namespace heed::metrics

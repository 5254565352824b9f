// metrics.h: how the zoo scores its models, with the same definitions as scikit-learn (and SciPy for the
// Fréchet distance), so that numbers can be compared with published ones. tests/nn/test_metrics.cpp checks
// each against hand-computed values and against fixtures that tests/fixtures/metrics/make_metrics_fixtures.py
// wrote with scikit-learn 1.2.1.
//
//   clustering     clustering_accuracy (Hungarian matching), nmi, ari, kmeans
//   ranking        auroc, average_precision, roc_curve, detection_rate (anomaly detection)
//   top-k          target_rank, hit_rate_at_k, ndcg_at_k (next-item recommendation, one relevant item)
//   likelihood     reconstruction_error, nats_per_sample, bits_per_dim (autoencoders, VAEs);
//                  digamma, dirichlet_mle (GEOM's anomaly score)
//   embeddings     pca, trustworthiness, knn_cv_accuracy
//   samples        mean_and_cov, frechet_distance (FID-style scores of generative models)
//
// Inputs are heed tensors; the arithmetic runs in double whatever their dtype. Nothing here records an
// autograd graph. Errors are heed::Error, with a message that starts with the function's name.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace heed::metrics {

// ---- clustering -------------------------------------------------------------------------------------
/// The assignment of rows to columns with the least total cost (the Hungarian algorithm, O(n^3) for
/// n = max(rows, cols)), like scipy.optimize.linear_sum_assignment. `cost` is (rows, cols) row-major.
/// Returns, for each row, its column, or -1 when rows > cols left that row out.
std::vector<int64_t> linear_sum_assignment(const std::vector<double>& cost, int64_t rows, int64_t cols);

/// The fraction of samples whose cluster maps to their label, under the best one-to-one map from
/// clusters to labels. labels and clusters: (N) int64, any values (they need not be 0..k-1).
double clustering_accuracy(const Tensor& labels, const Tensor& clusters);
/// Normalised mutual information, MI / ((H(labels) + H(clusters)) / 2): sklearn's
/// normalized_mutual_info_score with its default arithmetic mean.
double nmi(const Tensor& labels, const Tensor& clusters);
/// The adjusted Rand index: sklearn's adjusted_rand_score. 1 for identical partitions, about 0 by chance.
double ari(const Tensor& labels, const Tensor& clusters);

struct KMeansResult {
  Tensor labels;        // (N) int64, the closest centre of each point
  Tensor centres;       // (k,D), x's dtype
  double inertia = 0;   // the sum of squared distances from each point to its centre
  int n_iter = 0;       // Lloyd iterations of the best run
};
/// Lloyd's k-means as sklearn.cluster.KMeans: greedy k-means++ seeding, n_init runs keeping the lowest
/// inertia; a run stops when the labels stop changing, or when the squared centre shifts sum to at most
/// tol * (the mean variance of x's columns). x: (N,D) float32 or float64.
KMeansResult kmeans(const Tensor& x, int k, int n_init = 10, int max_iter = 300, double tol = 1e-4, uint64_t seed = 0);

// ---- ranking ------------------------------------------------------------------------------------------
/// The area under the ROC curve: the probability that a random positive scores above a random negative,
/// ties counting one half (the Mann–Whitney U statistic). scores: (N) float; labels: (N), values 0/1.
double auroc(const Tensor& scores, const Tensor& labels);
/// sklearn's average_precision_score: sum over the distinct score thresholds, from high to low, of
/// (R_n - R_{n-1}) * P_n, the precision at each step weighted by the recall it adds.
double average_precision(const Tensor& scores, const Tensor& labels);
/// The ROC curve as sklearn.metrics.roc_curve(drop_intermediate=False): one point per distinct score,
/// from the highest down, where "positive" means score >= threshold; the first point is (0,0) at +inf.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};
RocCurve roc_curve(const Tensor& scores, const Tensor& labels);
/// The anomaly detection rate at a false-positive budget: the largest TPR of roc_curve among the points
/// with FPR <= max_fpr. With labels 1 = anomaly, max_fpr = 0.05 is the recall of anomalies at the
/// threshold that flags (at most) 5% of the normal images. Tied scores are flagged together or not at all.
double detection_rate(const Tensor& scores, const Tensor& labels, double max_fpr = 0.05);

// ---- top-k: next-item recommendation ------------------------------------------------------------------
/// The 0-based rank of each row's target among its row's candidates: how many other candidates score at
/// least as high. Ties count against the target, so a model that gives many items the same score (a
/// popularity count) is not flattered by the order of the columns. scores (N,C) float, targets (N) int64
/// column indices -> (N) int64 in 0..C-1. A NaN score throws.
Tensor target_rank(const Tensor& scores, const Tensor& targets);
/// HR@k: the fraction of ranks (N) int64 below k (the target is in the top k).
double hit_rate_at_k(const Tensor& ranks, int64_t k);
/// NDCG@k with one relevant item: the mean over rows of 1/log2(rank + 2) when rank < k, else 0. The ideal
/// DCG is 1 (the target first), so it needs no normalising.
double ndcg_at_k(const Tensor& ranks, int64_t k);

// ---- reconstruction and likelihood ---------------------------------------------------------------------
/// Per-sample error between x and its reconstruction x_hat, both (N,...) -> (N), in x's dtype:
///   "mse": the mean over features of (x - x_hat)^2;
///   "bce": the sum over features of -[x log x_hat + (1-x) log(1-x_hat)], logs clamped at -100 as in
///          PyTorch: the negative log-likelihood in nats of x under Bernoulli means x_hat (a VAE's
///          reconstruction term).
Tensor reconstruction_error(const Tensor& x, const Tensor& x_hat, const std::string& kind = "mse");
/// The mean of per-sample negative log-likelihoods (or negative ELBOs) in nats.
double nats_per_sample(const Tensor& nats);
/// nats / (dims * ln 2): the usual unit for comparing likelihoods of images of different sizes.
double bits_per_dim(double nats_per_sample, int64_t dims);
/// ψ(x) = d/dx ln Γ(x) for x > 0 (the recurrence ψ(x) = ψ(x+1) - 1/x up to x >= 10, then the asymptotic series),
/// to about 1e-12: ψ(1) = -0.5772156649 (minus Euler's constant).
double digamma(double x);
/// The maximum-likelihood Dirichlet α (K) of N points on the simplex, given as their logs log_p (N,K): Minka's
/// fixed point ψ(α_k) = ψ(Σ_j α_j) + mean_n log p_nk, started and stopped as GEOM's fixed_point_dirichlet_mle
/// (Golan and El-Yaniv 2018). Returns float64. An image's Dirichlet log-density, up to a constant, is then
/// Σ_k (α_k - 1) log p_k: GEOM's normality score.
Tensor dirichlet_mle(const Tensor& log_p);

// ---- embeddings --------------------------------------------------------------------------------------
struct PCAResult {
  Tensor mean;                      // (D)
  Tensor components;                // (n_components, D): unit rows, by explained variance descending
  Tensor explained_variance;        // (n_components): eigenvalues of the covariance (divisor N-1)
  Tensor explained_variance_ratio;  // (n_components): each over the total variance
  /// (M,D) -> (M,n_components): (x - mean) @ components^T.
  Tensor transform(const Tensor& x) const;
  /// (M,n_components) -> (M,D): z @ components + mean.
  Tensor inverse_transform(const Tensor& z) const;
};
/// Principal components of x (N,D), from the eigendecomposition of its covariance (blas::syevd). Signs
/// follow sklearn's svd_flip: each component points so that the sample with the largest |projection| on
/// it projects positively, so components match sklearn's PCA (barring exact ties). Results in x's dtype.
PCAResult pca(const Tensor& x, int n_components);

/// sklearn.manifold.trustworthiness with the euclidean metric: how far an embedding Y (N,d) keeps each
/// point's k nearest neighbours from X (N,D) as neighbours. 1 - 2/(N k (2N - 3k - 1)) * sum over points i
/// and over their embedding neighbours j of max(0, r(i,j) - k), where r(i,j) is j's rank among i's
/// neighbours in X. Needs 1 <= k < N/2.
double trustworthiness(const Tensor& X, const Tensor& Y, int k = 5);
/// How well an embedding Y (N,d) keeps classes apart locally: the mean over `folds` folds of the accuracy of a
/// k-nearest-neighbour vote (euclidean; a tied vote goes to the smallest label) that sees the other folds'
/// points. sklearn's cross_val_score(KNeighborsClassifier(k), Y, labels, cv=folds).mean(): the folds are
/// StratifiedKFold's without shuffling, each class dealt to the folds in blocks, in data order. labels: (N) int64.
double knn_cv_accuracy(const Tensor& Y, const Tensor& labels, int k = 5, int folds = 5);

// ---- sample quality ------------------------------------------------------------------------------------
/// The mean (D) and covariance (D,D) of features (N,D), N >= 2, as np.mean(axis=0) and np.cov(rowvar=False)
/// (divisor N-1). float64.
std::pair<Tensor, Tensor> mean_and_cov(const Tensor& features);
/// The Fréchet distance between N(mu1, cov1) and N(mu2, cov2), the formula behind FID:
///   |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^{1/2}).
/// The trace of the square root comes from symmetric eigendecompositions, not a general sqrtm: with
/// S = cov1^{1/2}, cov1 cov2 is similar to S cov2 S, which is symmetric PSD, so
/// tr((cov1 cov2)^{1/2}) = sum_i sqrt(max(lambda_i(S cov2 S), 0)).
double frechet_distance(const Tensor& mu1, const Tensor& cov1, const Tensor& mu2, const Tensor& cov2);

}  // namespace heed::metrics

// blas.h: heed's door to OpenBLAS: matrix multiply, the symmetric eigensolver, and thread control.
//
// heed does not link OpenBLAS; it loads it with dlopen on first use (tensor/kernels/blas.cpp explains why: it is
// how heed gets the fast kernel for this CPU without the user setting anything). Everything here loads the
// library if needed, so there is no init call to forget.
//
// Every kernel has a plain reference loop next to it (gemm_ref), which the tests compare it against.
// Matrices are row-major throughout, with explicit row strides (lda, ldb, ldc) so that sub-matrix views
// and transposed views go straight to BLAS without a copy.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/parallel.h"  // set_num_threads, get_num_threads

namespace heed {

/// What heed loaded and how it runs.
struct BlasInfo {
  /// The file that was loaded, e.g. /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so
  std::string library;
  /// The kernel family OpenBLAS runs (openblas_get_corename()), e.g. "SkylakeX".
  std::string core;
  /// openblas_get_config(), e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64"
  std::string config;
  /// OpenBLAS's own thread count: 1, since gemm runs its panels on heed's threads (see "Threads" below).
  int threads = 0;
  /// True when OPENBLAS_CORETYPE was already set before heed loaded OpenBLAS.
  bool core_from_user = false;
};

/// The CPU facts that choose OpenBLAS's kernel family: vendor, family (cpuid's, extended family included:
/// 0x19 is AMD Zen 3 and Zen 4, 0x1a Zen 5; Intel's server cores are 6) and the vector extensions.
struct CpuId {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  int family = 0;
  bool avx512f = false, avx2 = false;
};
/// The CPU this process runs on.
CpuId this_cpu();
/// OpenBLAS's kernel family for `cpu` (OPENBLAS_CORETYPE's value, e.g. "SkylakeX"), and why, from the table
/// that bench/README.md ("The BLAS kernel per CPU") justifies with sgemm measured on each CPU seen.
/// An empty name leaves OpenBLAS's own detection alone.
struct CoreChoice {
  std::string core, reason;
};
CoreChoice coretype_for(const CpuId& cpu);

/// Loads OpenBLAS if needed and describes it.
BlasInfo blas_info();
/// One line for logs, e.g. "OpenBLAS 0.3.21 core=SkylakeX threads=2 at most (auto-selected: AMD family 0x1a
/// with AVX-512)": heed's thread count, "at most" while it adapts to the load (tensor/parallel.h), and why
/// this kernel runs. When the user set OPENBLAS_CORETYPE, it also names heed's own choice if that differs.
std::string blas_summary();

namespace blas {

/// C = alpha * op(A) @ op(B) + beta * C, row-major. op(A) is (M,K), op(B) is (K,N), C is (M,N).
/// Runs on OpenBLAS.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

/// The same contract as gemm, as a plain triple loop: the reference gemm is tested against.
template <class T>
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

/// Eigen-decomposition of a symmetric (n,n) row-major matrix, by LAPACK's divide and conquer (?syevd).
/// On return eigenvalues[0..n) is ascending and ROW i of `a` holds the unit eigenvector for eigenvalues[i].
template <class T>
void syevd(int64_t n, T* a, T* eigenvalues);

}  // namespace blas

// ---- the gemm contract in detail ------------------------------------------------------------------
//
// Shapes, as stored in memory (row-major, so element [i][j] of A is A[i*lda + j]):
//   A is (M,K) with lda >= K, or (K,M) with lda >= M when trans_a
//   B is (K,N) with ldb >= N, or (N,K) with ldb >= K when trans_b
//   C is (M,N) with ldc >= N
// This is exactly cblas_?gemm with CblasRowMajor. A leading dimension larger than the row length is how
// a sub-matrix view is passed: a (3,4) block starting at X[2][5] of a (10,20) matrix X is (X + 2*20 + 5,
// ld = 20).
//
// As in BLAS, beta == 0 means C is only written, never read (NaNs already in C do not survive), and
// alpha == 0 or K == 0 means A and B are not read: C = beta * C. M == 0 or N == 0 does nothing.
// Sizes must be >= 0 and fit in a 32-bit int (the int interface Debian's OpenBLAS is built with); the
// check throws heed::Error starting with "gemm:".
//
// Threads: OpenBLAS's own pool is set to one thread, and gemm spreads C over heed's threads instead, so
// that a product uses the same count as every other kernel: parallel_threads(), which falls to one thread
// when other processes keep the cores busy (tensor/parallel.h). OpenBLAS splits a product evenly over its
// pool and waits for the slowest thread, and its idle threads spin between calls on the cores heed's
// OpenMP threads use; with the panels there is one set of threads. C is cut into one panel of whole rows
// (or whole columns, when N > M) per thread, each one single-threaded OpenBLAS call with the full K.
// Products of at most 64^3 multiply-adds (OpenBLAS's own threshold for waking its pool) and panels under
// 64 wide run as one call, as does a gemm inside a parallel region. The cut depends on the thread count
// only, so a product repeats bitwise at one count; across counts it agrees to rounding.
// syevd keeps OpenBLAS's single thread.
//
// ---- syevd in detail ------------------------------------------------------------------------------
//
// LAPACK is column-major. A symmetric matrix reads the same either way, and LAPACK's column j (eigenvector
// j) is, seen row-major, row j: so no transpose is needed, and the eigenvectors come back as rows.
// Only the upper triangle (row-major: a[i*n + j] with j >= i) is read. The sign of each eigenvector is
// whatever LAPACK returns. Throws heed::Error starting with "syevd:" if LAPACK reports an illegal argument
// or fails to converge.

}  // namespace heed

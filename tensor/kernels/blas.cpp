// blas.cpp: loading OpenBLAS at run time, so that it runs the right kernel for this CPU.
//
// Why dlopen instead of linking -lopenblas:
//   Debian's OpenBLAS (0.3.21) is built with DYNAMIC_ARCH: it carries kernels for many CPUs and picks one
//   in a library constructor that runs when the library is loaded. It does not recognise newer CPUs such
//   as Sapphire Rapids and falls back to its oldest x86-64 kernels ("Prescott"), which run sgemm at a
//   fifth of the speed of its SkylakeX kernels there (bench/README.md). The fix is the environment
//   variable OPENBLAS_CORETYPE, read by that constructor. But when heed links libopenblas, the dynamic
//   loader runs the constructor before main() and before any of heed's code, so heed cannot set the
//   variable in time. Loading the library ourselves on first use moves the constructor after our setenv.
//
// What we pick: a kernel family per CPU, from a table (coretype_for) that bench/README.md justifies with sgemm
// measured on each CPU seen: SkylakeX (AVX-512) on Intel and on AMD Zen 5, Zen on AMD Zen 4 (whose AVX-512
// runs on 256-bit units: OpenBLAS's AVX2 Zen kernels were faster there), Haswell on AVX2 CPUs, and
// otherwise OpenBLAS's own detection. A value the user set is never overwritten. What actually runs is read
// back from OpenBLAS (openblas_get_corename) and reported by blas_summary(), so a log always says which kernel
// produced the numbers. The variable stays set, so child processes that load OpenBLAS get the same kernel.
//
// Everything is called through function pointers found with dlsym. <cblas.h> is included only for the
// CBLAS_ORDER / CBLAS_TRANSPOSE enums; its declarations are never called, so nothing links against them.
#include "tensor/kernels/blas.h"

#include <cblas.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/shape.h"

namespace heed {
namespace {

// ---- the loaded library -----------------------------------------------------------------------------

// The signatures of the OpenBLAS entry points we use (LP64: the integer type is a plain int).
using sgemm_fn = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float, const float*, int,
                          const float*, int, float, float*, int);
using dgemm_fn = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, double, const double*,
                          int, const double*, int, double, double*, int);
using set_threads_fn = void (*)(int);
using get_threads_fn = int (*)();
using get_string_fn = char* (*)();
// LAPACK is Fortran: every argument by pointer, plus a hidden length for each character argument
// (gfortran passes them as size_t after the regular arguments).
using ssyevd_fn = void (*)(const char* jobz, const char* uplo, const int* n, float* a, const int* lda, float* w,
                           float* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
                           size_t uplo_len);
using dsyevd_fn = void (*)(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                           double* work, const int* lwork, int* iwork, const int* liwork, int* info,
                           size_t jobz_len, size_t uplo_len);

struct OpenBlas {
  void* handle = nullptr;
  sgemm_fn sgemm = nullptr;
  dgemm_fn dgemm = nullptr;
  set_threads_fn set_num_threads = nullptr;
  get_threads_fn get_num_threads = nullptr;
  get_string_fn get_corename = nullptr;
  get_string_fn get_config = nullptr;
  ssyevd_fn ssyevd = nullptr;
  dsyevd_fn dsyevd = nullptr;
  std::string path;           // the file that was loaded (symlinks resolved)
  bool core_from_user = false;
  bool core_auto = false;     // we set OPENBLAS_CORETYPE and the constructor ran after that
  CoreChoice choice;          // heed's choice for this CPU (used unless the user chose)
};

std::string hex(int x) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", x);
  return buf;
}

}  // namespace

CpuId this_cpu() {
  CpuId cpu;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx)) {
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4), std::memcpy(vendor + 4, &edx, 4), std::memcpy(vendor + 8, &ecx, 4);
    cpu.vendor = vendor;
  }
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    const int base = (eax >> 8) & 0xf, extended = (eax >> 20) & 0xff;
    cpu.family = base == 0xf ? base + extended : base;  // cpuid's rule for the displayed family
  }
  __builtin_cpu_init();
  cpu.avx512f = __builtin_cpu_supports("avx512f");
  cpu.avx2 = __builtin_cpu_supports("avx2");
  return cpu;
}

// The names are OpenBLAS's own (see its dynamic.c): SkylakeX is its AVX-512 kernel family, Haswell and Zen its
// AVX2 ones (Zen with AMD's cache sizes).
CoreChoice coretype_for(const CpuId& cpu) {
  const bool amd = cpu.vendor == "AuthenticAMD";
  const std::string what = (amd ? "AMD family " : cpu.vendor + " family ") + hex(cpu.family);
  if (amd && cpu.family == 0x19 && cpu.avx512f)
    return {"Zen", what + " (Zen 4) with AVX-512 on 256-bit units: Zen's kernels measured faster"};
  if (cpu.avx512f) return {"SkylakeX", what + " with AVX-512"};
  if (cpu.avx2) return {"Haswell", what + " with AVX2"};
  return {"", what + " without AVX2: OpenBLAS's own detection"};
}

namespace {

template <class F>
F find_symbol(void* handle, const char* name, const std::string& path) {
  void* p = dlsym(handle, name);
  if (!p) throw Error(std::string("blas: ") + path + " has no symbol " + name + "; heed needs an OpenBLAS with LAPACK");
  return reinterpret_cast<F>(p);
}

OpenBlas load_openblas() {
  OpenBlas lib;
  const char* candidates[] = {"libopenblas.so.0", "libopenblas.so"};

  // If something else in the process (a Python extension, another library) already loaded OpenBLAS,
  // its constructor has run and our coretype would come too late. RTLD_NOLOAD asks without loading.
  bool already_loaded = false;
  for (const char* name : candidates) {
    if (void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
      already_loaded = true;
      dlclose(h);  // drops the reference RTLD_NOLOAD just took
    }
  }

  // setenv is not safe against a concurrent getenv in another thread; this runs once, under call_once,
  // at the first BLAS use, which in practice is single-threaded start-up code.
  lib.core_from_user = std::getenv("OPENBLAS_CORETYPE") != nullptr;
  lib.choice = coretype_for(this_cpu());
  if (!lib.core_from_user && !lib.choice.core.empty()) {
    setenv("OPENBLAS_CORETYPE", lib.choice.core.c_str(), /*overwrite=*/0);
    lib.core_auto = !already_loaded;
  }

  // OpenBLAS's worker threads, after each job, spin (sched_yield in a loop) for 2^28 cycles, 0.1 s, before
  // they sleep. Between two BLAS calls heed runs its own OpenMP kernels on the same cores, so for that
  // tenth of a second the idle BLAS worker competes with them. 2^18 cycles (about 0.1 ms) still covers
  // the gap between back-to-back GEMMs. bench/README.md ("Spinning thread pools") has the measurements.
  setenv("OPENBLAS_THREAD_TIMEOUT", "18", /*overwrite=*/0);

  std::string errors;
  const char* loaded = nullptr;
  for (const char* name : candidates) {
    lib.handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib.handle) {
      loaded = name;
      break;
    }
    errors += std::string("\n  ") + dlerror();
  }
  if (!lib.handle)
    throw Error("blas: could not load OpenBLAS (tried libopenblas.so.0 and libopenblas.so):" + errors +
                "\n  on Debian/Ubuntu: apt install libopenblas0-pthread");

  std::string soname = loaded;
  lib.sgemm = find_symbol<sgemm_fn>(lib.handle, "cblas_sgemm", soname);
  lib.dgemm = find_symbol<dgemm_fn>(lib.handle, "cblas_dgemm", soname);
  lib.set_num_threads = find_symbol<set_threads_fn>(lib.handle, "openblas_set_num_threads", soname);
  lib.get_num_threads = find_symbol<get_threads_fn>(lib.handle, "openblas_get_num_threads", soname);
  lib.get_corename = find_symbol<get_string_fn>(lib.handle, "openblas_get_corename", soname);
  lib.get_config = find_symbol<get_string_fn>(lib.handle, "openblas_get_config", soname);
  lib.ssyevd = find_symbol<ssyevd_fn>(lib.handle, "ssyevd_", soname);
  lib.dsyevd = find_symbol<dsyevd_fn>(lib.handle, "dsyevd_", soname);
  // OpenBLAS's own pool stays at one thread: gemm spreads a large product over heed's threads instead, so
  // that it follows the same thread count as every other kernel (blas.h, "Threads").
  lib.set_num_threads(1);

  // The real file behind the soname symlinks tells the pthread build from the OpenMP or serial one.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(lib.sgemm), &info) && info.dli_fname) {
    char* real = realpath(info.dli_fname, nullptr);
    lib.path = real ? real : info.dli_fname;
    std::free(real);
  }
  return lib;
}

// The library, loaded on the first call from any thread. If loading throws, call_once lets the next
// call try again, and the error reaches every caller rather than only the first.
const OpenBlas& openblas() {
  static std::once_flag once;
  static OpenBlas lib;
  std::call_once(once, [] { lib = load_openblas(); });
  return lib;
}

// ---- argument checks shared by gemm and gemm_ref ------------------------------------------------

// Throws unless the sizes and leading dimensions describe valid row-major matrices (see blas.h).
// gemm runs this on every call, so the message strings are only built on failure.
void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                     int64_t ldb, int64_t ldc) {
  auto fail = [&](const std::string& what) {
    throw Error(std::string(op) + ": " + what + " (" + (trans_a ? "A^T" : "A") + " @ " + (trans_b ? "B^T" : "B") +
                ", M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + ")");
  };
  if (M < 0 || N < 0 || K < 0) fail("negative size");
  // Row lengths as stored: A is (M,K) or, transposed, (K,M); likewise B.
  auto need = [&](const char* name, int64_t ld, int64_t cols) {
    if (ld < std::max<int64_t>(1, cols))
      fail(std::string(name) + "=" + std::to_string(ld) + " is smaller than the row length " + std::to_string(cols));
  };
  need("lda", lda, trans_a ? M : K);
  need("ldb", ldb, trans_b ? K : N);
  need("ldc", ldc, N);
}

void check_fits_int(const char* op, const char* name, int64_t v) {
  if (v > INT_MAX)
    throw Error(std::string(op) + ": " + name + "=" + std::to_string(v) +
                " does not fit in a 32-bit int (OpenBLAS is built with 32-bit integers)");
}

// C = beta * C over an (M,N) block; beta == 0 writes zeros without reading C (the BLAS convention).
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

CBLAS_TRANSPOSE cblas_trans(bool t) { return t ? CblasTrans : CblasNoTrans; }

}  // namespace

// ---- info and threads -------------------------------------------------------------------------------

BlasInfo blas_info() {
  const OpenBlas& lib = openblas();
  BlasInfo info;
  info.library = lib.path;
  info.core = lib.get_corename();
  info.config = lib.get_config();
  info.threads = lib.get_num_threads();
  info.core_from_user = lib.core_from_user;
  return info;
}

std::string blas_summary() {
  const OpenBlas& lib = openblas();
  BlasInfo info = blas_info();
  // The config string starts "OpenBLAS 0.3.21 ..."; its first two words are the name and version.
  std::string version = info.config;
  size_t first_space = version.find(' ');
  if (first_space != std::string::npos) {
    size_t second_space = version.find(' ', first_space + 1);
    if (second_space != std::string::npos) version.resize(second_space);
  }
  std::string how = lib.core_auto ? "(auto-selected: " + lib.choice.reason + ")" : "(OpenBLAS's own detection)";
  if (lib.core_from_user) {
    how = "(OPENBLAS_CORETYPE set by the user";
    if (!lib.choice.core.empty() && lib.choice.core != info.core)
      how += "; heed would pick " + lib.choice.core + " for this CPU, " + lib.choice.reason;
    how += ")";
  }
  const std::string threads = std::to_string(get_num_threads()) + (adaptive_threads() ? " at most" : "");
  return version + " core=" + info.core + " threads=" + threads + " " + how;
}

// ---- gemm -------------------------------------------------------------------------------------------

namespace blas {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  check_gemm_args("gemm", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  // Nothing to multiply: C = beta * C, no library call (and no library load) needed.
  if (K == 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const std::pair<const char*, int64_t> ints[] = {{"M", M},     {"N", N},     {"K", K},
                                                  {"lda", lda}, {"ldb", ldb}, {"ldc", ldc}};
  for (auto [name, v] : ints) check_fits_int("gemm", name, v);

  const OpenBlas& lib = openblas();
  // One single-threaded OpenBLAS call on the (m, n) block of C at row i0, column j0.
  auto block = [&](int64_t i0, int64_t m, int64_t j0, int64_t n) {
    const T* a = A + (trans_a ? i0 : i0 * lda);  // op(A)'s rows i0..: rows of A, or columns of A^T
    const T* b = B + (trans_b ? j0 * ldb : j0);  // op(B)'s columns j0..: columns of B, or rows of B^T
    T* c = C + i0 * ldc + j0;
    if constexpr (std::is_same_v<T, float>)
      lib.sgemm(CblasRowMajor, cblas_trans(trans_a), cblas_trans(trans_b), (int)m, (int)n, (int)K, alpha, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
    else
      lib.dgemm(CblasRowMajor, cblas_trans(trans_a), cblas_trans(trans_b), (int)m, (int)n, (int)K, alpha, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
  };
  // The longer of M and N is cut into one panel per thread (blas.h, "Threads"): panels of whole rows or
  // whole columns, at least kMinPanel wide and a multiple of 16 (OpenBLAS's widest register tile, so no
  // panel but the last ends in an edge kernel). Small products, and a gemm inside a parallel region (the
  // fused attention's tiles), are one call.
  constexpr int64_t kMinPanel = 64, kMinWork = 64 * 64 * 64;
  const int64_t len = std::max(M, N);
  int64_t panels = 1;
  if ((double)M * (double)N * (double)K > (double)kMinWork && !omp_in_parallel())
    panels = std::min<int64_t>(parallel_threads(), len / kMinPanel);
  if (panels <= 1) {
    block(0, M, 0, N);
    return;
  }
  auto edge = [&](int64_t p) { return p == panels ? len : std::min(len, (len * p / panels + 15) / 16 * 16); };
#pragma omp parallel for schedule(static) num_threads((int)panels)
  for (int64_t p = 0; p < panels; p++) {
    const int64_t lo = edge(p), hi = edge(p + 1);
    if (hi <= lo) continue;
    if (M >= N) block(lo, hi - lo, 0, N);
    else block(0, M, lo, hi - lo);
  }
}

// The textbook definition, C[i][j] = beta*C[i][j] + alpha * sum_p op(A)[i][p] * op(B)[p][j], with the
// transposes done by index arithmetic. The sum is accumulated in T, like BLAS, but in a different
// order, so the two agree to rounding, not bitwise.
template <class T>
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  check_gemm_args("gemm_ref", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T sum = 0;
      for (int64_t p = 0; p < K; ++p) {
        T a = trans_a ? A[p * lda + i] : A[i * lda + p];  // op(A)[i][p]
        T b = trans_b ? B[j * ldb + p] : B[p * ldb + j];  // op(B)[p][j]
        sum += a * b;
      }
      T& c = C[i * ldc + j];
      c = beta == T(0) ? alpha * sum : alpha * sum + beta * c;
    }
  }
}

// ---- syevd ------------------------------------------------------------------------------------------

template <class T>
void syevd(int64_t n, T* a, T* eigenvalues) {
  if (n < 0) throw Error("syevd: negative size n=" + std::to_string(n));
  if (n == 0) return;
  // With eigenvectors, ?syevd needs 1 + 6n + 2n^2 work entries, a count LAPACK keeps in an int:
  // n = 32766 is the largest that fits (and already needs 8 GB of work space in double).
  if (n > 32766)
    throw Error("syevd: n=" + std::to_string(n) +
                " is too large for 32-bit LAPACK (its workspace of 1 + 6n + 2n^2 entries must fit in an int)");
  const int64_t min_lwork = 1 + 6 * n + 2 * n * n, min_liwork = 3 + 5 * n;
  const OpenBlas& lib = openblas();

  // jobz='V': eigenvectors too. uplo='L': the lower triangle of the column-major matrix, which is the
  // upper triangle of our row-major one (see blas.h).
  const char jobz = 'V', uplo = 'L';
  const int ni = (int)n;
  int info = 0;
  auto call = [&](T* work, int lwork, int* iwork, int liwork) {
    if constexpr (std::is_same_v<T, float>)
      lib.ssyevd(&jobz, &uplo, &ni, a, &ni, eigenvalues, work, &lwork, iwork, &liwork, &info, 1, 1);
    else
      lib.dsyevd(&jobz, &uplo, &ni, a, &ni, eigenvalues, work, &lwork, iwork, &liwork, &info, 1, 1);
  };

  // First call with lwork = liwork = -1 is LAPACK's workspace query: it writes the sizes it wants into
  // work[0] and iwork[0] and computes nothing.
  T work_size = 0;
  int iwork_size = 0;
  call(&work_size, -1, &iwork_size, -1);
  if (info != 0) throw Error("syevd: workspace query failed, info=" + std::to_string(info));
  // The query answers in T, and a float cannot hold every large integer exactly, so never go below
  // the documented minimum.
  std::vector<T> work((size_t)std::clamp<int64_t>((int64_t)work_size, min_lwork, INT_MAX));
  std::vector<int> iwork((size_t)std::max<int64_t>(min_liwork, iwork_size));
  call(work.data(), (int)work.size(), iwork.data(), (int)iwork.size());

  if (info < 0)
    throw Error("syevd: LAPACK rejected argument " + std::to_string(-info) + " (n=" + std::to_string(n) + ")");
  if (info > 0)
    throw Error("syevd: the eigensolver did not converge (info=" + std::to_string(info) + ", n=" + std::to_string(n) +
                "); is the matrix finite?");
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm_ref<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                              int64_t, float, float*, int64_t);
template void gemm_ref<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                               int64_t, double, double*, int64_t);
template void syevd<float>(int64_t, float*, float*);
template void syevd<double>(int64_t, double*, double*);

}  // namespace blas
}  // namespace heed

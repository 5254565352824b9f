// parallel.h: how many threads a parallel region uses, and carrying an exception out of one.
//
// ---- how many threads -------------------------------------------------------------------------------
// Every `#pragma omp parallel` in heed says num_threads(parallel_threads()), and gemm cuts its product into
// that many panels (tensor/kernels/blas.h). parallel_threads() is get_num_threads() (set_num_threads, else
// OMP_NUM_THREADS, else every CPU this process may use), lowered to the cores that other processes leave
// idle. Why adapt instead of always using every core: a parallel region ends when its slowest thread does.
// On a machine where another process keeps a core busy, the thread that shares that core is descheduled
// for whole time slices, and the rest of the team waits at the barrier: a region of microseconds takes a
// time slice, and the default ran several times slower than one thread (issue 14, bench/README.md "Threads
// on a loaded machine"). One thread never waits for anybody.
//
// How busy the other processes are is read from /proc/stat (the busy time of the cores this process may
// run on) minus /proc/self/stat (this process's own share), averaged over the last ~100 ms: one read of
// two small files ten times a second, by whichever thread starts a region when the reading is due. A core
// counts as free when other processes used less than a quarter of it. Fewer free cores take effect at the
// next region; more only once five readings in a row (half a second) agree, since other programs' load
// comes in bursts. The first half second runs on one thread.
// set_adaptive_threads(false), or HEED_ADAPTIVE_THREADS=0 in the environment, turns this off (tests, and
// benchmarks of a fixed thread count).
//
// ---- exceptions -------------------------------------------------------------------------------------
//
// An exception that leaves an OpenMP structured block calls std::terminate: the whole program dies with no
// message. A region whose body can throw (an allocation, a BLAS call that checks its arguments, an op that
// validates) runs that body through ParallelGuard::run, which catches and keeps the first exception; after
// the region, rethrow() throws it again on the calling thread, where the caller can catch it.
//
//   ParallelGuard guard;
//   #pragma omp parallel for
//   for (int64_t i = 0; i < n; i++)
//     guard.run([&] { work(i); });   // after a failure the remaining iterations are skipped
//   guard.rethrow();
//
// Inside `#pragma omp parallel { ... #pragma omp for ... }`, every thread must still reach the `omp for`
// (it ends in a barrier): guard the per-thread set-up and the loop body separately, never the whole block.
#pragma once
#include <atomic>
#include <exception>
#include <mutex>

namespace heed {

/// The thread count for a parallel region starting now: get_num_threads(), lowered to the free cores.
int parallel_threads();
/// Sets the most threads heed's kernels and gemm use; n >= 1. Like torch.set_num_threads, call it from the
/// main thread between parallel regions. It also calls omp_set_num_threads(n) for the caller's own OpenMP.
void set_num_threads(int n);
/// That most: set_num_threads's n, or else OpenMP's default at first use (OMP_NUM_THREADS, or the CPUs).
int get_num_threads();
/// On (the default), parallel_threads() follows the machine's load; off, it is get_num_threads().
void set_adaptive_threads(bool on);
bool adaptive_threads();

namespace detail {
/// Time since boot, in seconds: wall (steady clock), busy (the busy time summed over the cores this
/// process may use) and own (this process's CPU time); cores is how many cores busy covers.
struct CpuTimes {
  double wall = 0, busy = 0, own = 0;
  int cores = 1;
};
/// Fills a reading; false when it cannot (no /proc), and then parallel_threads() stops adapting.
using CpuReader = bool (*)(CpuTimes& out);
/// How many of `cores` are free when other processes kept `others_busy` cores busy on average (>= 1).
int free_cores(int cores, double others_busy);
/// Replaces the reader (tests inject readings; nullptr restores /proc) and forgets every reading so far.
void set_cpu_reader(CpuReader reader);
/// Takes a reading if one is due (always, when forced), as a region start does; returns the free cores.
int update_free_cores(bool force = false);
}  // namespace detail

class ParallelGuard {
 public:
  /// Runs f() unless an earlier call failed; keeps the first exception. Returns whether f ran and returned.
  template <class F>
  bool run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return false;
    try {
      f();
      return true;
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
      return false;
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  /// Throws the first exception a run() caught, if any. Call it after the region, on the calling thread.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::exception_ptr error_;
};

}  // namespace heed

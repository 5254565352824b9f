// parallel.h: carrying an exception out of an OpenMP region.
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

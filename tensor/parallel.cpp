// parallel.cpp: the thread count of heed's parallel regions (tensor/parallel.h explains the policy).
//
// The state is a handful of atomics. The reading itself is guarded by a flag that one thread at a time
// takes with test_and_set; a thread that finds it taken does not wait, it uses the last decision.
#include "tensor/parallel.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace heed {
namespace {

// How often the load is read. Long enough that the tick-based counters of /proc (1/100 s) average out
// over two cores, short enough that a competing process starting up is noticed within a few steps.
constexpr auto kInterval = std::chrono::milliseconds(100);
// A core is free when other processes used less than this fraction of it (free_cores).
constexpr double kSlack = 0.25;
// Fewer threads take effect at once; more only after this many readings in a row (half a second) agreed.
// Other people's builds come in bursts: a quiet 100 ms between two compiler runs is no reason to wake a
// second thread that the next compiler run then deschedules.
constexpr int kRiseReadings = 5;

std::atomic<int> g_cap{0};           // get_num_threads(); 0 until first asked
// set_adaptive_threads; HEED_ADAPTIVE_THREADS=0 in the environment starts it off (bench/compare.py, which
// compares heed and PyTorch at fixed thread counts).
std::atomic<bool> g_adaptive{[] {
  const char* s = std::getenv("HEED_ADAPTIVE_THREADS");
  return !(s && std::strcmp(s, "0") == 0);
}()};
std::atomic<int> g_free{1};          // free cores at the last reading; one until the first two readings

// The reading in progress, and the previous one, which only the holder of g_reading touches.
std::atomic_flag g_reading = ATOMIC_FLAG_INIT;
std::atomic<int64_t> g_next_ns{0};  // steady-clock time of the next reading
detail::CpuTimes g_last;
bool g_have_last = false;
int g_rise_count = 0;  // readings in a row that found more free cores than g_free
int g_rise_min = 0;    // the fewest free cores among them

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// /proc/stat has a line "cpuN user nice system idle iowait irq softirq steal guest guest_nice" per core,
// in ticks. Busy is everything but idle and iowait (guest time is already inside user). Only the cores in
// this process's affinity mask count: a container allowed 2 of a host's 64 cores competes for those 2.
// /proc/self/stat's fields 14 and 15 (after the command name in parentheses) are this process's user
// and system ticks, counted by the same clock tick, so the two subtract without a rounding mismatch.
bool read_proc(detail::CpuTimes& out) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
  const double hz = (double)sysconf(_SC_CLK_TCK);
  FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return false;
  char line[512];
  unsigned long long busy = 0;
  int cores = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "cpu", 3) != 0) break;  // the cpu lines come first
    int cpu = -1;
    unsigned long long v[8] = {};
    if (std::sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5], &v[6], &v[7]) < 5)
      continue;  // the "cpu " total line has no number right after "cpu"
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) continue;
    busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // user nice system irq softirq steal
    cores++;
  }
  std::fclose(f);

  f = std::fopen("/proc/self/stat", "r");
  if (!f) return false;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* after_name = std::strrchr(buf, ')');
  unsigned long long utime = 0, stime = 0;
  // After ") " come fields 3 (state) to 13, then utime and stime.
  if (!after_name || std::sscanf(after_name + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                                 &stime) != 2)
    return false;
  if (cores == 0) return false;
  out.wall = (double)now_ns() * 1e-9;
  out.busy = (double)busy / hz;
  out.own = (double)(utime + stime) / hz;
  out.cores = cores;
  return true;
}

std::atomic<detail::CpuReader> g_reader{read_proc};

}  // namespace

namespace detail {

int free_cores(int cores, double others_busy) {
  const int n = (int)std::floor((double)cores - std::max(0.0, others_busy) + kSlack);
  return std::clamp(n, 1, std::max(cores, 1));
}

void set_cpu_reader(CpuReader reader) {
  while (g_reading.test_and_set(std::memory_order_acquire)) {
  }
  g_reader.store(reader ? reader : read_proc);
  g_have_last = false;
  g_rise_count = 0;
  g_free.store(1, std::memory_order_relaxed);
  g_next_ns.store(0, std::memory_order_relaxed);
  g_reading.clear(std::memory_order_release);
}

int update_free_cores(bool force) {
  const int64_t now = now_ns();
  if (!force && now < g_next_ns.load(std::memory_order_relaxed)) return g_free.load(std::memory_order_relaxed);
  if (g_reading.test_and_set(std::memory_order_acquire)) return g_free.load(std::memory_order_relaxed);
  CpuTimes cur;
  if (!g_reader.load()(cur)) {
    // No /proc: do not adapt, and do not try again.
    g_free.store(1 << 20, std::memory_order_relaxed);
    g_next_ns.store(INT64_MAX, std::memory_order_relaxed);
  } else {
    const double dt = cur.wall - g_last.wall;
    if (g_have_last && dt > 0) {
      // The cores other processes kept busy: all the busy time of our cores, minus our own.
      const double others = ((cur.busy - g_last.busy) - (cur.own - g_last.own)) / dt;
      const int now_free = free_cores(cur.cores, others), was = g_free.load(std::memory_order_relaxed);
      if (now_free <= was) {
        g_rise_count = 0;
        g_free.store(now_free, std::memory_order_relaxed);
      } else {
        g_rise_min = g_rise_count == 0 ? now_free : std::min(g_rise_min, now_free);
        if (++g_rise_count >= kRiseReadings) {
          g_rise_count = 0;
          g_free.store(g_rise_min, std::memory_order_relaxed);
        }
      }
    }
    g_last = cur;
    g_have_last = true;
    g_next_ns.store(now + std::chrono::nanoseconds(kInterval).count(), std::memory_order_relaxed);
  }
  const int decided = g_free.load(std::memory_order_relaxed);
  g_reading.clear(std::memory_order_release);
  return decided;
}

}  // namespace detail

int parallel_threads() {
  const int cap = get_num_threads();
  if (cap == 1 || !g_adaptive.load(std::memory_order_relaxed)) return cap;
  // Inside a region (a gemm in an attention tile) the outer region already decided; do not read /proc there.
  const int free = omp_in_parallel() ? g_free.load(std::memory_order_relaxed) : detail::update_free_cores();
  return std::clamp(free, 1, cap);
}

int get_num_threads() {
  int n = g_cap.load(std::memory_order_relaxed);
  if (n == 0) {
    int expected = 0;
    g_cap.compare_exchange_strong(expected, std::max(1, omp_get_max_threads()));
    n = g_cap.load(std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) throw Error("set_num_threads: need n >= 1, got " + std::to_string(n));
  g_cap.store(n, std::memory_order_relaxed);
  // omp_set_num_threads sets the calling thread's default for its own later regions: a user's OpenMP loop
  // written beside heed's gets the same count.
  omp_set_num_threads(n);
}

void set_adaptive_threads(bool on) { g_adaptive.store(on, std::memory_order_relaxed); }
bool adaptive_threads() { return g_adaptive.load(std::memory_order_relaxed); }

}  // namespace heed

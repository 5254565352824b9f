// allocator.cpp: the caching allocator behind Storage. allocator.h says why and what the rules are.
#include "tensor/allocator.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace heed::allocator {

namespace {

// One free list per size class. The mutex is uncontended in practice (tensors are made and dropped on
// the thread that runs the model), and costs far less than the page faults it saves.
struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  size_t cached = 0;
  size_t limit = size_t(1) << 30;
  int64_t hits = 0, misses = 0;
  bool on = true;

  Cache() {
    const char* env = std::getenv("HEED_CACHING_ALLOCATOR");
    on = !(env && std::strcmp(env, "0") == 0);
  }
  // Frees cached blocks until at most `keep` bytes remain. Called with mu held.
  void trim(size_t keep) {
    for (auto it = free_lists.begin(); it != free_lists.end() && cached > keep;) {
      std::vector<void*>& blocks = it->second;
      while (!blocks.empty() && cached > keep) {
        std::free(blocks.back());
        blocks.pop_back();
        cached -= it->first;
      }
      it = blocks.empty() ? free_lists.erase(it) : std::next(it);
    }
  }
};

// Never destroyed: a Tensor held in a static may be freed after this file's statics are gone.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

void* system_alloc(size_t bytes) {
  void* p = std::aligned_alloc(64, bytes);  // bytes is a multiple of 64, as aligned_alloc wants
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

size_t size_class(size_t n) {
  if (n < kMinCached) return std::max<size_t>(64, (n + 63) / 64 * 64);
  // 8 classes per power of two: [2^k, 2^(k+1)) is cut into steps of 2^k / 8.
  size_t step = std::bit_floor(n) / 8;
  return (n + step - 1) / step * step;
}

void* allocate(size_t n) {
  size_t bytes = size_class(n);
  if (bytes < kMinCached) return system_alloc(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_lists.find(bytes);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= bytes;
      c.hits++;
      return p;
    }
    c.misses++;
  }
  return system_alloc(bytes);
}

void release(void* p, size_t n) {
  if (!p) return;
  size_t bytes = size_class(n);
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.on && c.cached + bytes <= c.limit) {
      c.free_lists[bytes].push_back(p);
      c.cached += bytes;
      return;
    }
  }
  std::free(p);
}

CacheStats cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {(int64_t)c.cached, c.hits, c.misses};
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.trim(0);
}

void set_cache_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  c.trim(bytes);
}

void set_caching(bool on) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.on = on;
  if (!on) c.trim(0);
}

bool caching() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.on;
}

}  // namespace heed::allocator

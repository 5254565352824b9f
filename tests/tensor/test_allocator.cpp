// Tests for tensor/allocator.cpp: size classes, reuse, the limit, switching caching off.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

#include "heed.h"
#include "tensor/allocator.h"

using namespace heed;

TEST_CASE("allocator: size classes round up by at most 1/8, and small sizes to a cache line") {
  CHECK(allocator::size_class(0) == 64);
  CHECK(allocator::size_class(1) == 64);
  CHECK(allocator::size_class(65) == 128);
  CHECK(allocator::size_class(allocator::kMinCached) == allocator::kMinCached);
  CHECK(allocator::size_class(allocator::kMinCached + 1) == allocator::kMinCached + allocator::kMinCached / 8);
  for (size_t n : {size_t(16385), size_t(100000), size_t(1) << 20, (size_t(1) << 20) + 1, size_t(123456789)}) {
    size_t c = allocator::size_class(n);
    CHECK(c >= n);
    CHECK(c - n <= n / 8);
    CHECK(c % 64 == 0);
    CHECK(allocator::size_class(c) == c);  // a class is its own class
  }
}

TEST_CASE("allocator: a freed large block is reused for the next request of its class, aligned") {
  allocator::set_caching(true);
  allocator::empty_cache();
  const size_t n = 300000;
  void* p = allocator::allocate(n);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  std::memset(p, 1, n);  // the whole requested size is writable
  allocator::release(p, n);
  CHECK(allocator::cache_stats().cached_bytes == (int64_t)allocator::size_class(n));
  void* q = allocator::allocate(n - 100);  // same class
  CHECK(q == p);
  CHECK(allocator::cache_stats().cached_bytes == 0);
  allocator::release(q, n - 100);

  // Tensors go through it: dropping one and making another of the same size reuses the memory, and
  // memory_stats() still counts only live bytes.
  allocator::empty_cache();
  int64_t live = memory_stats().current;
  const void* first;
  {
    Tensor a = zeros({1000, 100});
    first = a.data_ptr<float>();
    CHECK(memory_stats().current == live + 400000);
  }
  CHECK(memory_stats().current == live);
  Tensor b = ones({1000, 100});
  CHECK(b.data_ptr<float>() == first);
  CHECK(b.sum().item() == 100000);  // reused memory holds what the new tensor wrote, not the old zeros
}

TEST_CASE("allocator: the limit bounds the cache; caching off frees at once") {
  allocator::set_caching(true);
  allocator::empty_cache();
  allocator::set_cache_limit(1 << 20);
  void* a = allocator::allocate(600000);
  void* b = allocator::allocate(600000);
  allocator::release(a, 600000);
  allocator::release(b, 600000);  // would exceed 1 MiB: goes back to the system
  CHECK(allocator::cache_stats().cached_bytes == (int64_t)allocator::size_class(600000));
  allocator::set_cache_limit(0);  // lowering the limit frees what no longer fits
  CHECK(allocator::cache_stats().cached_bytes == 0);
  allocator::set_cache_limit(size_t(1) << 30);

  allocator::set_caching(false);
  CHECK_FALSE(allocator::caching());
  void* c = allocator::allocate(50000);
  allocator::release(c, 50000);
  CHECK(allocator::cache_stats().cached_bytes == 0);
  // Small blocks are never cached.
  allocator::set_caching(true);
  void* d = allocator::allocate(100);
  allocator::release(d, 100);
  CHECK(allocator::cache_stats().cached_bytes == 0);
}

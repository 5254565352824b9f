// allocator.h: where a Storage's bytes come from. A small caching allocator in front of aligned_alloc.
//
// Why cache at all: a training step allocates and frees the same few hundred buffers every iteration,
// many of them hundreds of KB. glibc serves such sizes from fresh pages (mmap, or a heap top it trimmed
// on the previous free), and the kernel must fault in and zero every page before heed writes it, every
// step (bench/README.md has the profile). Keeping freed blocks and handing them out again for the next
// request of the same size class skips all of that.
// PyTorch's CPU allocator does not cache; its GPU one does, for the same reason.
//
// The rules, kept simple enough to reason about memory:
//   - blocks under kMinCached bytes go straight to aligned_alloc / free (malloc's own per-thread caches
//     already serve small sizes from warm memory);
//   - larger sizes round up to a size class, 8 per power of two (at most 12.5% slack), so a request is
//     served by any cached block of its class;
//   - at most `limit` bytes sit in the cache; a free that would exceed it goes back to the system;
//   - HEED_CACHING_ALLOCATOR=0 in the environment turns caching off (for valgrind or ASan, which can
//     only see a use-after-free when the block really is freed).
// The live-bytes accounting of memory_stats() (tensor.h) counts requested bytes and does not change:
// cached blocks are not live.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heed::allocator {

/// Sizes below this are never cached.
constexpr size_t kMinCached = 16384;

/// 64-byte aligned memory for at least n bytes (at least one cache line). Throws std::bad_alloc.
void* allocate(size_t n);
/// Returns a block from allocate(n), with the same n.
void release(void* p, size_t n);
/// The size class allocate(n) takes n to (n itself below kMinCached, rounded up to 64).
size_t size_class(size_t n);

struct CacheStats {
  int64_t cached_bytes = 0;  // held in the cache now, ready for reuse
  int64_t hits = 0, misses = 0;
};
CacheStats cache_stats();
/// Frees every cached block back to the system.
void empty_cache();
/// The most bytes the cache keeps (default 1 GiB); lowering it frees blocks until it holds.
void set_cache_limit(size_t bytes);
/// Caching on or off (default on unless HEED_CACHING_ALLOCATOR=0); off empties the cache.
void set_caching(bool on);
bool caching();

}  // namespace heed::allocator

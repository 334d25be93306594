// Where a run's output buffers come from. Each run hands JS new Float32Arrays (external ArrayBuffers);
// V8 frees them only when it collects them, which in a loop of runs may be hundreds of runs later, so
// every run writes its outputs into memory never touched before. On first touch each 4 KiB page costs a
// fault: measured 1.2–1.6 ms for the 512 KiB of Bort's 1 x 128 hidden states on a 2-core VM, a fifth of
// the whole run. Outputs up to kMaxCarve bytes are therefore carved from 2 MiB slabs mapped with
// transparent huge pages requested (one fault zeroes a whole slab: 0.08 ms for the same 512 KiB), and a
// slab whose outputs have all been collected is kept (at most kSpareSlabs of them) for the next ones,
// already mapped. Larger outputs go to alloc_floats, which maps them with huge pages requested itself.
// Where huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled = never) slabs still work, at the
// 4 KiB fault cost of before. Thread-safe: V8 may release backing stores off the JS thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace bort {

class OutputPool {
 public:
  static constexpr size_t kSlabBytes = (size_t)2 << 20;
  static constexpr size_t kMaxCarve = (size_t)1 << 20;
  static constexpr size_t kSpareSlabs = 8;

  OutputPool() = default;
  OutputPool(const OutputPool&) = delete;
  OutputPool& operator=(const OutputPool&) = delete;
  ~OutputPool();  // unmaps every slab (by then no output is live: each one holds the pool)

  // Memory for `floats` floats, 64-byte aligned; give it back with give(p). Throws std::bad_alloc.
  float* take(size_t floats);
  void give(float* p);

  // Counters (tests, benches).
  struct Stats {
    size_t slabs_mapped = 0;  // slabs mapped so far
    size_t slabs_reused = 0;  // times a spare slab became the current one again
    size_t spare = 0;         // spare slabs now
    size_t live = 0;          // outputs not yet given back
  };
  Stats stats();

 private:
  struct Slab {
    char* base;
    size_t used = 0;  // bump offset
    size_t live = 0;  // outputs carved and not given back
  };
  Slab* new_slab();  // under mu_
  void retire(Slab* s);  // under mu_: s stops being current

  std::mutex mu_;
  std::unordered_map<uintptr_t, Slab*> slabs_;         // slab base -> slab (carved outputs)
  std::unordered_map<uintptr_t, size_t> big_;          // outputs above kMaxCarve -> bytes mapped (0: malloc'd)
  Slab* cur_ = nullptr;
  std::vector<Slab*> spare_;
  Stats st_;
};

}  // namespace bort

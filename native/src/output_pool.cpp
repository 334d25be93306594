#include "output_pool.h"

#include <new>

#include "encoder.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define BORT_SLAB_MMAP 1
#endif

namespace bort {

namespace {

// A kSlabBytes region aligned to kSlabBytes (so a carved pointer finds its slab by masking).
char* map_slab() {
  const size_t n = OutputPool::kSlabBytes;
#if defined(BORT_SLAB_MMAP)
  void* p = mmap(nullptr, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* c = static_cast<char*>(p);
  char* a = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(c) + n - 1) & ~(uintptr_t)(n - 1));
  if (a > c) munmap(c, (size_t)(a - c));
  if (a + n < c + 2 * n) munmap(a + n, (size_t)(c + 2 * n - (a + n)));
#if defined(MADV_HUGEPAGE)
  madvise(a, n, MADV_HUGEPAGE);
#endif
  return a;
#else
  void* p = std::aligned_alloc(n, n);
  if (!p) throw std::bad_alloc();
  return static_cast<char*>(p);
#endif
}

void unmap_slab(char* a) {
#if defined(BORT_SLAB_MMAP)
  munmap(a, OutputPool::kSlabBytes);
#else
  std::free(a);
#endif
}

}  // namespace

// Runs when the last holder lets go: the addon instance and every output's finalizer share the pool,
// so no output is live by then and every slab is the current one or a spare.
OutputPool::~OutputPool() {
  for (const auto& e : slabs_) {
    unmap_slab(e.second->base);
    delete e.second;
  }
}

OutputPool::Slab* OutputPool::new_slab() {
  if (!spare_.empty()) {
    Slab* s = spare_.back();
    spare_.pop_back();
    s->used = 0;
    ++st_.slabs_reused;
    return s;
  }
  char* base = map_slab();
  Slab* s = nullptr;
  try {
    s = new Slab{base};
    slabs_.emplace(reinterpret_cast<uintptr_t>(base), s);
  } catch (...) {
    delete s;
    unmap_slab(base);
    throw std::bad_alloc();
  }
  ++st_.slabs_mapped;
  return s;
}

void OutputPool::retire(Slab* s) {
  if (s->live > 0) return;  // unmapped or kept when its last output comes back
  if (spare_.size() < kSpareSlabs) {
    try {
      spare_.push_back(s);
      return;
    } catch (const std::bad_alloc&) {
    }
  }
  slabs_.erase(reinterpret_cast<uintptr_t>(s->base));
  unmap_slab(s->base);
  delete s;
}

float* OutputPool::take(size_t floats) {
  size_t bytes = (floats ? floats : 1) * sizeof(float);
  bytes = (bytes + 63) / 64 * 64;
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes > kMaxCarve) {
    FloatBuf b = alloc_floats(floats);
    big_.emplace(reinterpret_cast<uintptr_t>(b.get()), b.get_deleter().mapped);  // may throw: b frees
    ++st_.live;
    return b.release();
  }
  if (!cur_ || cur_->used + bytes > kSlabBytes) {
    Slab* next = new_slab();
    if (cur_) retire(cur_);
    cur_ = next;
  }
  float* p = reinterpret_cast<float*>(cur_->base + cur_->used);
  cur_->used += bytes;
  cur_->live++;
  ++st_.live;
  return p;
}

void OutputPool::give(float* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  --st_.live;
  const auto b = big_.find(reinterpret_cast<uintptr_t>(p));
  if (b != big_.end()) {
    const size_t mapped = b->second;
    big_.erase(b);
    AlignedFree{mapped}(p);
    return;
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(p) & ~(uintptr_t)(kSlabBytes - 1);
  const auto it = slabs_.find(base);
  if (it == slabs_.end()) return;  // not ours: never happens (take() is the only source)
  Slab* s = it->second;
  s->live--;
  if (s != cur_) retire(s);
}

OutputPool::Stats OutputPool::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  Stats r = st_;
  r.spare = spare_.size();
  return r;
}

}  // namespace bort

// Tiny test helpers shared by the C++ unit tests (no framework needed).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace check {

inline int& failures() {
  static int f = 0;
  return f;
}
inline int& passes() {
  static int p = 0;
  return p;
}

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (cond) {                                                           \
      ++check::passes();                                                  \
    } else {                                                              \
      ++check::failures();                                                \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
      std::fprintf(stderr, __VA_ARGS__);                                  \
      std::fprintf(stderr, "\n");                                         \
    }                                                                     \
  } while (0)

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 11);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next() & 0xFFFFFF) / 16777216.0f; }
  int below(int n) { return (int)(next() % (uint32_t)n); }
};

inline double max_abs_diff(const float* a, const double* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = d;  // NaN sticks
  }
  return m;
}

inline std::vector<const bort::Kernels*> all_tables() {
  std::vector<const bort::Kernels*> v;
  for (bort::Isa i : {bort::Isa::Scalar, bort::Isa::Avx2, bort::Isa::Avx512, bort::Isa::Neon})
    if (const bort::Kernels* k = bort::kernels_for(i)) v.push_back(k);
  return v;
}

inline int finish(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, passes(), failures());
  return failures() ? 1 : 0;
}

}  // namespace check

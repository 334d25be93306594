// Weight packing into the micro-kernel's panel layout [ceil(N/NR)][K][NR] (portable code).
#include <cstring>

#include "kernels.h"

namespace bort {

void pack_b(float* dst, int K, const PackSeg* segs, int nsegs, int NR) {
  int N = 0;
  for (int s = 0; s < nsegs; ++s) N += segs[s].n;
  const int panels = (N + NR - 1) / NR;
  // column c of the virtual matrix -> (segment, column in segment)
  for (int p = 0; p < panels; ++p) {
    float* out = dst + (size_t)p * K * NR;
    const int c0 = p * NR;
    // walk the panel's columns as runs inside segments
    int c = c0, s = 0, base = 0;
    while (s < nsegs && base + segs[s].n <= c) base += segs[s++].n;
    std::memset(out, 0, sizeof(float) * (size_t)K * NR);
    while (c < c0 + NR && s < nsegs) {
      const int j0 = c - base;
      const int run = (segs[s].n - j0) < (c0 + NR - c) ? (segs[s].n - j0) : (c0 + NR - c);
      const float* src = segs[s].p + j0;
      const size_t ld = segs[s].ld;
      float* o = out + (c - c0);
      for (int k = 0; k < K; ++k) std::memcpy(o + (size_t)k * NR, src + (size_t)k * ld, sizeof(float) * run);
      c += run;
      base += segs[s].n;
      ++s;
    }
  }
}

void pack_bt(float* dst, int K, int N, const float* src, size_t ld, int NR) {
  const int panels = (N + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    float* out = dst + (size_t)p * K * NR;
    const int j0 = p * NR;
    const int nj = (N - j0) < NR ? (N - j0) : NR;
    for (int jj = 0; jj < nj; ++jj) {
      const float* row = src + (size_t)(j0 + jj) * ld;
      for (int k = 0; k < K; ++k) out[(size_t)k * NR + jj] = row[k];
    }
    for (int jj = nj; jj < NR; ++jj)
      for (int k = 0; k < K; ++k) out[(size_t)k * NR + jj] = 0.0f;
  }
}

}  // namespace bort

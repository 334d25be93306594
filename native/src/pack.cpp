// Weight packing into the micro-kernel's layout (portable code); see kernels.h for the layout.
#include <cstring>

#include "kernels.h"

namespace bort {

void pack_b(float* dst, int K, const PackSeg* segs, int nsegs, int NR, int KC) {
  int N = 0;
  for (int s = 0; s < nsegs; ++s) N += segs[s].n;
  pack_b_panels(dst, K, segs, nsegs, NR, KC, 0, (N + NR - 1) / NR);
}

void pack_b_panels(float* dst, int K, const PackSeg* segs, int nsegs, int NR, int KC, int p0, int p1) {
  int N = 0;
  for (int s = 0; s < nsegs; ++s) N += segs[s].n;
  const int panels = (N + NR - 1) / NR;
  const size_t npad = (size_t)panels * NR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = K - k0 < KC ? K - k0 : KC;
    for (int p = p0; p < p1 && p < panels; ++p) {
      float* out = dst + (size_t)k0 * npad + (size_t)p * kc * NR;
      std::memset(out, 0, sizeof(float) * (size_t)kc * NR);
      // the panel's columns [c0, c0+NR) as runs inside the segments
      const int c0 = p * NR;
      int c = c0, s = 0, base = 0;
      while (s < nsegs && base + segs[s].n <= c) base += segs[s++].n;
      while (c < c0 + NR && s < nsegs) {
        const int j0 = c - base;
        const int run = (segs[s].n - j0) < (c0 + NR - c) ? (segs[s].n - j0) : (c0 + NR - c);
        const float* src = segs[s].p + (size_t)k0 * segs[s].ld + j0;
        const size_t ld = segs[s].ld;
        float* o = out + (c - c0);
        for (int k = 0; k < kc; ++k) std::memcpy(o + (size_t)k * NR, src + (size_t)k * ld, sizeof(float) * run);
        c += run;
        base += segs[s].n;
        ++s;
      }
    }
  }
}

void pack_bt(float* dst, int K, int N, const float* src, size_t ld, int NR, int KC) {
  const int panels = (N + NR - 1) / NR;
  const size_t npad = (size_t)panels * NR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = K - k0 < KC ? K - k0 : KC;
    for (int p = 0; p < panels; ++p) {
      float* out = dst + (size_t)k0 * npad + (size_t)p * kc * NR;
      const int j0 = p * NR;
      const int nj = (N - j0) < NR ? (N - j0) : NR;
      for (int jj = 0; jj < nj; ++jj) {
        const float* row = src + (size_t)(j0 + jj) * ld + k0;
        for (int k = 0; k < kc; ++k) out[(size_t)k * NR + jj] = row[k];
      }
      for (int jj = nj; jj < NR; ++jj)
        for (int k = 0; k < kc; ++k) out[(size_t)k * NR + jj] = 0.0f;
    }
  }
}

}  // namespace bort

// int8 GEMM, portable parts: weight packing (once, at load), dynamic per-row activation quantization,
// and the single-thread whole-GEMM driver.
#include <cmath>
#include <cstring>

#include "qgemm.h"

namespace bort {

void qpack_b(int8_t* dst, int32_t* colsum, const int8_t* W, size_t ldw, int K, int N, int NR) {
  const int kg = qround4(K) / 4;
  const int panels = (N + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    int8_t* d = dst + (size_t)p * NR * kg * 4;
    for (int g = 0; g < kg; ++g) {
      for (int j = 0; j < NR; ++j) {
        const int n = p * NR + j;
        for (int t = 0; t < 4; ++t) {
          const int k = g * 4 + t;
          *d++ = (n < N && k < K) ? W[(size_t)k * ldw + n] : 0;
        }
      }
    }
    for (int j = 0; j < NR; ++j) {
      const int n = p * NR + j;
      int32_t s = 0;
      if (n < N)
        for (int k = 0; k < K; ++k) s += W[(size_t)k * ldw + n];
      colsum[n] = s;
    }
  }
}

void quantize_rows(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale) {
  const int K4 = qround4(K);
  for (int i = 0; i < M; ++i) {
    const float* r = x + (size_t)i * ldx;
    float mx = 0.0f;
    for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(r[k]));
    const float s = mx > 0.0f && std::isfinite(mx) ? mx / 127.0f : 1.0f;
    const float inv = 1.0f / s;
    scale[i] = s;
    int8_t* a = A + (size_t)i * lda;
    for (int k = 0; k < K; ++k) {
      float v = r[k] * inv;
      v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;  // NaN stays NaN: caught below
      a[k] = v == v ? (int8_t)(v < 0 ? v - 0.5f : v + 0.5f) : 0;
    }
    for (int k = K; k < K4; ++k) a[k] = 0;
  }
}

void qgemm(const QKernels* k, const QGemmArgs& g) {
  k->qgemm_tile(g, 0, g.M, 0, g.N);
}

}  // namespace bort

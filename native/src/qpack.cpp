// int8 GEMM, portable parts: weight packing (once, at load), dynamic per-row activation quantization,
// and the single-thread whole-GEMM driver.
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
  qkernels_scalar()->quantize_rows(x, ldx, M, K, A, lda, scale);
}

void quantize_rows_static(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float scale) {
  qkernels_scalar()->quantize_rows_static(x, ldx, M, K, A, lda, scale);
}

void qgemm(const QKernels* k, const QGemmArgs& g) {
  k->qgemm_tile(g, 0, g.M, 0, g.N);
}

}  // namespace bort

// Portable int8 GEMM: plain int32 multiply-adds. The fallback on any CPU.
#include "qgemm.h"

namespace bort {
namespace qscalar {

static constexpr int MR = 4;
static constexpr int NR = 8;

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t*, int32_t* out) {
  int32_t acc[M][NR] = {};
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    for (int i = 0; i < M; ++i) {
      const int8_t* a = A + i * lda + g * 4;
      for (int j = 0; j < NR; ++j) {
        const int8_t* b = Bp + j * 4;
        acc[i][j] += a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
      }
    }
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < NR; ++j) out[i * NR + j] = acc[i][j];
}

#define QISA_NAME "scalar"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qscalar

const QKernels* qkernels_scalar() { return &qscalar::kQTable; }

}  // namespace bort

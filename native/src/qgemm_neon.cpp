// NEON int8 GEMM for any ARMv8 (no dot-product extension): smull multiplies 8 pairs of s8 into s16
// (exact: |a·b| <= 127·127), sadalp adds neighbouring pairs into s32 accumulators, and a final pairwise
// add folds the two halves of each column. Exact: bit-identical to the scalar path.
#include <arm_neon.h>

#include <cstring>

#include "qgemm.h"

namespace bort {
namespace qneon {

static constexpr int MR = 4;
static constexpr int NR = 8;  // two vectors of 4 columns x 4 k

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t*, int32_t* out) {
  // acc[i][v][h]: columns 4v + 2h, 4v + 2h + 1, each as two partial sums
  int32x4_t acc[M][2][2];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < 2; ++v) acc[i][v][0] = acc[i][v][1] = vdupq_n_s32(0);
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    const int8x16_t b0 = vld1q_s8(Bp), b1 = vld1q_s8(Bp + 16);
    for (int i = 0; i < M; ++i) {
      int32_t a4;
      std::memcpy(&a4, A + i * lda + g * 4, 4);
      const int8x8_t a = vreinterpret_s8_s32(vdup_n_s32(a4));
      acc[i][0][0] = vpadalq_s16(acc[i][0][0], vmull_s8(a, vget_low_s8(b0)));
      acc[i][0][1] = vpadalq_s16(acc[i][0][1], vmull_s8(a, vget_high_s8(b0)));
      acc[i][1][0] = vpadalq_s16(acc[i][1][0], vmull_s8(a, vget_low_s8(b1)));
      acc[i][1][1] = vpadalq_s16(acc[i][1][1], vmull_s8(a, vget_high_s8(b1)));
    }
  }
  for (int i = 0; i < M; ++i) {
    vst1q_s32(out + i * NR, vpaddq_s32(acc[i][0][0], acc[i][0][1]));
    vst1q_s32(out + i * NR + 4, vpaddq_s32(acc[i][1][0], acc[i][1][1]));
  }
}

#define QISA_NAME "neon"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qneon

const QKernels* qkernels_neon() { return &qneon::kQTable; }

}  // namespace bort

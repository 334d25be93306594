// NEON int8 GEMM with the ARMv8.2 dot-product extension (compiled with -march=armv8.2-a+dotprod;
// reached only after qdispatch.cpp found HWCAP_ASIMDDP): sdot adds 4 products of s8 pairs into each
// int32 lane, no saturation. Exact: bit-identical to the scalar path.
#include <arm_neon.h>

#include <cstring>

#include "qgemm.h"

namespace bort {
namespace qneondot {

static constexpr int MR = 4;
static constexpr int NR = 16;  // four vectors of 4 columns x 4 k

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t*, int32_t* out) {
  int32x4_t acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < 4; ++v) acc[i][v] = vdupq_n_s32(0);
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    int8x16_t b[4];
    for (int v = 0; v < 4; ++v) b[v] = vld1q_s8(Bp + 16 * v);
    for (int i = 0; i < M; ++i) {
      int32_t a4;
      std::memcpy(&a4, A + i * lda + g * 4, 4);
      const int8x16_t a = vreinterpretq_s8_s32(vdupq_n_s32(a4));
      for (int v = 0; v < 4; ++v) acc[i][v] = vdotq_s32(acc[i][v], b[v], a);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < 4; ++v) vst1q_s32(out + i * NR + 4 * v, acc[i][v]);
}

#define QISA_NAME "neondot"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qneondot

const QKernels* qkernels_neondot() { return &qneondot::kQTable; }

}  // namespace bort

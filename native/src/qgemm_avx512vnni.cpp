// AVX-512 VNNI int8 GEMM (compiled with -mavx512f -mavx512bw -mavx512vnni; reached only after
// qdispatch.cpp found AVX512_VNNI in cpuid and ZMM state enabled by the OS). vpdpbusd multiplies
// unsigned by signed bytes and adds groups of 4 into int32 without saturation. Activations are s8, so
// they are offset by 128 into u8 (a XOR 0x80) and the offset is taken back out with the packed weights'
// column sums: Σ (a+128)·b − 128·Σ b = Σ a·b. Exact: bit-identical to the scalar path.
#include <immintrin.h>

#include <cstring>

#include "qgemm.h"

namespace bort {
namespace qavx512vnni {

static constexpr int MR = 8;
static constexpr int NR = 32;  // two zmm of 16 int32 columns

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  __m512i acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    const __m512i b0 = _mm512_loadu_si512(Bp);
    const __m512i b1 = _mm512_loadu_si512(Bp + 64);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      int32_t a4;
      std::memcpy(&a4, A + i * lda + g * 4, 4);
      const __m512i a = _mm512_xor_si512(_mm512_set1_epi32(a4), flip);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], a, b1);
    }
  }
  const __m512i c0 = _mm512_slli_epi32(_mm512_loadu_si512(cs), 7);
  const __m512i c1 = _mm512_slli_epi32(_mm512_loadu_si512(cs + 16), 7);
  for (int i = 0; i < M; ++i) {
    _mm512_storeu_si512(out + i * NR, _mm512_sub_epi32(acc[i][0], c0));
    _mm512_storeu_si512(out + i * NR + 16, _mm512_sub_epi32(acc[i][1], c1));
  }
}

#define QISA_NAME "avx512vnni"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qavx512vnni

const QKernels* qkernels_avx512vnni() { return &qavx512vnni::kQTable; }

}  // namespace bort

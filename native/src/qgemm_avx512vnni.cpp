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
static inline void ukernel_c(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
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

// The full 8 x 32 tile, the hot one, with its k loop in inline assembly. GCC 12 does not keep the 16
// accumulators of the intrinsic version (ukernel_c) in place: it copies each through another register
// and spills some to the stack every k step, which measured 618 GOP/s against 925 for clean code
// (bort_bench_qgemm 128 3072 1024, one thread, Zen 5). Same instructions as ukernel_c, so the same sums.
static inline void ukernel8(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  __m512i c[8][2], b0, b1, t0;
  const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
  const int8_t* a0 = A;
  const int8_t* a4 = A + 4 * lda;
  const size_t lda3 = 3 * lda;
  long n = kg;
  __asm__ volatile(
      "vpxord %[c00], %[c00], %[c00]\n\t"
      "vpxord %[c01], %[c01], %[c01]\n\t"
      "vpxord %[c10], %[c10], %[c10]\n\t"
      "vpxord %[c11], %[c11], %[c11]\n\t"
      "vpxord %[c20], %[c20], %[c20]\n\t"
      "vpxord %[c21], %[c21], %[c21]\n\t"
      "vpxord %[c30], %[c30], %[c30]\n\t"
      "vpxord %[c31], %[c31], %[c31]\n\t"
      "vpxord %[c40], %[c40], %[c40]\n\t"
      "vpxord %[c41], %[c41], %[c41]\n\t"
      "vpxord %[c50], %[c50], %[c50]\n\t"
      "vpxord %[c51], %[c51], %[c51]\n\t"
      "vpxord %[c60], %[c60], %[c60]\n\t"
      "vpxord %[c61], %[c61], %[c61]\n\t"
      "vpxord %[c70], %[c70], %[c70]\n\t"
      "vpxord %[c71], %[c71], %[c71]\n\t"
      "test %[n], %[n]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vmovdqu64 (%[b]), %[b0]\n\t"
      "vmovdqu64 64(%[b]), %[b1]\n\t"
      "vpxord (%[a0])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c00]\n\t"
      "vpdpbusd %[b1], %[t0], %[c01]\n\t"
      "vpxord (%[a0],%[lda])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c10]\n\t"
      "vpdpbusd %[b1], %[t0], %[c11]\n\t"
      "vpxord (%[a0],%[lda],2)%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c20]\n\t"
      "vpdpbusd %[b1], %[t0], %[c21]\n\t"
      "vpxord (%[a0],%[lda3])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c30]\n\t"
      "vpdpbusd %[b1], %[t0], %[c31]\n\t"
      "vpxord (%[a4])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c40]\n\t"
      "vpdpbusd %[b1], %[t0], %[c41]\n\t"
      "vpxord (%[a4],%[lda])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c50]\n\t"
      "vpdpbusd %[b1], %[t0], %[c51]\n\t"
      "vpxord (%[a4],%[lda],2)%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c60]\n\t"
      "vpdpbusd %[b1], %[t0], %[c61]\n\t"
      "vpxord (%[a4],%[lda3])%{1to16%}, %[flip], %[t0]\n\t"
      "vpdpbusd %[b0], %[t0], %[c70]\n\t"
      "vpdpbusd %[b1], %[t0], %[c71]\n\t"
      "add $128, %[b]\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a4]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      : [c00] "=&v"(c[0][0]), [c01] "=&v"(c[0][1]), [c10] "=&v"(c[1][0]), [c11] "=&v"(c[1][1]), [c20] "=&v"(c[2][0]), [c21] "=&v"(c[2][1]), [c30] "=&v"(c[3][0]), [c31] "=&v"(c[3][1]), [c40] "=&v"(c[4][0]), [c41] "=&v"(c[4][1]), [c50] "=&v"(c[5][0]), [c51] "=&v"(c[5][1]), [c60] "=&v"(c[6][0]), [c61] "=&v"(c[6][1]), [c70] "=&v"(c[7][0]), [c71] "=&v"(c[7][1]),
        [b0] "=&v"(b0), [b1] "=&v"(b1), [t0] "=&v"(t0),
        [b] "+r"(Bp), [a0] "+r"(a0), [a4] "+r"(a4), [n] "+r"(n)
      : [lda] "r"(lda), [lda3] "r"(lda3), [flip] "v"(flip)
      : "cc", "memory");
  const __m512i s0 = _mm512_slli_epi32(_mm512_loadu_si512(cs), 7);
  const __m512i s1 = _mm512_slli_epi32(_mm512_loadu_si512(cs + 16), 7);
  for (int i = 0; i < 8; ++i) {
    _mm512_storeu_si512(out + i * NR, _mm512_sub_epi32(c[i][0], s0));
    _mm512_storeu_si512(out + i * NR + 16, _mm512_sub_epi32(c[i][1], s1));
  }
}

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  if constexpr (M == 8) ukernel8(kg, A, lda, Bp, cs, out);
  else ukernel_c<M>(kg, A, lda, Bp, cs, out);
}

#define QISA_NAME "avx512vnni"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qavx512vnni

const QKernels* qkernels_avx512vnni() { return &qavx512vnni::kQTable; }

}  // namespace bort

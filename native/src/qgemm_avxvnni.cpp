// AVX-VNNI int8 GEMM: the VEX-encoded 256-bit vpdpbusd of CPUs with AVX2 and AVX-VNNI but no
// AVX-512 VNNI (Intel Alder Lake and later client cores, Zen 5 in AVX2-only builds of a hypervisor).
// Compiled with -mavx2 -mavxvnni; reached only after qdispatch.cpp found AVX_VNNI (cpuid leaf 7,
// subleaf 1, EAX bit 4) and the AVX state enabled. The scheme is the AVX-512 VNNI one (qgemm.h):
// activations s8 offset by 128 into u8 (XOR 0x80), u8·s8 sums of 4 added into int32 without
// saturation, the offset taken out with the packed weights' column sums. Exact: bit-identical to the
// scalar path. 6 x 16 tiles: 12 accumulators, two B vectors and the broadcast fit the 16 ymm registers.
#include <immintrin.h>

#include <cstring>

#include "qgemm.h"

namespace bort {
namespace qavxvnni {

static constexpr int MR = 6;
static constexpr int NR = 16;  // two ymm of 8 int32 columns

template <int M>
static inline void ukernel_c(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  __m256i acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  const __m256i flip = _mm256_set1_epi32((int)0x80808080u);
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    const __m256i b0 = _mm256_loadu_si256((const __m256i*)Bp);
    const __m256i b1 = _mm256_loadu_si256((const __m256i*)(Bp + 32));
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      int32_t a4;
      std::memcpy(&a4, A + i * lda + g * 4, 4);
      const __m256i a = _mm256_xor_si256(_mm256_set1_epi32(a4), flip);
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], a, b0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], a, b1);
    }
  }
  const __m256i c0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)cs), 7);
  const __m256i c1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)(cs + 8)), 7);
  for (int i = 0; i < M; ++i) {
    _mm256_storeu_si256((__m256i*)(out + i * NR), _mm256_sub_epi32(acc[i][0], c0));
    _mm256_storeu_si256((__m256i*)(out + i * NR + 8), _mm256_sub_epi32(acc[i][1], c1));
  }
}

// The full 6 x 16 tile, the hot one, with its k loop in inline assembly: GCC 12 keeps the intrinsic
// version's (ukernel_c) accumulators on the stack and copies them every k step (measured 201-226
// GOP/s against __ASM_GOPS__ for this one, bort_bench_qgemm, one Zen 5 core). The same instructions as
// ukernel_c, so the same sums. All 16 ymm registers: 12 accumulators, two B vectors, the broadcast A
// bytes and the 0x80 mask.
static inline void ukernel6(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  __m256i c[6][2], b0, b1, t0;
  const __m256i flip = _mm256_set1_epi32((int)0x80808080u);
  const int8_t* a0 = A;
  const int8_t* a4 = A + 4 * lda;
  const size_t lda3 = 3 * lda;
  long n = kg;
  __asm__ volatile(
      "vpxor %[c00], %[c00], %[c00]\n\t"
      "vpxor %[c01], %[c01], %[c01]\n\t"
      "vpxor %[c10], %[c10], %[c10]\n\t"
      "vpxor %[c11], %[c11], %[c11]\n\t"
      "vpxor %[c20], %[c20], %[c20]\n\t"
      "vpxor %[c21], %[c21], %[c21]\n\t"
      "vpxor %[c30], %[c30], %[c30]\n\t"
      "vpxor %[c31], %[c31], %[c31]\n\t"
      "vpxor %[c40], %[c40], %[c40]\n\t"
      "vpxor %[c41], %[c41], %[c41]\n\t"
      "vpxor %[c50], %[c50], %[c50]\n\t"
      "vpxor %[c51], %[c51], %[c51]\n\t"
      "test %[n], %[n]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vmovdqu (%[b]), %[b0]\n\t"
      "vmovdqu 32(%[b]), %[b1]\n\t"
      "vpbroadcastd (%[a0]), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c00]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c01]\n\t"
      "vpbroadcastd (%[a0],%[lda]), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c10]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c11]\n\t"
      "vpbroadcastd (%[a0],%[lda],2), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c20]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c21]\n\t"
      "vpbroadcastd (%[a0],%[lda3]), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c30]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c31]\n\t"
      "vpbroadcastd (%[a4]), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c40]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c41]\n\t"
      "vpbroadcastd (%[a4],%[lda]), %[t0]\n\t"
      "vpxor %[flip], %[t0], %[t0]\n\t"
      "%{vex%} vpdpbusd %[b0], %[t0], %[c50]\n\t"
      "%{vex%} vpdpbusd %[b1], %[t0], %[c51]\n\t"
      "add $64, %[b]\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a4]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      : [c00] "=&x"(c[0][0]), [c01] "=&x"(c[0][1]), [c10] "=&x"(c[1][0]), [c11] "=&x"(c[1][1]), [c20] "=&x"(c[2][0]), [c21] "=&x"(c[2][1]), [c30] "=&x"(c[3][0]), [c31] "=&x"(c[3][1]), [c40] "=&x"(c[4][0]), [c41] "=&x"(c[4][1]), [c50] "=&x"(c[5][0]), [c51] "=&x"(c[5][1]),
        [b0] "=&x"(b0), [b1] "=&x"(b1), [t0] "=&x"(t0),
        [b] "+r"(Bp), [a0] "+r"(a0), [a4] "+r"(a4), [n] "+r"(n)
      : [lda] "r"(lda), [lda3] "r"(lda3), [flip] "x"(flip)
      : "cc", "memory");
  const __m256i s0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)cs), 7);
  const __m256i s1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)(cs + 8)), 7);
  for (int i = 0; i < 6; ++i) {
    _mm256_storeu_si256((__m256i*)(out + i * NR), _mm256_sub_epi32(c[i][0], s0));
    _mm256_storeu_si256((__m256i*)(out + i * NR + 8), _mm256_sub_epi32(c[i][1], s1));
  }
}

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  if constexpr (M == 6) ukernel6(kg, A, lda, Bp, cs, out);
  else ukernel_c<M>(kg, A, lda, Bp, cs, out);
}

#include "qquantize_avx2.h"
#define QISA_QUANTIZE_ROWS quantize_rows_avx2
#define QISA_QUANTIZE_PACK_V quantize_pack_v_avx2

#define QISA_NAME "avxvnni"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qavxvnni

const QKernels* qkernels_avxvnni() { return &qavxvnni::kQTable; }

}  // namespace bort

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

// quantize_rows with AVX-512 intrinsics: GCC 12 leaves the generic max pass scalar and turns the
// rounding into mask-register juggling (a tenth of a one-thread int8 BERT-base run). The same
// operations in the same order as the generic k_quantize_rows (qgemm_impl.h), so the same bytes:
// a NaN is skipped by the max (vmaxps returns its second operand, the running max, when the first
// is NaN) and becomes 0 after the clamp, which is ordered so that a NaN goes through it; no FMA.
static void quantize_rows_avx512(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale) {
  const int K4 = qround4(K);
  for (int i = 0; i < M; ++i) {
    const float* r = x + (size_t)i * ldx;
    __m512 m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
      m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(r + k)), m0);
      m1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(r + k + 16)), m1);
    }
    for (; k < K; k += 16) {
      const __mmask16 t = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
      m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(t, r + k)), m0);
    }
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    const float s = mx > 0.0f && mx <= 3.4028235e38f ? mx / 127.0f : 1.0f;
    const float invs = 1.0f / s;
    scale[i] = s;
    const __m512 inv = _mm512_set1_ps(invs), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    const __m512i half = _mm512_set1_epi32(0x3f000000), sign = _mm512_set1_epi32((int)0x80000000u);
    int8_t* a = A + (size_t)i * lda;
    for (k = 0; k < K; k += 16) {
      const __mmask16 t = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, r + k), inv);
      v = _mm512_min_ps(hi, v);  // v > 127 ? 127 : v (a NaN v is returned as it is)
      v = _mm512_max_ps(lo, v);  // v < -127 ? -127 : v
      // + copysign(0.5, v) in one ternary-logic op ((v & sign) | 0.5): the generic v < 0 ? -0.5 : 0.5
      // for every v but -0 and NaN, which truncate to 0 either way. A NaN stays NaN, converts to
      // 0x80000000, and the truncating vpmovdb keeps its low byte: 0, as the generic NaN -> 0.
      v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(v), sign, half, 0xEA)));
      _mm512_mask_storeu_epi8(a + k, (__mmask64)t, _mm512_castsi128_si512(_mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v))));
    }
    for (k = K; k < K4; ++k) a[k] = 0;
  }
}
#define QISA_QUANTIZE_ROWS quantize_rows_avx512

// quantize_pack_v with AVX-512 intrinsics (the generic loop measured 8-11 µs for a 128 x 64 head, this
// about 1): the same operations as k_quantize_pack_v (qgemm_impl.h) and quantize_rows_avx512, so the
// same bytes. 16 columns at a time; four rows' int32 values become one 32-bit word per column.
static void quantize_pack_v_avx512(const float* v, size_t ld, int S, int d, const unsigned char* keep, int8_t* dst,
                                   int32_t* colsum, float* scale, float* work) {
  float* mx = work;
  float* inv = work + d;
  for (int n = 0; n < d; ++n) mx[n] = 0.0f;
  auto lanes = [d](int n0) { return d - n0 >= 16 ? (__mmask16)0xffff : d - n0 <= 0 ? (__mmask16)0 : (__mmask16)((1u << (d - n0)) - 1); };
  for (int k = 0; k < S; ++k) {
    if (keep && !keep[k]) continue;
    const float* r = v + (size_t)k * ld;
    for (int n0 = 0; n0 < d; n0 += 16) {
      const __mmask16 t = lanes(n0);
      const __m512 m = _mm512_maskz_loadu_ps(t, mx + n0);
      _mm512_mask_storeu_ps(mx + n0, t, _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(t, r + n0)), m));
    }
  }
  for (int n = 0; n < d; ++n) {
    scale[n] = mx[n] > 0.0f && mx[n] <= 3.4028235e38f ? mx[n] / 127.0f : 1.0f;
    inv[n] = 1.0f / scale[n];
  }
  const int kg = qround4(S) / 4, panels = (d + NR - 1) / NR;
  for (int n = 0; n < panels * NR; ++n) colsum[n] = 0;
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f), half = _mm512_set1_ps(0.5f),
               mhalf = _mm512_set1_ps(-0.5f), zero = _mm512_setzero_ps();
  const __m512i byte = _mm512_set1_epi32(255);
  for (int g = 0; g < kg; ++g) {
    for (int n0 = 0; n0 < panels * NR; n0 += 16) {
      const __mmask16 t = lanes(n0);
      const __m512 iv = _mm512_maskz_loadu_ps(t, inv + n0);
      __m512i word = _mm512_setzero_si512(), sum = _mm512_setzero_si512();
      for (int u = 0; u < 4; ++u) {
        const int k = 4 * g + u;
        if (k >= S) break;
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, v + (size_t)k * ld + n0), iv);
        x = _mm512_min_ps(hi, x);
        x = _mm512_max_ps(lo, x);
        x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x);
        x = _mm512_add_ps(x, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), half, mhalf));
        const __m512i q = _mm512_cvttps_epi32(x);
        sum = _mm512_add_epi32(sum, q);
        word = _mm512_or_si512(word, _mm512_slli_epi32(_mm512_and_si512(q, byte), 8 * u));
      }
      _mm512_storeu_si512(colsum + n0, _mm512_add_epi32(_mm512_loadu_si512(colsum + n0), sum));
      const int p = n0 / NR, j0 = n0 % NR;
      _mm512_storeu_si512(dst + (((size_t)p * kg + g) * NR + j0) * 4, word);
    }
  }
}
#define QISA_QUANTIZE_PACK_V quantize_pack_v_avx512

#define QISA_NAME "avx512vnni"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qavx512vnni

const QKernels* qkernels_avx512vnni() { return &qavx512vnni::kQTable; }

}  // namespace bort

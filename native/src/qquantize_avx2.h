// quantize_rows (qgemm.h) with AVX2 intrinsics, for the AVX2-class int8 files (qgemm_avx2.cpp,
// qgemm_avxvnni.cpp): include inside the file's namespace, after qgemm.h. GCC 12 compiles the generic
// loop of qgemm_impl.h to a scalar max pass (1.1 ns a value at 128 x 3072; this: see BENCHMARKS.md).
// The same operations in the same order as the generic k_quantize_rows, so the same bytes (test_qgemm):
// vmaxps returns its second operand, the running max, when |x| is NaN; the clamp is ordered so that
// a NaN goes through it and then becomes 0; no FMA.
#pragma once
#include <immintrin.h>

static void quantize_rows_avx2(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale) {
  const int K4 = qround4(K);
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int i = 0; i < M; ++i) {
    const float* r = x + (size_t)i * ldx;
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
      m0 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(r + k), absmask), m0);
      m1 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(r + k + 8), absmask), m1);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
    float mx = 0.0f;
    for (int j = 0; j < 8; ++j) mx = lanes[j] > mx ? lanes[j] : mx;
    for (; k < K; ++k) {
      const float a = __builtin_fabsf(r[k]);
      mx = a > mx ? a : mx;
    }
    const float s = mx > 0.0f && mx <= 3.4028235e38f ? mx / 127.0f : 1.0f;
    const float invs = 1.0f / s;
    scale[i] = s;
    const __m256 inv = _mm256_set1_ps(invs), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    const __m256 half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f), zero = _mm256_setzero_ps();
    int8_t* a = A + (size_t)i * lda;
    for (k = 0; k + 8 <= K; k += 8) {
      __m256 v = _mm256_mul_ps(_mm256_loadu_ps(r + k), inv);
      v = _mm256_min_ps(hi, v);  // v > 127 ? 127 : v (a NaN v is returned as it is)
      v = _mm256_max_ps(lo, v);  // v < -127 ? -127 : v
      v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
      v = _mm256_add_ps(v, _mm256_blendv_ps(half, mhalf, _mm256_cmp_ps(v, zero, _CMP_LT_OQ)));
      const __m256i q = _mm256_cvttps_epi32(v);
      const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(a + k), _mm_packs_epi16(w, w));
    }
    for (; k < K; ++k) {
      float v = r[k] * invs;
      v = v > 127.0f ? 127.0f : v;
      v = v < -127.0f ? -127.0f : v;
      v = v == v ? v : 0.0f;
      v = v + (v < 0.0f ? -0.5f : 0.5f);
      a[k] = (int8_t)(int)v;
    }
    for (k = K; k < K4; ++k) a[k] = 0;
  }
}

// quantize_pack_v (qgemm.h) with AVX2 intrinsics, 8 columns at a time (the generic loop measured 8-11
// µs for a 128 x 64 attention head on AVX-512; see quantize_pack_v_avx512 for the scheme). The same
// operations as the generic k_quantize_pack_v, so the same bytes; NR is the including file's.
static void quantize_pack_v_avx2(const float* v, size_t ld, int S, int d, const unsigned char* keep, int8_t* dst,
                                 int32_t* colsum, float* scale, float* work) {
  float* mx = work;
  float* inv = work + d;
  for (int n = 0; n < d; ++n) mx[n] = 0.0f;
  auto lanes = [d](int n0) {
    const int c = d - n0 >= 8 ? 8 : d - n0 <= 0 ? 0 : d - n0;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  };
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int k = 0; k < S; ++k) {
    if (keep && !keep[k]) continue;
    const float* r = v + (size_t)k * ld;
    for (int n0 = 0; n0 < d; n0 += 8) {
      const __m256i t = lanes(n0);
      const __m256 m = _mm256_maskload_ps(mx + n0, t);
      _mm256_maskstore_ps(mx + n0, t, _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(r + n0, t), absmask), m));
    }
  }
  for (int n = 0; n < d; ++n) {
    scale[n] = mx[n] > 0.0f && mx[n] <= 3.4028235e38f ? mx[n] / 127.0f : 1.0f;
    inv[n] = 1.0f / scale[n];
  }
  const int kg = qround4(S) / 4, panels = (d + NR - 1) / NR;
  for (int n = 0; n < panels * NR; ++n) colsum[n] = 0;
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f), half = _mm256_set1_ps(0.5f),
               mhalf = _mm256_set1_ps(-0.5f), zero = _mm256_setzero_ps();
  const __m256i byte = _mm256_set1_epi32(255);
  for (int g = 0; g < kg; ++g) {
    for (int n0 = 0; n0 < panels * NR; n0 += 8) {
      const __m256i t = lanes(n0);
      const __m256 iv = _mm256_maskload_ps(inv + n0, t);
      __m256i word = _mm256_setzero_si256(), sum = _mm256_setzero_si256();
      for (int u = 0; u < 4; ++u) {
        const int k = 4 * g + u;
        if (k >= S) break;
        __m256 x = _mm256_mul_ps(_mm256_maskload_ps(v + (size_t)k * ld + n0, t), iv);
        x = _mm256_min_ps(hi, x);
        x = _mm256_max_ps(lo, x);
        x = _mm256_and_ps(x, _mm256_cmp_ps(x, x, _CMP_ORD_Q));
        x = _mm256_add_ps(x, _mm256_blendv_ps(half, mhalf, _mm256_cmp_ps(x, zero, _CMP_LT_OQ)));
        const __m256i q = _mm256_cvttps_epi32(x);
        sum = _mm256_add_epi32(sum, q);
        word = _mm256_or_si256(word, _mm256_sll_epi32(_mm256_and_si256(q, byte), _mm_cvtsi32_si128(8 * u)));
      }
      _mm256_storeu_si256((__m256i*)(colsum + n0), _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(colsum + n0)), sum));
      const int p = n0 / NR, j0 = n0 % NR;
      _mm256_storeu_si256((__m256i*)(dst + (((size_t)p * kg + g) * NR + j0) * 4), word);
    }
  }
}

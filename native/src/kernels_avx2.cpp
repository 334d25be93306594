// AVX2 + FMA kernels (8 lanes). Compiled with -mavx2 -mfma; only reached after dispatch.cpp has
// checked cpuid and XCR0.
#include <immintrin.h>

#include "kernels.h"
#include "train/train_kernels.h"

namespace bort {
namespace avx2 {

struct V {
  using F = __m256;
  static constexpr int W = 8;
  static inline F load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static inline F set1(float x) { return _mm256_set1_ps(x); }
  static inline F zero() { return _mm256_setzero_ps(); }
  static inline F add(F a, F b) { return _mm256_add_ps(a, b); }
  static inline F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static inline F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static inline F div(F a, F b) { return _mm256_div_ps(a, b); }
  static inline F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static inline F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static inline F max(F a, F b) { return _mm256_max_ps(a, b); }
  static inline F min(F a, F b) { return _mm256_min_ps(a, b); }
  static inline F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // v holds whole numbers in [-127, 127]: store them as W int8 values
  static inline void store_i8(int8_t* p, F v) {
    const __m256i i = _mm256_cvttps_epi32(v);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w, w));
  }
  static inline F pow2i(F n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static inline F abs(F x) { return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static inline F copysign(F mag, F sgn) {
    const F sm = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    return _mm256_or_ps(_mm256_andnot_ps(sm, mag), _mm256_and_ps(sm, sgn));
  }
  static inline F lt_select(F a, F b, F x, F y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static inline float reduce_add(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline float reduce_max(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

static constexpr int MR = 6;
static constexpr int NV = 2;
static constexpr int KC = 512;
// GEMM reads A in place (no pack pass): measured no slower per tile on this ISA, and it saves the
// encoder a pack pass and a barrier per GEMM
static constexpr bool DIRECT_A = true;
#define ISA_NAME "avx2"
#define BORT_KERNELS_IMPL_BODY
#include "kernels_impl.h"
#define BORT_TRAIN_IMPL_BODY
#include "train/train_kernels_impl.h"
#undef BORT_TRAIN_IMPL_BODY
#undef BORT_KERNELS_IMPL_BODY
#undef ISA_NAME

}  // namespace avx2

const Kernels* kernels_avx2() { return &avx2::kTable; }
const TrainKernels* train_kernels_avx2() { return &avx2::kTrainTable; }

}  // namespace bort

// AVX-512F kernels (16 lanes). Compiled with -mavx512f -mfma; only reached after dispatch.cpp has
// checked cpuid and XCR0.
#include <immintrin.h>

#include "kernels.h"
#include "train/train_kernels.h"

namespace bort {
namespace avx512 {

struct V {
  using F = __m512;
  static constexpr int W = 16;
  static inline F load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static inline F set1(float x) { return _mm512_set1_ps(x); }
  static inline F zero() { return _mm512_setzero_ps(); }
  static inline F add(F a, F b) { return _mm512_add_ps(a, b); }
  static inline F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static inline F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static inline F div(F a, F b) { return _mm512_div_ps(a, b); }
  static inline F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static inline F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static inline F max(F a, F b) { return _mm512_max_ps(a, b); }
  static inline F min(F a, F b) { return _mm512_min_ps(a, b); }
  static inline F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // v holds whole numbers in [-127, 127]: store them as W int8 values
  static inline void store_i8(int8_t* p, F v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v))); }
  static inline F pow2i(F n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static inline F abs(F x) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
  }
  static inline F copysign(F mag, F sgn) {
    __m512i m = _mm512_and_si512(_mm512_castps_si512(mag), _mm512_set1_epi32(0x7fffffff));
    __m512i s = _mm512_and_si512(_mm512_castps_si512(sgn), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(m, s));
  }
  static inline F lt_select(F a, F b, F x, F y) {
    __mmask16 k = _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
    return _mm512_mask_blend_ps(k, y, x);
  }
  static inline float reduce_add(F v) { return _mm512_reduce_add_ps(v); }
  static inline float reduce_max(F v) { return _mm512_reduce_max_ps(v); }
};

static constexpr int MR = 8;
static constexpr int NV = 2;
static constexpr int KC = 512;
// GEMM reads A in place (no pack pass): measured no slower per tile on this ISA, and it saves the
// encoder a pack pass and a barrier per GEMM
static constexpr bool DIRECT_A = true;
#define ISA_NAME "avx512"
#define BORT_KERNELS_IMPL_BODY
#include "kernels_impl.h"
#define BORT_TRAIN_IMPL_BODY
#include "train/train_kernels_impl.h"
#undef BORT_TRAIN_IMPL_BODY
#undef BORT_KERNELS_IMPL_BODY
#undef ISA_NAME

}  // namespace avx512

const Kernels* kernels_avx512() { return &avx512::kTable; }
const TrainKernels* train_kernels_avx512() { return &avx512::kTrainTable; }

}  // namespace bort

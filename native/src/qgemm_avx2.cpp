// AVX2 int8 GEMM without VNNI (compiled with -mavx2 only; reached after qdispatch.cpp checked the CPU).
// vpmaddubsw multiplies unsigned by signed bytes and adds pairs into int16 with saturation, so u8·s8
// of full range could saturate (255·127·2 > 32767). The sign trick avoids it: activations are s8 in
// [-127, 127]; vpmaddubsw(|a|, sign(b, a)) computes the same products a·b with both operands at most
// 127 in size, so a pair sum is at most 2·127·127 = 32258 and never saturates; vpmaddwd by 1 adds the
// pairs into int32. Exact: bit-identical to the scalar path.
#include <immintrin.h>

#include <cstring>

#include "qgemm.h"

namespace bort {
namespace qavx2 {

static constexpr int MR = 4;
static constexpr int NR = 16;  // two ymm of 8 int32 columns

template <int M>
static inline void ukernel(int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t*, int32_t* out) {
  __m256i acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int g = 0; g < kg; ++g, Bp += NR * 4) {
    const __m256i b0 = _mm256_loadu_si256((const __m256i*)Bp);
    const __m256i b1 = _mm256_loadu_si256((const __m256i*)(Bp + 32));
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      int32_t a4;
      std::memcpy(&a4, A + i * lda + g * 4, 4);
      const __m256i a = _mm256_set1_epi32(a4);
      const __m256i aa = _mm256_abs_epi8(a);
      const __m256i p0 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, a));
      const __m256i p1 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, a));
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(p0, ones));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(p1, ones));
    }
  }
  for (int i = 0; i < M; ++i) {
    _mm256_storeu_si256((__m256i*)(out + i * NR), acc[i][0]);
    _mm256_storeu_si256((__m256i*)(out + i * NR + 8), acc[i][1]);
  }
}

#include "qquantize_avx2.h"
#define QISA_QUANTIZE_ROWS quantize_rows_avx2
#define QISA_QUANTIZE_PACK_V quantize_pack_v_avx2

#define QISA_NAME "avx2"
#define BORT_QGEMM_IMPL_BODY
#include "qgemm_impl.h"
#undef BORT_QGEMM_IMPL_BODY
#undef QISA_NAME

}  // namespace qavx2

const QKernels* qkernels_avx2() { return &qavx2::kQTable; }

}  // namespace bort

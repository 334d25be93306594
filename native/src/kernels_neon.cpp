// NEON kernels (4 lanes, AArch64). Compiled only for arm64, where NEON is always present.
#include <arm_neon.h>

#include "kernels.h"
#include "train/train_kernels.h"

namespace bort {
namespace neon {

struct V {
  using F = float32x4_t;
  static constexpr int W = 4;
  static inline F load(const float* p) { return vld1q_f32(p); }
  static inline void store(float* p, F v) { vst1q_f32(p, v); }
  static inline F set1(float x) { return vdupq_n_f32(x); }
  static inline F zero() { return vdupq_n_f32(0.0f); }
  static inline F add(F a, F b) { return vaddq_f32(a, b); }
  static inline F sub(F a, F b) { return vsubq_f32(a, b); }
  static inline F mul(F a, F b) { return vmulq_f32(a, b); }
  static inline F div(F a, F b) { return vdivq_f32(a, b); }
  static inline F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static inline F fnmadd(F a, F b, F c) { return vfmsq_f32(c, a, b); }
  static inline F max(F a, F b) { return vmaxq_f32(a, b); }
  static inline F min(F a, F b) { return vminq_f32(a, b); }
  static inline F round(F x) { return vrndnq_f32(x); }
  // v holds whole numbers in [-127, 127]: store them as W int8 values
  static inline void store_i8(int8_t* p, F v) {
    const int16x4_t w = vmovn_s32(vcvtq_s32_f32(v));
    const int8x8_t b = vmovn_s16(vcombine_s16(w, w));
    vst1_lane_s32(reinterpret_cast<int32_t*>(p), vreinterpret_s32_s8(b), 0);
  }
  static inline F pow2i(F n) {
    int32x4_t e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  static inline F abs(F x) { return vabsq_f32(x); }
  static inline F copysign(F mag, F sgn) {
    const uint32x4_t sm = vdupq_n_u32(0x80000000u);
    return vbslq_f32(sm, sgn, mag);
  }
  static inline F lt_select(F a, F b, F x, F y) { return vbslq_f32(vcltq_f32(a, b), x, y); }
  static inline float reduce_add(F v) { return vaddvq_f32(v); }
  static inline float reduce_max(F v) { return vmaxvq_f32(v); }
};

static constexpr int MR = 8;
static constexpr int NV = 3;
static constexpr int KC = 256;
// GEMM packs A (reading it in place was measured 6x slower on the scalar path; NEON not measured)
static constexpr bool DIRECT_A = false;
#define ISA_NAME "neon"
#define BORT_KERNELS_IMPL_BODY
#include "kernels_impl.h"
#define BORT_TRAIN_IMPL_BODY
#include "train/train_kernels_impl.h"
#undef BORT_TRAIN_IMPL_BODY
#undef BORT_KERNELS_IMPL_BODY
#undef ISA_NAME

}  // namespace neon

const Kernels* kernels_neon() { return &neon::kTable; }
const TrainKernels* train_kernels_neon() { return &neon::kTrainTable; }

}  // namespace bort

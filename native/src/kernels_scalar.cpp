// Portable scalar kernels (one lane): the fallback on any CPU, and the reference path BORT_ISA=scalar.
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "train/train_kernels.h"

namespace bort {
namespace scalar {

struct V {
  using F = float;
  static constexpr int W = 1;
  static inline F load(const float* p) { return *p; }
  static inline void store(float* p, F v) { *p = v; }
  static inline F set1(float x) { return x; }
  static inline F zero() { return 0.0f; }
  static inline F add(F a, F b) { return a + b; }
  static inline F sub(F a, F b) { return a - b; }
  static inline F mul(F a, F b) { return a * b; }
  static inline F div(F a, F b) { return a / b; }
  static inline F fmadd(F a, F b, F c) { return a * b + c; }
  static inline F fnmadd(F a, F b, F c) { return c - a * b; }
  static inline F max(F a, F b) { return a > b ? a : b; }
  static inline F min(F a, F b) { return a < b ? a : b; }
  static inline F round(F x) { return __builtin_rintf(x); }
  // v holds a whole number in [-127, 127]: store it as int8
  static inline void store_i8(int8_t* p, F v) { *p = (int8_t)(int)v; }
  static inline F pow2i(F n) {
    int32_t e = ((int32_t)n + 127) << 23;
    float r;
    std::memcpy(&r, &e, sizeof r);
    return r;
  }
  static inline F abs(F x) { return __builtin_fabsf(x); }
  static inline F copysign(F mag, F sgn) { return __builtin_copysignf(mag, sgn); }
  static inline F lt_select(F a, F b, F x, F y) { return a < b ? x : y; }
  static inline float reduce_add(F v) { return v; }
  static inline float reduce_max(F v) { return v; }
};

static constexpr int MR = 4;
static constexpr int NV = 4;
static constexpr int KC = 256;
// GEMM packs A (reading it in place was measured 6x slower on the scalar path; NEON not measured)
static constexpr bool DIRECT_A = false;
#define ISA_NAME "scalar"
#define BORT_KERNELS_IMPL_BODY
#include "kernels_impl.h"
#define BORT_TRAIN_IMPL_BODY
#include "train/train_kernels_impl.h"
#undef BORT_TRAIN_IMPL_BODY
#undef BORT_KERNELS_IMPL_BODY
#undef ISA_NAME

}  // namespace scalar

const Kernels* kernels_scalar() { return &scalar::kTable; }
const TrainKernels* train_kernels_scalar() { return &scalar::kTrainTable; }

}  // namespace bort

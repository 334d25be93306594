// int8 GEMM: C[M,N] = epi(A[M,K] · B[K,N]) with A and B int8, exact int32 accumulation.
//
// Scheme (the same on every ISA, so every path is bit-exact against the scalar reference in int32):
//   * weights B: symmetric int8 in [-127, 127] (zero point 0; -128 never used), one scale per output
//     column (or one per matrix), packed once by qpack_b;
//   * activations A: symmetric int8 in [-127, 127], one scale per row, quantized per GEMM by
//     quantize_rows (dynamic); or one static scale from calibration for every row, quantized by
//     quantize_rows_static (onnxruntime's QuantizeLinear to int8 behind a Clip to [-127, 127]·scale).
// Each ISA file (qgemm_scalar.cpp, qgemm_avx2.cpp, qgemm_avxvnni.cpp, qgemm_avx512vnni.cpp, qgemm_neon.cpp,
// qgemm_neondot.cpp) fills one
// QKernels table; qdispatch.cpp picks one. How each path avoids saturation is stated in its file:
//   AVX2 (no VNNI): vpmaddubsw(|a|, sign(b, a)) + vpmaddwd — the sign trick: |a| <= 127 and
//     |sign(b,a)| <= 127 so a pair sum is at most 2·127·127 = 32258 < 32767: vpmaddubsw never saturates;
//   AVX-512 VNNI and AVX-VNNI (256-bit): vpdpbusd(a + 128, b) − 128·Σ_k b (column sums from qpack_b):
//     u8·s8 into s32, exact;
//   NEON: sdot (ARMv8.2 dotprod) s8·s8 into s32, or smull (s8·s8 → s16, exact) + sadalp into s32.
// K is at most kQMaxK so Σ |a·b| <= K·127·127 fits int32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bort {

constexpr int kQMaxK = 131072;  // 131072 · 127 · 127 < 2^31

inline int qround4(int k) { return (k + 3) & ~3; }

// Packed B: panels of NR columns; inside a panel, K in groups of 4: [ceil(K/4)][NR][4] bytes, zero
// padded in K (to a multiple of 4) and in N (to a multiple of NR).
inline size_t qpacked_size(int K, int N, int NR) { return (size_t)((N + NR - 1) / NR) * NR * (size_t)qround4(K); }

// Packs row-major int8 W[K][N] (row stride ldw) for panel width NR; colsum[j] = Σ_k W[k][j] for
// j < round_up(N, NR) (zero in the padding). Portable.
void qpack_b(int8_t* dst, int32_t* colsum, const int8_t* W, size_t ldw, int K, int N, int NR);

// Quantizes rows of x[M][K] (row stride ldx) symmetrically: scale[i] = max|x_i| / 127 (1 for a zero
// row; NaN counts as 0), A[i][k] = round-half-away(x · (1/scale)) in [-127,127]; A[i][K..round4(K)) = 0.
// lda >= round4(K). This is the scalar table's; QKernels::quantize_rows is the same per ISA.
void quantize_rows(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale);

// Quantizes rows of x[M][K] (row stride ldx) with one static scale (finite, > 0), as onnxruntime's
// QuantizeLinear(x, scale, int8 zero point 0) computes it behind a Clip to [-127·scale, 127·scale]:
// A[i][k] = round-half-even(x / scale) (a true division) clamped to [-127, 127]; NaN gives 0;
// A[i][K..round4(K)) = 0. The scalar table's; QKernels::quantize_rows_static is the same per ISA.
void quantize_rows_static(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float scale);

struct QGemmArgs {
  const int8_t* A = nullptr;  // [M][lda], lda >= round4(K), zero in [K, round4(K))
  size_t lda = 0;
  const int8_t* B = nullptr;  // packed by qpack_b with the table's NR
  const int32_t* colsum = nullptr;  // from qpack_b (read by paths that offset A)
  int M = 0, N = 0, K = 0;
  // Output, one of:
  int32_t* Ci = nullptr;      // raw int32 accumulators, row stride ldc (tests, and the reference)
  float* C = nullptr;         // dequantized: C = acc · a_scale[i] · b_scale[j or 0] + bias[j]
  size_t ldc = 0;
  const float* a_scale = nullptr;  // [M]
  const float* b_scale = nullptr;  // [N] (per channel) or [1]
  bool b_per_channel = true;
  const float* bias = nullptr;     // [N] or null
  // then, on each finished micro-tile row (float output only): one of
  void (*gelu)(float* x, size_t n) = nullptr;  // x = gelu(x) (the float kernel table's vector GELU)
  const float* R = nullptr;                    // C += R (residual), row stride ldr
  size_t ldr = 0;
};

struct QKernels {
  const char* name;  // "scalar", "avx2", "avxvnni", "avx512vnni", "neon", "neondot"
  int MR, NR;
  // Rows [m0,m1), columns [n0,n1) (n0 a multiple of NR; n1 a multiple of NR or N).
  void (*qgemm_tile)(const QGemmArgs& g, int m0, int m1, int n0, int n1);
  // quantize_rows below, compiled for this ISA (the same results on every path).
  void (*quantize_rows)(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale);
  // quantize_rows_static above, compiled for this ISA (the same results on every path).
  void (*quantize_rows_static)(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float scale);
  // Attention's V [S][d] (row stride ld) as the B operand [K = S][N = d]: quantized per column
  // (scale[n] = max over the rows k with keep[k], all when keep is null, of |v[k][n]| / 127; 1 for a
  // zero column; NaN counts as 0; values round-half-away(v · (1/scale)) clamped to [-127, 127], NaN
  // to 0) and packed as qpack_b packs them, with colsum. work: 2·d floats. The same on every path.
  void (*quantize_pack_v)(const float* v, size_t ld, int S, int d, const unsigned char* keep, int8_t* dst,
                          int32_t* colsum, float* scale, float* work);
};

enum class QIsa { Scalar, Avx2, AvxVnni, Avx512Vnni, Neon, NeonDot };
const char* qisa_name(QIsa i);
// The table for `i` when this CPU and build can run it, else null.
const QKernels* qkernels_for(QIsa i);
// Best available (BORT_QISA=scalar|avx2|avxvnni|avx512vnni|neon|neondot forces one; null + *err when unavailable).
const QKernels* qkernels_active(const char** err);

// Whole GEMM on the calling thread (tests, benches).
void qgemm(const QKernels* k, const QGemmArgs& g);

// ISA tables (null where not compiled for this target).
const QKernels* qkernels_scalar();
const QKernels* qkernels_avx2();
const QKernels* qkernels_avxvnni();
const QKernels* qkernels_avx512vnni();
const QKernels* qkernels_neon();
const QKernels* qkernels_neondot();

}  // namespace bort

// int8 attention for one (sequence, head), on the int8 GEMM tables (qgemm.h): the encoder's int8
// path uses it in place of the float32 Q·Kᵀ and P·V.
//
// Scheme (symmetric, zero point 0, as everywhere in qgemm.h):
//   * Q rows: one scale per query row (QKernels::quantize_rows);
//   * K rows: one scale per key (the B operand's per-column scales), packed transposed;
//   * scores = int32 · scale_q · scale_k, then the float32 mask and softmax as before;
//   * P rows (each in [0, 1]): one scale per query row, so values under max/254 of a row become 0;
//   * V: one scale per head dimension over the sequence's real keys (a padded key's probability is
//     exactly 0, and leaving it out of the scales makes a padded batch give the same numbers as the
//     packed one, packing.h);
//   * context = int32 · scale_p · scale_v.
// Every int32 sum is exact, so a path's result depends on its ISA only through the float32 softmax.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qgemm.h"

namespace bort {

// Scratch for one thread, grown on demand.
struct QAttnScratch {
  std::vector<int8_t> qa, kq, kp, vp, pa;
  std::vector<int32_t> kcs, vcs;
  std::vector<float> sq, sk, sv, sp, work;
};

// K [S][d] and V [S][d] of one head (row stride ld) quantized and packed into s. keep: null (every key
// is real) or S flags, 0 for a padded key (left out of V's scales).
void qattn_prepare_kv(const QKernels* qk, const float* k, const float* v, size_t ld, int S, int d,
                      const unsigned char* keep, QAttnScratch& s);
// sc[r][j] (row stride S) = q_r · k_j for the qb query rows q (row stride ld), dequantized.
void qattn_scores(const QKernels* qk, const float* q, size_t ld, int qb, int S, int d, QAttnScratch& s, float* sc);
// The int8 probabilities of the qb query rows: P rows [qb][round4(S)] and their scales, for
// Kernels::softmax_q8 to fill (row r at p_rows(s, qb, S) + r · round4(S), scale at p_scales(s, qb)[r]).
int8_t* qattn_p_rows(QAttnScratch& s, int qb, int S);
float* qattn_p_scales(QAttnScratch& s, int qb);
// ctx[r] (row stride ldc) = Σ_j p[r][j] v_j for the qb int8 probability rows filled as above.
void qattn_context(const QKernels* qk, int qb, int S, int d, QAttnScratch& s, float* ctx, size_t ldc);

// Packs int8 Bᵀ: row n of Wt (row stride ldt) is column n of B [K][N]; the layout and colsum as
// qpack_b's. Portable.
void qpack_bt(int8_t* dst, int32_t* colsum, const int8_t* Wt, size_t ldt, int K, int N, int NR);

}  // namespace bort

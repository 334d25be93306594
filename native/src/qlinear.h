// An int8 linear layer of the encoder: float32 weights quantized at load (symmetric, one scale per
// output column, the same rule as lib/quantize/weights.ts), packed once for the active int8 path; at
// run time the input rows are quantized (symmetric, one scale per row), multiplied in int32, and the
// tile epilogue dequantizes and applies bias, then GELU or the residual.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "qgemm.h"

namespace bort {

// Bytes for packed int8 weights: 1 MiB and more mapped directly with transparent huge pages requested
// (as the float weights, encoder.h: they stream through the TLB every run), smaller ones malloc'd.
class QBytes {
 public:
  QBytes() = default;
  QBytes(const QBytes&) = delete;
  QBytes& operator=(const QBytes&) = delete;
  QBytes(QBytes&& o) noexcept : p_(o.p_), n_(o.n_), mapped_(o.mapped_) { o.p_ = nullptr; o.n_ = 0; o.mapped_ = false; }
  QBytes& operator=(QBytes&& o) noexcept;
  ~QBytes() { release(); }
  void resize(size_t n);  // contents undefined
  int8_t* data() { return p_; }
  const int8_t* data() const { return p_; }
  size_t size() const { return n_; }
  int8_t operator[](size_t i) const { return p_[i]; }

 private:
  void release();
  int8_t* p_ = nullptr;
  size_t n_ = 0;
  bool mapped_ = false;
};

struct QLinear {
  const QKernels* qk = nullptr;
  int K = 0, N = 0;
  QBytes B;                     // packed by qpack_b
  std::vector<int32_t> colsum;  // from qpack_b
  std::vector<float> scale;     // [N], each > 0
  // 0: inputs quantized per row at run time (dynamic). > 0: a static input scale from calibration: the
  // rows are quantized with it (quantize_rows_static) and `scale` already holds it times the weight
  // scales (the file's folded constant), so the epilogue multiplies the int32 sums by `scale` alone.
  float in_scale = 0.0f;
  size_t bytes() const { return B.size() + colsum.size() * 4 + scale.size() * 4; }
};

// Row-major float weights [K][n_i] side by side (like PackSeg), quantized per column and packed.
struct QSeg {
  const float* p;
  int n;
};
std::unique_ptr<QLinear> make_qlinear(const QKernels* qk, int K, const QSeg* segs, int nsegs);

// Already-quantized weights (a quantized ONNX file's own): row-major int8 [K][n_i] side by side, each in
// [-127, 127], with their per-column scales [n_i] (each finite and > 0), packed as they are. Throws
// std::invalid_argument naming the first bad value.
struct QSegI8 {
  const int8_t* q;
  const float* scale;
  int n;
};
std::unique_ptr<QLinear> make_qlinear_int8(const QKernels* qk, int K, const QSegI8* segs, int nsegs);

// Weight [k][n] as packed (tests, and the key-norm bound of the padding skip).
inline int8_t qlinear_weight(const QLinear& L, int k, int n) {
  const int NR = L.qk->NR, kg = qround4(L.K) / 4;
  return L.B[(size_t)(n / NR) * NR * kg * 4 + (size_t)(k / 4) * NR * 4 + (size_t)(n % NR) * 4 + (k % 4)];
}

// Symmetric int8 rows with one scale each (the int8 embedding tables): row r is scale[r] · q[r][0..cols).
struct QTable {
  std::vector<int8_t> q;
  std::vector<float> scale;
  int cols = 0;
  size_t bytes() const { return q.size() + scale.size() * 4; }
  const int8_t* row(size_t r) const { return q.data() + r * (size_t)cols; }
};
// Quantizes x[rows][cols] per row (scale = max|row| / 127, 1 for a zero row; half away from zero).
QTable make_qtable(const float* x, size_t rows, int cols);

// Scratch for the quantized input rows, grown on demand (one per encoder; runs are serialised).
struct QScratch {
  std::vector<int8_t> a;
  std::vector<float> scale;
};

// C[M,N] = epi(dequant(quant(A) · W) + bias [+ R]) with the pool's threads. `gelu` is the float kernel
// table's vector GELU (applied to each finished row segment for Epi::BiasGelu).
void qlinear_run(ThreadPool& pool, const QLinear& L, const float* A, size_t lda, float* C, size_t ldc, int M, Epi epi,
                 const float* bias, const float* R, size_t ldr, void (*gelu)(float*, size_t), QScratch& s);

// The same in steps, for a caller that quantizes each input row where it writes it (the encoder's
// LayerNorm, so the row is read once, by the thread that wrote it): qlinear_reserve sizes s for M
// rows, qlinear_quantize_rows quantizes rows [r0, r1) (x: row r0, row stride ldx; any thread, distinct
// rows), and qlinear_run_quantized runs the GEMM on the M rows so quantized.
void qlinear_reserve(const QLinear& L, int M, QScratch& s);
void qlinear_quantize_rows(const QLinear& L, const float* x, size_t ldx, int r0, int r1, QScratch& s);
void qlinear_run_quantized(ThreadPool& pool, const QLinear& L, float* C, size_t ldc, int M, Epi epi, const float* bias,
                           const float* R, size_t ldr, void (*gelu)(float*, size_t), QScratch& s);

}  // namespace bort

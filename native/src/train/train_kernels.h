// Backward (training) kernels, one table per ISA beside the forward `Kernels` table.
//
// The bodies live in train_kernels_impl.h, written once over the same vector-traits struct `V` as
// kernels_impl.h and compiled inside each ISA file's namespace (kernels_{scalar,avx2,avx512,neon}.cpp
// include it after kernels_impl.h), so they get that file's ISA flags and its vexp/verf. The heavy
// GEMMs of training go through the forward table's packed gemm_tile; these are the row and
// elementwise parts of the backward pass and the optimizer update (attention is attention.h: GEMMs
// on the forward table plus these row kernels).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../kernels.h"

namespace bort {

struct TrainKernels {
  const char* name;  // same as the matching Kernels::name

  // LayerNorm forward of one row of n that also keeps what the backward needs:
  // xhat = (x - mean) * rstd, y = xhat * g + b; returns rstd = 1/sqrt(biased var + eps). y may equal x;
  // xhat must not alias x or y.
  float (*layernorm_fwd)(float* y, float* xhat, const float* x, const float* g, const float* b, int n, float eps);
  // LayerNorm backward of one row: dx = rstd * (dy*g - mean(dy*g) - xhat * mean(dy*g*xhat)).
  // dx may equal dy. (dg, db are column sums, done by the caller.)
  void (*layernorm_bwd)(float* dx, const float* dy, const float* xhat, const float* g, float rstd, int n);
  // y = gelu_erf(u), n floats (y may equal u).
  void (*gelu_fwd)(float* y, const float* u, size_t n);
  // dy *= gelu_erf'(u) = Phi(u) + u * phi(u), n floats, in place.
  void (*gelu_bwd)(float* dy, const float* u, size_t n);
  // y[i] += a * x[i]
  void (*axpy)(float* y, float a, const float* x, int n);
  // sum of x[i]^2, accumulated in double per vector lane group.
  double (*sumsq)(const float* x, size_t n);
  // max of x[0..n) (n >= 1); sum of x; sum of x[i]*y[i] (float lanes per block of 1024, then double).
  float (*row_max)(const float* x, int n);
  double (*row_sum)(const float* x, int n);
  double (*row_dot)(const float* x, const float* y, int n);
  // acc[i] += x[i] * y[i] (y null: acc[i] += x[i]), n floats.
  void (*acc_mul)(float* acc, const float* x, const float* y, int n);
  // AdamW (PyTorch order) on n parameters: g' = g * gscale; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
  // p = p (1 - lr wd) - lr * (m / bc1) / (sqrt(v / bc2) + eps), bc1 = 1 - b1^t, bc2 = 1 - b2^t.
  void (*adamw)(float* p, float* m, float* v, const float* g, size_t n, float lr, float b1, float b2, float eps, float wd,
                float bc1, float bc2, float gscale);

};

const TrainKernels* train_kernels_scalar();
const TrainKernels* train_kernels_avx2();
const TrainKernels* train_kernels_avx512();
const TrainKernels* train_kernels_neon();

// The training table for the same ISA as `k` (a table from kernels_for / active_kernels); null if none.
const TrainKernels* train_kernels_matching(const Kernels* k);

}  // namespace bort

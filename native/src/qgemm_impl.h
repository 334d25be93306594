// The int8 GEMM driver, written once: included by each qgemm_<isa>.cpp inside its own namespace after
// it defines MR, NR and `template <int M> ukernel(kg, A, lda, Bp, colsum, out)`, which computes an
// M x NR tile of exact int32 sums into out[M][NR] (kg groups of 4 k). The driver walks the tiles and
// applies the epilogue while the tile is in L1: raw int32 (Ci) or dequantize + bias (C), then GELU or
// the residual.
#ifndef BORT_QGEMM_IMPL_BODY
#error "include qgemm_impl.h from a qgemm ISA file only"
#endif

template <int M>
static inline void run_rows(int m, int kg, const int8_t* A, size_t lda, const int8_t* Bp, const int32_t* cs, int32_t* out) {
  if (m == M) ukernel<M>(kg, A, lda, Bp, cs, out);
  else if constexpr (M > 1) run_rows<M - 1>(m, kg, A, lda, Bp, cs, out);
}

static void k_qgemm_tile(const QGemmArgs& g, int m0, int m1, int n0, int n1) {
  alignas(64) int32_t acc[MR * NR];
  const int kg = qround4(g.K) / 4;
  for (int n = n0; n < n1; n += NR) {
    const int8_t* bp = g.B + (size_t)(n / NR) * NR * (size_t)kg * 4;
    const int32_t* cs = g.colsum ? g.colsum + n : nullptr;
    const int nc = g.N - n < NR ? g.N - n : NR;
    for (int m = m0; m < m1; m += MR) {
      const int mr = m1 - m < MR ? m1 - m : MR;
      run_rows<MR>(mr, kg, g.A + (size_t)m * g.lda, g.lda, bp, cs, acc);
      if (g.Ci) {
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nc; ++j) g.Ci[(size_t)(m + i) * g.ldc + n + j] = acc[i * NR + j];
      } else {
        for (int i = 0; i < mr; ++i) {
          const float as = g.a_scale[m + i];
          float* c = g.C + (size_t)(m + i) * g.ldc + n;
          for (int j = 0; j < nc; ++j) {
            const float s = as * (g.b_per_channel ? g.b_scale[n + j] : g.b_scale[0]);
            c[j] = (float)acc[i * NR + j] * s + (g.bias ? g.bias[n + j] : 0.0f);
          }
          if (g.gelu) {
            g.gelu(c, (size_t)nc);
          } else if (g.R) {
            const float* r = g.R + (size_t)(m + i) * g.ldr + n;
            for (int j = 0; j < nc; ++j) c[j] += r[j];
          }
        }
      }
    }
  }
}

static const QKernels kQTable = {QISA_NAME, MR, NR, k_qgemm_tile};

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
  alignas(64) float sb[NR], bb[NR];  // this panel's weight scales and bias (0 past N or without bias)
  const int kg = qround4(g.K) / 4;
  for (int n = n0; n < n1; n += NR) {
    const int8_t* bp = g.B + (size_t)(n / NR) * NR * (size_t)kg * 4;
    const int32_t* cs = g.colsum ? g.colsum + n : nullptr;
    const int nc = g.N - n < NR ? g.N - n : NR;
    if (!g.Ci) {
      for (int j = 0; j < NR; ++j) {
        sb[j] = j < nc ? (g.b_per_channel ? g.b_scale[n + j] : g.b_scale[0]) : 0.0f;
        bb[j] = j < nc && g.bias ? g.bias[n + j] : 0.0f;
      }
    }
    for (int m = m0; m < m1; m += MR) {
      const int mr = m1 - m < MR ? m1 - m : MR;
      run_rows<MR>(mr, kg, g.A + (size_t)m * g.lda, g.lda, bp, cs, acc);
      if (g.Ci) {
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nc; ++j) g.Ci[(size_t)(m + i) * g.ldc + n + j] = acc[i * NR + j];
      } else if (g.gelu) {
        // dequantize + bias into a tile buffer, GELU over the whole tile in one call, then the rows out:
        // one call per row (32 values) cost about as much as the arithmetic (BENCHMARKS.md)
        alignas(64) float t[MR * NR];
        for (int i = 0; i < mr; ++i) {
          const float as = g.a_scale[m + i];
          const int32_t* a = acc + i * NR;
          float* ti = t + i * NR;
          for (int j = 0; j < NR; ++j) ti[j] = (float)a[j] * (as * sb[j]) + bb[j];
        }
        g.gelu(t, (size_t)mr * NR);
        for (int i = 0; i < mr; ++i) {
          float* c = g.C + (size_t)(m + i) * g.ldc + n;
          const float* ti = t + i * NR;
          for (int j = 0; j < nc; ++j) c[j] = ti[j];
        }
      } else {
        // dequantize + bias without a branch per element (so it vectorises): acc · (a_scale · b_scale) + bias
        for (int i = 0; i < mr; ++i) {
          const float as = g.a_scale[m + i];
          float* c = g.C + (size_t)(m + i) * g.ldc + n;
          const int32_t* a = acc + i * NR;
          for (int j = 0; j < nc; ++j) c[j] = (float)a[j] * (as * sb[j]) + bb[j];
          if (g.R) {
            const float* r = g.R + (size_t)(m + i) * g.ldr + n;
            for (int j = 0; j < nc; ++j) c[j] += r[j];
          }
        }
      }
    }
  }
}

#ifndef QISA_QUANTIZE_ROWS
// quantize_rows (qgemm.h), written so the compiler vectorises it with this file's ISA flags: 16
// running maxima per row, then multiply, clamp, round half away from zero, convert. The clamp sits
// between the multiply and the rounding add so no ISA can fuse them: every path rounds identically.
static void k_quantize_rows(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float* scale) {
  const int K4 = qround4(K);
  for (int i = 0; i < M; ++i) {
    const float* r = x + (size_t)i * ldx;
    float m16[16] = {};
    int k = 0;
    for (; k + 16 <= K; k += 16)
      for (int j = 0; j < 16; ++j) {
        const float a = __builtin_fabsf(r[k + j]);
        m16[j] = a > m16[j] ? a : m16[j];
      }
    float mx = 0.0f;
    for (; k < K; ++k) {
      const float a = __builtin_fabsf(r[k]);
      mx = a > mx ? a : mx;
    }
    for (int j = 0; j < 16; ++j) mx = m16[j] > mx ? m16[j] : mx;
    const float s = mx > 0.0f && mx <= 3.4028235e38f ? mx / 127.0f : 1.0f;
    const float inv = 1.0f / s;
    scale[i] = s;
    int8_t* a = A + (size_t)i * lda;
    for (k = 0; k < K; ++k) {
      float v = r[k] * inv;
      v = v > 127.0f ? 127.0f : v;
      v = v < -127.0f ? -127.0f : v;
      v = v == v ? v : 0.0f;  // NaN -> 0
      v = v + (v < 0.0f ? -0.5f : 0.5f);
      a[k] = (int8_t)(int)v;
    }
    for (k = K; k < K4; ++k) a[k] = 0;
  }
}
#endif

// quantize_rows_static (qgemm.h): one division, a clamp to [-127, 127], then round half to even by
// adding and subtracting 1.5·2^23 (exact IEEE adds; |v| <= 127 so the sum's ulp is 1), which every
// ISA computes identically (no multiply to fuse). NaN fails both comparisons of the clamp and is set to 0.
static void k_quantize_rows_static(const float* x, size_t ldx, int M, int K, int8_t* A, size_t lda, float scale) {
  const int K4 = qround4(K);
  const float magic = 12582912.0f;  // 1.5 * 2^23
  for (int i = 0; i < M; ++i) {
    const float* r = x + (size_t)i * ldx;
    int8_t* a = A + (size_t)i * lda;
    for (int k = 0; k < K; ++k) {
      float v = r[k] / scale;
      v = v > 127.0f ? 127.0f : v;
      v = v < -127.0f ? -127.0f : v;
      v = v == v ? v : 0.0f;  // NaN -> 0
      v = (v + magic) - magic;
      a[k] = (int8_t)(int)v;
    }
    for (int k = K; k < K4; ++k) a[k] = 0;
  }
}

#ifndef QISA_QUANTIZE_PACK_V
// quantize_pack_v (qgemm.h). Four rows (one group of 4 k) at a time: each column's four bytes make
// one 32-bit word of the packed panel, built with shifts so the loop vectorises.
static void k_quantize_pack_v(const float* v, size_t ld, int S, int d, const unsigned char* keep, int8_t* dst,
                              int32_t* colsum, float* scale, float* work) {
  float* mx = work;
  float* inv = work + d;
  for (int n = 0; n < d; ++n) mx[n] = 0.0f;
  for (int k = 0; k < S; ++k) {
    if (keep && !keep[k]) continue;
    const float* r = v + (size_t)k * ld;
    for (int n = 0; n < d; ++n) {
      const float a = __builtin_fabsf(r[n]);
      mx[n] = a > mx[n] ? a : mx[n];
    }
  }
  for (int n = 0; n < d; ++n) {
    scale[n] = mx[n] > 0.0f && mx[n] <= 3.4028235e38f ? mx[n] / 127.0f : 1.0f;
    inv[n] = 1.0f / scale[n];
  }
  const int kg = qround4(S) / 4, panels = (d + NR - 1) / NR;
  for (int n = 0; n < panels * NR; ++n) colsum[n] = 0;
  for (int g = 0; g < kg; ++g) {
    const float* r[4];
    for (int t = 0; t < 4; ++t) r[t] = 4 * g + t < S ? v + (size_t)(4 * g + t) * ld : nullptr;
    for (int p = 0; p < panels; ++p) {
      uint32_t* o = reinterpret_cast<uint32_t*>(dst + ((size_t)p * kg + g) * NR * 4);
      const int n0 = p * NR, nc = d - n0 < NR ? d - n0 : NR;
      for (int j = 0; j < nc; ++j) {
        const int n = n0 + j;
        int32_t q[4];
        for (int t = 0; t < 4; ++t) {
          float x = r[t] ? r[t][n] * inv[n] : 0.0f;
          x = x > 127.0f ? 127.0f : x;
          x = x < -127.0f ? -127.0f : x;
          x = x == x ? x : 0.0f;
          x = x + (x < 0.0f ? -0.5f : 0.5f);
          q[t] = (int)x;
        }
        colsum[n] += q[0] + q[1] + q[2] + q[3];
        o[j] = (uint32_t)(q[0] & 255) | (uint32_t)(q[1] & 255) << 8 | (uint32_t)(q[2] & 255) << 16 | (uint32_t)(q[3] & 255) << 24;
      }
      for (int j = nc; j < NR; ++j) o[j] = 0;
    }
  }
}
#endif

// An ISA file may define QISA_QUANTIZE_ROWS / QISA_QUANTIZE_PACK_V as its own (written with intrinsics
// where the compiler's vectorisation of the generic loop is poor); they must give the same bytes.
#ifndef QISA_QUANTIZE_ROWS
#define QISA_QUANTIZE_ROWS k_quantize_rows
#endif
#ifndef QISA_QUANTIZE_PACK_V
#define QISA_QUANTIZE_PACK_V k_quantize_pack_v
#endif
static const QKernels kQTable = {QISA_NAME, MR, NR, k_qgemm_tile, QISA_QUANTIZE_ROWS, k_quantize_rows_static, QISA_QUANTIZE_PACK_V};
#undef QISA_QUANTIZE_ROWS
#undef QISA_QUANTIZE_PACK_V

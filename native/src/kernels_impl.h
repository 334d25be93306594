// Generic kernel bodies, written once over a small vector-traits struct `V`.
//
// This header is included by each ISA file *inside its own namespace* (bort::avx512, bort::avx2, ...)
// after it defines `V` (the vector type and its operations) and the constants MR (micro-tile rows),
// NV (vectors per micro-tile row, so NR = NV * V::W) and KC (K block). Every ISA file therefore
// compiles its own copy with its own flags, and the namespaces keep the symbols apart, so the linker
// can never mix an AVX-512 instantiation into portable code. Nothing from the C++ standard library
// with inline bodies is used here for the same reason.
//
// V must provide: F (vector type), W (lanes), load, store, set1, zero, add, sub, mul, div,
// fmadd(a,b,c) = a*b+c, fnmadd(a,b,c) = c-a*b, max, min, round (to nearest), pow2i(n) (2^n for an
// integral-valued float n in [-126,127]), abs, copysign(mag, sgn), lt_select(a,b,x,y) = a<b ? x : y,
// reduce_add, reduce_max.

#ifndef BORT_KERNELS_IMPL_BODY
#error "include kernels_impl.h from an ISA file only"
#endif

using F = typename V::F;
static constexpr int W = V::W;
static constexpr int NR = NV * W;

static inline int imin(int a, int b) { return a < b ? a : b; }

// ---------------------------------------------------------------- math
// exp: Cody-Waite range reduction and the Cephes degree-6 polynomial (about 1 ulp on the clamped
// range); inputs below -87.33 give exactly 0, inputs above 88 saturate at exp(88).
static inline F vexp(F x) {
  const F lo = V::set1(-87.3365478515625f);
  const F hi = V::set1(88.0f);
  F xc = V::min(V::max(x, lo), hi);
  F n = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
  F r = V::fnmadd(n, V::set1(0.693359375f), xc);
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  F p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  F r2 = V::mul(r, r);
  p = V::fmadd(p, r2, V::add(r, V::set1(1.0f)));
  F res = V::mul(p, V::pow2i(n));
  return V::lt_select(x, lo, V::zero(), res);
}

// erf: x·P(x²)/Q(x²) on |x| <= 3.92, P of degree 6 and Q of degree 4, fitted for this file
// (reweighted least squares towards the smallest maximum absolute error, float64 fit error 4.3e-8;
// 3.4e-7 evaluated in float32). Beyond 3.92 erf is within 3e-8 of ±1, so x is clamped there. No exp
// and one division: about a third of the cost of the exp-based Abramowitz & Stegun 7.1.26 it replaced,
// which made the FFN's GELU a tenth of an int8 BERT-base run. The clamp is written max(lo, x),
// min(hi, ·) so that a NaN goes through (x86 returns the second operand when one is NaN).
static inline F verf(F x) {
  const F xc = V::min(V::set1(3.92f), V::max(V::set1(-3.92f), x));
  const F t = V::mul(xc, xc);
  F p = V::set1(1.991496978e-08f);
  p = V::fmadd(p, t, V::set1(-1.993350405e-06f));
  p = V::fmadd(p, t, V::set1(1.488691062e-04f));
  p = V::fmadd(p, t, V::set1(3.969069140e-03f));
  p = V::fmadd(p, t, V::set1(5.138618200e-02f));
  p = V::fmadd(p, t, V::set1(2.060322995e-01f));
  p = V::fmadd(p, t, V::set1(1.128378782e+00f));
  F q = V::set1(1.023106689e-03f);
  q = V::fmadd(q, t, V::set1(1.488190159e-02f));
  q = V::fmadd(q, t, V::set1(1.175303943e-01f));
  q = V::fmadd(q, t, V::set1(5.159201831e-01f));
  q = V::fmadd(q, t, V::set1(1.0f));
  return V::div(V::mul(xc, p), q);
}

// gelu(x) = 0.5 x (1 + erf(x / sqrt 2))
static inline F vgelu(F x) {
  F e = verf(V::mul(x, V::set1(0.70710678118654752f)));
  return V::mul(V::mul(V::set1(0.5f), x), V::add(V::set1(1.0f), e));
}

// tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1))
static inline F vtanh(F x) {
  F ax = V::min(V::abs(x), V::set1(9.0f));
  F e = vexp(V::add(ax, ax));
  F r = V::sub(V::set1(1.0f), V::div(V::set1(2.0f), V::add(e, V::set1(1.0f))));
  return V::copysign(r, x);
}

// partial loads/stores for row tails, through a lane buffer
static inline F load_n(const float* p, int n, float pad) {
  alignas(64) float t[W];
  for (int i = 0; i < W; ++i) t[i] = i < n ? p[i] : pad;
  return V::load(t);
}
static inline void store_n(float* p, F v, int n) {
  alignas(64) float t[W];
  V::store(t, v);
  for (int i = 0; i < n; ++i) p[i] = t[i];
}

template <F (*FN)(F)>
static void map_inplace(float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) V::store(x + i, FN(V::load(x + i)));
  if (i < n) store_n(x + i, FN(load_n(x + i, (int)(n - i), 0.0f)), (int)(n - i));
}
static void k_gelu(float* x, size_t n) { map_inplace<vgelu>(x, n); }
static void k_tanh(float* x, size_t n) { map_inplace<vtanh>(x, n); }
static void k_exp(float* x, size_t n) { map_inplace<vexp>(x, n); }
static void k_erf(float* x, size_t n) { map_inplace<verf>(x, n); }

// ---------------------------------------------------------------- row kernels
static void k_layernorm(float* y, const float* x, const float* g, const float* b, int n, float eps) {
  F s0 = V::zero(), s1 = V::zero();
  int i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = V::add(s0, V::load(x + i));
    s1 = V::add(s1, V::load(x + i + W));
  }
  for (; i + W <= n; i += W) s0 = V::add(s0, V::load(x + i));
  float sum = V::reduce_add(V::add(s0, s1));
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / (float)n;
  const F vm = V::set1(mean);
  F q0 = V::zero(), q1 = V::zero();
  i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    F d0 = V::sub(V::load(x + i), vm), d1 = V::sub(V::load(x + i + W), vm);
    q0 = V::fmadd(d0, d0, q0);
    q1 = V::fmadd(d1, d1, q1);
  }
  for (; i + W <= n; i += W) {
    F d0 = V::sub(V::load(x + i), vm);
    q0 = V::fmadd(d0, d0, q0);
  }
  float var = V::reduce_add(V::add(q0, q1));
  for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= (float)n;
  const float rstd = 1.0f / __builtin_sqrtf(var + eps);
  const F vr = V::set1(rstd);
  i = 0;
  for (; i + W <= n; i += W) {
    F d = V::mul(V::sub(V::load(x + i), vm), vr);
    V::store(y + i, V::fmadd(d, V::load(g + i), V::load(b + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * rstd * g[i] + b[i];
}

// t = s*scale + madd over one row, then s = exp(t - max t) in place; returns Σ exp (softmax's and
// softmax_q8's first two passes)
static float softmax_exp(float* s, int n, float scale, const float* madd) {
  const F vs = V::set1(scale);
  const float ninf = -__builtin_inff();
  F mx = V::set1(ninf);
  int i = 0;
  for (; i + W <= n; i += W) {
    F t = V::mul(V::load(s + i), vs);
    if (madd) t = V::add(t, V::load(madd + i));
    V::store(s + i, t);
    mx = V::max(mx, t);
  }
  if (i < n) {
    F t = V::mul(load_n(s + i, n - i, 0.0f), vs);
    if (madd) t = V::add(t, load_n(madd + i, n - i, 0.0f));
    store_n(s + i, t, n - i);
    mx = V::max(mx, load_n(s + i, n - i, ninf));
  }
  const F vmax = V::set1(V::reduce_max(mx));
  F sum = V::zero();
  i = 0;
  for (; i + W <= n; i += W) {
    F e = vexp(V::sub(V::load(s + i), vmax));
    V::store(s + i, e);
    sum = V::add(sum, e);
  }
  float tail = 0.0f;
  if (i < n) {
    F e = vexp(V::sub(load_n(s + i, n - i, 0.0f), vmax));
    store_n(s + i, e, n - i);
    for (int j = i; j < n; ++j) tail += s[j];
  }
  return V::reduce_add(sum) + tail;
}

// s *= 1 / total over one row
static void softmax_divide(float* s, int n, float total) {
  const float invs = 1.0f / total;
  const F inv = V::set1(invs);
  int i = 0;
  for (; i + W <= n; i += W) V::store(s + i, V::mul(V::load(s + i), inv));
  for (; i < n; ++i) s[i] *= invs;
}

static void k_softmax(float* s, int n, float scale, const float* madd) { softmax_divide(s, n, softmax_exp(s, n, scale, madd)); }

static void k_softmax_q8(float* s, int n, float scale, const float* madd, int8_t* q, float* qscale, bool normalize) {
  const float total = softmax_exp(s, n, scale, madd);
  *qscale = 1.0f / (127.0f * total);
  // e in [0, 1]: q = 127 e rounded to nearest (ties to even, V::round on every path); a NaN fails
  // -1 < x and becomes 0
  const F k127 = V::set1(127.0f), m1 = V::set1(-1.0f);
  int i = 0;
  for (; i + W <= n; i += W) {
    const F r = V::round(V::mul(V::load(s + i), k127));
    V::store_i8(q + i, V::lt_select(m1, r, r, V::zero()));
  }
  if (i < n) {
    alignas(64) int8_t t[W];
    const F r = V::round(V::mul(load_n(s + i, n - i, 0.0f), k127));
    V::store_i8(t, V::lt_select(m1, r, r, V::zero()));
    for (int j = i; j < n; ++j) q[j] = t[j - i];
  }
  for (int j = n; j < ((n + 3) & ~3); ++j) q[j] = 0;
  if (normalize) softmax_divide(s, n, total);
}

static void k_add3(float* y, const float* a, const float* b, const float* c, int n) {
  int i = 0;
  if (c) {
    for (; i + W <= n; i += W) V::store(y + i, V::add(V::add(V::load(a + i), V::load(b + i)), V::load(c + i)));
    for (; i < n; ++i) y[i] = a[i] + b[i] + c[i];
  } else {
    for (; i + W <= n; i += W) V::store(y + i, V::add(V::load(a + i), V::load(b + i)));
    for (; i < n; ++i) y[i] = a[i] + b[i];
  }
}

// ---------------------------------------------------------------- GEMM
// Micro-kernel: C[M, NR] (+)= Ap[kc][MR] · Bp[kc][NR], then the epilogue on the last K block.
// Ap is A packed for this micro-tile (rows interleaved, stride MR), Bp the packed weight panel.
enum { FIRST = 1, LAST = 2 };

// DIRECT: Ap is not packed but row-major A itself (row i at Ap + i*lda): for the small M of
// inference the A block stays in L2 either way, and skipping the pack saves its pass and a barrier.
template <int M, bool DIRECT>
static inline void ukernel(int kc, const float* __restrict Ap, size_t lda, const float* __restrict Bp, float* __restrict C,
                           size_t ldc, int flags, Epi epi, const float* __restrict bias, const float* __restrict R,
                           size_t ldr) {
  F acc[M][NV];
  if (flags & FIRST) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::load(C + i * ldc + j * W);
  }
  for (int k = 0; k < kc; ++k) {
    F b[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) b[j] = V::load(Bp + j * W);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      F a = V::set1(DIRECT ? Ap[i * lda] : Ap[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fmadd(a, b[j], acc[i][j]);
    }
    Ap += DIRECT ? 1 : MR;
    Bp += NR;
  }
  if ((flags & LAST) && epi != Epi::None) {
    F bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = V::load(bias + j * W);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::add(acc[i][j], bv[j]);
    if (epi == Epi::BiasGelu) {
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = vgelu(acc[i][j]);
    } else if (epi == Epi::BiasTanh) {
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = vtanh(acc[i][j]);
    } else if (epi == Epi::BiasResid) {
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = V::add(acc[i][j], V::load(R + i * ldr + j * W));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) V::store(C + i * ldc + j * W, acc[i][j]);
}

template <int M, bool DIRECT>
static inline void ukernel_m(int m, int kc, const float* Ap, size_t lda, const float* Bp, float* C, size_t ldc, int flags,
                             Epi epi, const float* bias, const float* R, size_t ldr) {
  if (m == M) {
    ukernel<M, DIRECT>(kc, Ap, lda, Bp, C, ldc, flags, epi, bias, R, ldr);
  } else if constexpr (M > 1) {
    ukernel_m<M - 1, DIRECT>(m, kc, Ap, lda, Bp, C, ldc, flags, epi, bias, R, ldr);
  }
}

// Rows of A per L2 block: the packed A block (MC x KC floats, about 240 KiB) stays in L2 while the
// weight panels stream through L1, so for the usual M <= 240 every weight is read once per GEMM.
static constexpr int MC = ((240 + MR - 1) / MR) * MR;

// Packs rows [m0, m0+mc) and columns [k0, k0+kc) of A as [tile][k][MR], tile stride tstride floats.
static inline void pack_a_block(const float* A, size_t lda, int m0, int mc, int k0, int kc, float* ap, size_t tstride) {
  for (int t = 0; t < mc; t += MR) {
    const int mr = imin(MR, mc - t);
    float* dst = ap + (size_t)(t / MR) * tstride;
    const float* src = A + (size_t)(m0 + t) * lda + k0;
    if (mr == MR) {
      for (int k = 0; k < kc; ++k)
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) dst[k * MR + i] = src[i * lda + k];
    } else {
      for (int k = 0; k < kc; ++k) {
        for (int i = 0; i < mr; ++i) dst[k * MR + i] = src[i * lda + k];
        for (int i = mr; i < MR; ++i) dst[k * MR + i] = 0.0f;
      }
    }
  }
}

static void k_pack_a(const float* A, size_t lda, int m0, int m1, int K, float* dst) {
  // whole K per tile, transposed in chunks of 64 columns so the source rows stay in L1
  float* base = dst + (size_t)(m0 / MR) * K * MR;
  for (int k0 = 0; k0 < K; k0 += 64) {
    const int kc = imin(64, K - k0);
    pack_a_block(A, lda, m0, m1 - m0, k0, kc, base + (size_t)k0 * MR, (size_t)K * MR);
  }
}

template <bool DIRECT>
static void gemm_tile_impl(const GemmArgs& g, int m0, int m1, int n0, int n1, float* ws) {
  alignas(64) float ct[MR * NR];
  alignas(64) float rt[MR * NR];
  const int K = g.K;
  const size_t npad = (size_t)((g.N + NR - 1) / NR) * NR;
  for (int mb = m0; mb < m1; mb += MC) {
    const int mc = imin(MC, m1 - mb);
    for (int k0 = 0; k0 < K; k0 += KC) {
      const int kc = imin(KC, K - k0);
      const int flags = (k0 == 0 ? FIRST : 0) | (k0 + kc >= K ? LAST : 0);
      // A rows [mb, mb+mc), columns [k0, k0+kc): in place (tile stride MR rows), prepacked, or packed here
      const float* apk;
      size_t tstride;
      if (DIRECT) {
        apk = g.A + (size_t)mb * g.lda + k0;
        tstride = (size_t)MR * g.lda;
      } else if (g.Ap) {
        apk = g.Ap + (size_t)(mb / MR) * K * MR + (size_t)k0 * MR;
        tstride = (size_t)K * MR;
      } else {
        pack_a_block(g.A, g.lda, mb, mc, k0, kc, ws, (size_t)kc * MR);
        apk = ws;
        tstride = (size_t)kc * MR;
      }
      for (int n = n0; n < n1; n += NR) {
        const float* bp = g.B + (size_t)k0 * npad + (size_t)(n / NR) * kc * NR;
        const int ncols = imin(NR, g.N - n);
        const float* bias = g.bias ? g.bias + n : nullptr;
        for (int t = 0; t < mc; t += MR) {
          const int mr = imin(MR, mc - t);
          const int m = mb + t;
          float* c = g.C + (size_t)m * g.ldc + n;
          const float* r = g.R ? g.R + (size_t)m * g.ldr + n : nullptr;
          const float* a = apk + (size_t)(t / MR) * tstride;
          if (ncols == NR) {
            ukernel_m<MR, DIRECT>(mr, kc, a, g.lda, bp, c, g.ldc, flags, g.epi, bias, r, g.ldr);
          } else {
            if (!(flags & FIRST))
              for (int i = 0; i < mr; ++i)
                for (int j = 0; j < NR; ++j) ct[i * NR + j] = j < ncols ? c[i * g.ldc + j] : 0.0f;
            if ((flags & LAST) && r)
              for (int i = 0; i < mr; ++i)
                for (int j = 0; j < NR; ++j) rt[i * NR + j] = j < ncols ? r[i * g.ldr + j] : 0.0f;
            ukernel_m<MR, DIRECT>(mr, kc, a, g.lda, bp, ct, NR, flags, g.epi, bias, r ? rt : nullptr, NR);
            for (int i = 0; i < mr; ++i)
              for (int j = 0; j < ncols; ++j) c[i * g.ldc + j] = ct[i * NR + j];
          }
        }
      }
    }
  }
}

// A prepacked (GemmArgs::Ap) is read packed; otherwise, where DIRECT_A, in place (no pack pass: the
// rows a task touches stay in L2 and their streams prefetch well), else packed per K block into ws.
static void k_gemm_tile(const GemmArgs& g, int m0, int m1, int n0, int n1, float* ws) {
  if (DIRECT_A && !g.Ap) gemm_tile_impl<true>(g, m0, m1, n0, n1, ws);
  else gemm_tile_impl<false>(g, m0, m1, n0, n1, ws);
}

static const Kernels kTable = {
    ISA_NAME, MR, NR, KC, MC, DIRECT_A, k_gemm_tile, k_pack_a, k_layernorm, k_softmax, k_gelu, k_tanh, k_exp, k_erf, k_add3, k_softmax_q8,
};

// The encoder's int8 linear layer (see qlinear.h).
#include "qlinear.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define BORT_QMMAP 1
#endif

namespace bort {

void QBytes::release() {
  if (!p_) return;
#if defined(BORT_QMMAP)
  if (mapped_) munmap(p_, n_);
  else
#endif
    std::free(p_);
  p_ = nullptr;
  n_ = 0;
  mapped_ = false;
}

QBytes& QBytes::operator=(QBytes&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_; n_ = o.n_; mapped_ = o.mapped_;
    o.p_ = nullptr; o.n_ = 0; o.mapped_ = false;
  }
  return *this;
}

void QBytes::resize(size_t n) {
  release();
  if (n == 0) return;
#if defined(BORT_QMMAP)
  if (n >= (1u << 20)) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    madvise(p, n, MADV_HUGEPAGE);
#endif
    p_ = static_cast<int8_t*>(p);
    n_ = n;
    mapped_ = true;
    return;
  }
#endif
  void* p = std::aligned_alloc(64, (n + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  p_ = static_cast<int8_t*>(p);
  n_ = n;
}

std::unique_ptr<QLinear> make_qlinear(const QKernels* qk, int K, const QSeg* segs, int nsegs) {
  auto L = std::make_unique<QLinear>();
  L->qk = qk;
  L->K = K;
  for (int i = 0; i < nsegs; ++i) L->N += segs[i].n;
  const int N = L->N;
  if (K > kQMaxK) throw std::runtime_error("int8 layer with K > " + std::to_string(kQMaxK));
  std::vector<int8_t> q((size_t)K * N);
  L->scale.resize(N);
  int col = 0;
  for (int s = 0; s < nsegs; ++s) {
    const float* p = segs[s].p;
    const int n = segs[s].n;
    for (int j = 0; j < n; ++j) {
      float mx = 0.0f;
      for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(p[(size_t)k * n + j]));
      float sc = mx / 127.0f;  // one correctly rounded division, as Math.fround(max / 127) in lib/quantize
      if (!(sc > 0.0f) || !std::isfinite(sc)) sc = 1.0f;
      L->scale[col + j] = sc;
      for (int k = 0; k < K; ++k) {
        const double v = (double)p[(size_t)k * n + j] / (double)sc;
        double r = v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5);  // half away from zero
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        q[(size_t)k * N + col + j] = (int8_t)r;
      }
    }
    col += n;
  }
  L->B.resize(qpacked_size(K, N, qk->NR));
  L->colsum.resize((size_t)((N + qk->NR - 1) / qk->NR) * qk->NR);
  qpack_b(L->B.data(), L->colsum.data(), q.data(), N, K, N, qk->NR);
  return L;
}

std::unique_ptr<QLinear> make_qlinear_int8(const QKernels* qk, int K, const QSegI8* segs, int nsegs) {
  auto L = std::make_unique<QLinear>();
  L->qk = qk;
  L->K = K;
  for (int i = 0; i < nsegs; ++i) L->N += segs[i].n;
  const int N = L->N;
  if (K > kQMaxK) throw std::invalid_argument("int8 layer with K > " + std::to_string(kQMaxK));
  L->scale.resize(N);
  int col = 0;
  for (int s = 0; s < nsegs; ++s) {
    for (int j = 0; j < segs[s].n; ++j) {
      const float sc = segs[s].scale[j];
      if (!(sc > 0.0f) || !std::isfinite(sc))
        throw std::invalid_argument("int8 weight scale " + std::to_string(sc) + " at column " + std::to_string(j) + " (must be finite and > 0)");
      L->scale[col + j] = sc;
    }
    const size_t n = (size_t)segs[s].n * K;
    for (size_t i = 0; i < n; ++i)
      if (segs[s].q[i] == -128) throw std::invalid_argument("int8 weight value -128 at " + std::to_string(i) + " (the int8 kernels take [-127, 127])");
    col += segs[s].n;
  }
  // side by side into one row-major [K][N] for qpack_b
  std::vector<int8_t> q;
  const int8_t* src = segs[0].q;
  if (nsegs > 1) {
    q.resize((size_t)K * N);
    col = 0;
    for (int s = 0; s < nsegs; ++s) {
      for (int k = 0; k < K; ++k) std::memcpy(&q[(size_t)k * N + col], segs[s].q + (size_t)k * segs[s].n, segs[s].n);
      col += segs[s].n;
    }
    src = q.data();
  }
  L->B.resize(qpacked_size(K, N, qk->NR));
  L->colsum.resize((size_t)((N + qk->NR - 1) / qk->NR) * qk->NR);
  qpack_b(L->B.data(), L->colsum.data(), src, N, K, N, qk->NR);
  return L;
}

QTable make_qtable(const float* x, size_t rows, int cols) {
  QTable t;
  t.cols = cols;
  t.q.resize(rows * (size_t)cols);
  t.scale.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    const float* p = x + r * (size_t)cols;
    float mx = 0.0f;
    for (int c = 0; c < cols; ++c) mx = std::fmax(mx, std::fabs(p[c]));
    float sc = mx / 127.0f;
    if (!(sc > 0.0f) || !std::isfinite(sc)) sc = 1.0f;
    t.scale[r] = sc;
    int8_t* d = t.q.data() + r * (size_t)cols;
    for (int c = 0; c < cols; ++c) {
      const double v = (double)p[c] / (double)sc;
      double q = v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5);
      d[c] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
  }
  return t;
}

void qlinear_reserve(const QLinear& L, int M, QScratch& s) {
  const size_t la = (size_t)qround4(L.K);
  if (s.a.size() < (size_t)M * la) s.a.resize((size_t)M * la);
  if (s.scale.size() < (size_t)M) s.scale.resize(M);
}

void qlinear_quantize_rows(const QLinear& L, const float* x, size_t ldx, int r0, int r1, QScratch& s) {
  if (r0 >= r1) return;
  const size_t la = (size_t)qround4(L.K);
  int8_t* a = s.a.data() + (size_t)r0 * la;
  if (L.in_scale > 0.0f) {
    L.qk->quantize_rows_static(x, ldx, r1 - r0, L.K, a, la, L.in_scale);
    for (int r = r0; r < r1; ++r) s.scale[r] = 1.0f;  // the input scale is folded into L.scale
  } else {
    L.qk->quantize_rows(x, ldx, r1 - r0, L.K, a, la, &s.scale[r0]);
  }
}

void qlinear_run(ThreadPool& pool, const QLinear& L, const float* A, size_t lda, float* C, size_t ldc, int M, Epi epi,
                 const float* bias, const float* R, size_t ldr, void (*gelu)(float*, size_t), QScratch& s) {
  qlinear_reserve(L, M, s);
  const int T = pool.size();
  // quantize the rows (parallel), then the GEMM tiles
  const int parts = M < 2 * T ? M : 2 * T;
  const int per = (M + parts - 1) / parts;
  pool.parallel_for(parts, [&](int t, int) {
    const int m0 = t * per, m1 = m0 + per < M ? m0 + per : M;
    if (m0 < m1) qlinear_quantize_rows(L, A + (size_t)m0 * lda, lda, m0, m1, s);
  });
  qlinear_run_quantized(pool, L, C, ldc, M, epi, bias, R, ldr, gelu, s);
}

void qlinear_run_quantized(ThreadPool& pool, const QLinear& L, float* C, size_t ldc, int M, Epi epi, const float* bias,
                           const float* R, size_t ldr, void (*gelu)(float*, size_t), QScratch& s) {
  const int K = L.K, N = L.N;
  const size_t la = (size_t)qround4(K);
  const int T = pool.size();
  // row blocks x column chunks (guided, below)
  const QKernels* qk = L.qk;
  const int NR = qk->NR, MR = qk->MR;
  const int npan = (N + NR - 1) / NR;
  const int mblocks = M > 240 ? (M + 239) / 240 : 1;
  const int msz = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  const int mb = (M + msz - 1) / msz;
  // column chunks of whole panels, largest first: each takes ceil(remaining / 2T) panels (guided
  // scheduling), so the last tasks, which decide when the slowest thread finishes, are one or two panels
  // (equal chunks, ~4 per thread, left a thread idle for ~half a chunk at the end of every GEMM)
  std::vector<int> cut{0};
  for (int p = 0; p < npan;) {
    const int rem = npan - p;
    const int take = T == 1 ? rem : (rem + 2 * T - 1) / (2 * T);
    p += take;
    cut.push_back(p);
  }
  const int nchunks = (int)cut.size() - 1;
  QGemmArgs g;
  g.A = s.a.data(); g.lda = la; g.B = L.B.data(); g.colsum = L.colsum.data(); g.M = M; g.N = N; g.K = K;
  g.C = C; g.ldc = ldc; g.a_scale = s.scale.data(); g.b_scale = L.scale.data(); g.b_per_channel = true; g.bias = bias;
  if (epi == Epi::BiasGelu) g.gelu = gelu;
  if (epi == Epi::BiasResid) { g.R = R; g.ldr = ldr; }
  if (epi == Epi::BiasTanh || epi == Epi::None) throw std::logic_error("qlinear_run: epilogue not supported");
  // chunk-major: every row block of the large chunks before any of the small ones
  pool.parallel_for(mb * nchunks, [&](int t, int) {
    const int ni = t / mb, mi = t % mb;
    const int m0 = mi * msz, m1 = m0 + msz < M ? m0 + msz : M;
    const int n0 = cut[ni] * NR;
    const int n1 = cut[ni + 1] * NR < N ? cut[ni + 1] * NR : N;
    if (m0 >= m1 || n0 >= n1) return;
    qk->qgemm_tile(g, m0, m1, n0, n1);
  });
}

}  // namespace bort

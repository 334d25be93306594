// int8 GEMM: every available ISA path against a naive int32 reference, bit-exact (raw accumulators),
// on random and extreme (+-127 everywhere: the case that would saturate vpmaddubsw without the sign
// trick) inputs, odd shapes (K, M, N not multiples of anything), sub-tiles, output rows/columns
// outside the tile untouched; the dequantize + bias epilogue, then GELU or the residual; per-row activation
// quantization.
//   test_qgemm [--require ISA ...]   fails when a named path is not available on this machine
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "qattention.h"
#include "qgemm.h"

using namespace bort;

namespace {

std::vector<int32_t> reference(const std::vector<int8_t>& A, size_t lda, const std::vector<int8_t>& W, int M, int N, int K) {
  std::vector<int32_t> c((size_t)M * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      int64_t s = 0;
      for (int k = 0; k < K; ++k) s += (int64_t)A[(size_t)i * lda + k] * W[(size_t)k * N + j];
      c[(size_t)i * N + j] = (int32_t)s;
    }
  return c;
}

enum Fill { Random, AllMax, AllMinMax, Alternating };

int8_t value(check::Rng& r, Fill f, int idx, bool weight) {
  switch (f) {
    case AllMax: return 127;
    case AllMinMax: return weight ? -127 : 127;
    case Alternating: return (idx & 1) ? -127 : 127;
    default: return (int8_t)(r.below(255) - 127);
  }
}

void test_exact(const QKernels* q, int M, int N, int K, Fill fill, uint64_t seed) {
  check::Rng r(seed);
  const size_t lda = qround4(K) + 4;
  std::vector<int8_t> A((size_t)M * lda, 0), W((size_t)K * N);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) A[(size_t)i * lda + k] = value(r, fill, k, false);
  for (size_t i = 0; i < W.size(); ++i) W[i] = value(r, fill, (int)(i / N), true);
  std::vector<int8_t> Bp(qpacked_size(K, N, q->NR));
  std::vector<int32_t> cs(((N + q->NR - 1) / q->NR) * q->NR);
  qpack_b(Bp.data(), cs.data(), W.data(), N, K, N, q->NR);
  const auto ref = reference(A, lda, W, M, N, K);
  const size_t ldc = N + 3;
  const int32_t sentinel = 0x5A5A5A5A;
  std::vector<int32_t> C((size_t)M * ldc, sentinel);
  QGemmArgs g;
  g.A = A.data(); g.lda = lda; g.B = Bp.data(); g.colsum = cs.data(); g.M = M; g.N = N; g.K = K; g.Ci = C.data(); g.ldc = ldc;
  // two column chunks (at a panel boundary) and two row ranges, as threads would split it
  const int nsplit = N > q->NR ? q->NR : N;
  const int msplit = M / 2;
  for (auto [m0, m1] : {std::pair{0, msplit}, std::pair{msplit, M}})
    for (auto [n0, n1] : {std::pair{0, nsplit}, std::pair{nsplit, N}})
      if (m0 < m1 && n0 < n1) q->qgemm_tile(g, m0, m1, n0, n1);
  int bad = 0, first = -1;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j)
      if (C[(size_t)i * ldc + j] != ref[(size_t)i * N + j]) { if (first < 0) first = i * N + j; ++bad; }
    for (size_t j = N; j < ldc; ++j) if (C[(size_t)i * ldc + j] != sentinel) ++bad;
  }
  CHECK(bad == 0, "%s M=%d N=%d K=%d fill=%d: %d int32 results differ (first at %d: %d vs %d)", q->name, M, N, K, (int)fill, bad,
        first, first >= 0 ? C[(size_t)(first / N) * ldc + first % N] : 0, first >= 0 ? ref[first] : 0);
}

void gelu_ref(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = (float)(0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0))));
}

enum class Then { Nothing, Gelu, Residual };

// Dequantize + bias, then GELU (over the dequantized tile) or the residual, against float64 from the
// exact int32 sums; partial tiles in both directions (M = 9, N = 45), and the columns past N of each
// output row (ldc > N) left untouched.
void test_epilogue(const QKernels* q, bool perChannel, Then then) {
  const int M = 9, N = 45, K = 77;
  const size_t ldc = N + 5;
  check::Rng r(99);
  const size_t lda = qround4(K);
  std::vector<float> x((size_t)M * K), as(M), bs(perChannel ? N : 1), bias(N), R((size_t)M * ldc);
  for (auto& v : x) v = r.uniform(-3, 3);
  for (auto& v : bs) v = r.uniform(0.001f, 0.02f);
  for (auto& v : bias) v = r.uniform(-1, 1);
  for (auto& v : R) v = r.uniform(-2, 2);
  std::vector<int8_t> A((size_t)M * lda, 7), W((size_t)K * N);
  quantize_rows(x.data(), K, M, K, A.data(), lda, as.data());
  for (auto& w : W) w = (int8_t)(r.below(255) - 127);
  std::vector<int8_t> Bp(qpacked_size(K, N, q->NR));
  std::vector<int32_t> cs(((N + q->NR - 1) / q->NR) * q->NR);
  qpack_b(Bp.data(), cs.data(), W.data(), N, K, N, q->NR);
  std::vector<float> C((size_t)M * ldc, 12345.0f);
  QGemmArgs g;
  g.A = A.data(); g.lda = lda; g.B = Bp.data(); g.colsum = cs.data(); g.M = M; g.N = N; g.K = K; g.C = C.data(); g.ldc = ldc;
  g.a_scale = as.data(); g.b_scale = bs.data(); g.b_per_channel = perChannel; g.bias = bias.data();
  if (then == Then::Gelu) g.gelu = gelu_ref;
  if (then == Then::Residual) { g.R = R.data(); g.ldr = ldc; }
  qgemm(q, g);
  const auto ref = reference(A, lda, W, M, N, K);
  double worst = 0;
  int touched = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double want = (double)ref[(size_t)i * N + j] * as[i] * bs[perChannel ? j : 0] + bias[j];
      if (then == Then::Gelu) want = 0.5 * want * (1.0 + std::erf(want / std::sqrt(2.0)));
      if (then == Then::Residual) want += R[(size_t)i * ldc + j];
      worst = std::fmax(worst, std::fabs(C[(size_t)i * ldc + j] - want) / (1 + std::fabs(want)));
    }
    for (size_t j = N; j < ldc; ++j) touched += C[(size_t)i * ldc + j] != 12345.0f;
  }
  const char* what = then == Then::Gelu ? " + GELU" : then == Then::Residual ? " + residual" : "";
  CHECK(worst < 1e-6, "%s dequantize + bias%s epilogue (%s): worst relative error %g", q->name, what, perChannel ? "per channel" : "per tensor", worst);
  CHECK(touched == 0, "%s dequantize + bias%s epilogue: %d values written past N", q->name, what, touched);
}

void test_quantize_rows() {
  const int M = 4, K = 10;
  const size_t lda = 16;
  std::vector<float> x = {0.5f, -1.0f, 0.25f, 0.0f, 1.0f, -0.999f, 0.004f, -0.004f, 0.3f, 0.7f,
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          -254.0f, 127.0f, 1.0f, -1.0f, 0.5f, 1.5f, -1.5f, 2.0f, 3.0f, 253.0f,
                          1e-30f, -1e-30f, 5e-31f, 0, 0, 0, 0, 0, 0, 0};
  std::vector<int8_t> A(M * lda, 99);
  std::vector<float> s(M);
  quantize_rows(x.data(), K, M, K, A.data(), lda, s.data());
  CHECK(s[0] == 1.0f / 127.0f && s[1] == 1.0f && s[2] == 2.0f, "scales %g %g %g", s[0], s[1], s[2]);
  CHECK(A[0] == 64 && A[1] == -127 && A[4] == 127 && A[5] == -127 && A[6] == 1 && A[7] == -1, "row 0: %d %d %d %d %d %d", A[0], A[1], A[4], A[5], A[6], A[7]);
  CHECK(A[2 * lda + 0] == -127 && A[2 * lda + 1] == 64 && A[2 * lda + 4] == 0 && A[2 * lda + 5] == 1 && A[2 * lda + 6] == -1,
        "row 2 (half away from zero): %d %d %d %d %d", A[2 * lda], A[2 * lda + 1], A[2 * lda + 4], A[2 * lda + 5], A[2 * lda + 6]);
  CHECK(A[3 * lda] == 127 && A[3 * lda + 1] == -127 && A[3 * lda + 2] == 64, "tiny row keeps its shape: %d %d %d", A[3 * lda], A[3 * lda + 1], A[3 * lda + 2]);
  bool pad = true, inRange = true;
  for (int i = 0; i < M; ++i) {
    for (int k = K; k < qround4(K); ++k) pad = pad && A[i * lda + k] == 0;
    for (int k = 0; k < K; ++k) {
      inRange = inRange && A[i * lda + k] >= -127;
      const float err = std::fabs(x[i * K + k] - A[i * lda + k] * s[i]);
      CHECK(err <= s[i] * 0.5f * 1.0001f, "row %d k %d: |x - q*s| = %g > s/2", i, k, err);
    }
  }
  CHECK(pad, "K padding not zeroed");
  CHECK(inRange, "-128 used");
}

// The table's own quantize_rows gives the scalar one's bytes and scales exactly (random rows, rows
// with exact .5 steps, a NaN, an infinity, a negative zero, K with tails).
void test_quantize_same(const QKernels* q) {
  check::Rng r(3);
  for (int K : {1, 15, 16, 33, 768, 1027}) {
    const int M = 5;
    const size_t lda = qround4(K) + 4;
    std::vector<float> x((size_t)M * K);
    for (auto& v : x) v = r.uniform(-4, 4);
    for (int k = 0; k < K; ++k) x[(size_t)K + k] = (float)(k % 255 - 127) * 0.5f;  // row 1: halves
    x[(size_t)2 * K + K / 2] = NAN;
    x[(size_t)3 * K + K / 3] = -INFINITY;
    x[(size_t)4 * K + K / 2] = -0.0f;
    std::vector<int8_t> a(M * lda, 55), b(M * lda, 66);
    std::vector<float> sa(M), sb(M);
    quantize_rows(x.data(), K, M, K, a.data(), lda, sa.data());
    q->quantize_rows(x.data(), K, M, K, b.data(), lda, sb.data());
    int bad = 0;
    for (int i = 0; i < M; ++i)
      for (int k = 0; k < qround4(K); ++k) bad += a[i * lda + k] != b[i * lda + k];
    CHECK(bad == 0 && sa == sb, "%s quantize_rows K=%d: %d bytes differ from the scalar table's", q->name, K, bad);
  }
}

// The static quantizer on hand-checked values: x / s rounded half to even (as onnxruntime's
// QuantizeLinear), clamped to [-127, 127] (never -128), NaN -> 0, infinities clamp, K padding zeroed.
void test_quantize_rows_static() {
  const int M = 2, K = 11;
  const size_t lda = 16;
  const float s = 0.5f;
  // x / s:             0.5   1.5   2.5  -0.5  -1.5  -2.5   127.6   -200    NaN    +inf   -inf
  std::vector<float> x = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 63.8f, -100.0f, NAN, INFINITY, -INFINITY,
  //                     1.26  -63.4  3.0   0     1e-30 ...
                          0.63f, -31.7f, 1.5f, 0.0f, 1e-30f, -0.2499f, 0.2501f, 63.25f, -63.25f, 63.75f, -63.75f};
  const int8_t want[M][K] = {{0, 2, 2, 0, -2, -2, 127, -127, 0, 127, -127}, {1, -63, 3, 0, 0, 0, 1, 126, -126, 127, -127}};
  std::vector<int8_t> A(M * lda, 99);
  quantize_rows_static(x.data(), K, M, K, A.data(), lda, s);
  int bad = 0;
  for (int i = 0; i < M; ++i) {
    for (int k = 0; k < K; ++k)
      if (A[i * lda + k] != want[i][k]) {
        std::printf("  static row %d k %d: %d, want %d\n", i, k, A[i * lda + k], want[i][k]);
        ++bad;
      }
    for (int k = K; k < qround4(K); ++k) bad += A[i * lda + k] != 0;
    for (size_t k = qround4(K); k < lda; ++k) bad += A[i * lda + k] != 99;  // past round4(K): untouched
  }
  CHECK(bad == 0, "quantize_rows_static: %d bytes differ from the hand-checked values", bad);
}

// The table's own quantize_rows_static gives the scalar one's bytes exactly (random rows, exact
// halves, values past the clamp, NaN and infinities, K with tails, odd scales).
void test_quantize_static_same(const QKernels* q) {
  check::Rng r(5);
  for (int K : {1, 15, 16, 33, 768, 1027}) {
    for (float s : {0.0123f, 1.0f / 127.0f, 0.5f, 3.3f}) {
      const int M = 5;
      const size_t lda = qround4(K) + 4;
      std::vector<float> x((size_t)M * K);
      for (auto& v : x) v = r.uniform(-200 * s, 200 * s);
      for (int k = 0; k < K; ++k) x[(size_t)K + k] = (float)(k % 301 - 150) * 0.5f * s;  // row 1: halves (and past 127)
      x[(size_t)2 * K + K / 2] = NAN;
      x[(size_t)3 * K] = INFINITY;
      x[(size_t)4 * K + K - 1] = -INFINITY;
      std::vector<int8_t> a(M * lda, 55), b(M * lda, 66);
      quantize_rows_static(x.data(), K, M, K, a.data(), lda, s);
      q->quantize_rows_static(x.data(), K, M, K, b.data(), lda, s);
      int bad = 0, low = 0;
      for (int i = 0; i < M; ++i)
        for (int k = 0; k < qround4(K); ++k) {
          bad += a[i * lda + k] != b[i * lda + k];
          low += b[i * lda + k] == -128;
        }
      CHECK(bad == 0 && low == 0, "%s quantize_rows_static K=%d s=%g: %d bytes differ from the scalar table's, %d are -128", q->name, K, s, bad, low);
    }
  }
}

}  // namespace


// Reference for attention's V (quantize_pack_v, qgemm.h), written out here: per-column scale over
// the kept rows, x · (1/scale) clamped, NaN to 0, rounded half away from zero; then qpack_b.
static void ref_quantize_pack_v(const std::vector<float>& v, size_t ld, int S, int d, const unsigned char* keep, int NR,
                                std::vector<int8_t>& packed, std::vector<int32_t>& colsum, std::vector<float>& scale) {
  std::vector<int8_t> q((size_t)S * d);
  scale.assign(d, 1.0f);
  for (int n = 0; n < d; ++n) {
    float mx = 0.0f;
    for (int k = 0; k < S; ++k)
      if (!keep || keep[k]) {
        const float a = std::fabs(v[(size_t)k * ld + n]);
        if (a > mx) mx = a;
      }
    const float sc = mx > 0.0f && mx <= 3.4028235e38f ? mx / 127.0f : 1.0f;
    const float inv = 1.0f / sc;
    scale[n] = sc;
    for (int k = 0; k < S; ++k) {
      float x = v[(size_t)k * ld + n] * inv;
      if (x > 127.0f) x = 127.0f;
      if (x < -127.0f) x = -127.0f;
      if (x != x) x = 0.0f;
      q[(size_t)k * d + n] = (int8_t)(x < 0 ? -std::floor(-x + 0.5f) : std::floor(x + 0.5f));
    }
  }
  packed.assign(qpacked_size(S, d, NR), 99);
  colsum.assign((size_t)(d + NR - 1) / NR * NR, 99);
  qpack_b(packed.data(), colsum.data(), q.data(), d, S, d, NR);
}

// quantize_pack_v of every table against the reference: bytes, column sums and scales exactly
// (tails in S and d, padded keys left out of the scales, a NaN, an infinity, exact .5 steps).
void test_quantize_pack_v(const QKernels* q) {
  check::Rng r(9);
  const int shapes[][2] = {{1, 1}, {5, 7}, {128, 64}, {33, 40}, {130, 96}, {64, 17}};
  for (auto& sh : shapes) {
    const int S = sh[0], d = sh[1];
    const size_t ld = 3 * (size_t)d + 5;
    std::vector<float> v(S * ld);
    for (auto& x : v) x = r.uniform(-3, 3);
    for (int k = 0; k < S; ++k) v[(size_t)k * ld] = (float)(k % 255 - 127) * 0.25f;  // column 0: quarter steps
    if (S > 3 && d > 2) { v[2 * ld + 1] = NAN; v[3 * ld + 2] = INFINITY; }
    std::vector<unsigned char> keep(S);
    for (int k = 0; k < S; ++k) keep[k] = k % 7 != 3;
    if (S > 4 && d > 3) v[3 * ld + 3] = 1e6f;  // a padded key far larger than the rest: not in column 3's scale
    for (const unsigned char* kp : {(const unsigned char*)nullptr, (const unsigned char*)keep.data()}) {
      std::vector<int8_t> want, got(qpacked_size(S, d, q->NR), 77);
      std::vector<int32_t> wcs, gcs((size_t)(d + q->NR - 1) / q->NR * q->NR, 77);
      std::vector<float> ws, gs(d), work(2 * d);
      ref_quantize_pack_v(v, ld, S, d, kp, q->NR, want, wcs, ws);
      q->quantize_pack_v(v.data(), ld, S, d, kp, got.data(), gcs.data(), gs.data(), work.data());
      int bad = 0;
      for (size_t i = 0; i < want.size(); ++i) bad += want[i] != got[i];
      CHECK(bad == 0, "%s quantize_pack_v S=%d d=%d keep=%d: %d packed bytes differ", q->name, S, d, kp != nullptr, bad);
      CHECK(wcs == gcs, "%s quantize_pack_v S=%d d=%d: column sums differ", q->name, S, d);
      CHECK(ws == gs, "%s quantize_pack_v S=%d d=%d: scales differ", q->name, S, d);
    }
  }
}

// qpack_bt (qattention.h) packs the transpose exactly as qpack_b packs the matrix itself.
void test_qpack_bt() {
  check::Rng r(4);
  for (int NR : {8, 16, 32})
    for (auto sh : {std::pair<int, int>{64, 128}, {7, 5}, {13, 40}, {4, 33}}) {
      const int K = sh.first, N = sh.second;
      const size_t ldt = K + 3;
      std::vector<int8_t> wt(N * ldt), w((size_t)K * N);
      for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) w[(size_t)k * N + n] = wt[n * ldt + k] = (int8_t)(r.below(255) - 127);
      std::vector<int8_t> a(qpacked_size(K, N, NR), 1), b(qpacked_size(K, N, NR), 2);
      std::vector<int32_t> ca((size_t)(N + NR - 1) / NR * NR, 3), cb(ca.size(), 4);
      qpack_b(a.data(), ca.data(), w.data(), N, K, N, NR);
      qpack_bt(b.data(), cb.data(), wt.data(), ldt, K, N, NR);
      CHECK(a == b && ca == cb, "qpack_bt K=%d N=%d NR=%d differs from qpack_b of the transpose", K, N, NR);
    }
}

int main(int argc, char** argv) {
  std::vector<std::string> require;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--require")) require.push_back(argv[i + 1]);
  test_quantize_rows();
  test_quantize_rows_static();
  test_qpack_bt();
  int tested = 0;
  for (QIsa i : {QIsa::Scalar, QIsa::Avx2, QIsa::AvxVnni, QIsa::Avx512Vnni, QIsa::Neon, QIsa::NeonDot}) {
    const QKernels* q = qkernels_for(i);
    if (!q) {
      std::printf("qgemm %s: not available here\n", qisa_name(i));
      for (auto& r : require) CHECK(r != qisa_name(i), "required path %s is not available", r.c_str());
      continue;
    }
    std::printf("testing qgemm %s (MR=%d NR=%d)\n", q->name, q->MR, q->NR);
    ++tested;
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {7, 33, 130}, {13, 70, 257}, {64, 96, 768}, {5, 17, 1024}, {2, 40, 3072}, {9, 64, 4}};
    uint64_t seed = 1;
    for (auto& s : shapes)
      for (Fill f : {Random, AllMax, AllMinMax, Alternating}) test_exact(q, s[0], s[1], s[2], f, seed++);
    test_exact(q, 3, 20, kQMaxK, AllMinMax, 7);  // the largest K: -127*127*K still fits int32
    test_quantize_same(q);
    test_quantize_static_same(q);
    test_quantize_pack_v(q);
    for (Then then : {Then::Nothing, Then::Gelu, Then::Residual}) {
      test_epilogue(q, true, then);
      test_epilogue(q, false, then);
    }
  }
  const char* err = nullptr;
  const QKernels* active = qkernels_active(&err);
  CHECK(active != nullptr, "no active int8 table: %s", err ? err : "?");
  if (active) std::printf("active int8 path: %s\n", active->name);
  std::printf("%d passed, %d failed (%d int8 paths tested)\n", check::passes(), check::failures(), tested);
  return check::failures() ? 1 : 0;
}

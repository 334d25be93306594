// Every kernel of every ISA this CPU supports against a naive double-precision reference.
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "kernels.h"
#include "pool.h"

using namespace bort;
using check::Rng;

static double ref_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

static void test_gemm(const Kernels* k) {
  Rng rng(1);
  const int Ms[] = {1, 3, 7, 13, 32, 100, 130, 300};
  const int Ns[] = {1, 5, 16, 33, 64, 100};
  const int Ks[] = {1, 9, 64, 300, 520};
  const Epi epis[] = {Epi::None, Epi::Bias, Epi::BiasGelu, Epi::BiasResid, Epi::BiasTanh};
  int combo = 0;
  for (int M : Ms)
    for (int N : Ns)
      for (int K : Ks) {
        const Epi epi = epis[combo++ % 5];
        const size_t lda = K + 3, ldc = N + 2, ldr = N + 5;
        std::vector<float> A(M * lda), Bm(K * N), bias(N + k->NR), C(M * ldc, 12345.0f), R(M * ldr);
        for (auto& v : A) v = rng.uniform(-1, 1);
        for (auto& v : Bm) v = rng.uniform(-1, 1);
        for (auto& v : bias) v = rng.uniform(-1, 1);
        for (auto& v : R) v = rng.uniform(-1, 1);
        // pack B as two side-by-side segments when possible (exercises the multi-segment packer)
        const int n1 = N / 3, n2 = N - n1;
        std::vector<float> B1(K * (size_t)n1 + 1), B2(K * (size_t)n2);
        for (int kk = 0; kk < K; ++kk)
          for (int j = 0; j < N; ++j) (j < n1 ? B1[kk * n1 + j] : B2[kk * n2 + j - n1]) = Bm[kk * N + j];
        std::vector<PackSeg> segs;
        if (n1) segs.push_back({B1.data(), n1, (size_t)n1});
        segs.push_back({B2.data(), n2, (size_t)n2});
        std::vector<float> Bp(packed_size(K, N, k->NR));
        pack_b(Bp.data(), K, segs.data(), (int)segs.size(), k->NR, k->KC);
        GemmArgs g;
        g.A = A.data();
        g.lda = lda;
        g.B = Bp.data();
        g.C = C.data();
        g.ldc = ldc;
        g.M = M;
        g.N = N;
        g.K = K;
        g.epi = epi;
        g.bias = bias.data();
        g.R = R.data();
        g.ldr = ldr;
        // split into two column ranges and two row ranges like the engine does
        const int npan = (N + k->NR - 1) / k->NR;
        const int nsplit = (npan / 2) * k->NR;
        const int msplit = M / 2;
        std::vector<float> ws((size_t)k->MC * k->KC);
        k->gemm_tile(g, 0, msplit, 0, nsplit, ws.data());
        k->gemm_tile(g, 0, msplit, nsplit, N, ws.data());
        k->gemm_tile(g, msplit, M, 0, N, ws.data());
        // the same GEMM from a prepacked A must give identical results
        std::vector<float> C2(C), Ap((size_t)((M + k->MR - 1) / k->MR) * k->MR * K);
        {
          const int mid = ((M / 2) / k->MR) * k->MR;
          k->pack_a(A.data(), lda, 0, mid, K, Ap.data());
          k->pack_a(A.data(), lda, mid, M, K, Ap.data());
          GemmArgs g2 = g;
          g2.A = nullptr;
          g2.Ap = Ap.data();
          g2.C = C2.data();
          k->gemm_tile(g2, 0, M, 0, N, ws.data());
        }
        CHECK(std::memcmp(C.data(), C2.data(), sizeof(float) * C.size()) == 0, "%s gemm M=%d N=%d K=%d: prepacked A differs",
              k->name, M, N, K);
        double worst = 0;
        bool pad_ok = true;
        for (int i = 0; i < M; ++i) {
          for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int kk = 0; kk < K; ++kk) s += (double)A[i * lda + kk] * Bm[kk * N + j];
            if (epi != Epi::None) s += bias[j];
            if (epi == Epi::BiasGelu) s = ref_gelu(s);
            if (epi == Epi::BiasTanh) s = std::tanh(s);
            if (epi == Epi::BiasResid) s += R[i * ldr + j];
            double d = std::fabs(s - C[i * ldc + j]);
            if (!(d <= worst)) worst = d;
          }
          for (size_t j = N; j < ldc; ++j) pad_ok &= C[i * ldc + j] == 12345.0f;
        }
        CHECK(worst < 2e-4 * std::sqrt((double)K) + 1e-5, "%s gemm M=%d N=%d K=%d epi=%d: max error %g", k->name, M, N, K,
              (int)epi, worst);
        CHECK(pad_ok, "%s gemm M=%d N=%d K=%d wrote outside [0,N)", k->name, M, N, K);
      }
}

static void test_pack_bt(const Kernels* k) {
  // scores = Q · Kᵀ with K packed transposed, as the attention does
  Rng rng(2);
  const int S = 37, d = 24;
  const size_t ld = 3 * d + 1;
  std::vector<float> Q(S * ld), Kt(S * ld), C(S * S);
  for (auto& v : Q) v = rng.uniform(-1, 1);
  for (auto& v : Kt) v = rng.uniform(-1, 1);
  std::vector<float> pk(packed_size(d, S, k->NR));
  pack_bt(pk.data(), d, S, Kt.data(), ld, k->NR, k->KC);
  GemmArgs g;
  g.A = Q.data();
  g.lda = ld;
  g.B = pk.data();
  g.C = C.data();
  g.ldc = S;
  g.M = S;
  g.N = S;
  g.K = d;
  std::vector<float> ws((size_t)k->MC * k->KC);
  k->gemm_tile(g, 0, S, 0, S, ws.data());
  double worst = 0;
  for (int i = 0; i < S; ++i)
    for (int j = 0; j < S; ++j) {
      double s = 0;
      for (int c = 0; c < d; ++c) s += (double)Q[i * ld + c] * Kt[j * ld + c];
      worst = std::fmax(worst, std::fabs(s - C[i * S + j]));
    }
  CHECK(worst < 1e-4, "%s pack_bt gemm: max error %g", k->name, worst);
}

static void test_layernorm(const Kernels* k) {
  Rng rng(3);
  for (int n : {1, 7, 16, 33, 768, 1000}) {
    std::vector<float> x(n), g(n), b(n), y(n);
    for (int i = 0; i < n; ++i) {
      x[i] = rng.uniform(-3, 5);
      g[i] = rng.uniform(0.5f, 1.5f);
      b[i] = rng.uniform(-1, 1);
    }
    const float eps = 1e-12f;
    double mean = 0, var = 0;
    for (float v : x) mean += v;
    mean /= n;
    for (float v : x) var += (v - mean) * (v - mean);
    var /= n;
    std::vector<double> ref(n);
    for (int i = 0; i < n; ++i) ref[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
    k->layernorm(y.data(), x.data(), g.data(), b.data(), n, eps);
    double e = n == 1 ? std::fabs(y[0] - b[0]) : check::max_abs_diff(y.data(), ref.data(), n);
    CHECK(e < 2e-5, "%s layernorm n=%d: max error %g", k->name, n, e);
    // in place
    std::vector<float> z = x;
    k->layernorm(z.data(), z.data(), g.data(), b.data(), n, eps);
    CHECK(std::memcmp(z.data(), y.data(), sizeof(float) * n) == 0, "%s layernorm in place differs", k->name);
  }
}

static void test_softmax(const Kernels* k) {
  Rng rng(4);
  for (float maskValue : {-10000.0f, -3.4028234663852886e38f})
    for (int n : {1, 5, 16, 31, 128, 129}) {
      std::vector<float> s(n), madd(n);
      for (int i = 0; i < n; ++i) {
        s[i] = rng.uniform(-20, 20);
        const int m = (i % 3 == 2) ? 0 : 1;
        madd[i] = (1.0f - (float)m) * maskValue;
      }
      const float scale = 0.125f;
      std::vector<double> ref(n);
      double mx = -INFINITY;
      std::vector<double> t(n);
      for (int i = 0; i < n; ++i) {
        t[i] = (double)(s[i] * scale) + madd[i];
        mx = std::fmax(mx, t[i]);
      }
      double sum = 0;
      for (int i = 0; i < n; ++i) sum += (ref[i] = std::exp(t[i] - mx));
      for (auto& r : ref) r /= sum;
      k->softmax(s.data(), n, scale, madd.data());
      double e = check::max_abs_diff(s.data(), ref.data(), n);
      CHECK(e < 1e-6, "%s softmax n=%d mask=%g: max error %g", k->name, n, maskValue, e);
    }
  // every key masked with the float lowest: uniform, like the graph
  std::vector<float> s(10, 1.0f), madd(10, -3.4028234663852886e38f);
  k->softmax(s.data(), 10, 1.0f, madd.data());
  bool ok = true;
  for (float v : s) ok &= std::fabs(v - 0.1f) < 1e-6f;
  CHECK(ok, "%s softmax all-masked row is not uniform", k->name);
}


// softmax_q8 (int8 attention): q[j] = 127 · e_j rounded to nearest with e_j = exp(t_j - max) checked
// against float64 (a q may sit one off only where 127 · e_j is within float error of a half), the
// scale 1 / (127 Σ e) so that q · scale ≈ the probabilities, zero padding to a multiple of 4, NaN to
// 0, and with normalize the float probabilities exactly as softmax's.
static void test_softmax_q8(const Kernels* k) {
  Rng rng(6);
  for (int n : {1, 5, 16, 31, 128, 129}) {
    std::vector<float> s(n), madd(n), s2;
    for (int i = 0; i < n; ++i) {
      s[i] = rng.uniform(-20, 20);
      madd[i] = i % 3 == 2 ? -10000.0f : 0.0f;
    }
    const float scale = 0.125f;
    std::vector<double> e(n);
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; ++i) mx = std::fmax(mx, (double)(s[i] * scale) + madd[i]);
    for (int i = 0; i < n; ++i) sum += (e[i] = std::exp((double)(s[i] * scale) + madd[i] - mx));
    s2 = s;
    const int n4 = (n + 3) & ~3;
    std::vector<int8_t> q(n4 + 4, 99), q2(n4 + 4, 99);
    float qs = 0, qs2 = 0;
    k->softmax_q8(s.data(), n, scale, madd.data(), q.data(), &qs, false);
    k->softmax_q8(s2.data(), n, scale, madd.data(), q2.data(), &qs2, true);
    int bad = 0;
    double perr = 0;
    for (int i = 0; i < n; ++i) {
      const double want = 127.0 * e[i];
      const double frac = want - std::floor(want);
      if (std::fabs(frac - 0.5) > 1e-4 && q[i] != (int8_t)std::lround(want)) ++bad;
      if (std::fabs(s[i] - e[i]) > 1e-6) ++bad;  // without normalize s holds e
      perr = std::fmax(perr, std::fabs(q[i] * (double)qs - e[i] / sum));
    }
    for (int i = n; i < n4; ++i) bad += q[i] != 0;
    bad += q[n4] != 99;  // nothing written past the padding
    CHECK(bad == 0, "%s softmax_q8 n=%d: %d wrong values", k->name, n, bad);
    CHECK(std::fabs(qs * 127.0 * sum - 1.0) < 1e-5, "%s softmax_q8 n=%d: scale %g, want %g", k->name, n, qs, 1.0 / (127.0 * sum));
    CHECK(perr <= 0.5 / 127 / sum + 1e-6, "%s softmax_q8 n=%d: q · scale off the probabilities by %g", k->name, n, perr);
    CHECK(q == q2 && qs == qs2, "%s softmax_q8 n=%d: normalize changed the int8 result", k->name, n);
  }
  // normalize gives softmax's probabilities bit for bit
  std::vector<float> a(37), b;
  for (int i = 0; i < 37; ++i) a[i] = rng.uniform(-5, 5);
  b = a;
  std::vector<int8_t> q(40);
  float qs;
  k->softmax(a.data(), 37, 0.5f, nullptr);
  k->softmax_q8(b.data(), 37, 0.5f, nullptr, q.data(), &qs, true);
  CHECK(a == b, "%s softmax_q8 with normalize differs from softmax", k->name);
  // a NaN score gives q = 0 there
  std::vector<float> c(8, 0.0f);
  c[3] = NAN;
  k->softmax_q8(c.data(), 8, 1.0f, nullptr, q.data(), &qs, false);
  CHECK(q[3] == 0, "%s softmax_q8: NaN gave %d", k->name, q[3]);
}

static void test_math(const Kernels* k) {
  const int n = 20001;
  std::vector<float> x(n), y(n);
  auto grid = [&](float lo, float hi) {
    for (int i = 0; i < n; ++i) x[i] = lo + (hi - lo) * i / (n - 1);
  };
  // exp: relative error
  grid(-87.0f, 88.0f);
  y = x;
  k->exp(y.data(), n);
  double rel = 0;
  for (int i = 0; i < n; ++i) rel = std::fmax(rel, std::fabs(y[i] / std::exp((double)x[i]) - 1.0));
  CHECK(rel < 5e-7, "%s exp: max relative error %g", k->name, rel);
  float big[3] = {-1000.0f, -3.4e38f, -88.0f};
  k->exp(big, 3);
  CHECK(big[0] == 0.0f && big[1] == 0.0f && big[2] == 0.0f, "%s exp of very negative is not 0 (%g %g %g)", k->name, big[0],
        big[1], big[2]);
  // erf: absolute error < 1e-6
  grid(-8.0f, 8.0f);
  y = x;
  k->erf(y.data(), n);
  double ea = 0;
  for (int i = 0; i < n; ++i) ea = std::fmax(ea, std::fabs(y[i] - std::erf((double)x[i])));
  CHECK(ea < 1e-6, "%s erf: max absolute error %g", k->name, ea);
  // gelu
  grid(-12.0f, 12.0f);
  y = x;
  k->gelu(y.data(), n);
  double eg = 0;
  for (int i = 0; i < n; ++i) eg = std::fmax(eg, std::fabs(y[i] - ref_gelu(x[i])) / std::fmax(1.0, std::fabs(x[i])));
  CHECK(eg < 1e-6, "%s gelu: max error %g", k->name, eg);
  // tanh
  grid(-15.0f, 15.0f);
  y = x;
  k->tanh(y.data(), n);
  double et = 0;
  for (int i = 0; i < n; ++i) et = std::fmax(et, std::fabs(y[i] - std::tanh((double)x[i])));
  CHECK(et < 1e-6, "%s tanh: max error %g", k->name, et);
}

static void test_add3(const Kernels* k) {
  Rng rng(5);
  for (int n : {1, 17, 64}) {
    std::vector<float> a(n), b(n), c(n), y(n);
    for (int i = 0; i < n; ++i) a[i] = rng.uniform(-1, 1), b[i] = rng.uniform(-1, 1), c[i] = rng.uniform(-1, 1);
    k->add3(y.data(), a.data(), b.data(), c.data(), n);
    bool ok = true;
    for (int i = 0; i < n; ++i) ok &= y[i] == (a[i] + b[i]) + c[i];
    k->add3(y.data(), a.data(), b.data(), nullptr, n);
    for (int i = 0; i < n; ++i) ok &= y[i] == a[i] + b[i];
    CHECK(ok, "%s add3 n=%d", k->name, n);
  }
}

static void test_pool() {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 200; ++rep) {
      const int n = 1 + rep % 37;
      std::vector<std::atomic<int>> hits(n);
      for (auto& h : hits) h = 0;
      std::atomic<int> bad{0};
      pool.parallel_for(n, [&](int t, int tid) {
        hits[t]++;
        if (tid < 0 || tid >= threads) bad++;
      });
      bool ok = bad == 0;
      for (auto& h : hits) ok &= h == 1;
      if (!ok) {
        CHECK(false, "pool threads=%d rep=%d: a task ran %s", threads, rep, bad ? "on a bad thread id" : "not exactly once");
        return;
      }
    }
    CHECK(true, "pool");
  }
}

int main() {
  const char* err = nullptr;
  const Kernels* active = active_kernels(&err);
  CHECK(active != nullptr, "no active kernel table: %s", err ? err : "?");
  for (const Kernels* k : check::all_tables()) {
    std::printf("testing %s (MR=%d NR=%d KC=%d)\n", k->name, k->MR, k->NR, k->KC);
    test_gemm(k);
    test_pack_bt(k);
    test_layernorm(k);
    test_softmax(k);
    test_softmax_q8(k);
    test_math(k);
    test_add3(k);
  }
  test_pool();
  return check::finish("test_kernels");
}

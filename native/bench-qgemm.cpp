// int8 GEMM throughput per path, one thread (benchmark, not a test): bort_bench_qgemm [M N K]
// Prints GOP/s (2·M·N·K per GEMM) for every available int8 path, raw int32 output and dequantize+bias.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "qgemm.h"

using namespace bort;

int main(int argc, char** argv) {
  const int M = argc > 3 ? std::atoi(argv[1]) : 128, N = argc > 3 ? std::atoi(argv[2]) : 1024, K = argc > 3 ? std::atoi(argv[3]) : 1024;
  const size_t lda = qround4(K);
  std::vector<int8_t> A((size_t)M * lda), W((size_t)K * N);
  for (size_t i = 0; i < A.size(); ++i) A[i] = (int8_t)((i * 37) % 255 - 127);
  for (size_t i = 0; i < W.size(); ++i) W[i] = (int8_t)((i * 91) % 255 - 127);
  std::vector<float> C((size_t)M * N), as(M, 0.01f), bs(N, 0.02f), bias(N, 0.5f);
  std::vector<int32_t> Ci((size_t)M * N);
  for (QIsa q : {QIsa::Scalar, QIsa::Avx2, QIsa::AvxVnni, QIsa::Avx512Vnni, QIsa::Neon, QIsa::NeonDot}) {
    const QKernels* k = qkernels_for(q);
    if (!k) continue;
    std::vector<int8_t> Bp(qpacked_size(K, N, k->NR));
    std::vector<int32_t> cs((size_t)(N + k->NR - 1) / k->NR * k->NR);
    qpack_b(Bp.data(), cs.data(), W.data(), N, K, N, k->NR);
    for (int raw = 1; raw >= 0; --raw) {
      QGemmArgs g;
      g.A = A.data(); g.lda = lda; g.B = Bp.data(); g.colsum = cs.data(); g.M = M; g.N = N; g.K = K; g.ldc = N;
      if (raw) g.Ci = Ci.data();
      else { g.C = C.data(); g.a_scale = as.data(); g.b_scale = bs.data(); g.bias = bias.data(); }
      double best = 1e30;
      for (int rep = 0; rep < (q == QIsa::Scalar ? 3 : 20); ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        qgemm(k, g);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s < best) best = s;
      }
      std::printf("%-11s %s M=%d N=%d K=%d: %.3f ms, %.1f GOP/s\n", k->name, raw ? "int32     " : "dequant+b ", M, N, K, best * 1e3, 2.0 * M * N * K / best / 1e9);
    }
  }
  return 0;
}

// GEMM micro-benchmark: GFLOP/s of the packed SGEMM for encoder-shaped problems, per ISA, 1 thread
// (gemm_tile directly) -- usage: bort_bench_gemm [M N K]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <array>
#include <vector>

#include "kernels.h"

using namespace bort;

static int g_copies = 1;  // distinct packed B matrices cycled through (>1 defeats the L3 cache)

static double bench(const Kernels* k, int M, int N, int K) {
  std::vector<float> A((size_t)M * K, 0.5f), B((size_t)K * N, 0.25f), C((size_t)M * N), bias(N + k->NR, 0.1f);
  std::vector<std::vector<float>> Bps(g_copies, std::vector<float>(packed_size(K, N, k->NR)));
  PackSeg s{B.data(), N, (size_t)N};
  for (auto& Bp : Bps) pack_b(Bp.data(), K, &s, 1, k->NR, k->KC);
  GemmArgs g;
  g.A = A.data(); g.lda = K; g.B = Bps[0].data(); g.C = C.data(); g.ldc = N; g.M = M; g.N = N; g.K = K;
  g.epi = Epi::Bias; g.bias = bias.data();
  std::vector<float> ws((size_t)k->MC * k->KC);
  k->gemm_tile(g, 0, M, 0, N, ws.data());
  double best = 1e30;
  for (int r = 0; r < 7; ++r) {
    g.B = Bps[(r + 1) % g_copies].data();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<float> ws((size_t)k->MC * k->KC);
  k->gemm_tile(g, 0, M, 0, N, ws.data());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char** argv) {
  if (const char* c = std::getenv("BENCH_COPIES")) g_copies = atoi(c) > 0 ? atoi(c) : 1;
  std::vector<std::array<int, 3>> shapes;
  if (argc == 4) shapes.push_back({atoi(argv[1]), atoi(argv[2]), atoi(argv[3])});
  else shapes = {{128, 3072, 1024}, {128, 1024, 1024}, {128, 768, 1024}, {128, 1024, 768}, {32, 3072, 1024}, {128, 3072, 768}, {128, 768, 3072}, {1024, 1024, 1024}};
  for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Scalar}) {
    const Kernels* k = kernels_for(i);
    if (!k) continue;
    for (auto& s : shapes) std::printf("%-7s M=%5d N=%5d K=%5d  %7.1f GFLOP/s (1 thread)\n", k->name, s[0], s[1], s[2], bench(k, s[0], s[1], s[2]));
  }
}

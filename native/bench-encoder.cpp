// C++ encoder benchmark (no Node): random weights, median latency and GFLOP/s per shape.
//   bort_bench_encoder [bort|base|large] [threads] [runs] [BxS]   (env BORT_BENCH_PAUSE_MS: idle before each run)
//   env BORT_BENCH_INT8=1: int8 layer projections; BORT_BENCH_QATTN=1 (with it): int8 attention too
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "encoder.h"

using namespace bort;

int main(int argc, char** argv) {
  std::string model = argc > 1 ? argv[1] : "bort";
  const int threads = argc > 2 ? atoi(argv[2]) : 2;
  const int runs = argc > 3 ? atoi(argv[3]) : 10;
  const int pause_ms = getenv("BORT_BENCH_PAUSE_MS") ? atoi(getenv("BORT_BENCH_PAUSE_MS")) : 0;
  std::vector<float> flush(getenv("BORT_BENCH_FLUSH_MB") ? (size_t)atoi(getenv("BORT_BENCH_FLUSH_MB")) << 18 : 0);
  EncoderConfig c;
  if (model == "base") { c.layers = 12; c.heads = 12; c.hidden = 768; c.intermediate = 3072; }
  else if (model == "large") { c.layers = 24; c.heads = 16; c.hidden = 1024; c.intermediate = 4096; }
  else { c.layers = 4; c.heads = 8; c.hidden = 1024; c.intermediate = 768; }
  c.headSize = c.hidden / c.heads;
  c.vocab = 30522; c.maxPositions = 512; c.typeVocab = 2;
  c.scoreScale = 1.0f / std::sqrt((float)c.headSize);
  c.maskValue = -10000.0f;
  c.lnEps.assign(2 * c.layers, 1e-12f);
  c.pooler = true;
  c.threads = threads;
  c.int8 = getenv("BORT_BENCH_INT8") && *getenv("BORT_BENCH_INT8") == '1';  // int8 layer projections (qlinear.h)
  c.int8Attention = getenv("BORT_BENCH_QATTN") && *getenv("BORT_BENCH_QATTN") == '1';  // and int8 attention (qattention.h)
  std::map<std::string, std::vector<float>> w;
  uint32_t s = 1;
  auto get = [&](const std::string& n, size_t* len) -> const float* {
    // every weight is created on request with the expected size (the encoder checks lengths)
    return w.count(n) ? (*len = w[n].size(), w[n].data()) : nullptr;
  };
  const int H = c.hidden, Wd = c.heads * c.headSize, I = c.intermediate;
  auto mk = [&](const std::string& n, size_t len, float scale, float base = 0) {
    auto& v = w[n];
    v.resize(len);
    for (auto& x : v) { s = s * 1664525u + 1013904223u; x = base + scale * ((s >> 8) / 16777216.0f - 0.5f); }
  };
  mk("word_emb", (size_t)c.vocab * H, 0.1f); mk("pos_emb", (size_t)c.maxPositions * H, 0.1f); mk("type_emb", 2 * H, 0.1f);
  mk("emb_ln_g", H, 0.1f, 1); mk("emb_ln_b", H, 0.1f);
  for (int l = 0; l < c.layers; ++l) {
    auto t = "." + std::to_string(l);
    for (const char* n : {"q", "k", "v"}) { mk(std::string(n) + "_w" + t, (size_t)H * Wd, 0.06f); mk(std::string(n) + "_b" + t, Wd, 0.1f); }
    mk("o_w" + t, (size_t)Wd * H, 0.06f); mk("o_b" + t, H, 0.1f);
    mk("ln1_g" + t, H, 0.1f, 1); mk("ln1_b" + t, H, 0.1f);
    mk("ffn_in_w" + t, (size_t)H * I, 0.06f); mk("ffn_in_b" + t, I, 0.1f);
    mk("ffn_out_w" + t, (size_t)I * H, 0.03f); mk("ffn_out_b" + t, H, 0.1f);
    mk("ln2_g" + t, H, 0.1f, 1); mk("ln2_b" + t, H, 0.1f);
  }
  mk("pooler_w", (size_t)H * H, 0.06f); mk("pooler_b", H, 0.1f);
  const char* err = nullptr;
  const Kernels* k = active_kernels(&err);
  if (!k) { std::fprintf(stderr, "%s\n", err); return 1; }
  Encoder enc(c, get, k);
  w.clear();
  std::printf("%s isa=%s threads=%d\n", model.c_str(), k->name, threads);
  std::vector<std::array<int, 2>> shapes = {{1, 128}, {8, 128}, {1, 32}};
  if (argc > 4) {  // e.g. 1x32
    int b = 1, s = 128;
    std::sscanf(argv[4], "%dx%d", &b, &s);
    shapes = {{b, s}};
  }
  for (auto& sh : shapes) {
    const int B = sh[0], S = sh[1], M = B * S;
    std::vector<int32_t> ids(M), mask(M, 1), types(M, 0);
    for (int i = 0; i < M; ++i) ids[i] = (i * 7919 + 13) % c.vocab;
    std::vector<float> hidden((size_t)M * H), pooled((size_t)B * H);
    RunInputs in; in.ids = ids.data(); in.mask = mask.data(); in.types = types.data(); in.batch = B; in.seq = S;
    RunOutputs out; out.hidden = hidden.data(); out.pooled = pooled.data();
    for (int i = 0; i < 2; ++i) enc.run(in, out);
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
      // BORT_BENCH_PAUSE_MS: idle before each timed run (as the JS bench does), so the pool's
      // workers have gone to sleep and the run pays their wake-up
      // BORT_BENCH_FLUSH_MB: write that much memory first (evicts the caches, as another engine's
      // run between ours would)
      if (!flush.empty()) {
        for (size_t j = 0; j < flush.size(); j += 16) flush[j] += 1.0f;
      }
      if (pause_ms > 0 && getenv("BORT_BENCH_PAUSE_SPIN")) {  // busy pause (keeps this core awake)
        const auto te = std::chrono::steady_clock::now() + std::chrono::milliseconds(pause_ms);
        while (std::chrono::steady_clock::now() < te) {}
      } else if (pause_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      }
      auto t0 = std::chrono::steady_clock::now();
      enc.run(in, out);
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    if (getenv("BORT_BENCH_VERBOSE")) {
      for (double x : t) std::printf(" %.2f", x);
      std::printf("\n");
    }
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    const double fl = (double)c.layers * (2.0 * M * (4.0 * H * Wd + 2.0 * H * I) + 4.0 * B * S * S * Wd) + 2.0 * B * H * H;
    std::printf("  batch %d x seq %d: median %.2f ms (min %.2f)  %.1f GFLOP/s\n", B, S, med, t[0], fl / med / 1e6);
  }
}

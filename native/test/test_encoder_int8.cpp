// The encoder with int8 layer projections (EncoderConfig::int8): close to the float32 encoder on the
// same weights within the quantization error (bound stated below), identical across thread counts
// (int32 sums are exact and every element's epilogue is the same float operations however the GEMM is
// split), and its packed weights smaller.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "encoder.h"
#include "random_model.h"

using namespace bort;

namespace {

// plain: record the calibration maxima, which turns the fused row quantization off (every int8 GEMM
// quantizes its input in its own pass)
std::vector<float> run(const EncoderConfig& c, Weights& w, const std::vector<int32_t>& ids, const std::vector<int32_t>& mask, int B,
                       int S, size_t* packed, bool packing = true, bool* ran_packed = nullptr, bool plain = false) {
  Encoder enc(c, lookup(w), active_kernels(nullptr));
  enc.packing = packing;
  if (plain) enc.record_input_maxima(true);
  std::vector<float> hidden((size_t)B * S * c.hidden);
  RunInputs in;
  in.ids = ids.data();
  in.mask = mask.data();
  in.batch = B;
  in.seq = S;
  RunOutputs out;
  out.hidden = hidden.data();
  enc.run(in, out);
  enc.run(in, out);  // the second run reuses the scratch
  if (packed) *packed = enc.packed_bytes();
  if (ran_packed) *ran_packed = enc.last_run_packed();
  return hidden;
}

// The same outputs, bit for bit, with 2 and 3 threads as `ref` (1 thread): int32 sums are exact and
// every element's epilogue is the same float operations however the work is split.
void check_threads(EncoderConfig c, Weights& w, const std::vector<int32_t>& ids, const std::vector<int32_t>& mask, int B, int S,
                   const std::vector<float>& ref, const char* what) {
  for (int threads : {2, 3}) {
    c.threads = threads;
    const auto out = run(c, w, ids, mask, B, S, nullptr);
    size_t diff = 0;
    for (size_t i = 0; i < out.size(); ++i) diff += out[i] != ref[i];
    CHECK(diff == 0, "%s with %d threads differs from 1 thread in %zu values", what, threads, diff);
  }
}

// The run that skips the padding (packing.h) equals the padded run at the real positions.
void check_packed_equals_padded(EncoderConfig c, Weights& w, const std::vector<int32_t>& ids, const std::vector<int32_t>& mask,
                                int B, int S, const char* what) {
  c.threads = 1;
  bool ran_packed = false;
  const auto packed = run(c, w, ids, mask, B, S, nullptr, true, &ran_packed);
  const auto padded = run(c, w, ids, mask, B, S, nullptr, false);
  CHECK(ran_packed, "%s: the padding was not skipped", what);
  double d = 0;
  for (size_t i = 0; i < packed.size(); ++i)
    if (mask[i / c.hidden]) d = std::fmax(d, std::fabs(packed[i] - padded[i]));
  CHECK(d < 1e-4, "%s: packed and padded runs differ by %g at real positions", what, d);
}

}  // namespace

int main() {
  EncoderConfig c;
  c.layers = 2; c.heads = 4; c.headSize = 16; c.hidden = 64; c.intermediate = 256; c.vocab = 40; c.maxPositions = 32; c.typeVocab = 0;
  c.lnEps.assign(4, 1e-12f);
  const int B = 2, S = 24;
  Weights w = make_weights(c, 11);
  check::Rng r(5);
  std::vector<int32_t> ids(B * S), mask(B * S);
  for (int i = 0; i < B * S; ++i) { ids[i] = r.below(c.vocab); mask[i] = (i % S) < S - 3 * (i / S) ? 1 : 0; }
  c.threads = 1;
  size_t fbytes = 0, qbytes = 0;
  const auto f = run(c, w, ids, mask, B, S, &fbytes);
  c.int8 = true;
  const auto q1 = run(c, w, ids, mask, B, S, &qbytes);
  double worst = 0, mx = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    worst = std::fmax(worst, std::fabs(f[i] - q1[i]));
    mx = std::fmax(mx, std::fabs(f[i]));
  }
  // The outputs are LayerNorm outputs (unit variance): int8 weights and rows each add ~0.4 % relative
  // rounding noise per product, ~1e-2 on a unit-variance output after two layers. Measured: see the
  // printed figure; 0.1 absolute is ~8x that and far below what a wrong scale or sum gives (order 1).
  std::printf("int8 encoder vs float32: worst |diff| %.4g (largest |output| %.3g)\n", worst, mx);
  CHECK(worst < 0.1, "int8 encoder differs from the float32 one by %g", worst);
  CHECK(worst > 0, "int8 encoder gives the float32 result exactly: the int8 path did not run");
  check_threads(c, w, ids, mask, B, S, q1, "int8 encoder");
  std::printf("packed bytes: float32 %zu, int8 %zu\n", fbytes, qbytes);
  CHECK(qbytes < fbytes, "int8 packed weights (%zu bytes) are not smaller than float32 (%zu)", qbytes, fbytes);

  // padding skipped in int8 too: the key bound from the int8 weights (packing.h) still proves the
  // masked keys add 0, and the real positions equal the padded run's (rows are quantized one by one)
  check_packed_equals_padded(c, w, ids, mask, B, S, "int8 encoder");
  // int8 attention (qattention.h): still within the bound of the float32 encoder, not the same as
  // float32 attention (so it ran), identical across thread counts, and the packed run (no padded keys)
  // equals the padded one (padded keys are left out of V's scales and get probability exactly 0)
  {
    c.int8Attention = true;
    c.threads = 1;
    const auto a1 = run(c, w, ids, mask, B, S, nullptr);
    double wa = 0, vs_q = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      if (!mask[i / c.hidden]) continue;
      wa = std::fmax(wa, std::fabs(f[i] - a1[i]));
      vs_q = std::fmax(vs_q, std::fabs(q1[i] - a1[i]));
    }
    std::printf("int8 attention vs float32: worst |diff| %.4g (vs float32 attention %.4g)\n", wa, vs_q);
    CHECK(wa < 0.1, "int8 attention differs from the float32 encoder by %g", wa);
    CHECK(vs_q > 0, "int8 attention gives float32 attention's result exactly: it did not run");
    check_threads(c, w, ids, mask, B, S, a1, "int8 attention");
    check_packed_equals_padded(c, w, ids, mask, B, S, "int8 attention");
    c.int8Attention = false;
  }
  // the fused quantization (LayerNorm quantizes its rows for the next int8 layer where it writes them)
  // gives the same bits as quantizing each GEMM's input in its own pass, which is what runs while the
  // calibration maxima are recorded
  for (bool qattn : {false, true})
    for (int threads : {1, 2}) {
      EncoderConfig f2 = c;
      f2.int8 = true;
      f2.int8Attention = qattn;
      f2.threads = threads;
      for (bool packing : {false, true}) {
        const auto fused = run(f2, w, ids, mask, B, S, nullptr, packing);
        const auto plain = run(f2, w, ids, mask, B, S, nullptr, packing, nullptr, true);
        size_t diff = 0;
        for (size_t i = 0; i < plain.size(); ++i) diff += plain[i] != fused[i];
        CHECK(diff == 0, "fused quantization (int8 attention %d, %d threads, packing %d): %zu values differ from the plain path",
              (int)qattn, threads, (int)packing, diff);
      }
    }
  // a quantized file's weights: packed as given (no re-quantization), scales kept, bad ones refused
  {
    const QKernels* qk = qkernels_active(nullptr);
    const int K = 37, N1 = 20, N2 = 45;
    std::vector<int8_t> q1((size_t)K * N1), q2((size_t)K * N2);
    for (auto& v : q1) v = (int8_t)((int)r.below(255) - 127);
    for (auto& v : q2) v = (int8_t)((int)r.below(255) - 127);
    std::vector<float> s1(N1, 0.01f), s2(N2, 0.5f);
    QSegI8 segs[2] = {{q1.data(), s1.data(), N1}, {q2.data(), s2.data(), N2}};
    auto L = make_qlinear_int8(qk, K, segs, 2);
    size_t wrong = 0;
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N1 + N2; ++n)
        wrong += qlinear_weight(*L, k, n) != (n < N1 ? q1[(size_t)k * N1 + n] : q2[(size_t)k * N2 + n - N1]);
    CHECK(wrong == 0, "make_qlinear_int8 changed %zu weights", wrong);
    CHECK(L->scale[3] == 0.01f && L->scale[N1 + 4] == 0.5f, "make_qlinear_int8 changed the scales");
    for (float bad : {0.0f, -1.0f, NAN, INFINITY}) {
      s2[7] = bad;
      bool threw = false;
      try { make_qlinear_int8(qk, K, segs, 2); } catch (const std::invalid_argument&) { threw = true; }
      CHECK(threw, "weight scale %g accepted", bad);
    }
    s2[7] = 0.5f;
    q2[11] = -128;
    bool threw = false;
    try { make_qlinear_int8(qk, K, segs, 2); } catch (const std::invalid_argument&) { threw = true; }
    CHECK(threw, "weight value -128 accepted");
  }
  // the int8 embedding tables: scale = max|row| / 127, every value within scale / 2, a zero row scale 1
  {
    const int rows = 5, cols = 33;
    std::vector<float> x((size_t)rows * cols);
    for (auto& v : x) v = (float)r.below(2001) / 1000.0f - 1.0f;
    for (int c = 0; c < cols; ++c) x[(size_t)2 * cols + c] = 0.0f;
    const QTable t = make_qtable(x.data(), rows, cols);
    for (int i = 0; i < rows; ++i) {
      float mx = 0;
      for (int c = 0; c < cols; ++c) mx = std::fmax(mx, std::fabs(x[(size_t)i * cols + c]));
      const float want = i == 2 ? 1.0f : mx / 127.0f;
      CHECK(t.scale[i] == want, "row %d scale %g, expected %g", i, t.scale[i], want);
      double worst = 0;
      for (int c = 0; c < cols; ++c) worst = std::fmax(worst, std::fabs(x[(size_t)i * cols + c] - t.scale[i] * t.row(i)[c]));
      CHECK(worst <= t.scale[i] / 2 * 1.0001, "row %d: |x - s q| = %g > s / 2", i, worst);
    }
  }
  // int8 mode's memory: the embedding tables are int8 too, so the packed weights are near a quarter
  // of float32 (the float biases, LayerNorms and int32 column sums add a little at these tiny sizes)
  CHECK(qbytes < 0.4 * fbytes, "int8 packed weights are %.2f of float32", (double)qbytes / fbytes);

  std::printf("%d passed, %d failed\n", check::passes(), check::failures());
  return check::failures() ? 1 : 0;
}

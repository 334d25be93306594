// The whole encoder (every ISA, 1 and 3 threads) against a naive double-precision reference of the
// same math: post-LN BERT, erf GELU, additive mask (1-mask)*maskValue or the mask value in place of
// padding keys' scores (select), explicit position ids, pooler (tanh or ReLU), MLM head, classifier,
// per-token classifier.
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include "check.h"
#include "encoder.h"
#include "random_model.h"

#if defined(__linux__)
#include <sched.h>
#endif

using namespace bort;
using check::Rng;
using D = std::vector<double>;

// ---- naive reference
static D linear(const D& x, int M, int K, const std::vector<float>& w, const std::vector<float>& b, int N) {
  D y((size_t)M * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = b[j];
      for (int k = 0; k < K; ++k) s += x[(size_t)i * K + k] * w[(size_t)k * N + j];
      y[(size_t)i * N + j] = s;
    }
  return y;
}
static void ln(D& x, int M, int N, const std::vector<float>& g, const std::vector<float>& b, double eps) {
  for (int i = 0; i < M; ++i) {
    double* r = &x[(size_t)i * N];
    double mean = 0, var = 0;
    for (int j = 0; j < N; ++j) mean += r[j];
    mean /= N;
    for (int j = 0; j < N; ++j) var += (r[j] - mean) * (r[j] - mean);
    var /= N;
    for (int j = 0; j < N; ++j) r[j] = (r[j] - mean) / std::sqrt(var + eps) * g[j] + b[j];
  }
}
static double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

struct RefOut {
  D hidden, pooled, mlm, cls, tok;
};

static RefOut reference(const EncoderConfig& c, Weights& w, const std::vector<int32_t>& ids, const std::vector<int32_t>* mask,
                        const std::vector<int32_t>* types, const std::vector<int32_t>* positions, int B, int S) {
  const int H = c.hidden, Wd = c.heads * c.headSize, d = c.headSize, M = B * S;
  D x((size_t)M * H);
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < H; ++j) {
      const size_t p = positions ? (size_t)(*positions)[r] : (size_t)(r % S);
      double v = w["word_emb"][(size_t)ids[r] * H + j] + w["pos_emb"][p * H + j];
      if (c.typeVocab) v += w["type_emb"][(size_t)(types ? (*types)[r] : 0) * H + j];
      x[(size_t)r * H + j] = v;
    }
  ln(x, M, H, w["emb_ln_g"], w["emb_ln_b"], c.embLnEps);
  for (int l = 0; l < c.layers; ++l) {
    auto s = "." + std::to_string(l);
    D q = linear(x, M, H, w["q_w" + s], w["q_b" + s], Wd);
    D k = linear(x, M, H, w["k_w" + s], w["k_b" + s], Wd);
    D v = linear(x, M, H, w["v_w" + s], w["v_b" + s], Wd);
    D ctx((size_t)M * Wd);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < c.heads; ++h)
        for (int i = 0; i < S; ++i) {
          D sc(S);
          double mx = -INFINITY;
          for (int j = 0; j < S; ++j) {
            double dot = 0;
            for (int e = 0; e < d; ++e) dot += q[((size_t)b * S + i) * Wd + h * d + e] * k[((size_t)b * S + j) * Wd + h * d + e];
            const float m = mask ? (float)(*mask)[b * S + j] : 1.0f;
            if (c.maskSelect) sc[j] = m == 0.0f ? (double)c.maskValue : dot * c.scoreScale;
            else sc[j] = dot * c.scoreScale + (double)((1.0f - m) * c.maskValue);
            mx = std::fmax(mx, sc[j]);
          }
          double sum = 0;
          for (auto& t : sc) sum += (t = std::exp(t - mx));
          for (int e = 0; e < d; ++e) {
            double acc = 0;
            for (int j = 0; j < S; ++j) acc += sc[j] / sum * v[((size_t)b * S + j) * Wd + h * d + e];
            ctx[((size_t)b * S + i) * Wd + h * d + e] = acc;
          }
        }
    D a = linear(ctx, M, Wd, w["o_w" + s], w["o_b" + s], H);
    for (size_t i = 0; i < a.size(); ++i) a[i] += x[i];
    ln(a, M, H, w["ln1_g" + s], w["ln1_b" + s], c.lnEps[2 * l]);
    x = a;
    D f = linear(x, M, H, w["ffn_in_w" + s], w["ffn_in_b" + s], c.intermediate);
    for (auto& t : f) t = gelu(t);
    D o = linear(f, M, c.intermediate, w["ffn_out_w" + s], w["ffn_out_b" + s], H);
    for (size_t i = 0; i < o.size(); ++i) o[i] += x[i];
    ln(o, M, H, w["ln2_g" + s], w["ln2_b" + s], c.lnEps[2 * l + 1]);
    x = o;
  }
  RefOut r;
  r.hidden = x;
  if (c.pooler) {
    D cls((size_t)B * H);
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < H; ++j) cls[(size_t)b * H + j] = x[(size_t)b * S * H + j];
    r.pooled = linear(cls, B, H, w["pooler_w"], w["pooler_b"], H);
    for (auto& t : r.pooled) t = c.poolerRelu ? std::fmax(t, 0.0) : std::tanh(t);
    if (c.classifierLabels) r.cls = linear(r.pooled, B, H, w["cls_w"], w["cls_b"], c.classifierLabels);
  }
  if (c.mlm) {
    D t = linear(x, M, H, w["mlm_w"], w["mlm_b"], H);
    for (auto& e : t) e = gelu(e);
    ln(t, M, H, w["mlm_ln_g"], w["mlm_ln_b"], c.mlmLnEps);
    r.mlm = linear(t, M, H, w["decoder_w"], w["decoder_b"], c.vocab);
  }
  if (c.tokenLabels) r.tok = linear(x, M, H, w["tok_w"], w["tok_b"], c.tokenLabels);
  return r;
}


static void run_case(const char* name, EncoderConfig c, int B, int S, bool use_mask, bool use_types, uint64_t seed,
                     bool use_positions = false) {
  Weights w = make_weights(c, seed);
  Rng r(seed + 100);
  const int M = B * S;
  std::vector<int32_t> ids(M), mask(M), types(M), positions(M);
  for (int i = 0; i < M; ++i) {
    ids[i] = r.below(c.vocab);
    types[i] = c.typeVocab ? r.below(c.typeVocab) : 0;
    positions[i] = r.below(c.maxPositions);
  }
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < S; ++s) mask[b * S + s] = s < S - b ? 1 : 0;  // sequence b has b padding tokens
  RefOut ref = reference(c, w, ids, use_mask ? &mask : nullptr, use_types ? &types : nullptr, use_positions ? &positions : nullptr, B, S);
  for (const Kernels* k : check::all_tables())
    for (int threads : {1, 2, 3}) {  // 2 on a 2-CPU machine: the run pins its caller (ThreadPool::begin_run)
      c.threads = threads;
      Encoder enc(c, lookup(w), k);
      std::vector<float> hidden((size_t)M * c.hidden), pooled((size_t)B * c.hidden), mlm((size_t)M * c.vocab),
          cls((size_t)B * (c.classifierLabels ? c.classifierLabels : 1)), tok((size_t)M * (c.tokenLabels ? c.tokenLabels : 1));
      RunInputs in;
      in.ids = ids.data();
      in.mask = use_mask ? mask.data() : nullptr;
      in.types = use_types ? types.data() : nullptr;
      in.positions = use_positions ? positions.data() : nullptr;
      in.batch = B;
      in.seq = S;
      RunOutputs out;
      out.hidden = hidden.data();
      if (c.pooler) out.pooled = pooled.data();
      if (c.mlm) out.mlm = mlm.data();
      if (c.classifierLabels) out.cls = cls.data();
      if (c.tokenLabels) out.tok = tok.data();
      for (int rep = 0; rep < 2; ++rep) {  // the second run reuses the scratch
#if defined(__linux__)
        cpu_set_t before, after;
        CPU_ZERO(&before);
        CPU_ZERO(&after);
        sched_getaffinity(0, sizeof before, &before);
#endif
        enc.run(in, out);
#if defined(__linux__)
        sched_getaffinity(0, sizeof after, &after);
        CHECK(CPU_EQUAL(&before, &after), "%s [%s, %d threads] the caller's CPU mask was not restored after the run", name,
              k->name, threads);
#endif
        double e = check::max_abs_diff(hidden.data(), ref.hidden.data(), ref.hidden.size());
        CHECK(e < 1e-4, "%s [%s, %d threads] hidden: max error %g", name, k->name, threads, e);
        if (c.pooler) {
          e = check::max_abs_diff(pooled.data(), ref.pooled.data(), ref.pooled.size());
          CHECK(e < 1e-4, "%s [%s] pooled: max error %g", name, k->name, e);
        }
        if (c.classifierLabels) {
          e = check::max_abs_diff(cls.data(), ref.cls.data(), ref.cls.size());
          CHECK(e < 1e-4, "%s [%s] cls: max error %g", name, k->name, e);
        }
        if (c.mlm) {
          e = check::max_abs_diff(mlm.data(), ref.mlm.data(), ref.mlm.size());
          CHECK(e < 1e-4, "%s [%s] mlm: max error %g", name, k->name, e);
        }
        if (c.tokenLabels) {
          e = check::max_abs_diff(tok.data(), ref.tok.data(), ref.tok.size());
          CHECK(e < 1e-4, "%s [%s] tok: max error %g", name, k->name, e);
        }
      }
      if (use_positions) {
        std::vector<int32_t> badp = positions;
        badp[M - 1] = c.maxPositions;
        in.positions = badp.data();
        bool threw = false;
        try {
          enc.validate(in);
        } catch (const InputRangeError&) {
          threw = true;
        }
        CHECK(threw, "%s [%s] position == maxPositions was accepted", name, k->name);
        in.positions = positions.data();
      }
      // input validation
      std::vector<int32_t> bad = ids;
      bad[M - 1] = c.vocab;
      in.ids = bad.data();
      bool threw = false;
      try {
        enc.run(in, out);
      } catch (const InputRangeError&) {
        threw = true;
      }
      CHECK(threw, "%s [%s] id == vocab was accepted", name, k->name);
      in.ids = ids.data();
      in.seq = c.maxPositions + 1;
      threw = false;
      try {
        enc.validate(in);
      } catch (const InputRangeError&) {
        threw = true;
      }
      CHECK(threw, "%s [%s] seq > maxPositions was accepted", name, k->name);
      in.seq = S;
      enc.close();
      threw = false;
      try {
        enc.run(in, out);
      } catch (const std::runtime_error&) {
        threw = true;
      }
      CHECK(threw, "%s [%s] run after close did not throw", name, k->name);
    }
}

int main() {
  EncoderConfig c;
  c.layers = 2;
  c.heads = 3;
  c.headSize = 7;  // W = 21 != hidden
  c.hidden = 20;
  c.intermediate = 37;
  c.vocab = 53;
  c.maxPositions = 40;
  c.typeVocab = 2;
  c.scoreScale = 1.0f / std::sqrt(7.0f);
  c.maskValue = -10000.0f;
  c.embLnEps = 1e-12f;
  c.lnEps = {1e-12f, 1e-5f, 1e-6f, 1e-12f};
  c.pooler = true;
  c.mlm = true;
  c.mlmLnEps = 1e-12f;
  c.classifierLabels = 3;
  run_case("full heads, mask -1e4", c, 3, 9, true, true, 1);
  c.maskValue = -3.4028234663852886e38f;
  run_case("mask float-lowest, long seq", c, 2, 37, true, true, 2);
  run_case("no mask, no types given", c, 2, 5, false, false, 3);
  run_case("one token", c, 1, 1, true, true, 5);
  EncoderConfig e = c;
  e.typeVocab = 0;
  e.pooler = false;
  e.mlm = false;
  e.classifierLabels = 0;
  e.layers = 1;
  e.lnEps = {1e-12f, 1e-12f};
  e.heads = 4;
  e.headSize = 16;
  e.hidden = 64;
  e.intermediate = 96;
  run_case("no type table, hidden only", e, 2, 33, true, false, 4);
  // DistilBERT / RoBERTa / QA forms: Where mask (finite fill, then -infinity), ReLU pre-classifier,
  // per-token classifier, position ids given by the caller
  EncoderConfig f = c;
  f.maskSelect = true;
  f.maskValue = -1000.0f;
  f.poolerRelu = true;
  f.tokenLabels = 2;
  f.typeVocab = 1;
  run_case("select mask, relu pooler, token classifier, positions", f, 3, 9, true, false, 6, true);
  // sequence 3 of 4 has every key masked: replaced scores give uniform attention, added ones would not
  run_case("select mask, a sequence without tokens", f, 4, 3, true, false, 8, true);
  f.maskValue = -INFINITY;
  run_case("select mask of -infinity", f, 3, 17, true, false, 7, true);

  // close() while a run is in flight returns at once; the run finishes, then the weights are freed
  {
    EncoderConfig b = e;
    b.layers = 2;
    b.lnEps = {1e-12f, 1e-12f, 1e-12f, 1e-12f};
    b.hidden = 256;
    b.intermediate = 1024;
    b.maxPositions = 256;
    b.threads = 2;
    Weights bw = make_weights(b, 21);
    Encoder enc(b, lookup(bw), active_kernels(nullptr));
    const int B = 4, S = 256;
    std::vector<int32_t> ids(B * S, 1);
    std::vector<float> hidden((size_t)B * S * b.hidden);
    RunInputs in;
    in.ids = ids.data();
    in.batch = B;
    in.seq = S;
    RunOutputs out;
    out.hidden = hidden.data();
    enc.set_threads(3);  // applies at the next run
    std::atomic<int> state{0};
    std::thread t([&] {
      try {
        enc.run(in, out);
        state = 1;
      } catch (const std::exception&) {
        state = 2;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto t0 = std::chrono::steady_clock::now();
    enc.close();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    t.join();
    CHECK(state != 0, "the run in flight at close did not end");
    CHECK(ms < 50, "close() blocked %.1f ms on the run in flight", ms);
    bool threw = false;
    try {
      enc.run(in, out);
    } catch (const std::runtime_error&) {
      threw = true;
    }
    CHECK(threw, "run after close (in flight) did not throw");
  }

  // configuration errors name the weight
  Weights w = make_weights(c, 9);
  w.erase("k_w.1");
  bool threw = false;
  try {
    Encoder enc(c, lookup(w), kernels_scalar());
  } catch (const ConfigError& err) {
    threw = std::string(err.what()).find("k_w.1") != std::string::npos;
  }
  CHECK(threw, "a missing weight is not reported by name");
  return check::finish("test_encoder");
}

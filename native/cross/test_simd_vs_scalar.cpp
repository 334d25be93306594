// Every SIMD kernel table this CPU runs (NEON on arm64; AVX2 / AVX-512 on x86-64) against the scalar
// table on identical inputs, and the whole encoder on each table against the scalar encoder.
//
// Tolerance: 1e-5 relative.
//   * exp and add3: per element, |simd - scalar| <= 1e-5 * |scalar|;
//   * erf, tanh, gelu: per element, |simd - scalar| <= 1e-5 * max(|scalar|, 1) (their approximations are
//     accurate in absolute, not relative, terms near 0: erf is A&S 7.1.26, 1 - poly(t)·exp(-x²));
//   * GEMM, LayerNorm, softmax and encoder outputs (sums whose small elements are cancellations):
//     |simd - scalar| <= 1e-5 * max_j |scalar_j| over the output.
//
// Usage: test_simd_vs_scalar [--require ISA]   (ISA = neon | avx2 | avx512: fail when it is absent)
// Built and run under qemu-aarch64 by native/cross/arm64-test.sh; builds natively too.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "encoder.h"
#include "kernels.h"

using namespace bort;
using check::Rng;

static const double kRel = 1e-5;

namespace {

struct Worst {
  double rel = 0;
  long comparisons = 0;
  std::string where = "-";
};
std::map<std::string, Worst> worst_by_table;

// Scale-relative: max |a-b| / max |b|.
double scale_rel(const float* a, const float* b, size_t n) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < n; ++i) {
    scale = std::fmax(scale, std::fabs((double)b[i]));
    const double d = std::fabs((double)a[i] - (double)b[i]);
    if (!(d <= diff)) diff = d;  // NaN sticks
  }
  return diff / std::fmax(scale, 1e-30);
}

// Elementwise relative: max |a-b| / max(|b|, floor).
double elem_rel(const float* a, const float* b, size_t n, double floor = 1e-30) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs((double)a[i] - (double)b[i]) / std::fmax(std::fabs((double)b[i]), floor);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

void record(const Kernels* k, double rel, const std::string& what) {
  Worst& w = worst_by_table[k->name];
  w.comparisons++;
  if (!(rel <= w.rel)) {
    w.rel = rel;
    w.where = what;
  }
  CHECK(rel <= kRel, "%s vs scalar, %s: relative difference %.3g > %g", k->name, what.c_str(), rel, kRel);
}

// pack_b with or without the K-block argument (the packed layout gained KC blocking; either
// signature builds, whichever kernels.h declares).
template <class Seg>
auto pack_b_for(int, const Kernels* k, float* dst, int K, const Seg* seg) -> decltype(pack_b(dst, K, seg, 1, k->NR, k->KC)) {
  return pack_b(dst, K, seg, 1, k->NR, k->KC);
}
template <class Seg>
auto pack_b_for(long, const Kernels* k, float* dst, int K, const Seg* seg) -> decltype(pack_b(dst, K, seg, 1, k->NR)) {
  return pack_b(dst, K, seg, 1, k->NR);
}

std::vector<float> random_vec(Rng& r, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

// C = epi(A·B) on table k, optionally through pack_a (A packed in MR rows).
std::vector<float> run_gemm(const Kernels* k, const std::vector<float>& A, size_t lda, const std::vector<float>& B, int M,
                            int N, int K, Epi epi, const std::vector<float>& bias, const std::vector<float>& R, size_t ldr,
                            bool packA) {
  PackSeg seg{B.data(), N, (size_t)N};
  std::vector<float> Bp(packed_size(K, N, k->NR));
  pack_b_for(0, k, Bp.data(), K, &seg);
  std::vector<float> padded_bias((size_t)N + k->NR, 0.0f);
  std::copy(bias.begin(), bias.end(), padded_bias.begin());
  std::vector<float> C((size_t)M * N, 0.0f);
  std::vector<float> Ap;
  GemmArgs g;
  g.A = A.data();
  g.lda = lda;
  g.B = Bp.data();
  g.C = C.data();
  g.ldc = N;
  g.M = M;
  g.N = N;
  g.K = K;
  g.epi = epi;
  g.bias = padded_bias.data();
  g.R = R.data();
  g.ldr = ldr;
  if (packA) {
    Ap.assign((size_t)((M + k->MR - 1) / k->MR) * K * k->MR, 0.0f);
    k->pack_a(A.data(), lda, 0, M, K, Ap.data());
    g.Ap = Ap.data();
  }
  std::vector<float> ws((size_t)k->MC * k->KC);
  k->gemm_tile(g, 0, M, 0, N, ws.data());
  return C;
}

void test_gemm(const Kernels* k, const Kernels* s) {
  Rng rng(11);
  const int shapes[][3] = {{1, 1, 1},    {3, 5, 9},     {8, 24, 64},   {13, 33, 300}, {32, 64, 257},
                           {100, 100, 520}, {130, 48, 1024}, {7, 769, 96}, {241, 37, 33}};
  const Epi epis[] = {Epi::None, Epi::Bias, Epi::BiasGelu, Epi::BiasResid, Epi::BiasTanh};
  for (const auto& sh : shapes) {
    const int M = sh[0], N = sh[1], K = sh[2];
    const size_t lda = K + 3, ldr = N + 1;
    const auto A = random_vec(rng, (size_t)M * lda, -1, 1);
    const auto B = random_vec(rng, (size_t)K * N, -1, 1);
    const auto bias = random_vec(rng, N, -1, 1);
    const auto R = random_vec(rng, (size_t)M * ldr, -1, 1);
    for (Epi epi : epis)
      for (bool packA : {false, true}) {
        const auto cs = run_gemm(s, A, lda, B, M, N, K, epi, bias, R, ldr, false);
        const auto ck = run_gemm(k, A, lda, B, M, N, K, epi, bias, R, ldr, packA);
        char what[96];
        std::snprintf(what, sizeof what, "gemm M=%d N=%d K=%d epi=%d%s", M, N, K, (int)epi, packA ? " packed A" : "");
        record(k, scale_rel(ck.data(), cs.data(), cs.size()), what);
      }
  }
}

void test_rows(const Kernels* k, const Kernels* s) {
  Rng rng(12);
  for (int n : {1, 3, 4, 15, 16, 17, 64, 100, 768, 1024, 4099}) {
    const auto x = random_vec(rng, n, -4, 6), g = random_vec(rng, n, 0.5f, 1.5f), b = random_vec(rng, n, -1, 1);
    std::vector<float> ys(n), yk(n);
    s->layernorm(ys.data(), x.data(), g.data(), b.data(), n, 1e-12f);
    k->layernorm(yk.data(), x.data(), g.data(), b.data(), n, 1e-12f);
    record(k, scale_rel(yk.data(), ys.data(), n), "layernorm n=" + std::to_string(n));

    for (float maskValue : {-10000.0f, -3.4028234663852886e38f}) {
      auto ss = random_vec(rng, n, -30, 30);
      std::vector<float> madd(n);
      for (int i = 0; i < n; ++i) madd[i] = (i % 4 == 3) ? maskValue : 0.0f;
      auto sk = ss;
      s->softmax(ss.data(), n, 0.125f, madd.data());
      k->softmax(sk.data(), n, 0.125f, madd.data());
      record(k, scale_rel(sk.data(), ss.data(), n), "softmax n=" + std::to_string(n));
    }

    const auto a = random_vec(rng, n, -1, 1), c = random_vec(rng, n, -1, 1);
    std::vector<float> as(n), ak(n);
    s->add3(as.data(), a.data(), x.data(), c.data(), n);
    k->add3(ak.data(), a.data(), x.data(), c.data(), n);
    record(k, elem_rel(ak.data(), as.data(), n), "add3 n=" + std::to_string(n));
  }
}

void test_math(const Kernels* k, const Kernels* s) {
  const int n = 40001;  // odd: the vector tails run too
  struct Fn {
    const char* name;
    void (*Kernels::*f)(float*, size_t);
    float lo, hi;
    double floor;  // denominator floor: 1 where the approximation is accurate in absolute terms near 0
  };
  const Fn fns[] = {{"exp", &Kernels::exp, -87.0f, 88.0f, 1e-30},
                    {"erf", &Kernels::erf, -8.0f, 8.0f, 1.0},
                    {"gelu", &Kernels::gelu, -12.0f, 12.0f, 1.0},
                    {"tanh", &Kernels::tanh, -15.0f, 15.0f, 1.0}};
  for (const Fn& fn : fns) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = fn.lo + (fn.hi - fn.lo) * i / (n - 1);
    std::vector<float> ys = x, yk = x;
    (s->*fn.f)(ys.data(), n);
    (k->*fn.f)(yk.data(), n);
    record(k, elem_rel(yk.data(), ys.data(), n, fn.floor), fn.name);
  }
}

// ---- the whole encoder
using Weights = std::map<std::string, std::vector<float>>;

Weights make_weights(const EncoderConfig& c, uint64_t seed) {
  Rng r(seed);
  Weights w;
  const int H = c.hidden, Wd = c.heads * c.headSize, I = c.intermediate, V = c.vocab;
  auto put = [&](const std::string& name, size_t len, float lo, float hi) { w[name] = random_vec(r, len, lo, hi); };
  put("word_emb", (size_t)V * H, -1, 1);
  put("pos_emb", (size_t)c.maxPositions * H, -0.5f, 0.5f);
  if (c.typeVocab) put("type_emb", (size_t)c.typeVocab * H, -0.5f, 0.5f);
  put("emb_ln_g", H, 0.8f, 1.2f);
  put("emb_ln_b", H, -0.1f, 0.1f);
  const float a = 1.0f / std::sqrt((float)H);
  for (int l = 0; l < c.layers; ++l) {
    const std::string s = "." + std::to_string(l);
    for (const char* n : {"q", "k", "v"}) {
      put(std::string(n) + "_w" + s, (size_t)H * Wd, -a, a);
      put(std::string(n) + "_b" + s, Wd, -0.1f, 0.1f);
    }
    const float o = 1.0f / std::sqrt((float)Wd), f = 1.0f / std::sqrt((float)I);
    put("o_w" + s, (size_t)Wd * H, -o, o);
    put("o_b" + s, H, -0.1f, 0.1f);
    put("ln1_g" + s, H, 0.8f, 1.2f);
    put("ln1_b" + s, H, -0.1f, 0.1f);
    put("ffn_in_w" + s, (size_t)H * I, -a, a);
    put("ffn_in_b" + s, I, -0.1f, 0.1f);
    put("ffn_out_w" + s, (size_t)I * H, -f, f);
    put("ffn_out_b" + s, H, -0.1f, 0.1f);
    put("ln2_g" + s, H, 0.8f, 1.2f);
    put("ln2_b" + s, H, -0.1f, 0.1f);
  }
  if (c.pooler) {
    put("pooler_w", (size_t)H * H, -a, a);
    put("pooler_b", H, -0.1f, 0.1f);
  }
  if (c.mlm) {
    put("mlm_w", (size_t)H * H, -a, a);
    put("mlm_b", H, -0.1f, 0.1f);
    put("mlm_ln_g", H, 0.8f, 1.2f);
    put("mlm_ln_b", H, -0.1f, 0.1f);
    put("decoder_w", (size_t)H * V, -a, a);
    put("decoder_b", V, -0.1f, 0.1f);
  }
  if (c.classifierLabels) {
    put("cls_w", (size_t)H * c.classifierLabels, -a, a);
    put("cls_b", c.classifierLabels, -0.1f, 0.1f);
  }
  return w;
}

struct Outputs {
  std::vector<float> hidden, pooled, mlm, cls;
};

Outputs run_encoder(const EncoderConfig& c, const Weights& w, const Kernels* k, const std::vector<int32_t>& ids,
                    const std::vector<int32_t>& mask, const std::vector<int32_t>& types, int B, int S) {
  WeightLookup lookup = [&w](const std::string& name, size_t* len) -> const float* {
    auto it = w.find(name);
    if (it == w.end()) return nullptr;
    *len = it->second.size();
    return it->second.data();
  };
  Encoder enc(c, lookup, k);
  Outputs o;
  o.hidden.resize((size_t)B * S * c.hidden);
  if (c.pooler) o.pooled.resize((size_t)B * c.hidden);
  if (c.mlm) o.mlm.resize((size_t)B * S * c.vocab);
  if (c.classifierLabels) o.cls.resize((size_t)B * c.classifierLabels);
  RunInputs in;
  in.ids = ids.data();
  in.mask = mask.data();
  in.types = c.typeVocab ? types.data() : nullptr;
  in.batch = B;
  in.seq = S;
  RunOutputs out;
  out.hidden = o.hidden.data();
  out.pooled = c.pooler ? o.pooled.data() : nullptr;
  out.mlm = c.mlm ? o.mlm.data() : nullptr;
  out.cls = c.classifierLabels ? o.cls.data() : nullptr;
  enc.run(in, out);
  enc.close();
  return o;
}

void test_encoder(const Kernels* k, const Kernels* s) {
  EncoderConfig c;
  c.layers = 2;
  c.heads = 4;
  c.headSize = 16;
  c.hidden = 64;
  c.intermediate = 150;
  c.vocab = 97;
  c.maxPositions = 64;
  c.typeVocab = 2;
  c.scoreScale = 0.25f;
  c.maskValue = -10000.0f;
  c.lnEps = {1e-12f, 1e-12f, 1e-12f, 1e-12f};
  c.pooler = true;
  c.mlm = true;
  c.classifierLabels = 3;
  c.threads = 2;
  const Weights w = make_weights(c, 21);
  Rng r(22);
  const int B = 3, S = 29;
  std::vector<int32_t> ids(B * S), mask(B * S), types(B * S);
  for (int i = 0; i < B * S; ++i) {
    ids[i] = r.below(c.vocab);
    types[i] = r.below(2);
  }
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < S; ++t) mask[b * S + t] = t < S - 4 * b ? 1 : 0;
  const Outputs os = run_encoder(c, w, s, ids, mask, types, B, S);
  const Outputs ok = run_encoder(c, w, k, ids, mask, types, B, S);
  record(k, scale_rel(ok.hidden.data(), os.hidden.data(), os.hidden.size()), "encoder hidden");
  record(k, scale_rel(ok.pooled.data(), os.pooled.data(), os.pooled.size()), "encoder pooled");
  record(k, scale_rel(ok.mlm.data(), os.mlm.data(), os.mlm.size()), "encoder mlm logits");
  record(k, scale_rel(ok.cls.data(), os.cls.data(), os.cls.size()), "encoder classifier logits");
}

}  // namespace

int main(int argc, char** argv) {
  const char* require = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--require") && i + 1 < argc) require = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--require neon|avx2|avx512]\n", argv[0]);
      return 2;
    }
  }
  const Kernels* s = kernels_scalar();
  std::vector<const Kernels*> simd;
  for (Isa i : {Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (const Kernels* k = kernels_for(i)) simd.push_back(k);
  if (require) {
    bool found = false;
    for (const Kernels* k : simd) found |= !std::strcmp(k->name, require);
    CHECK(found, "--require %s: that kernel table is not available on this CPU / in this build", require);
  }
  if (simd.empty()) std::printf("no SIMD kernel table on this CPU: nothing to compare\n");
  for (const Kernels* k : simd) {
    std::printf("comparing %s (MR=%d NR=%d) with scalar (MR=%d NR=%d)\n", k->name, k->MR, k->NR, s->MR, s->NR);
    test_gemm(k, s);
    test_rows(k, s);
    test_math(k, s);
    test_encoder(k, s);
    const Worst& w = worst_by_table[k->name];
    std::printf("%s vs scalar: worst relative difference %.3g (%s) over %ld comparisons (limit %g)\n", k->name, w.rel,
                w.where.c_str(), w.comparisons, kRel);
  }
  return check::finish("test_simd_vs_scalar");
}

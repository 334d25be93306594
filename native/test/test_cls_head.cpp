// Gradient checks of the trainer's sequence-classification head (native/src/train/cls_head.h) against
// float64 finite differences: the head on its own (CE, KL, both; tanh and ReLU pooler), then every
// parameter's gradient of one full classifier step of a tiny model with padding (no MLM head in the
// config), on every ISA path this CPU supports; the head's own learning rate; batch validation.
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "random_model.h"
#include "train/cls_head.h"
#include "train/trainer.h"

using namespace bort;
using check::Rng;
using D = std::vector<double>;
using WD = std::map<std::string, D>;

static D numeric_grad(D& x, const std::function<double()>& f, double h) {
  D g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double fp = f();
    x[i] = keep - h;
    const double fm = f();
    x[i] = keep;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// max |g - fd| relative to max(|fd| of the tensor, floor)
static double grad_err(const float* g, const D& fd, double floor) {
  double diff = 0, scale = floor;
  for (size_t i = 0; i < fd.size(); ++i) {
    diff = std::fmax(diff, std::fabs(g[i] - fd[i]));
    scale = std::fmax(scale, std::fabs(fd[i]));
  }
  return diff / scale;
}

struct Targets {
  std::vector<int32_t> classes;
  std::vector<float> teacher;
  double ceW = 1.0, klW = 0.7, T = 2.0;
};

// head in double on first-token rows h0 [B, H]: the loss of cls_head.h
static double head_loss_d(const D& h0, int B, int H, int L, WD& w, bool relu, const Targets& t) {
  double ce = 0, kl = 0;
  for (int b = 0; b < B; ++b) {
    D pooled(H), z(L);
    for (int j = 0; j < H; ++j) {
      double a = w["pooler_b"][j];
      for (int k = 0; k < H; ++k) a += h0[(size_t)b * H + k] * w["pooler_w"][(size_t)k * H + j];
      pooled[j] = relu ? (a > 0 ? a : 0) : std::tanh(a);
    }
    for (int j = 0; j < L; ++j) {
      double a = w["cls_b"][j];
      for (int k = 0; k < H; ++k) a += pooled[k] * w["cls_w"][(size_t)k * L + j];
      z[j] = a;
    }
    double mx = -1e300;
    for (double v : z) mx = std::fmax(mx, v);
    double s = 0;
    for (double v : z) s += std::exp(v - mx);
    if (!t.classes.empty()) ce += std::log(s) - (z[t.classes[b]] - mx);
    if (!t.teacher.empty()) {
      double ss = 0, st = 0;
      for (int j = 0; j < L; ++j) {
        ss += std::exp(z[j] / t.T);
        st += std::exp(t.teacher[(size_t)b * L + j] / t.T);
      }
      for (int j = 0; j < L; ++j) {
        const double lqt = t.teacher[(size_t)b * L + j] / t.T - std::log(st), lqs = z[j] / t.T - std::log(ss);
        kl += std::exp(lqt) * (lqt - lqs);
      }
    }
  }
  double loss = 0;
  if (!t.classes.empty()) loss += t.ceW * ce / B;
  if (!t.teacher.empty()) loss += t.klW * t.T * t.T * kl / B;
  return loss;
}

static Targets make_targets(Rng& r, int B, int L, bool ce, bool kl) {
  Targets t;
  for (int b = 0; b < B && ce; ++b) t.classes.push_back(r.below(L));
  for (int i = 0; i < B * L && kl; ++i) t.teacher.push_back(r.uniform(-3, 3));
  return t;
}

static ClsTargets view(const Targets& t) {
  ClsTargets c;
  c.classes = t.classes.empty() ? nullptr : t.classes.data();
  c.teacher = t.teacher.empty() ? nullptr : t.teacher.data();
  c.ceWeight = (float)t.ceW;
  c.klWeight = (float)t.klW;
  c.temperature = (float)t.T;
  return c;
}

static void test_head_alone(bool ce, bool kl, bool relu) {
  const int B = 3, H = 6, L = 4;
  Rng r(7 + ce + 2 * kl + 4 * relu);
  std::map<std::string, std::vector<float>> wf;
  auto rnd = [&](const char* n, size_t len, float s) {
    wf[n].resize(len);
    for (auto& x : wf[n]) x = r.uniform(-s, s);
  };
  rnd("pooler_w", H * H, 0.6f);
  rnd("pooler_b", H, 0.2f);
  rnd("cls_w", H * L, 0.8f);
  rnd("cls_b", L, 0.2f);
  std::vector<float> h0(B * H);
  for (auto& x : h0) x = r.uniform(-1.5f, 1.5f);
  const Targets t = make_targets(r, B, L, ce, kl);
  ClsHeadWeights w{wf["pooler_w"].data(), wf["pooler_b"].data(), wf["cls_w"].data(), wf["cls_b"].data(), H, L, relu};
  std::vector<float> pooled(B * H), logits(B * L), dh0(B * H);
  std::map<std::string, std::vector<float>> g;
  for (auto& kv : wf) g[kv.first].assign(kv.second.size(), 0.0f);
  cls_head_forward(w, h0.data(), B, pooled.data(), logits.data());
  double cev, klv;
  const double loss = cls_head_loss(view(t), B, L, logits.data(), &cev, &klv);
  cls_head_backward(w, h0.data(), pooled.data(), logits.data(), B,
                    ClsHeadGrads{g["pooler_w"].data(), g["pooler_b"].data(), g["cls_w"].data(), g["cls_b"].data()}, dh0.data());
  WD wd;
  for (auto& kv : wf) wd[kv.first] = D(kv.second.begin(), kv.second.end());
  D hd(h0.begin(), h0.end());
  auto f = [&] { return head_loss_d(hd, B, H, L, wd, relu, t); };
  const double ref = f();
  const char* what = ce && kl ? "CE+KL" : ce ? "CE" : "KL";
  CHECK(std::fabs(loss - ref) < 1e-6 * std::fmax(1.0, std::fabs(ref)), "head %s %s: loss %.9g vs double %.9g", what,
        relu ? "relu" : "tanh", loss, ref);
  double worst = grad_err(dh0.data(), numeric_grad(hd, f, 1e-6), 1e-6);
  for (auto& kv : wd) worst = std::fmax(worst, grad_err(g[kv.first].data(), numeric_grad(kv.second, f, 1e-6), 1e-6));
  CHECK(worst < 1e-4, "head %s %s: worst gradient rel err %g", what, relu ? "relu" : "tanh", worst);
  std::printf("cls head alone (%s, %s pooler): loss %.6f, worst rel err %.2e\n", what, relu ? "ReLU" : "tanh", loss, worst);
}

// ---------------------------------------------------------------- the full model in double

static D lin_d(const D& x, int M, int K, const D& w, const D& b, int N) {
  D y((size_t)M * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double a = b[j];
      for (int t = 0; t < K; ++t) a += x[(size_t)i * K + t] * w[(size_t)t * N + j];
      y[(size_t)i * N + j] = a;
    }
  return y;
}

static void ln_rows_d(D& x, int M, int H, const D& g, const D& b, double eps) {
  for (int i = 0; i < M; ++i) {
    double* r = &x[(size_t)i * H];
    double mean = 0, var = 0;
    for (int j = 0; j < H; ++j) mean += r[j];
    mean /= H;
    for (int j = 0; j < H; ++j) var += (r[j] - mean) * (r[j] - mean);
    var /= H;
    for (int j = 0; j < H; ++j) r[j] = (r[j] - mean) / std::sqrt(var + eps) * g[j] + b[j];
  }
}

struct Seqs {
  int B, S;
  std::vector<int32_t> ids, types, mask;
};

// final hidden state's first-token rows [B, H] of the post-LN BERT the trainer runs
static D first_tokens_d(const EncoderConfig& c, WD& w, const Seqs& s) {
  const int B = s.B, S = s.S, M = B * S, H = c.hidden, d = c.headSize, Wd = c.heads * d;
  D x((size_t)M * H);
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < H; ++j)
      x[(size_t)r * H + j] = w["word_emb"][(size_t)s.ids[r] * H + j] + w["pos_emb"][(size_t)(r % S) * H + j] +
                             w["type_emb"][(size_t)s.types[r] * H + j];
  ln_rows_d(x, M, H, w["emb_ln_g"], w["emb_ln_b"], c.embLnEps);
  for (int l = 0; l < c.layers; ++l) {
    const std::string n = "." + std::to_string(l);
    D q = lin_d(x, M, H, w["q_w" + n], w["q_b" + n], Wd), k = lin_d(x, M, H, w["k_w" + n], w["k_b" + n], Wd),
      v = lin_d(x, M, H, w["v_w" + n], w["v_b" + n], Wd);
    D ctx((size_t)M * Wd, 0.0);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < c.heads; ++h)
        for (int i = 0; i < S; ++i) {
          D sc(S);
          double mx = -1e300, sum = 0;
          for (int j = 0; j < S; ++j) {
            double a = 0;
            for (int t = 0; t < d; ++t) a += q[((size_t)b * S + i) * Wd + h * d + t] * k[((size_t)b * S + j) * Wd + h * d + t];
            sc[j] = a * c.scoreScale + (1.0 - s.mask[b * S + j]) * c.maskValue;
            mx = std::fmax(mx, sc[j]);
          }
          for (auto& e : sc) sum += (e = std::exp(e - mx));
          for (int j = 0; j < S; ++j)
            for (int t = 0; t < d; ++t) ctx[((size_t)b * S + i) * Wd + h * d + t] += sc[j] / sum * v[((size_t)b * S + j) * Wd + h * d + t];
        }
    D a = lin_d(ctx, M, Wd, w["o_w" + n], w["o_b" + n], H);
    for (size_t i = 0; i < a.size(); ++i) a[i] += x[i];
    ln_rows_d(a, M, H, w["ln1_g" + n], w["ln1_b" + n], c.lnEps[2 * l]);
    D f = lin_d(a, M, H, w["ffn_in_w" + n], w["ffn_in_b" + n], c.intermediate);
    for (auto& e : f) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
    D o = lin_d(f, M, c.intermediate, w["ffn_out_w" + n], w["ffn_out_b" + n], H);
    for (size_t i = 0; i < o.size(); ++i) o[i] += a[i];
    ln_rows_d(o, M, H, w["ln2_g" + n], w["ln2_b" + n], c.lnEps[2 * l + 1]);
    x = o;
  }
  D h0((size_t)B * H);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < H; ++j) h0[(size_t)b * H + j] = x[(size_t)b * S * H + j];
  return h0;
}

static EncoderConfig cls_config(int threads) {
  EncoderConfig c;
  c.layers = 2;
  c.heads = 2;
  c.headSize = 4;
  c.hidden = 8;
  c.intermediate = 12;
  c.vocab = 23;
  c.maxPositions = 8;
  c.typeVocab = 2;
  c.scoreScale = 0.5f;
  c.maskValue = -10000.0f;
  c.embLnEps = 1e-12f;
  c.lnEps.assign(4, 1e-12f);
  c.pooler = true;
  c.classifierLabels = 3;  // no MLM head: the classifier alone is trained
  c.threads = threads;
  return c;
}

static Seqs cls_seqs(const EncoderConfig& c, uint64_t seed) {
  Rng r(seed);
  Seqs s;
  s.B = 3;
  s.S = 5;
  for (int i = 0; i < s.B * s.S; ++i) {
    s.ids.push_back(r.below(c.vocab));
    s.types.push_back(r.below(2));
    s.mask.push_back(i % s.S >= s.S - (i / s.S) ? 0 : 1);  // sequence b ends with b padding tokens
  }
  return s;
}

static TrainBatch batch_view(const Seqs& s, const Targets& t) {
  TrainBatch b;
  b.ids = s.ids.data();
  b.types = s.types.data();
  b.mask = s.mask.data();
  b.batch = s.B;
  b.seq = s.S;
  b.classes = t.classes.empty() ? nullptr : t.classes.data();
  b.classTeacher = t.teacher.empty() ? nullptr : t.teacher.data();
  b.ceWeight = (float)t.ceW;
  b.klWeight = (float)t.klW;
  b.temperature = (float)t.T;
  return b;
}

static void test_full_step(const Kernels* k, bool ce, bool kl) {
  EncoderConfig c = cls_config(2);
  Weights wf = make_weights(c, 13);
  TrainOptions opt;
  Trainer tr(c, lookup(wf), k, opt);
  CHECK(tr.classifier(), "%s: a config with a classifier trains it", k->name);
  const Seqs s = cls_seqs(c, 3);
  Rng r(17);
  const Targets t = make_targets(r, s.B, c.classifierLabels, ce, kl);
  const StepResult res = tr.compute_gradients(batch_view(s, t));
  WD wd;
  for (auto& kv : wf) wd[kv.first] = D(kv.second.begin(), kv.second.end());
  auto f = [&] { return head_loss_d(first_tokens_d(c, wd, s), s.B, c.hidden, c.classifierLabels, wd, false, t); };
  const double ref = f();
  CHECK(std::fabs(res.loss - ref) < 1e-5 * std::fmax(1.0, std::fabs(ref)), "%s cls loss %.9g vs double %.9g", k->name, res.loss, ref);
  std::map<std::string, D> fds;
  double global = 0;
  for (const std::string& n : tr.weight_names()) {
    CHECK(n.rfind("mlm", 0) != 0 && n.rfind("decoder", 0) != 0, "%s: the classifier trainer has an MLM weight %s", k->name, n.c_str());
    fds[n] = numeric_grad(wd[n], f, 1e-5);
    for (double v : fds[n]) global = std::fmax(global, std::fabs(v));
  }
  double worst = 0;
  std::string worst_name;
  size_t checked = 0;
  for (const std::string& n : tr.weight_names()) {
    std::vector<float> g(tr.weight_size(n));
    tr.read_grad(n, g.data());
    const double e = grad_err(g.data(), fds[n], 1e-3 * global);
    CHECK(e < 1e-4, "%s cls grad %s: rel err %g", k->name, n.c_str(), e);
    if (e > worst) {
      worst = e;
      worst_name = n;
    }
    checked += g.size();
  }
  CHECK(checked > 0 && fds.count("pooler_w") && fds.count("cls_b") && fds.count("word_emb"), "%s: head and encoder weights checked", k->name);
  std::printf("%s full classifier step (%s): %zu parameter gradients, worst rel err %.2e (%s)\n", k->name,
              ce && kl ? "CE+KL" : ce ? "CE" : "KL", checked, worst, worst_name.c_str());
}

// Encoder and head at their own learning rates: lr 0 leaves the encoder, headLr 0 leaves the head.
static void test_head_lr_and_validation(const Kernels* k) {
  EncoderConfig c = cls_config(1);
  const Seqs s = cls_seqs(c, 5);
  Rng r(3);
  const Targets t = make_targets(r, s.B, c.classifierLabels, true, false);
  for (int which = 0; which < 2; ++which) {
    Weights wf = make_weights(c, 19);
    TrainOptions opt;
    opt.lr = which == 0 ? 0.0f : 1e-2f;
    opt.headLr = which == 0 ? 1e-2f : 0.0f;
    opt.totalSteps = 10;
    Trainer tr(c, lookup(wf), k, opt);
    tr.step(batch_view(s, t));
    CHECK(std::fabs(tr.head_lr_at(1) - opt.headLr * 0.9f) < 1e-9, "%s head lr schedule %g", k->name, tr.head_lr_at(1));
    for (const std::string& n : tr.weight_names()) {
      std::vector<float> p(tr.weight_size(n));
      tr.read_weight(n, p.data());
      const bool head = n.rfind("pooler", 0) == 0 || n.rfind("cls", 0) == 0;
      double moved = 0;
      for (size_t i = 0; i < p.size(); ++i) moved = std::fmax(moved, std::fabs(p[i] - wf[n][i]));
      const bool should = head == (which == 0);
      // the key bias's true gradient is 0 (softmax ignores a constant added to a row): it barely moves
      if (should && n.rfind("k_b", 0) == 0) continue;
      CHECK(should ? moved > 1e-4 : moved == 0.0, "%s lr %g headLr %g: %s moved by %g", k->name, opt.lr, opt.headLr, n.c_str(), moved);
    }
  }
  Weights wf = make_weights(c, 19);
  Trainer tr(c, lookup(wf), k, TrainOptions());
  auto expect = [&](const char* what, const TrainBatch& b, const char* needle) {
    std::string msg;
    try {
      tr.compute_gradients(b);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    CHECK(msg.find(needle) != std::string::npos, "%s %s: msg='%s'", k->name, what, msg.c_str());
  };
  Targets bad = t;
  bad.classes[1] = 3;
  expect("class out of range", batch_view(s, bad), "classes[1]");
  Targets none;
  expect("no loss term", batch_view(s, none), "classes");
  Targets nan = make_targets(r, s.B, c.classifierLabels, false, true);
  nan.teacher[4] = std::nanf("");
  expect("NaN teacher", batch_view(s, nan), "classTeacher[4]");
  EncoderConfig nopool = c;
  nopool.pooler = false;
  bool threw = false;
  try {
    Trainer t2(nopool, lookup(wf), k, TrainOptions());
  } catch (const ConfigError& e) {
    threw = std::string(e.what()).find("pooler") != std::string::npos;
  }
  CHECK(threw, "%s a classifier without a pooler is refused", k->name);
}

int main() {
  for (bool relu : {false, true}) {
    test_head_alone(true, false, relu);
    test_head_alone(false, true, relu);
    test_head_alone(true, true, relu);
  }
  for (const Kernels* k : check::all_tables()) {
    if (!train_kernels_matching(k)) continue;
    test_full_step(k, true, true);
    test_full_step(k, true, false);
    test_head_lr_and_validation(k);
  }
  return check::finish("test_cls_head");
}

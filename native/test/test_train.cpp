// Gradient checks of the training engine against float64 finite differences, on every ISA path this
// CPU supports: each backward kernel on its own, then every parameter's gradient of one full step of
// a tiny model (tied and untied decoder, MLM + KL loss), the AdamW update against a hand computation,
// the learning-rate schedule, clipping, thread-count independence and batch validation.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "check.h"
#include "random_model.h"
#include "train/attention.h"
#include "train/trainer.h"

using namespace bort;
using check::Rng;
using D = std::vector<double>;

static double gelu_d(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// worst |a - b| relative to the largest |b| (with a floor so all-zero references do not divide by 0)
static double rel_err(const std::vector<float>& a, const D& b) {
  double m = 0, s = 1e-12;
  for (size_t i = 0; i < b.size(); ++i) {
    s = std::fmax(s, std::fabs(b[i]));
    const double d = std::fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = d;
  }
  return m / s;
}

// central difference of f around x[i] in double
static D numeric_grad(std::vector<double>& x, const std::function<double()>& f, double h) {
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

static D ln_d(const D& x, const D& g, const D& b, double eps) {
  const size_t n = x.size();
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= n;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= n;
  D y(n);
  for (size_t i = 0; i < n; ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
  return y;
}

// ---------------------------------------------------------------- single ops

static void test_ops(const Kernels* k, const TrainKernels* tk) {
  Rng r(7);
  const char* isa = tk->name;
  // LayerNorm forward and backward, odd and vector-multiple widths
  for (int n : {5, 16, 37}) {
    D x(n), g(n), b(n), c(n);
    for (int i = 0; i < n; ++i) {
      x[i] = r.uniform(-2, 2);
      g[i] = r.uniform(0.5f, 1.5f);
      b[i] = r.uniform(-0.5f, 0.5f);
      c[i] = r.uniform(-1, 1);
    }
    std::vector<float> xf(x.begin(), x.end()), gf(g.begin(), g.end()), bf(b.begin(), b.end()), y(n), xhat(n), dx(n),
        dy(c.begin(), c.end());
    const float eps = 1e-5f;
    const float rstd = tk->layernorm_fwd(y.data(), xhat.data(), xf.data(), gf.data(), bf.data(), n, eps);
    D yd = ln_d(x, g, b, eps);
    CHECK(rel_err(y, yd) < 1e-5, "%s layernorm_fwd n=%d: rel err %g", isa, n, rel_err(y, yd));
    tk->layernorm_bwd(dx.data(), dy.data(), xhat.data(), gf.data(), rstd, n);
    D fd = numeric_grad(x, [&] {
      D yy = ln_d(x, g, b, eps);
      double s = 0;
      for (int i = 0; i < n; ++i) s += c[i] * yy[i];
      return s;
    }, 1e-6);
    CHECK(rel_err(dx, fd) < 1e-4, "%s layernorm_bwd n=%d: rel err %g", isa, n, rel_err(dx, fd));
  }
  // GELU forward and backward (derivative vs a central difference of the double GELU)
  {
    const int n = 203;
    std::vector<float> u(n), y(n), dy(n);
    D fd(n), yd(n);
    for (int i = 0; i < n; ++i) {
      u[i] = -6.0f + 12.0f * i / (n - 1);
      dy[i] = 1.0f;
      yd[i] = gelu_d(u[i]);
      fd[i] = (gelu_d((double)u[i] + 1e-6) - gelu_d((double)u[i] - 1e-6)) / 2e-6;
    }
    tk->gelu_fwd(y.data(), u.data(), n);
    tk->gelu_bwd(dy.data(), u.data(), n);
    double wf = 0, wb = 0;
    for (int i = 0; i < n; ++i) {
      wf = std::fmax(wf, std::fabs(y[i] - yd[i]));
      wb = std::fmax(wb, std::fabs(dy[i] - fd[i]));
    }
    CHECK(wf < 2e-6, "%s gelu_fwd: max err %g", isa, wf);
    CHECK(wb < 2e-6, "%s gelu_bwd: max err %g", isa, wb);
  }
  // axpy and sumsq
  {
    const int n = 1031;
    std::vector<float> x(n), y(n);
    D yd(n);
    double ss = 0;
    for (int i = 0; i < n; ++i) {
      x[i] = r.uniform(-1, 1);
      y[i] = r.uniform(-1, 1);
      yd[i] = y[i] + 0.75 * x[i];
      ss += (double)x[i] * x[i];
    }
    tk->axpy(y.data(), 0.75f, x.data(), n);
    CHECK(rel_err(y, yd) < 1e-6, "%s axpy", isa);
    CHECK(std::fabs(tk->sumsq(x.data(), n) - ss) < 1e-5 * ss, "%s sumsq %g vs %g", isa, tk->sumsq(x.data(), n), ss);
  }
  // attention of one head: forward (and its probabilities) against double, backward against finite
  // differences of f = sum c o ctx + sum e o P with respect to every q, k, v entry (e: a loss on the
  // probabilities, passed as dprobs); the last key masked out
  for (auto [S, d] : {std::pair<int, int>{1, 5}, {6, 5}, {19, 5}, {40, 37}}) {
    const size_t ld = 3 * d + 2, ldc = d + 1;
    const float scale = 1.0f / std::sqrt((float)d);
    std::vector<float> qkv(S * ld), madd(S, 0.0f), ctx(S * ldc), c(S * ldc), dq(S * ld, 0.0f), ws(attention_ws_floats(S, d, k));
    std::vector<float> probs(S * S), e(S * S);
    for (auto& v : qkv) v = r.uniform(-1.5f, 1.5f);
    for (auto& v : c) v = r.uniform(-1, 1);
    for (auto& v : e) v = r.uniform(-1, 1);
    if (S > 1) madd[S - 1] = -10000.0f;
    D q(qkv.begin(), qkv.end());
    D pd;  // the double probabilities of the last ref() call
    auto ref = [&](D& out) {
      out.assign(S * ldc, 0.0);
      pd.assign((size_t)S * S, 0.0);
      for (int i = 0; i < S; ++i) {
        D s(S);
        double mx = -1e300;
        for (int j = 0; j < S; ++j) {
          double a = 0;
          for (int t = 0; t < d; ++t) a += q[i * ld + t] * q[j * ld + d + t];
          s[j] = a * scale + madd[j];
          mx = std::fmax(mx, s[j]);
        }
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (int j = 0; j < S; ++j) {
          pd[(size_t)i * S + j] = s[j] / sum;
          for (int t = 0; t < d; ++t) out[i * ldc + t] += s[j] / sum * q[j * ld + 2 * d + t];
        }
      }
    };
    D cd;
    ref(cd);
    attention_forward(k, qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, ctx.data(), ldc, madd.data(), scale, S, d, ws.data(), probs.data());
    CHECK(rel_err(probs, pd) < 1e-5, "%s attention_forward S=%d probabilities: rel err %g", isa, S, rel_err(probs, pd));
    std::vector<float> ctx_used(S * d);
    D cd_used(S * d);
    for (int i = 0; i < S; ++i)
      for (int t = 0; t < d; ++t) {
        ctx_used[i * d + t] = ctx[i * ldc + t];
        cd_used[i * d + t] = cd[i * ldc + t];
      }
    CHECK(rel_err(ctx_used, cd_used) < 1e-5, "%s attention_forward S=%d: rel err %g", isa, S, rel_err(ctx_used, cd_used));
    attention_backward(k, tk, qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, c.data(), ldc, dq.data(), dq.data() + d, dq.data() + 2 * d,
                 ld, madd.data(), scale, S, d, ws.data(), e.data());
    D fd = numeric_grad(q, [&] {
      D o;
      ref(o);
      double s = 0;
      for (int i = 0; i < S; ++i)
        for (int t = 0; t < d; ++t) s += c[i * ldc + t] * o[i * ldc + t];
      for (int i = 0; i < S * S; ++i) s += e[i] * pd[i];
      return s;
    }, 1e-6);
    std::vector<float> got;
    D want;
    for (int i = 0; i < S; ++i)
      for (int t = 0; t < 3 * d; ++t) {
        got.push_back(dq[i * ld + t]);
        want.push_back(fd[i * ld + t]);
      }
    CHECK(rel_err(got, want) < 1e-4, "%s attention_backward S=%d (with dprobs): rel err %g", isa, S, rel_err(got, want));
    // without dprobs: the gradient of sum c o ctx alone
    attention_backward(k, tk, qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, c.data(), ldc, dq.data(), dq.data() + d, dq.data() + 2 * d,
                 ld, madd.data(), scale, S, d, ws.data(), nullptr);
    D fd0 = numeric_grad(q, [&] {
      D o;
      ref(o);
      double s = 0;
      for (int i = 0; i < S; ++i)
        for (int t = 0; t < d; ++t) s += c[i * ldc + t] * o[i * ldc + t];
      return s;
    }, 1e-6);
    got.clear();
    want.clear();
    for (int i = 0; i < S; ++i)
      for (int t = 0; t < 3 * d; ++t) {
        got.push_back(dq[i * ld + t]);
        want.push_back(fd0[i * ld + t]);
      }
    CHECK(rel_err(got, want) < 1e-4, "%s attention_backward S=%d: rel err %g", isa, S, rel_err(got, want));
  }
  // AdamW against a hand computation: p=1, g=0.5, m=v=0, t=1, lr=0.1, wd=0.01, b1=0.9, b2=0.999, eps=1e-8:
  // m=0.05, v=0.00025, mhat=0.5, vhat=0.25, p = 1*(1-0.001) - 0.1*0.5/(0.5+1e-8) = 0.899 (to 1e-8)
  {
    float p = 1.0f, m = 0.0f, v = 0.0f, g = 0.5f;
    tk->adamw(&p, &m, &v, &g, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - 0.9f, 1.0f - 0.999f, 1.0f);
    CHECK(std::fabs(m - 0.05f) < 1e-7 && std::fabs(v - 0.00025f) < 1e-4 * 0.00025,  // 1-0.999f is 0.99998713e-3 in float
           "%s adamw moments m=%g v=%g", isa, m, v);
    CHECK(std::fabs(p - 0.899f) < 2e-6, "%s adamw p=%.8f, hand 0.899", isa, p);
    // second step, g=-1 with clipping scale 0.5 (g' = -0.5): m = 0.9*0.05 - 0.05 = -0.005,
    // v = 0.999*0.00025 + 0.001*0.25 = 0.00049975, bc1 = 0.19, bc2 = 0.001999,
    // p = 0.899*(1-0.001) - 0.1*(-0.005/0.19)/(sqrt(0.00049975/0.001999)+1e-8)
    const double mh = -0.005 / 0.19, vh = 0.00049975 / (1 - 0.999 * 0.999);
    const double want = 0.899 * 0.999 - 0.1 * mh / (std::sqrt(vh) + 1e-8);
    float p2 = 0.899f;
    g = -1.0f;
    tk->adamw(&p2, &m, &v, &g, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - 0.81f, (float)(1 - 0.999 * 0.999), 0.5f);
    CHECK(std::fabs(p2 - want) < 2e-6, "%s adamw step 2 p=%.8f, hand %.8f", isa, p2, want);
  }
  (void)k;
}

// ---------------------------------------------------------------- the whole model in double

struct Batch {
  int B, S;
  std::vector<int32_t> ids, types, mask, pos, labels, route;
  std::vector<float> teacher;
  float alpha = 0.1f, beta = 0.9f, T = 2.0f;
  // intermediate terms (TrainBatch::match): Ht = the teacher rows' hidden size
  std::vector<int32_t> match;
  std::vector<float> tHidden, tAttn;
  float hw = 0.0f, aw = 0.0f;
  int Ht = 0;
  TrainBatch view() const {
    TrainBatch t;
    t.ids = ids.data();
    t.types = types.data();
    t.mask = mask.data();
    t.batch = B;
    t.seq = S;
    t.positions = pos.data();
    t.npos = (int)pos.size();
    t.labels = labels.empty() ? nullptr : labels.data();
    t.teacher = teacher.empty() ? nullptr : teacher.data();
    t.mlmWeight = alpha;
    t.klWeight = beta;
    t.temperature = T;
    t.route = route.empty() ? nullptr : route.data();
    t.nroute = (int)route.size();
    t.match = match.empty() ? nullptr : match.data();
    t.nmatch = (int)match.size();
    t.teacherHidden = tHidden.empty() ? nullptr : tHidden.data();
    t.teacherAttention = tAttn.empty() ? nullptr : tAttn.data();
    t.hiddenWeight = hw;
    t.attentionWeight = aw;
    return t;
  }
};

using WD = std::map<std::string, D>;

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
    D row(x.begin() + (size_t)i * H, x.begin() + (size_t)(i + 1) * H);
    D y = ln_d(row, g, b, eps);
    std::copy(y.begin(), y.end(), x.begin() + (size_t)i * H);
  }
}

// One stack layer of the double model: weight names with `pre` in front ("" or "pred.") and index l.
struct StackLayer {
  std::string pre;
  int l;
  LayerShape sh;
};

static std::vector<StackLayer> plain_stack(const EncoderConfig& c) {
  std::vector<StackLayer> out;
  for (int l = 0; l < c.layers; ++l) {
    LayerShape sh;
    sh.heads = c.heads;
    sh.headSize = c.headSize;
    sh.intermediate = c.intermediate;
    sh.scoreScale = c.scoreScale;
    sh.lnEps1 = c.lnEps[2 * l];
    sh.lnEps2 = c.lnEps[2 * l + 1];
    out.push_back({"", l, sh});
  }
  return out;
}

static double model_loss_d(const EncoderConfig& c, WD& w, bool tied, const Batch& bt, const std::vector<StackLayer>& stack);
static double model_loss_d(const EncoderConfig& c, WD& w, bool tied, const Batch& bt) {
  return model_loss_d(c, w, tied, bt, plain_stack(c));
}

static double model_loss_d(const EncoderConfig& c, WD& w, bool tied, const Batch& bt, const std::vector<StackLayer>& stack) {
  const int B = bt.B, S = bt.S, M = B * S, H = c.hidden, V = c.vocab;
  D x((size_t)M * H);
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < H; ++j)
      x[(size_t)r * H + j] = w["word_emb"][(size_t)bt.ids[r] * H + j] + w["pos_emb"][(size_t)(r % S) * H + j] +
                             (c.typeVocab ? w["type_emb"][(size_t)bt.types[r] * H + j] : 0.0);
  ln_rows_d(x, M, H, w["emb_ln_g"], w["emb_ln_b"], c.embLnEps);
  int real = 0;
  for (int i = 0; i < M; ++i) real += bt.mask[i] != 0;
  double hid = 0, att = 0;  // the intermediate terms, summed over the match entries
  int li = -1;
  for (const StackLayer& sl : stack) {
    ++li;
    int ent = -1;
    for (size_t i = 0; i < bt.match.size(); ++i)
      if (bt.match[i] == li) ent = (int)i;
    D pbar((size_t)B * S * S, 0.0);
    const std::string s = "." + std::to_string(sl.l);
    const int d = sl.sh.headSize, heads = sl.sh.heads, Wd = heads * d, I = sl.sh.intermediate;
    auto w_ = [&](const char* n) -> D& { return w[sl.pre + n + s]; };
    D q = lin_d(x, M, H, w_("q_w"), w_("q_b"), Wd), kk = lin_d(x, M, H, w_("k_w"), w_("k_b"), Wd),
      v = lin_d(x, M, H, w_("v_w"), w_("v_b"), Wd);
    D ctx((size_t)M * Wd, 0.0);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < S; ++i) {
          D sc(S);
          double mx = -1e300;
          for (int j = 0; j < S; ++j) {
            double a = 0;
            for (int t = 0; t < d; ++t) a += q[((size_t)b * S + i) * Wd + h * d + t] * kk[((size_t)b * S + j) * Wd + h * d + t];
            sc[j] = a * sl.sh.scoreScale + (1.0 - bt.mask[b * S + j]) * c.maskValue;
            mx = std::fmax(mx, sc[j]);
          }
          double sum = 0;
          for (auto& e : sc) sum += (e = std::exp(e - mx));
          for (int j = 0; j < S; ++j) {
            pbar[((size_t)b * S + i) * S + j] += sc[j] / sum / heads;
            for (int t = 0; t < d; ++t)
              ctx[((size_t)b * S + i) * Wd + h * d + t] += sc[j] / sum * v[((size_t)b * S + j) * Wd + h * d + t];
          }
        }
    if (ent >= 0 && !bt.tAttn.empty()) {
      double a = 0;
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < S; ++i) {
          if (!bt.mask[b * S + i]) continue;
          for (int j = 0; j < S; ++j) {
            const size_t o = ((size_t)ent * B * S + (size_t)b * S + i) * S + j;
            const double t = bt.tAttn[o];
            if (t > 0) a += t * (std::log(t) - std::log(pbar[((size_t)b * S + i) * S + j] + 1e-12));
          }
        }
      att += a / real;
    }
    D a = lin_d(ctx, M, Wd, w_("o_w"), w_("o_b"), H);
    for (size_t i = 0; i < a.size(); ++i) a[i] += x[i];
    ln_rows_d(a, M, H, w_("ln1_g"), w_("ln1_b"), sl.sh.lnEps1);
    D f = lin_d(a, M, H, w_("ffn_in_w"), w_("ffn_in_b"), I);
    for (auto& e : f) e = gelu_d(e);
    D o = lin_d(f, M, I, w_("ffn_out_w"), w_("ffn_out_b"), H);
    for (size_t i = 0; i < o.size(); ++i) o[i] += a[i];
    ln_rows_d(o, M, H, w_("ln2_g"), w_("ln2_b"), sl.sh.lnEps2);
    x = o;
    if (ent >= 0 && !bt.tHidden.empty()) {
      const int Ht = bt.Ht ? bt.Ht : H;
      D y = bt.Ht && bt.Ht != H ? lin_d(o, M, H, w["hidden_proj"], D(Ht, 0.0), Ht) : o;
      double e2 = 0;
      for (int r = 0; r < M; ++r) {
        if (!bt.mask[r]) continue;
        for (int j = 0; j < Ht; ++j) {
          const double e = y[(size_t)r * Ht + j] - bt.tHidden[((size_t)ent * M + r) * Ht + j];
          e2 += e * e;
        }
      }
      hid += e2 / ((double)real * Ht);
    }
  }
  const int P = (int)bt.pos.size();
  D hs((size_t)P * H);
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < H; ++j) hs[(size_t)p * H + j] = x[(size_t)bt.pos[p] * H + j];
  D t = lin_d(hs, P, H, w["mlm_w"], w["mlm_b"], H);
  for (auto& e : t) e = gelu_d(e);
  ln_rows_d(t, P, H, w["mlm_ln_g"], w["mlm_ln_b"], c.mlmLnEps);
  D dec;
  if (tied) {
    dec.resize((size_t)H * V);
    for (int vv = 0; vv < V; ++vv)
      for (int j = 0; j < H; ++j) dec[(size_t)j * V + vv] = w["word_emb"][(size_t)vv * H + j];
  }
  D z = lin_d(t, P, H, tied ? dec : w["decoder_w"], w["decoder_b"], V);
  double mlm = 0, kl = 0;
  for (int p = 0; p < P; ++p) {
    const double* zr = &z[(size_t)p * V];
    double mx = -1e300;
    for (int j = 0; j < V; ++j) mx = std::fmax(mx, zr[j]);
    double s = 0;
    for (int j = 0; j < V; ++j) s += std::exp(zr[j] - mx);
    if (!bt.labels.empty()) mlm += -(zr[bt.labels[p]] - mx - std::log(s));
    if (!bt.teacher.empty()) {
      const float* tr = &bt.teacher[(size_t)p * V];
      double ms = -1e300, mt = -1e300;
      for (int j = 0; j < V; ++j) {
        ms = std::fmax(ms, zr[j] / bt.T);
        mt = std::fmax(mt, tr[j] / bt.T);
      }
      double ss = 0, st = 0;
      for (int j = 0; j < V; ++j) {
        ss += std::exp(zr[j] / bt.T - ms);
        st += std::exp(tr[j] / bt.T - mt);
      }
      for (int j = 0; j < V; ++j) {
        const double lqt = tr[j] / bt.T - mt - std::log(st), lqs = zr[j] / bt.T - ms - std::log(ss);
        kl += std::exp(lqt) * (lqt - lqs);
      }
    }
  }
  double loss = 0;
  if (!bt.labels.empty()) loss += bt.alpha * mlm / P;
  if (!bt.teacher.empty()) loss += bt.beta * bt.T * bt.T * kl / P;
  if (!bt.tHidden.empty()) loss += bt.hw * hid / bt.match.size();
  if (!bt.tAttn.empty()) loss += bt.aw * att / bt.match.size();
  return loss;
}

static EncoderConfig tiny_config(int threads) {
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
  c.mlm = true;
  c.mlmLnEps = 1e-12f;
  c.threads = threads;
  return c;
}

static Batch tiny_batch(const EncoderConfig& c, uint64_t seed, bool labels, bool teacher) {
  Rng r(seed);
  Batch b;
  b.B = 2;
  b.S = 5;
  const int M = b.B * b.S;
  for (int i = 0; i < M; ++i) {
    b.ids.push_back(r.below(c.vocab));
    b.types.push_back(r.below(2));
    b.mask.push_back(i == M - 1 || i == M - 2 ? 0 : 1);  // sequence 1 ends with 2 padding tokens
  }
  b.pos = {1, 3, 6, 7, 3};  // a repeated position: its gradients add up
  for (size_t p = 0; p < b.pos.size(); ++p) {
    if (labels) b.labels.push_back(r.below(c.vocab));
  }
  if (teacher)
    for (size_t i = 0; i < b.pos.size() * c.vocab; ++i) b.teacher.push_back(r.uniform(-4, 4));
  return b;
}

static void test_full_gradients(const Kernels* k, bool tied, bool labels, bool teacher) {
  EncoderConfig c = tiny_config(1);
  Weights wf = make_weights(c, 11);
  if (tied) wf.erase("decoder_w");
  TrainOptions opt;
  opt.tiedDecoder = tied;
  Trainer tr(c, lookup(wf), k, opt);
  Batch bt = tiny_batch(c, 5, labels, teacher);
  const StepResult res = tr.compute_gradients(bt.view());
  WD wd;
  for (auto& kv : wf) wd[kv.first] = D(kv.second.begin(), kv.second.end());
  const double ref = model_loss_d(c, wd, tied, bt);
  CHECK(std::fabs(res.loss - ref) < 1e-5 * std::fmax(1.0, std::fabs(ref)), "%s loss %.9g vs double %.9g", k->name, res.loss, ref);
  // central differences of the double model for every parameter, then each tensor's gradient against
  // them: max |g - fd| over the tensor, relative to max(|fd| over the tensor, 1e-3 * |fd| over all).
  // The floor matters for tensors whose true gradient is exactly 0 (the key bias: softmax does not
  // change when one constant is added to all of a row's scores), where fd is rounding noise.
  std::map<std::string, D> fds;
  double global = 0;
  for (const std::string& n : tr.weight_names()) {
    fds[n] = numeric_grad(wd[n], [&] { return model_loss_d(c, wd, tied, bt); }, 1e-5);
    for (double v : fds[n]) global = std::fmax(global, std::fabs(v));
  }
  double worst = 0;
  std::string worst_name;
  size_t checked = 0;
  for (const std::string& n : tr.weight_names()) {
    std::vector<float> g(tr.weight_size(n));
    tr.read_grad(n, g.data());
    const D& fd = fds[n];
    double diff = 0, scale = 1e-3 * global;
    for (size_t i = 0; i < g.size(); ++i) {
      diff = std::fmax(diff, std::fabs(g[i] - fd[i]));
      scale = std::fmax(scale, std::fabs(fd[i]));
    }
    const double e = diff / scale;
    CHECK(e < 1e-4, "%s %s%s grad %s: rel err %g", k->name, tied ? "tied" : "untied", teacher ? "+kl" : "", n.c_str(), e);
    if (e > worst) {
      worst = e;
      worst_name = n;
    }
    checked += g.size();
  }
  std::printf("%s full step (%s decoder, %s): %zu parameter gradients, worst rel err %.2e (%s)\n", k->name,
              tied ? "tied" : "untied", labels && teacher ? "MLM+KL" : labels ? "MLM" : "KL", checked, worst, worst_name.c_str());
}

// The intermediate distillation terms (hidden states, with and without the learned projection, and
// head-averaged attention maps) on top of the KL term: the loss against the double model, and every
// parameter's gradient (the projection's included) against its finite differences. The match pairs the
// route's layers out of order; sequence 1 ends with padding, whose rows and keys must not count.
static void test_intermediate_gradients(const Kernels* k, bool project) {
  EncoderConfig c = tiny_config(2);
  Weights wf = make_weights(c, 17);
  wf.erase("decoder_w");
  TrainOptions opt;
  const int H = c.hidden, Ht = project ? 6 : H;
  if (project) {
    opt.hiddenTarget = Ht;
    Rng r(23);
    std::vector<float> pw((size_t)H * Ht);
    for (auto& v : pw) v = r.uniform(-0.5f, 0.5f);
    wf["hidden_proj"] = pw;
  }
  Trainer tr(c, lookup(wf), k, opt);
  Batch bt = tiny_batch(c, 9, false, true);
  const int B = bt.B, S = bt.S, M = B * S;
  bt.match = {1, 0};
  bt.hw = 0.7f;
  bt.aw = 0.3f;
  bt.Ht = project ? Ht : 0;
  Rng r(29);
  for (size_t i = 0; i < bt.match.size() * M * Ht; ++i) bt.tHidden.push_back(r.uniform(-1.5f, 1.5f));
  for (size_t e = 0; e < bt.match.size(); ++e)
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < S; ++i) {
        std::vector<float> row(S, 0.0f);
        float sum = 0;
        for (int j = 0; j < S; ++j)
          if (bt.mask[b * S + j]) sum += (row[j] = r.uniform(0.05f, 1.0f));
        for (int j = 0; j < S; ++j) bt.tAttn.push_back(row[j] / sum);
      }
  const StepResult res = tr.compute_gradients(bt.view());
  WD wd;
  for (auto& kv : wf) wd[kv.first] = D(kv.second.begin(), kv.second.end());
  const double ref = model_loss_d(c, wd, true, bt);
  CHECK(std::fabs(res.loss - ref) < 1e-5 * std::fmax(1.0, std::fabs(ref)), "%s intermediate loss %.9g vs double %.9g", k->name, res.loss, ref);
  CHECK(res.hidden > 0 && res.attention > 0, "%s intermediate terms reported: hidden %g attention %g", k->name, res.hidden, res.attention);
  // the terms on their own: the KL part of the loss is what remains
  Batch kl_only = bt;
  kl_only.match.clear();
  kl_only.tHidden.clear();
  kl_only.tAttn.clear();
  const double ref_kl = model_loss_d(c, wd, true, kl_only);
  CHECK(std::fabs(res.loss - (ref_kl + bt.hw * res.hidden + bt.aw * res.attention)) < 1e-5 * std::fmax(1.0, std::fabs(ref)),
        "%s loss = KL + weighted terms", k->name);
  std::map<std::string, D> fds;
  double global = 0;
  for (const std::string& n : tr.weight_names()) {
    fds[n] = numeric_grad(wd[n], [&] { return model_loss_d(c, wd, true, bt); }, 1e-5);
    for (double v : fds[n]) global = std::fmax(global, std::fabs(v));
  }
  double worst = 0;
  std::string worst_name;
  for (const std::string& n : tr.weight_names()) {
    std::vector<float> g(tr.weight_size(n));
    tr.read_grad(n, g.data());
    const D& fd = fds[n];
    double diff = 0, scale = 1e-3 * global;
    for (size_t i = 0; i < g.size(); ++i) {
      diff = std::fmax(diff, std::fabs(g[i] - fd[i]));
      scale = std::fmax(scale, std::fabs(fd[i]));
    }
    const double e = diff / scale;
    CHECK(e < 1e-4, "%s intermediate%s grad %s: rel err %g", k->name, project ? "+proj" : "", n.c_str(), e);
    if (e > worst) {
      worst = e;
      worst_name = n;
    }
  }
  CHECK(!project || fds.count("hidden_proj"), "%s the projection is a trained weight", k->name);
  auto expect = [&](const char* what, const Batch& b, const char* needle) {
    std::string msg;
    try {
      tr.compute_gradients(b.view());
    } catch (const std::exception& e) {
      msg = e.what();
    }
    CHECK(msg.find(needle) != std::string::npos, "%s %s: msg='%s'", k->name, what, msg.c_str());
  };
  Batch bad = bt;
  bad.match = {1, 2};
  expect("match past the route", bad, "match[1] = 2");
  bad.match = {0, 0};
  expect("match twice", bad, "a second time");
  bad = bt;
  bad.tAttn[3] = 1.5f;
  expect("attention not a probability", bad, "teacherAttention[3]");
  bad = bt;
  bad.tHidden[5] = NAN;
  expect("hidden not finite", bad, "teacherHidden[5]");
  bad = bt;
  bad.match.clear();
  expect("terms without match", bad, "need match");
  std::printf("%s intermediate terms (hidden%s + attention maps): worst rel err %.2e (%s)\n", k->name, project ? " projected" : "", worst,
              worst_name.c_str());
}

// One AdamW step of the trainer against the update computed by hand from its own gradients (read after
// the step: the update does not touch them), with clipping engaged, decay only on matrices/tables.
static void test_step(const Kernels* k) {
  EncoderConfig c = tiny_config(2);
  Weights wf = make_weights(c, 3);
  wf.erase("decoder_w");
  TrainOptions opt;
  opt.lr = 1e-2f;
  opt.weightDecay = 0.1f;
  opt.clipNorm = 0.05f;  // small enough to clip
  opt.warmupSteps = 2;
  opt.totalSteps = 10;
  opt.eps = 1e-6f;
  Trainer tr(c, lookup(wf), k, opt);
  Batch bt = tiny_batch(c, 9, true, true);
  const StepResult res = tr.step(bt.view());
  CHECK(res.step == 1 && std::fabs(res.lr - 5e-3f) < 1e-9, "%s step 1: step %lld lr %g (want 5e-3)", k->name, (long long)res.step, res.lr);
  CHECK(res.gradNorm > opt.clipNorm, "%s grad norm %g should exceed the clip %g in this test", k->name, res.gradNorm, opt.clipNorm);
  const double scale = opt.clipNorm / (res.gradNorm + 1e-6);
  double worst = 0;
  for (const std::string& n : tr.weight_names()) {
    const size_t len = tr.weight_size(n);
    std::vector<float> g(len), p(len);
    tr.read_grad(n, g.data());
    tr.read_weight(n, p.data());
    const bool decay = n.find("_w") != std::string::npos || n.find("_emb") != std::string::npos;
    const double wdc = decay ? opt.weightDecay : 0.0;
    for (size_t i = 0; i < len; ++i) {
      const double gg = g[i] * scale;
      const double m = 0.1 * gg, v = 0.001 * gg * gg;
      const double mh = m / 0.1, vh = v / 0.001;
      const double want = wf[n][i] * (1 - 5e-3 * wdc) - 5e-3 * mh / (std::sqrt(vh) + 1e-6);
      worst = std::fmax(worst, std::fabs(p[i] - want));
    }
  }
  CHECK(worst < 1e-6, "%s AdamW step vs hand: max diff %g", k->name, worst);
  // schedule: warm-up 2 then linear decay to 0 at step 10
  CHECK(std::fabs(tr.lr_at(2) - 1e-2f) < 1e-9 && std::fabs(tr.lr_at(6) - 5e-3f) < 1e-9 && tr.lr_at(10) == 0.0f &&
            tr.lr_at(12) == 0.0f,
        "%s schedule %g %g %g", k->name, tr.lr_at(2), tr.lr_at(6), tr.lr_at(10));
  // training on one batch lowers its loss
  TrainOptions o2;
  o2.lr = 3e-3f;
  o2.totalSteps = 40;
  o2.warmupSteps = 4;
  Weights w2 = make_weights(c, 3);
  w2.erase("decoder_w");
  Trainer t2(c, lookup(w2), k, o2);
  const double first = t2.step(bt.view()).loss;
  double last = first;
  for (int i = 1; i < 40; ++i) last = t2.step(bt.view()).loss;
  CHECK(last < 0.7 * first, "%s 40 steps on one batch: loss %g -> %g", k->name, first, last);
}

static void test_threads_and_validation(const Kernels* k) {
  EncoderConfig c1 = tiny_config(1), c3 = tiny_config(3);
  Weights wf = make_weights(c1, 21);
  wf.erase("decoder_w");
  TrainOptions opt;
  Trainer a(c1, lookup(wf), k, opt), b(c3, lookup(wf), k, opt);
  Batch bt = tiny_batch(c1, 4, true, true);
  const double la = a.compute_gradients(bt.view()).loss, lb = b.compute_gradients(bt.view()).loss;
  double worst = 0;
  for (const std::string& n : a.weight_names()) {
    std::vector<float> ga(a.weight_size(n)), gb(a.weight_size(n));
    a.read_grad(n, ga.data());
    b.read_grad(n, gb.data());
    for (size_t i = 0; i < ga.size(); ++i) worst = std::fmax(worst, std::fabs(ga[i] - gb[i]));
  }
  CHECK(la == lb && worst == 0.0, "%s 1 vs 3 threads: loss %g vs %g, grad diff %g", k->name, la, lb, worst);

  auto expect = [&](const char* what, const TrainBatch& tb, const char* needle) {
    bool threw = false;
    std::string msg;
    try {
      a.compute_gradients(tb);
    } catch (const std::exception& e) {
      threw = true;
      msg = e.what();
    }
    CHECK(threw && msg.find(needle) != std::string::npos, "%s %s: threw=%d msg='%s'", k->name, what, threw, msg.c_str());
  };
  Batch bad = bt;
  bad.ids[3] = c1.vocab;
  expect("id out of range", bad.view(), "ids[3]");
  bad = bt;
  bad.pos[0] = 10;
  expect("position out of range", bad.view(), "positions[0]");
  bad = bt;
  bad.labels[2] = -1;
  expect("label out of range", bad.view(), "labels[2]");
  bad = bt;
  bad.teacher[7] = std::nanf("");
  expect("NaN teacher", bad.view(), "teacher[7]");
  TrainBatch none = bt.view();
  none.labels = nullptr;
  none.teacher = nullptr;
  expect("no loss term", none, "labels");
  Weights missing = wf;
  missing.erase("ffn_in_b.1");
  bool threw = false;
  try {
    Trainer t(c1, lookup(missing), k, opt);
  } catch (const ConfigError& e) {
    threw = std::string(e.what()).find("ffn_in_b.1") != std::string::npos;
  }
  CHECK(threw, "%s a missing weight is named", k->name);
}

// ---------------------------------------------------------------- module replacing (routes)

// Predecessor layers of their own shape (3 heads of 2, FFN 10, another score scale and epsilons).
static std::vector<LayerShape> pred_shapes(int n) {
  std::vector<LayerShape> out(n);
  for (auto& sh : out) {
    sh.heads = 3;
    sh.headSize = 2;
    sh.intermediate = 10;
    sh.scoreScale = 0.7f;
    sh.lnEps1 = 1e-5f;
    sh.lnEps2 = 1e-6f;
  }
  return out;
}

static Weights pred_weights(const EncoderConfig& c, int n, uint64_t seed) {
  EncoderConfig pc = c;
  pc.layers = n;
  pc.heads = 3;
  pc.headSize = 2;
  pc.intermediate = 10;
  pc.mlm = false;
  Weights all = make_weights(pc, seed), out;
  for (auto& kv : all)
    if (kv.first.find('.') != std::string::npos) out["pred." + kv.first] = kv.second;  // layer weights only
  return out;
}

// Every trainable gradient of a mixed route (trainable 0, frozen predecessor 1, trainable 1) against
// central differences of the double model of that route; with the embeddings and head frozen
// (sharedFrozenUntil), also a route that starts with a predecessor (the backward stops above it):
// the frozen parts' gradients must be exactly 0.
static void test_route_gradients(const Kernels* k, bool sharedFrozen) {
  EncoderConfig c = tiny_config(2);
  Weights wf = make_weights(c, 13);
  wf.erase("decoder_w");
  const int NP = 3;
  Weights pw = pred_weights(c, NP, 17);
  for (auto& kv : pw) wf[kv.first] = kv.second;
  TrainOptions opt;
  opt.sharedFrozenUntil = sharedFrozen ? 5 : 0;
  const std::vector<LayerShape> ps = pred_shapes(NP);
  Trainer tr(c, lookup(wf), k, opt, ps);
  CHECK(tr.predecessor_count() == NP && tr.predecessor_names().size() == 16 * NP,
        "%s predecessors: %d layers, %zu names", k->name, tr.predecessor_count(), tr.predecessor_names().size());
  Batch bt = tiny_batch(c, 6, true, true);
  bt.route = sharedFrozen ? std::vector<int32_t>{c.layers + 2, 1, c.layers + 0} : std::vector<int32_t>{0, c.layers + 1, 1};
  std::vector<StackLayer> stack;
  const std::vector<StackLayer> plain = plain_stack(c);
  for (int r : bt.route) stack.push_back(r < c.layers ? plain[r] : StackLayer{"pred.", r - c.layers, ps[r - c.layers]});
  const StepResult res = tr.compute_gradients(bt.view());
  WD wd;
  for (auto& kv : wf) wd[kv.first] = D(kv.second.begin(), kv.second.end());
  const double ref = model_loss_d(c, wd, true, bt, stack);
  CHECK(std::fabs(res.loss - ref) < 1e-5 * std::fmax(1.0, std::fabs(ref)), "%s route loss %.9g vs double %.9g", k->name, res.loss, ref);
  auto on_route = [&](const std::string& n) {
    const size_t dot = n.rfind('.');
    if (dot == std::string::npos) return !sharedFrozen;  // embeddings and head
    const int l = std::atoi(n.c_str() + dot + 1);
    for (int r : bt.route)
      if (r == l) return true;
    return false;
  };
  std::map<std::string, D> fds;
  double global = 0;
  for (const std::string& n : tr.weight_names()) {
    if (!on_route(n)) continue;
    fds[n] = numeric_grad(wd[n], [&] { return model_loss_d(c, wd, true, bt, stack); }, 1e-5);
    for (double v : fds[n]) global = std::fmax(global, std::fabs(v));
  }
  double worst = 0;
  size_t checked = 0, zeros = 0;
  for (const std::string& n : tr.weight_names()) {
    std::vector<float> g(tr.weight_size(n));
    tr.read_grad(n, g.data());
    if (!on_route(n)) {
      // off the route, or frozen: no gradient at all
      bool all0 = true;
      for (float v : g) all0 = all0 && v == 0.0f;
      CHECK(all0, "%s route: %s is off the trained part but has a gradient", k->name, n.c_str());
      zeros += g.size();
      continue;
    }
    const D& fd = fds[n];
    double diff = 0, scale = 1e-3 * global;
    for (size_t i = 0; i < g.size(); ++i) {
      diff = std::fmax(diff, std::fabs(g[i] - fd[i]));
      scale = std::fmax(scale, std::fabs(fd[i]));
    }
    const double e = diff / scale;
    CHECK(e < 1e-4, "%s route%s grad %s: rel err %g", k->name, sharedFrozen ? " (shared frozen)" : "", n.c_str(), e);
    worst = std::fmax(worst, e);
    checked += g.size();
  }
  // a frozen predecessor has no gradient to read
  bool threw = false;
  try {
    std::vector<float> g(tr.weight_size("pred.q_w.1"));
    tr.read_grad("pred.q_w.1", g.data());
  } catch (const ConfigError&) {
    threw = true;
  }
  CHECK(threw, "%s reading a predecessor's gradient should throw", k->name);
  std::printf("%s route %s: %zu gradients against float64 differences (worst rel err %.2e), %zu exactly 0\n", k->name,
              sharedFrozen ? "[pred 2, layer 1, pred 0], shared frozen" : "[layer 0, pred 1, layer 1]", checked, worst, zeros);
}

// One update on a mixed route: predecessors (and, while frozen, embeddings and head) keep their values
// bit for bit; the trained layers move as AdamW computes from their gradients; bad routes are refused.
static void test_route_step(const Kernels* k) {
  EncoderConfig c = tiny_config(2);
  Weights wf = make_weights(c, 23);
  wf.erase("decoder_w");
  const int NP = 2;
  Weights pw = pred_weights(c, NP, 29);
  for (auto& kv : pw) wf[kv.first] = kv.second;
  TrainOptions opt;
  opt.lr = 1e-2f;
  opt.totalSteps = 10;
  opt.clipNorm = 0;
  opt.sharedFrozenUntil = 1;
  Trainer tr(c, lookup(wf), k, opt, pred_shapes(NP));
  Batch bt = tiny_batch(c, 8, true, true);
  bt.route = {c.layers + 0, 0, c.layers + 1, 1};
  tr.step(bt.view());
  auto same = [&](const std::string& n) {
    std::vector<float> p(tr.weight_size(n));
    tr.read_weight(n, p.data());
    return std::memcmp(p.data(), wf[n].data(), p.size() * sizeof(float)) == 0;
  };
  for (const std::string& n : tr.predecessor_names()) CHECK(same(n), "%s predecessor %s changed in a step", k->name, n.c_str());
  for (const char* n : {"word_emb", "emb_ln_g", "mlm_w", "decoder_b"}) CHECK(same(n), "%s frozen %s changed in step 1", k->name, n);
  // the trained layers: AdamW's first update from their own gradients (no clipping, decay 0.01)
  double worst = 0;
  for (const std::string& n : tr.weight_names()) {
    if (n.find('.') == std::string::npos) continue;
    std::vector<float> g(tr.weight_size(n)), p(tr.weight_size(n));
    tr.read_grad(n, g.data());
    tr.read_weight(n, p.data());
    const bool decay = n.find("_w") != std::string::npos;
    for (size_t i = 0; i < g.size(); ++i) {
      const double lr = 1e-2 * 1.0 * (10 - 1) / 10;  // no warm-up: update 1 at lr * (total - 1) / total
      const double want = wf[n][i] * (1 - lr * (decay ? 0.01 : 0.0)) - lr * g[i] / (std::fabs((double)g[i]) + 1e-6);
      worst = std::fmax(worst, std::fabs(p[i] - want));
    }
  }
  CHECK(worst < 1e-6, "%s route step: trained layers vs AdamW by hand, max diff %g", k->name, worst);
  // step 2: the embeddings thaw and take a first Adam step of their own (bias correction from 1)
  std::vector<float> word0(wf["word_emb"]);
  tr.step(bt.view());
  std::vector<float> g(tr.weight_size("word_emb")), p(g.size());
  tr.read_grad("word_emb", g.data());
  tr.read_weight("word_emb", p.data());
  double worst2 = 0;
  bool moved = false;
  for (size_t i = 0; i < g.size(); ++i) {
    const double lr = 1e-2 * (10 - 2) / 10.0;
    const double want = word0[i] * (1 - lr * 0.01) - (g[i] != 0 ? lr * g[i] / (std::fabs((double)g[i]) + 1e-6) : 0.0);
    worst2 = std::fmax(worst2, std::fabs(p[i] - want));
    moved = moved || p[i] != word0[i];
  }
  CHECK(moved && worst2 < 1e-6, "%s thawed word_emb: first own Adam step vs hand, max diff %g", k->name, worst2);
  for (const std::string& n : tr.predecessor_names()) CHECK(same(n), "%s predecessor %s changed in step 2", k->name, n.c_str());
  // step 3 runs layer 1 only: layer 0 has no gradient and is left alone (no decay, no moment update)
  std::vector<float> l0(tr.weight_size("ffn_in_w.0")), l0b(l0.size()), l1(tr.weight_size("ffn_in_w.1")), l1b(l1.size());
  tr.read_weight("ffn_in_w.0", l0.data());
  tr.read_weight("ffn_in_w.1", l1.data());
  Batch b3 = bt;
  b3.route = {c.layers + 1, 1};
  tr.step(b3.view());
  tr.read_weight("ffn_in_w.0", l0b.data());
  tr.read_weight("ffn_in_w.1", l1b.data());
  CHECK(l0 == l0b && l1 != l1b, "%s a layer off the route must stay as it was, one on it must move", k->name);

  auto refused = [&](std::vector<int32_t> route, const char* needle) {
    Batch b2 = bt;
    b2.route = route;
    std::string msg;
    try {
      tr.compute_gradients(b2.view());
    } catch (const std::exception& e) {
      msg = e.what();
    }
    CHECK(msg.find(needle) != std::string::npos, "%s route refusal: wanted '%s', got '%s'", k->name, needle, msg.c_str());
  };
  refused({0, 4}, "route[1] = 4 is outside the layer stack [0, 4)");
  refused({0, 2, 0}, "route[2] = 0 runs a layer a second time");
  refused({-1}, "route[0] = -1 is outside");
}

int main() {
  for (const Kernels* k : check::all_tables()) {
    const TrainKernels* tk = train_kernels_matching(k);
    CHECK(tk && !std::strcmp(tk->name, k->name), "%s has no matching training table", k->name);
    if (!tk) continue;
    test_ops(k, tk);
    test_full_gradients(k, true, true, true);
    test_full_gradients(k, false, true, true);
    test_full_gradients(k, true, true, false);
    test_full_gradients(k, true, false, true);
    test_intermediate_gradients(k, false);
    test_intermediate_gradients(k, true);
    test_step(k);
    test_threads_and_validation(k);
    test_route_gradients(k, false);
    test_route_gradients(k, true);
    test_route_step(k);
  }
  return check::finish("test_train");
}

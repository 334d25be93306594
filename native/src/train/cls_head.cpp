#include "cls_head.h"

#include <cmath>
#include <vector>

namespace bort {

void cls_head_forward(const ClsHeadWeights& w, const float* h0, int B, float* pooled, float* logits) {
  const int H = w.hidden, L = w.labels;
  std::vector<double> acc((size_t)(H > L ? H : L));
  for (int b = 0; b < B; ++b) {
    const float* x = h0 + (size_t)b * H;
    for (int j = 0; j < H; ++j) acc[j] = w.poolB[j];
    for (int k = 0; k < H; ++k) {
      const double xk = x[k];
      const float* row = w.poolW + (size_t)k * H;
      for (int j = 0; j < H; ++j) acc[j] += xk * row[j];
    }
    float* p = pooled + (size_t)b * H;
    for (int j = 0; j < H; ++j) p[j] = w.relu ? (float)(acc[j] > 0 ? acc[j] : 0.0) : (float)std::tanh(acc[j]);
    for (int j = 0; j < L; ++j) acc[j] = w.clsB[j];
    for (int k = 0; k < H; ++k) {
      const double pk = p[k];
      const float* row = w.clsW + (size_t)k * L;
      for (int j = 0; j < L; ++j) acc[j] += pk * row[j];
    }
    for (int j = 0; j < L; ++j) logits[(size_t)b * L + j] = (float)acc[j];
  }
}

double cls_head_loss(const ClsTargets& t, int B, int L, float* logits, double* ce_out, double* kl_out) {
  const double T = t.temperature;
  const double a_ce = t.classes ? t.ceWeight : 0.0, a_kl = t.teacher ? t.klWeight : 0.0;
  std::vector<double> p(L), qs(L), qt(L);
  double ce = 0, kl = 0;
  for (int b = 0; b < B; ++b) {
    float* z = logits + (size_t)b * L;
    // (plain loops: GCC 12's aarch64 vectorizer fails on fused max/exp-sum reductions here)
    double zmax = z[0];
    for (int j = 1; j < L; ++j)
      if (z[j] > zmax) zmax = z[j];
    for (int j = 0; j < L; ++j) {
      p[j] = std::exp((double)z[j] - zmax);
      qs[j] = std::exp(((double)z[j] - zmax) / T);
    }
    double s1 = 0, s2 = 0;
    for (int j = 0; j < L; ++j) s1 += p[j];
    for (int j = 0; j < L; ++j) s2 += qs[j];
    if (t.classes) ce += std::log(s1) - ((double)z[t.classes[b]] - zmax);
    double s3 = 1;
    if (t.teacher) {
      const float* tz = t.teacher + (size_t)b * L;
      double tmax = tz[0];
      for (int j = 1; j < L; ++j)
        if (tz[j] > tmax) tmax = tz[j];
      for (int j = 0; j < L; ++j) qt[j] = std::exp(((double)tz[j] - tmax) / T);
      s3 = 0;
      for (int j = 0; j < L; ++j) s3 += qt[j];
      const double ls2 = std::log(s2), ls3 = std::log(s3);
      for (int j = 0; j < L; ++j) {
        const double lqt = ((double)tz[j] - tmax) / T - ls3, lqs = ((double)z[j] - zmax) / T - ls2;
        kl += qt[j] / s3 * (lqt - lqs);
      }
    }
    // d/dz: a_ce/B (p - onehot) + a_kl T/B (qs - qt)
    for (int j = 0; j < L; ++j) {
      double g = a_ce / B * (p[j] / s1);
      if (t.teacher) g += a_kl * T / B * (qs[j] / s2 - qt[j] / s3);
      z[j] = (float)g;
    }
    if (t.classes) z[t.classes[b]] = (float)((double)z[t.classes[b]] - a_ce / B);
  }
  ce /= B;
  kl /= B;
  *ce_out = ce;
  *kl_out = kl;
  return a_ce * ce + a_kl * T * T * kl;
}

void cls_head_backward(const ClsHeadWeights& w, const float* h0, const float* pooled, const float* dlogits, int B,
                       const ClsHeadGrads& g, float* dh0) {
  const int H = w.hidden, L = w.labels;
  std::vector<double> dpre((size_t)B * H);
  // classifier: dclsW = pooled^T dlogits, dclsB = colsum dlogits, dpooled = dlogits clsW^T
  for (int k = 0; k < H; ++k)
    for (int j = 0; j < L; ++j) {
      double s = 0;
      for (int b = 0; b < B; ++b) s += (double)pooled[(size_t)b * H + k] * dlogits[(size_t)b * L + j];
      g.clsW[(size_t)k * L + j] += (float)s;
    }
  for (int j = 0; j < L; ++j) {
    double s = 0;
    for (int b = 0; b < B; ++b) s += dlogits[(size_t)b * L + j];
    g.clsB[j] += (float)s;
  }
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < H; ++k) {
      double s = 0;
      for (int j = 0; j < L; ++j) s += (double)dlogits[(size_t)b * L + j] * w.clsW[(size_t)k * L + j];
      const double y = pooled[(size_t)b * H + k];
      // through the activation: tanh' = 1 - y^2, ReLU' = [y > 0]
      dpre[(size_t)b * H + k] = s * (w.relu ? (y > 0 ? 1.0 : 0.0) : 1.0 - y * y);
    }
  // pooler: dpoolW = h0^T dpre, dpoolB = colsum dpre, dh0 = dpre poolW^T
  for (int k = 0; k < H; ++k)
    for (int j = 0; j < H; ++j) {
      double s = 0;
      for (int b = 0; b < B; ++b) s += (double)h0[(size_t)b * H + k] * dpre[(size_t)b * H + j];
      g.poolW[(size_t)k * H + j] += (float)s;
    }
  for (int j = 0; j < H; ++j) {
    double s = 0;
    for (int b = 0; b < B; ++b) s += dpre[(size_t)b * H + j];
    g.poolB[j] += (float)s;
  }
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < H; ++k) {
      double s = 0;
      const float* row = w.poolW + (size_t)k * H;
      for (int j = 0; j < H; ++j) s += dpre[(size_t)b * H + j] * row[j];
      dh0[(size_t)b * H + k] = (float)s;
    }
}

}  // namespace bort

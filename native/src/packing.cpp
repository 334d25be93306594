#include "packing.h"

#include <cmath>
#include <cstring>
#include <string>

namespace bort {

bool plan_packing(const RunInputs& in, PackPlan* plan) {
  if (!in.mask) return false;
  const int B = in.batch, S = in.seq;
  const size_t n = (size_t)B * S;
  size_t real = 0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t m = in.mask[i];
    if (m != 0 && m != 1) return false;
    real += (size_t)m;
  }
  if (real == n) return false;
  for (int b = 0; b < B; ++b)
    if (in.mask[(size_t)b * S] != 1) return false;
  plan->tokens = (int)real;
  plan->flat.resize(real);
  plan->start.resize((size_t)B + 1);
  int t = 0;
  for (int b = 0; b < B; ++b) {
    plan->start[b] = t;
    for (int s = 0; s < S; ++s) {
      const int32_t r = b * S + s;
      if (in.mask[r]) plan->flat[t++] = r;
    }
  }
  plan->start[B] = t;
  return true;
}

void unpack_rows(float* buf, size_t width, const PackPlan& plan, int batch, int seq) {
  const size_t bytes = width * sizeof(float);
  // back to front: row t moves to flat[t] >= t, past every row still waiting (all below t)
  for (int t = plan.tokens - 1; t >= 0; --t) {
    const size_t r = (size_t)plan.flat[t];
    if (r != (size_t)t) std::memmove(buf + r * width, buf + (size_t)t * width, bytes);
  }
  // the gaps between the placed rows are padding
  size_t next = 0;
  for (int t = 0; t <= plan.tokens; ++t) {
    const size_t r = t < plan.tokens ? (size_t)plan.flat[t] : (size_t)batch * seq;
    if (r > next) std::memset(buf + next * width, 0, (r - next) * bytes);
    next = r + 1;
  }
}

void zero_masked_rows(float* buf, size_t width, const int32_t* mask, size_t rows) {
  if (!mask || !buf) return;
  for (size_t r = 0; r < rows; ++r)
    if (mask[r] == 0) std::memset(buf + r * width, 0, width * sizeof(float));
}

namespace {
// Squared norm, summed in float by rows of at most 64 and the partial sums in double (relative error
// far below the 1% the bounds are widened by). A double sum of float squares crashed GCC 12's
// aarch64 vectoriser.
double norm2(const float* p, size_t n) {
  double s = 0;
  for (size_t i0 = 0; i0 < n; i0 += 64) {
    const size_t i1 = i0 + 64 < n ? i0 + 64 : n;
    float part = 0.0f;
    for (size_t i = i0; i < i1; ++i) part += p[i] * p[i];
    s += part;
  }
  return s;
}
const float* get(const WeightLookup& w, const std::string& name) {
  size_t len = 0;
  const float* p = w(name, &len);
  if (!p) throw ConfigError("weight '" + name + "' is missing");
  return p;
}
}  // namespace

std::vector<double> key_norm_bounds(const EncoderConfig& c, const WeightLookup& w,
                                    const std::function<double(int layer, int head)>& int8_key_fro,
                                    const std::function<double(int layer)>& int8_key_static) {
  const int H = c.hidden, d = c.headSize, Wd = c.heads * c.headSize;
  std::vector<double> out((size_t)c.layers * c.heads);
  for (int l = 0; l < c.layers; ++l) {
    // the LayerNorm that produced this layer's input
    const std::string gname = l == 0 ? "emb_ln_g" : "ln2_g." + std::to_string(l - 1);
    const std::string bname = l == 0 ? "emb_ln_b" : "ln2_b." + std::to_string(l - 1);
    const float* g = get(w, gname);
    const float* b = get(w, bname);
    double gmax = 0;
    for (int j = 0; j < H; ++j) {
      const double a = std::fabs((double)g[j]);
      if (a > gmax || a != a) gmax = a;  // NaN sticks (then the bound is NaN and never proves anything)
    }
    const double xmax = gmax * std::sqrt((double)H) + std::sqrt(norm2(b, H));
    const bool q8 = int8_key_fro && int8_key_fro(l, 0) >= 0;
    const float* kw = q8 ? nullptr : get(w, "k_w." + std::to_string(l));  // [H, Wd] row-major
    const float* kb = get(w, "k_b." + std::to_string(l));
    for (int h = 0; h < c.heads; ++h) {
      double fro = 0, xm = xmax;
      if (q8) {
        const double f = int8_key_fro(l, h);
        fro = f * f;
        const double st = int8_key_static ? int8_key_static(l) : 0.0;
        xm = st > 0 ? xmax + std::sqrt((double)H) * st / 2.0 : xmax * (1.0 + std::sqrt((double)H) / 254.0);
      } else {
        for (int k = 0; k < H; ++k) fro += norm2(kw + (size_t)k * Wd + (size_t)h * d, d);
      }
      const double bound = std::sqrt(fro) * xm + std::sqrt(norm2(kb + (size_t)h * d, d));
      out[(size_t)l * c.heads + h] = bound * 1.01;
    }
  }
  return out;
}

}  // namespace bort

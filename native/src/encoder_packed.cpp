// The forward pass on a batch's real tokens only (see packing.h for the plan and the proof that
// this equals the padded computation at the real positions).
#include <atomic>
#include <cmath>
#include <cstring>

#include "encoder.h"
#include "packing.h"

namespace bort {

// Attention for every (sequence, head) over that sequence's own packed rows; query rows in blocks
// of 64. No mask: every key is a token. For each query row it also checks the bound that makes the
// padded computation's masked keys contribute exactly 0: scale*|q|*keyBound + maskValue must lie
// more than kMaskedMargin below the row's largest real score. Returns false when some row fails.
bool Encoder::attention_packed(const PackPlan& plan, int layer) {
  const int heads = cfg_.heads, d = cfg_.headSize, B = (int)plan.start.size() - 1;
  const size_t Wd = (size_t)heads * d, ld = 3 * Wd;
  const float* qkv = qkv_.p.get();
  float* ctx = ctx_.p.get();
  const float scale = cfg_.scoreScale;
  const double ascale = std::fabs((double)scale), mask_value = cfg_.maskValue;
  const double* kbound = key_bound_.data() + (size_t)layer * heads;
  std::atomic<bool> proven{true};
  pool_->parallel_for(B * heads, [&](int task, int tid) {
    const int b = task / heads, h = task % heads;
    const int S = plan.start[b + 1] - plan.start[b];
    const float* q = qkv + (size_t)plan.start[b] * ld + (size_t)h * d;
    float* sc = sc_[tid].p.get();
    head_pack_kv(tid, q + Wd, q + 2 * Wd, ld, S, nullptr);
    bool ok = true;
    for (int q0 = 0; q0 < S; q0 += 64) {
      const int qb = S - q0 < 64 ? S - q0 : 64;
      head_scores(tid, q + (size_t)q0 * ld, ld, qb, S, sc);
      for (int r = 0; r < qb; ++r) {
        float* row = sc + (size_t)r * S;
        // float sums and maxima (the margin dwarfs their rounding; a double reduction over floats here
        // crashed GCC 12's aarch64 vectoriser)
        float top = -INFINITY, qn = 0.0f;
        for (int j = 0; j < S; ++j) {
          const float t = row[j] * scale;
          top = t > top ? t : top;
        }
        const float* qr = q + (size_t)(q0 + r) * ld;
        for (int e = 0; e < d; ++e) qn += qr[e] * qr[e];
        if (!(ascale * std::sqrt((double)qn) * kbound[h] + mask_value - (double)top < -kMaskedMargin)) ok = false;
        head_softmax_row(tid, row, r, qb, S, nullptr, false);
      }
      head_context(tid, sc, qb, S, ctx + ((size_t)plan.start[b] + q0) * Wd + (size_t)h * d, Wd);
    }
    if (!ok) proven.store(false, std::memory_order_relaxed);
  });
  return proven.load();
}

bool Encoder::forward_packed(const RunInputs& in, const RunOutputs& out, const PackPlan& plan) {
  const int B = in.batch, S = in.seq, M = plan.tokens;
  const int H = cfg_.hidden, Wd = cfg_.heads * cfg_.headSize;
  float* x = x_.p.get();
  float* tmp = tmp_.p.get();
  float* qkv = qkv_.p.get();
  float* ctx = ctx_.p.get();
  float* inter = inter_.p.get();
  const Kernels* k = k_;

  // embeddings of the real tokens, each at its own position
  {
    const int T = pool_->size();
    const int chunks = M < 2 * T ? M : 2 * T;
    const int per = (M + chunks - 1) / chunks;
    const float* type = type_.get();
    const int32_t* flat = plan.flat.data();
    const bool quant = cfg_.layers > 0 && prequantize(&layers_[0].qkv, x, H, M);
    pool_->parallel_for(chunks, [&](int t, int) {
      const int r1 = (t + 1) * per < M ? (t + 1) * per : M;
      for (int p = t * per; p < r1; ++p) {
        const int r = flat[p], s = r % S;
        float* y = x + (size_t)p * H;
        const float* tv = type ? type + (size_t)(in.types ? in.types[r] : 0) * H : nullptr;
        embed_row(y, in.ids[r], s, tv);
        k->layernorm(y, y, emb_g_.get(), emb_b_.get(), H, cfg_.embLnEps);
        if (quant) qlinear_quantize_rows(*layers_[0].qkv.q, y, H, p, p + 1, qs_);
      }
    });
  }

  const int L = cfg_.layers;
  // the last LayerNorm writes the packed rows into the front of out.hidden, spread out at the end
  float* xfinal = x;
  for (int l = 0; l < L; ++l) {
    const Layer& ly = layers_[l];
    gemm(x, H, ly.qkv, qkv, 3 * (size_t)Wd, M, Epi::Bias);
    if (!attention_packed(plan, l)) return false;
    gemm(ctx, Wd, ly.o, tmp, H, M, Epi::BiasResid, x, H);
    layernorm_rows(x, H, tmp, H, M, ly.ln1g.get(), ly.ln1b.get(), cfg_.lnEps[2 * l], &ly.in);
    gemm(x, H, ly.in, inter, cfg_.intermediate, M, Epi::BiasGelu);
    gemm(inter, cfg_.intermediate, ly.out, tmp, H, M, Epi::BiasResid, x, H);
    float* dst = (l == L - 1 && out.hidden) ? out.hidden : x;
    layernorm_rows(dst, H, tmp, H, M, ly.ln2g.get(), ly.ln2b.get(), cfg_.lnEps[2 * l + 1], l + 1 < L ? &layers_[l + 1].qkv : nullptr);
    xfinal = dst;
  }

  if (cfg_.pooler && (out.pooled || out.cls)) {
    float* pooled = out.pooled ? out.pooled : pooled_.p.get();
    // position 0 of each sequence (a token: plan_packing requires it) is its first packed row
    for (int b = 0; b < B; ++b) std::memcpy(tmp + (size_t)b * H, xfinal + (size_t)plan.start[b] * H, sizeof(float) * H);
    gemm(tmp, H, pooler_, pooled, H, B, Epi::BiasTanh);
    if (cfg_.classifierLabels > 0 && out.cls) gemm(pooled, H, cls_, out.cls, cfg_.classifierLabels, B, Epi::Bias);
  }
  if (cfg_.mlm && out.mlm) {
    gemm(xfinal, H, mlm_dense_, tmp, H, M, Epi::BiasGelu);
    layernorm_rows(tmp, H, tmp, H, M, mlm_g_.get(), mlm_b_.get(), cfg_.mlmLnEps);
    gemm(tmp, H, decoder_, out.mlm, cfg_.vocab, M, Epi::Bias);
    unpack_rows(out.mlm, cfg_.vocab, plan, B, S);
  }
  if (out.hidden) unpack_rows(out.hidden, H, plan, B, S);
  return true;
}

}  // namespace bort

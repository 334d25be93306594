// int8 attention for one (sequence, head) (see qattention.h).
#include "qattention.h"

#include <cstring>

namespace bort {

void qpack_bt(int8_t* dst, int32_t* colsum, const int8_t* Wt, size_t ldt, int K, int N, int NR) {
  const int kg = qround4(K) / 4, full = K / 4;
  const int panels = (N + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    int8_t* d = dst + (size_t)p * NR * kg * 4;
    for (int j = 0; j < NR; ++j) {
      const int n = p * NR + j;
      int32_t s = 0;
      if (n < N) {
        const int8_t* r = Wt + (size_t)n * ldt;
        for (int k = 0; k < K; ++k) s += r[k];
        for (int g = 0; g < full; ++g) std::memcpy(d + ((size_t)g * NR + j) * 4, r + 4 * g, 4);
        for (int g = full; g < kg; ++g) {
          int8_t* o = d + ((size_t)g * NR + j) * 4;
          for (int t = 0; t < 4; ++t) o[t] = g * 4 + t < K ? r[g * 4 + t] : 0;
        }
      } else {
        for (int g = 0; g < kg; ++g) std::memset(d + ((size_t)g * NR + j) * 4, 0, 4);
      }
      colsum[n] = s;
    }
  }
}

template <class T>
static T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

void qattn_prepare_kv(const QKernels* qk, const float* k, const float* v, size_t ld, int S, int d,
                      const unsigned char* keep, QAttnScratch& s) {
  const int NR = qk->NR, d4 = qround4(d);
  const size_t Sr = (size_t)(S + NR - 1) / NR * NR, dr = (size_t)(d + NR - 1) / NR * NR;
  // K: per-key scales (the B operand's columns), packed transposed
  int8_t* kq = grow(s.kq, (size_t)S * d4);
  qk->quantize_rows(k, ld, S, d, kq, d4, grow(s.sk, Sr));
  qpack_bt(grow(s.kp, qpacked_size(d, S, NR)), grow(s.kcs, Sr), kq, d4, d, S, NR);
  // V: per-dimension scales over the real keys
  qk->quantize_pack_v(v, ld, S, d, keep, grow(s.vp, qpacked_size(S, d, NR)), grow(s.vcs, dr), grow(s.sv, dr),
                      grow(s.work, 2 * (size_t)d));
}

void qattn_scores(const QKernels* qk, const float* q, size_t ld, int qb, int S, int d, QAttnScratch& s, float* sc) {
  const int d4 = qround4(d);
  int8_t* qa = grow(s.qa, (size_t)qb * d4);
  float* sq = grow(s.sq, (size_t)qb);
  qk->quantize_rows(q, ld, qb, d, qa, d4, sq);
  QGemmArgs g;
  g.A = qa; g.lda = d4; g.B = s.kp.data(); g.colsum = s.kcs.data(); g.M = qb; g.N = S; g.K = d;
  g.C = sc; g.ldc = S; g.a_scale = sq; g.b_scale = s.sk.data(); g.b_per_channel = true;
  qk->qgemm_tile(g, 0, qb, 0, S);
}

int8_t* qattn_p_rows(QAttnScratch& s, int qb, int S) { return grow(s.pa, (size_t)qb * qround4(S)); }
float* qattn_p_scales(QAttnScratch& s, int qb) { return grow(s.sp, (size_t)qb); }

void qattn_context(const QKernels* qk, int qb, int S, int d, QAttnScratch& s, float* ctx, size_t ldc) {
  QGemmArgs g;
  g.A = s.pa.data(); g.lda = qround4(S); g.B = s.vp.data(); g.colsum = s.vcs.data(); g.M = qb; g.N = d; g.K = S;
  g.C = ctx; g.ldc = ldc; g.a_scale = s.sp.data(); g.b_scale = s.sv.data(); g.b_per_channel = true;
  qk->qgemm_tile(g, 0, qb, 0, d);
}

}  // namespace bort

#include "attention.h"

namespace bort {

namespace {

// Each piece of the workspace starts on a 64-byte boundary (of an aligned ws).
size_t round16(size_t n) { return (n + 15) / 16 * 16; }
// The larger of the two packed shapes: [d, S] (K^T, V^T) and [S, d] (V, dctx, K, Q).
size_t packed_floats(int S, int d, const Kernels* k) {
  const size_t a = packed_size(d, S, k->NR), b = packed_size(S, d, k->NR);
  return a > b ? a : b;
}

// The workspace, carved in this order.
struct Ws {
  float *P, *dP, *T, *pb, *gemm;
  Ws(float* ws, int S, int d, const Kernels* k) {
    const size_t SS = round16((size_t)S * S);
    P = ws;
    dP = P + SS;
    T = dP + SS;
    pb = T + SS;
    gemm = pb + round16(packed_floats(S, d, k));
  }
};

// C [M,N] (stride ldc) = A [M,K] (stride lda) · B, B packed.
void gemm(const Kernels* k, const float* A, size_t lda, const float* Bp, float* C, size_t ldc, int M, int N, int K, float* ws) {
  GemmArgs g;
  g.A = A;
  g.lda = lda;
  g.B = Bp;
  g.C = C;
  g.ldc = ldc;
  g.M = M;
  g.N = N;
  g.K = K;
  k->gemm_tile(g, 0, M, 0, N, ws);
}

// dst [S,S] = src^T
void transpose(float* dst, const float* src, int S) {
  for (int i = 0; i < S; ++i)
    for (int j = 0; j < S; ++j) dst[(size_t)j * S + i] = src[(size_t)i * S + j];
}

// P = softmax(scale Q K^T + madd) into w.P
void probabilities(const Kernels* k, const float* q, const float* kk, size_t ld, const float* madd, float scale, int S, int d,
                   const Ws& w) {
  pack_bt(w.pb, d, S, kk, ld, k->NR, k->KC);  // K^T [d, S]
  gemm(k, q, ld, w.pb, w.P, S, S, S, d, w.gemm);
  for (int i = 0; i < S; ++i) k->softmax(w.P + (size_t)i * S, S, scale, madd);
}

}  // namespace

size_t attention_ws_floats(int S, int d, const Kernels* k) {
  return 3 * round16((size_t)S * S) + round16(packed_floats(S, d, k)) + (size_t)k->MC * k->KC;
}

void attention_forward(const Kernels* k, const float* q, const float* kk, const float* v, size_t ld, float* ctx, size_t ldc,
                       const float* madd, float scale, int S, int d, float* ws, float* probs) {
  const Ws w(ws, S, d, k);
  probabilities(k, q, kk, ld, madd, scale, S, d, w);
  if (probs)
    for (size_t i = 0; i < (size_t)S * S; ++i) probs[i] = w.P[i];
  const PackSeg seg{v, d, ld};
  pack_b(w.pb, S, &seg, 1, k->NR, k->KC);  // V [S, d]
  gemm(k, w.P, S, w.pb, ctx, ldc, S, d, S, w.gemm);
}

void attention_backward(const Kernels* k, const TrainKernels* tk, const float* q, const float* kk, const float* v, size_t ld,
                        const float* dctx, size_t ldc, float* dq, float* dk, float* dv, size_t ldd, const float* madd,
                        float scale, int S, int d, float* ws, const float* dprobs) {
  const Ws w(ws, S, d, k);
  probabilities(k, q, kk, ld, madd, scale, S, d, w);
  // dP = dctx V^T (+ dprobs)
  pack_bt(w.pb, d, S, v, ld, k->NR, k->KC);
  gemm(k, dctx, ldc, w.pb, w.dP, S, S, S, d, w.gemm);
  if (dprobs)
    for (int i = 0; i < S; ++i) tk->axpy(w.dP + (size_t)i * S, 1.0f, dprobs + (size_t)i * S, S);
  // dV = P^T dctx
  transpose(w.T, w.P, S);
  const PackSeg sdc{dctx, d, ldc};
  pack_b(w.pb, S, &sdc, 1, k->NR, k->KC);
  gemm(k, w.T, S, w.pb, dv, ldd, S, d, S, w.gemm);
  // dZ = scale P o (dP - rowsum(P o dP)), in place of dP
  for (int i = 0; i < S; ++i) {
    const float* p = w.P + (size_t)i * S;
    float* z = w.dP + (size_t)i * S;
    const float dot = (float)tk->row_dot(p, z, S);
    for (int j = 0; j < S; ++j) z[j] = scale * p[j] * (z[j] - dot);
  }
  // dQ = dZ K
  const PackSeg sk{kk, d, ld};
  pack_b(w.pb, S, &sk, 1, k->NR, k->KC);
  gemm(k, w.dP, S, w.pb, dq, ldd, S, d, S, w.gemm);
  // dK = dZ^T Q
  transpose(w.T, w.dP, S);
  const PackSeg sq{q, d, ld};
  pack_b(w.pb, S, &sq, 1, k->NR, k->KC);
  gemm(k, w.T, S, w.pb, dk, ldd, S, d, S, w.gemm);
}

}  // namespace bort

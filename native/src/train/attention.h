// Attention of one (batch, head) for training: the forward, and its backward from the gradient of the
// context, as GEMMs on the forward table's packed micro-kernels (the same gemm_tile the encoder's
// attention runs), with the row parts (softmax, the softmax backward) in between. Portable: the ISA is
// the tables'.
//   forward:  P = softmax(scale Q K^T + madd), ctx = P V
//   backward: P recomputed from Q, K (nothing of the forward is kept but qkv);
//             dV = P^T dctx, dP = dctx V^T (+ dprobs), dZ = scale P o (dP - rowsum(P o dP)),
//             dQ = dZ K, dK = dZ^T Q.
// Q, K, V rows have stride ld (the fused qkv buffer); ctx/dctx rows stride ldc; dq/dk/dv rows stride
// ldd (overwritten). madd: the keys' additive mask [S]. ws: attention_ws_floats(S, d, k) floats.
#pragma once

#include <cstddef>

#include "../kernels.h"
#include "train_kernels.h"

namespace bort {

size_t attention_ws_floats(int S, int d, const Kernels* k);

// probs: null, or P [S,S] out (rows stride S; the attention-map distillation term reads it).
void attention_forward(const Kernels* k, const float* q, const float* kk, const float* v, size_t ld, float* ctx, size_t ldc,
                       const float* madd, float scale, int S, int d, float* ws, float* probs);

// dprobs: null, or a further dL/dP [S,S] (rows stride S) added to dP (a loss on the probabilities).
void attention_backward(const Kernels* k, const TrainKernels* tk, const float* q, const float* kk, const float* v, size_t ld,
                        const float* dctx, size_t ldc, float* dq, float* dk, float* dv, size_t ldd, const float* madd,
                        float scale, int S, int d, float* ws, const float* dprobs);

}  // namespace bort

// Sequence-classification head of the trainer: pooler (dense + tanh, or ReLU, on each sequence's
// first token) then a linear classifier to [batch, labels] logits; its loss, cross-entropy against the
// true classes plus, when teacher logits are given, klWeight * T^2 * KL(softmax(t/T) || softmax(s/T))
// (task distillation); and its backward into the pooler, the classifier and the first-token rows of
// the encoder's final hidden state. Rows are few (one per sequence), so the work is plain loops with
// double accumulators; weights are in the engine's [in, out] layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bort {

struct ClsHeadWeights {
  const float *poolW, *poolB;  // [H, H], [H]
  const float *clsW, *clsB;    // [H, L], [L]
  int hidden = 0, labels = 0;
  bool relu = false;  // pooler activation: ReLU instead of tanh
};

struct ClsHeadGrads {  // accumulated into (+=)
  float *poolW, *poolB, *clsW, *clsB;
};

struct ClsTargets {
  const int32_t* classes = nullptr;  // [B] true class per sequence; null = no CE term
  const float* teacher = nullptr;    // [B, L] teacher logits; null = no KL term
  float ceWeight = 1.0f, klWeight = 1.0f, temperature = 1.0f;
};

// pooled[B,H] = act(h0 poolW + poolB), logits[B,L] = pooled clsW + clsB. h0: [B, H] first-token rows.
void cls_head_forward(const ClsHeadWeights& w, const float* h0, int B, float* pooled, float* logits);

// Loss = ceWeight * mean CE + klWeight * T^2 * mean KL over the B rows; logits are replaced by
// dLoss/dlogits. *ce and *kl get the unweighted means (0 for an absent term).
double cls_head_loss(const ClsTargets& t, int B, int L, float* logits, double* ce, double* kl);

// From dlogits: adds the head's weight gradients into g and writes dh0 [B, H] (overwritten).
void cls_head_backward(const ClsHeadWeights& w, const float* h0, const float* pooled, const float* dlogits, int B,
                       const ClsHeadGrads& g, float* dh0);

}  // namespace bort

/**
 * Self-attention in the forms exporters write: Q, K and V as three Linears (BERT/RoBERTa with an
 * additive mask; DistilBERT with Q divided by √d and the mask applied by Where), Q, K and V as one
 * MatMul followed by Split, or onnxruntime's fused Attention operator. Each returns the merged context
 * [B, S, H] that the attention output Linear reads.
 */
import { DataType } from './builder.js';
import type { SynthContext } from './context.js';
import type { LayerNames } from './family-names.js';
import { fusedLinear, inOutWeights, linear, linearProduct } from './linear.js';
import { concatLinear, type LinearWeights } from './random.js';
import { dimOf, reshapeTo } from './shapes.js';

/** The most negative float32, torch.finfo(torch.float32).min. */
export const FLOAT32_MIN = -3.4028234663852886e38;

export interface AttentionWeights {
  query: LinearWeights;
  key: LinearWeights;
  value: LinearWeights;
}

/** BERT's extended attention mask: (1 − mask[:, None, None, :]) · finfo.min, added to the scores. */
export function additiveMask(ctx: SynthContext): string {
  const { g, o } = ctx;
  const maskF = g.node('Cast', [g.unsqueeze(g.unsqueeze(o.names.mask, [1]), [2])], { to: DataType.FLOAT });
  return g.node('Mul', [g.node('Sub', [g.constFloat(1), maskF]), g.constFloat(FLOAT32_MIN)]);
}

/** onnxruntime's mask_index for fused Attention (MaskIndexEnd): ReduceSum(Cast(mask, int32), axis 1). */
export function maskIndex(ctx: SynthContext): string {
  const { g, o } = ctx;
  return g.reduceSum(g.node('Cast', [o.names.mask], { to: DataType.INT32 }), [1], 0);
}

export interface AttentionMasks {
  /** Added to the scores (BERT, RoBERTa). */
  additive?: string;
  /** int32 [B] sequence lengths for fused Attention. */
  index?: string;
}

export function selfAttention(ctx: SynthContext, x: string, layer: number, names: LayerNames, w: AttentionWeights, masks: AttentionMasks): string {
  const { g, o } = ctx;
  const { heads: A, hidden: H } = o.arch;
  if (o.fused.has('attention')) {
    const qkv = concatLinear([w.query, w.key, w.value].map((p) => inOutWeights(ctx, p)));
    const name = `Attention_${layer}`;
    const weight = g.init(`${name}_qkv_weight`, [H, 3 * H], qkv.weight);
    const bias = g.init(`${name}_qkv_bias`, [3 * H], qkv.bias);
    return g.contrib('Attention', [x, weight, bias, masks.index!], { num_heads: A });
  }
  // DistilBERT reads the batch size and length off the layer input before the projections
  const dims = o.family === 'distilbert' ? { batch: dimOf(g, x, 0), length: dimOf(g, x, 1) } : undefined;
  let q: string, k: string, v: string;
  if (o.fused.has('qkv-split')) {
    const lin = linearProduct(ctx, x, names.qkv, fusedLinear(ctx, [w.query, w.key, w.value]));
    [q, k, v] = g.split(g.node('Add', [lin.bias, lin.product]), [H, H, H], -1);
  } else {
    q = linear(ctx, x, names.query, w.query);
    k = linear(ctx, x, names.key, w.key);
    v = linear(ctx, x, names.value, w.value);
  }
  if (dims) return distilbertScores(ctx, dims, q, k, v);
  return bertScores(ctx, q, k, v, masks.additive!);
}

/** BERT / RoBERTa: scores = QKᵀ scaled (Div, Mul, or √scale on Q and K), plus the additive mask. */
function bertScores(ctx: SynthContext, q: string, k: string, v: string, maskAdd: string): string {
  const { g, o } = ctx;
  const { heads: A, hidden: H } = o.arch;
  const d = H / A;
  const scale = 1 / Math.sqrt(d);
  if (o.scale === 'qk') {
    const s = Math.sqrt(scale);
    q = g.node('Mul', [q, g.constFloat(s)]);
    k = g.node('Mul', [k, g.constFloat(s)]);
  }
  const qh = g.node('Transpose', [reshapeTo(g, q, [A, d], o.headShape)], { perm: [0, 2, 1, 3] });
  const kh = g.node('Transpose', [reshapeTo(g, k, [A, d], o.headShape)], { perm: [0, 2, 3, 1] });
  const vh = g.node('Transpose', [reshapeTo(g, v, [A, d], o.headShape)], { perm: [0, 2, 1, 3] });
  let scores = g.node('MatMul', [qh, kh]);
  if (o.scale === 'mul') scores = g.node('Mul', [scores, g.constFloat(scale)]);
  else if (o.scale !== 'qk') scores = g.node('Div', [scores, g.constFloat(Math.sqrt(d))]);
  const probs = g.node('Softmax', [g.node('Add', [scores, maskAdd])], { axis: -1 });
  const ctxT = g.node('Transpose', [g.node('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
  return reshapeTo(g, ctxT, [H], o.headShape);
}

/**
 * DistilBERT (transformers' MultiHeadSelfAttention as PyTorch 1.10 exports it): heads split by
 * Reshape(B, −1, A, d); Q divided by √d; mask = Equal(mask, 0) reshaped to [B, 1, 1, S], expanded to the
 * scores and filled with finfo.min by Where; Softmax over axis 3; context merged by Reshape(B, −1, H).
 */
function distilbertScores(ctx: SynthContext, dims: { batch: string; length: string }, q: string, k: string, v: string): string {
  const { g, o } = ctx;
  const { heads: A, hidden: H } = o.arch;
  const d = H / A;
  const { batch, length: kLen } = dims;
  const split = (t: string) => (o.headShape === 'constant' ? reshapeTo(g, t, [A, d], 'constant')
    : g.node('Reshape', [t, g.node('Concat', [batch, g.constInt([-1]), g.constInt([A]), g.constInt([d])], { axis: 0 })]));
  const qh = g.node('Transpose', [split(q)], { perm: [0, 2, 1, 3] });
  const kr = split(k);
  const vh = g.node('Transpose', [split(v)], { perm: [0, 2, 1, 3] });
  const qs = g.node('Div', [qh, g.constFloat(Math.sqrt(d))]);
  const scores = g.node('MatMul', [qs, g.node('Transpose', [kr], { perm: [0, 2, 3, 1] })]);
  const isPad = g.node('Equal', [o.names.mask, g.constInt([0], true)]);
  const maskShape = g.node('Concat', [batch, g.constInt([1]), g.constInt([1]), kLen], { axis: 0 });
  const cond = g.node('Cast', [g.node('Expand', [g.node('Reshape', [isPad, maskShape]), g.node('Shape', [scores])])], { to: DataType.BOOL });
  const masked = g.node('Where', [cond, g.constFloat(FLOAT32_MIN), scores]);
  const probs = g.node('Softmax', [masked], { axis: 3 });
  const ctxT = g.node('Transpose', [g.node('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
  if (o.headShape === 'constant') return reshapeTo(g, ctxT, [H], 'constant');
  return g.node('Reshape', [ctxT, g.node('Concat', [batch, g.constInt([-1]), g.constInt([H])], { axis: 0 })]);
}

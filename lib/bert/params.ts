/**
 * Parameter counts: measured from a recognised model's weights, and the closed form for an
 * architecture. A decoder tied to the word table counts once, whether shared or stored as a copy.
 */
import { elementBytes, tensorNumel } from '../onnx/tensor.js';
import type { Arch, BertModel, Linear, LayerNorm } from './model.js';

export function parameterNames(m: BertModel): Set<string> {
  const names = new Set<string>();
  const lin = (l: Linear) => { names.add(l.weight); if (l.bias) names.add(l.bias); };
  const ln = (n: LayerNorm) => { names.add(n.gamma); if (n.beta) names.add(n.beta); };
  const e = m.embeddings;
  for (const t of [e.word, e.position, e.tokenType]) if (t) names.add(t.table);
  ln(e.ln);
  for (const l of m.layers) {
    [l.attention.q, l.attention.k, l.attention.v, l.attention.o, l.ffn.in, l.ffn.out].forEach(lin);
    ln(l.ln1); ln(l.ln2);
  }
  if (m.pooler) lin(m.pooler.dense);
  if (m.mlm) { lin(m.mlm.transform); ln(m.mlm.ln); lin(m.mlm.decoder); }
  for (const c of m.classifiers) lin(c.linear);
  return names;
}

/** Trainable parameters in the model (tied decoder weights counted once). */
export function countParameters(m: BertModel): number {
  let n = 0;
  for (const name of parameterNames(m)) {
    if (m.mlm?.tiedCopy && name === m.mlm.decoder.weight) continue;
    n += tensorNumel(m.index.initializers.get(name)!);
  }
  return n;
}

/**
 * Bytes of all weights as the file stores them (a tied copy counts here): 4 a value for float32, 2 for
 * float16 (read as float32 in the view), 1 for int8, plus the scales of int8 projections.
 */
export function weightBytes(m: BertModel): number {
  let n = 0;
  const stored = (name: string) => tensorNumel(m.index.initializers.get(name)!) * elementBytes(m.view.weightSource(name).dataType);
  for (const name of parameterNames(m)) n += stored(name);
  for (const l of m.layers) for (const q of [l.attention.q, l.attention.k, l.attention.v, l.attention.o, l.ffn.in, l.ffn.out]) {
    if (q.quant) n += stored(q.quant.scale);
  }
  return n;
}

export interface HeadsConfig {
  vocab: number;
  positions: number;
  typeVocab: number;
  pooler: boolean;
  mlm: boolean;
  /** Output sizes of classifiers (on the pooled output or on tokens). */
  classifiers: number[];
}

/** Closed-form parameter count of a BERT of architecture `a` (attention width = hidden). */
export function archParameters(a: Arch, h: HeadsConfig): number {
  const H = a.hidden, I = a.intermediate;
  const embeddings = (h.vocab + h.positions + h.typeVocab) * H + 2 * H;
  const layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H;
  let total = embeddings + a.layers * layer;
  if (h.pooler) total += H * H + H;
  if (h.mlm) total += H * H + H + 2 * H + h.vocab; // transform, its LayerNorm, decoder bias (weight tied)
  for (const labels of h.classifiers) total += H * labels + labels;
  return total;
}

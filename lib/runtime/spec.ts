/**
 * The engine's view of a recognised model: the constants that change the math (score scale, mask
 * value, LayerNorm epsilons, position offset, Gemm factors, which outputs exist) as recognition
 * recorded them in the BertModel, and every weight in the engine's canonical layout (linears as
 * [in, out] row-major, Gemm's alpha and beta folded in). Nothing here walks the graph: anything the
 * engine cannot compute exactly is refused from what recognition recorded, naming the part, and
 * weights are checked (size, finite values) under the model's own names before the engine sees them.
 */
import { BortError, quoteName } from '../errors.js';
import type { BertModel, Linear, LayerNorm } from '../bert/model.js';
import type { MaskReading } from '../bert/normalize/view.js';
import { initializerData, inOutMatrix } from '../bert/weights.js';

export interface EngineSpec {
  config: {
    layers: number; heads: number; headSize: number; hidden: number; intermediate: number; vocab: number;
    maxPositions: number; typeVocab: number; scoreScale: number; maskValue: number;
    embLnEps: number; lnEps: number[]; pooler: boolean; mlm: null | { lnEps: number }; classifier: null | { labels: number };
  };
  weights: Record<string, Float32Array>;
  /** Model input names by role. */
  inputs: { ids: string; mask?: string; tokenTypes?: string };
  /** Model outputs in declared order, with the engine output that carries each. */
  outputs: { name: string; from: 'hidden' | 'pooled' | 'mlm' | 'cls' }[];
  /** How onnxruntime's fused Attention reads the mask, when it does (the engine then takes 0/1 masks only). */
  maskReading?: MaskReading;
  /** The only sequence length the model's inputs allow, when they declare one. */
  fixedLength?: number;
}

function unsupported(part: string, fix = 'the native engine runs BERT encoders exported in the stock pattern; use onnxruntime for this model'): BortError {
  return new BortError(`the native engine cannot run this model: ${part}`, fix);
}

function scaled(data: Float32Array, factor: number): Float32Array {
  if (factor === 1) return data;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] * factor;
  return out;
}

export function engineSpec(m: BertModel): EngineSpec {
  const w: Record<string, Float32Array> = {};
  /** Stores an engine weight after checking its size and values, naming the part and the model's tensor. */
  const put = (key: string, data: Float32Array, expected: number, role: string, tensor?: string) => {
    const what = tensor ? `the ${role} ${quoteName(tensor)}` : `the ${role}`;
    if (data.length !== expected) throw unsupported(`${what} has ${data.length} values where the engine needs ${expected}`);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw unsupported(`${what} holds ${data[i]} at index ${i}`, 'onnxruntime would return NaN or infinite values for this model; repair the weights');
    }
    w[key] = data;
  };
  const H = m.arch.hidden;
  // engine names: <part>_w / <part>_b, and <part>_w.<layer> inside layers
  const lin = (key: string, l: Linear, role: string, inDim: number, outDim: number, layer = '') => {
    put(`${key}_w${layer}`, scaled(inOutMatrix(m, l), l.alpha), inDim * outDim, `${role} weight`, l.weight);
    put(`${key}_b${layer}`, l.bias ? scaled(initializerData(m, l.bias), l.beta) : new Float32Array(outDim), outDim, `${role} bias`, l.bias);
  };
  const ln = (key: string, n: LayerNorm, role: string, layer = '') => {
    if (!Number.isFinite(n.epsilon) || n.epsilon < 0) throw unsupported(`the ${role} has epsilon ${n.epsilon}`);
    put(`${key}_g${layer}`, initializerData(m, n.gamma), H, `${role} scale`, n.gamma);
    put(`${key}_b${layer}`, n.beta ? initializerData(m, n.beta) : new Float32Array(H), H, `${role} bias`, n.beta);
  };
  const e = m.embeddings;
  if (!e.position || !e.positionIds) throw unsupported('it has no position embeddings');
  if (e.positionIds.kind !== 'arange') throw unsupported(`position ids: ${e.positionIds.problem}`);
  const { start, maxSeq } = e.positionIds;
  put('word_emb', initializerData(m, e.word.table), m.vocab * H, 'word embedding table', e.word.table);
  // row 0 of the engine's table is the first position the model reads (exact for offset positions)
  put('pos_emb', initializerData(m, e.position.table).subarray(start * H, (start + maxSeq) * H), maxSeq * H, 'position embedding table', e.position.table);
  if (e.tokenType) put('type_emb', initializerData(m, e.tokenType.table), m.typeVocab * H, 'token-type embedding table', e.tokenType.table);
  ln('emb_ln', e.ln, 'embedding LayerNorm');
  const scale = m.layers[0].attention.scoreScale;
  const lnEps: number[] = [];
  const W = m.attentionWidth, I = m.arch.intermediate;
  m.layers.forEach((l, i) => {
    if (l.ffn.activation === 'gelu_tanh') throw unsupported(`layer ${i} uses gelu_tanh, GELU's tanh approximation (as onnxruntime's FastGelu computes it); the engine computes erf GELU only`);
    if (l.ffn.activation !== 'gelu') throw unsupported(`layer ${i} uses ${l.ffn.activation} (only erf GELU is implemented)`);
    if (!Number.isFinite(l.attention.scoreScale)) throw unsupported(`layer ${i} scales the attention scores by ${l.attention.scoreScale}`);
    if (Math.abs(l.attention.scoreScale - scale) > 1e-7 * Math.abs(scale)) throw unsupported(`layer ${i} has a different attention-score scale`);
    const a = l.attention;
    const at = `.${i}`;
    lin('q', a.q, `layer ${i} attention query`, H, W, at);
    lin('k', a.k, `layer ${i} attention key`, H, W, at);
    lin('v', a.v, `layer ${i} attention value`, H, W, at);
    lin('o', a.o, `layer ${i} attention output`, W, H, at);
    ln('ln1', l.ln1, `layer ${i} attention LayerNorm`, at);
    lin('ffn_in', l.ffn.in, `layer ${i} feed-forward input`, H, I, at);
    lin('ffn_out', l.ffn.out, `layer ${i} feed-forward output`, I, H, at);
    ln('ln2', l.ln2, `layer ${i} feed-forward LayerNorm`, at);
    lnEps.push(l.ln1.epsilon, l.ln2.epsilon);
  });
  if (m.pooler) lin('pooler', m.pooler.dense, 'pooler', H, H);
  if (m.mlm) {
    if (m.mlm.activation !== 'gelu') throw unsupported(`the masked-LM head uses ${m.mlm.activation}`);
    lin('mlm', m.mlm.transform, 'masked-LM transform', H, H);
    ln('mlm_ln', m.mlm.ln, 'masked-LM LayerNorm');
    lin('decoder', m.mlm.decoder, 'masked-LM decoder', H, m.vocab);
  }
  const cls = m.classifiers;
  if (cls.some((c) => c.source !== 'pooler')) throw unsupported('a token classifier on the hidden states');
  if (cls.length > 1) throw unsupported(`${cls.length} classifiers on the pooled output`);
  if (cls.length === 1) lin('cls', cls[0].linear, 'classifier', H, cls[0].linear.outDim);
  if (m.maskProblem) throw unsupported(`attention mask: ${m.maskProblem}`);
  if (m.inputs.mask && m.maskValue === undefined) throw unsupported('the attention-mask expression (no (1 - mask) · value found)');
  if (m.maskValue !== undefined && !Number.isFinite(Math.fround(m.maskValue))) {
    throw unsupported(`the attention mask adds ${m.maskValue} · (1 - mask)`, 'onnxruntime would return NaN for this model; export it with a finite mask value');
  }
  const outputs = m.outputs.map((o) => ({ name: o.name, from: ({ hidden: 'hidden', pooled: 'pooled', mlm: 'mlm', classifier: 'cls' } as const)[o.role] }));
  return {
    config: {
      layers: m.arch.layers, heads: m.arch.heads, headSize: m.headSize, hidden: H, intermediate: I,
      vocab: m.vocab, maxPositions: maxSeq, typeVocab: m.typeVocab, scoreScale: scale, maskValue: m.maskValue ?? 0,
      embLnEps: e.ln.epsilon, lnEps, pooler: !!m.pooler, mlm: m.mlm ? { lnEps: m.mlm.ln.epsilon } : null,
      classifier: cls.length ? { labels: cls[0].linear.outDim } : null,
    },
    weights: w,
    inputs: { ids: m.inputs.ids, mask: m.inputs.mask, tokenTypes: m.inputs.tokenTypes },
    outputs,
    maskReading: m.maskReading,
    fixedLength: m.inputs.fixedLength,
  };
}

/**
 * The engine's view of a recognised model: the constants that change the math (score scale, mask
 * value and form, LayerNorm epsilons, position offset or padding id, the token-type row read without
 * an input, Gemm factors, pooler activation, which outputs exist) as recognition
 * recorded them in the BertModel, and every weight in the engine's canonical layout (linears as
 * [in, out] row-major, Gemm's alpha and beta folded in). Nothing here walks the graph: anything the
 * engine cannot compute exactly is refused from what recognition recorded, naming the part, and
 * weights are checked (size, finite values) under the model's own names before the engine sees them.
 */
import { BortError, quoteName } from '../errors.js';
import type { BertModel, Linear, LayerNorm } from '../bert/model.js';
import type { MaskReading } from '../bert/normalize/view.js';
import { initializerData, inOutMatrix } from '../bert/weights.js';
import { firstNonFinite, floatData } from '../onnx/tensor.js';
import { int8Values } from '../quantize/linear-view.js';

export type EngineOutput = 'hidden' | 'pooled' | 'mlm' | 'cls' | 'tok';

export interface EngineSpec {
  config: {
    layers: number; heads: number; headSize: number; hidden: number; intermediate: number; vocab: number;
    /** Rows of the engine's position table. */
    maxPositions: number; typeVocab: number; scoreScale: number; maskValue: number;
    /** The mask replaces the scores of padding keys (Where) instead of being added. */
    maskSelect: boolean;
    embLnEps: number; lnEps: number[]; pooler: boolean; poolerActivation: 'tanh' | 'relu';
    mlm: null | { lnEps: number }; classifier: null | { labels: number }; tokenClassifier: null | { labels: number };
  };
  /** Float32Array; an int8 linear of the file: Int8Array `<part>_w` [in, out] with Float32Array `<part>_ws` [out]. */
  weights: Record<string, Float32Array | Int8Array>;
  /** Model input names by role. */
  inputs: { ids: string; mask?: string; tokenTypes?: string };
  /** The longest sequence the model reads. */
  maxSeq: number;
  /** How the runtime computes the position ids it passes (absent: token t reads row t). */
  positions?: { fromIds: { paddingIdx: number } };
  /**
   * Model outputs in declared order, with the engine output that carries each; `column`: the output is
   * that column of the per-token logits (question answering's start and end logits).
   */
  outputs: { name: string; from: EngineOutput; column?: number }[];
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

/** The model's outputs in declared order, with the engine output that carries each (and its column). */
export function engineOutputs(m: BertModel): EngineSpec['outputs'] {
  return m.outputs.map((o): EngineSpec['outputs'][number] => {
    if (o.role !== 'classifier') return { name: o.name, from: o.role === 'pooled' ? 'pooled' : o.role };
    const c = m.classifiers.find((x) => x.linear.output === o.source)!;
    if (c.source === 'pooler') return { name: o.name, from: 'cls' };
    return o.column === undefined ? { name: o.name, from: 'tok' } : { name: o.name, from: 'tok', column: o.column };
  });
}

/**
 * An int8 linear's weight and per-column scales (a per-tensor scale repeated), as the file stores them.
 * -128 is refused: the int8 kernels negate weights (qgemm.h), so they take [-127, 127].
 */
function int8Weight(m: BertModel, l: Linear, role: string): { values: Int8Array; scales: Float32Array } {
  const values = int8Values(m.index.initializers.get(l.weight)!);
  const at = values.indexOf(-128);
  if (at >= 0) {
    throw unsupported(`the ${role} weight ${quoteName(l.weight)} holds -128 at index ${at}; the int8 kernels take weights in [-127, 127]`,
      'quantize symmetrically to [-127, 127] (bort-compress quantize does), or run this model with onnxruntime');
  }
  const s = floatData(m.index.initializers.get(l.quant!.scale)!);
  const scales = s.length === 1 ? new Float32Array(l.outDim).fill(s[0]) : Float32Array.from(s);
  return { values, scales };
}

export function engineSpec(m: BertModel): EngineSpec {
  const w: Record<string, Float32Array | Int8Array> = {};
  /** Stores an engine weight after checking its size and values, naming the part and the model's tensor. */
  const put = (key: string, data: Float32Array, expected: number, role: string, tensor?: string) => {
    const what = tensor ? `the ${role} ${quoteName(tensor)}` : `the ${role}`;
    if (data.length !== expected) throw unsupported(`${what} has ${data.length} values where the engine needs ${expected}`);
    const bad = firstNonFinite(data);
    if (bad) throw unsupported(`${what} holds ${bad.value} at index ${bad.index}`, 'onnxruntime would return NaN or infinite values for this model; repair the weights');
    w[key] = data;
  };
  const H = m.arch.hidden;
  // engine names: <part>_w / <part>_b, and <part>_w.<layer> inside layers
  const lin = (key: string, l: Linear, role: string, inDim: number, outDim: number, layer = '') => {
    if (l.quant) {
      // the file's own int8 weight and scales (recognition checked them), run as they are
      const q = int8Weight(m, l, role);
      if (q.values.length !== inDim * outDim) throw unsupported(`the ${role} weight ${quoteName(l.weight)} has ${q.values.length} values where the engine needs ${inDim * outDim}`);
      w[`${key}_w${layer}`] = q.values;
      w[`${key}_ws${layer}`] = q.scales;
      // static: the input scale from calibration (the column scales above already include it)
      if (l.quant.inputScale) w[`${key}_as${layer}`] = Float32Array.of(floatData(m.index.initializers.get(l.quant.inputScale)!)[0]);
    } else {
      put(`${key}_w${layer}`, scaled(inOutMatrix(m, l), l.alpha), inDim * outDim, `${role} weight`, l.weight);
    }
    put(`${key}_b${layer}`, l.bias ? scaled(initializerData(m, l.bias), l.beta) : new Float32Array(outDim), outDim, `${role} bias`, l.bias);
  };
  const ln = (key: string, n: LayerNorm, role: string, layer = '') => {
    if (!Number.isFinite(n.epsilon) || n.epsilon < 0) throw unsupported(`the ${role} has epsilon ${n.epsilon}`);
    put(`${key}_g${layer}`, initializerData(m, n.gamma), H, `${role} scale`, n.gamma);
    put(`${key}_b${layer}`, n.beta ? initializerData(m, n.beta) : new Float32Array(H), H, `${role} bias`, n.beta);
  };
  const e = m.embeddings;
  if (!e.position || !e.positionIds) throw unsupported('it has no position embeddings');
  const ids = e.positionIds;
  if (ids.kind === 'other') throw unsupported(`position ids: ${ids.problem}`);
  let maxSeq = ids.maxSeq;
  put('word_emb', initializerData(m, e.word.table), m.vocab * H, 'word embedding table', e.word.table);
  let posRows: number;
  if (ids.kind === 'arange') {
    // row 0 of the engine's table is the first position the model reads (exact for offset positions)
    posRows = maxSeq;
    put('pos_emb', initializerData(m, e.position.table).subarray(ids.start * H, (ids.start + maxSeq) * H), maxSeq * H, 'position embedding table', e.position.table);
  } else {
    // the runtime passes the ids the graph computes (lib/runtime/positions.ts): the whole table
    posRows = e.position.rows;
    put('pos_emb', initializerData(m, e.position.table), posRows * H, 'position embedding table', e.position.table);
  }
  let typeVocab = m.typeVocab;
  if (e.tokenType && e.tokenType.constantRow !== undefined) {
    // no token-type input: every token adds the one row the graph reads (the engine's type 0)
    const row = e.tokenType.constantRow;
    typeVocab = 1;
    put('type_emb', initializerData(m, e.tokenType.table).subarray(row * H, (row + 1) * H), H, 'token-type embedding table', e.tokenType.table);
    if (e.tokenType.maxSeq !== undefined) maxSeq = Math.min(maxSeq, e.tokenType.maxSeq);
  } else if (e.tokenType) {
    put('type_emb', initializerData(m, e.tokenType.table), m.typeVocab * H, 'token-type embedding table', e.tokenType.table);
  }
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
    // the engine runs Q, K and V as one GEMM over one quantized input: one static scale (or none) for all three
    const inScales = [a.q, a.k, a.v].map((x) => (x.quant?.inputScale ? floatData(m.index.initializers.get(x.quant.inputScale)!)[0] : 0));
    if (inScales.some((v) => v !== inScales[0])) {
      throw unsupported(`layer ${i}'s query, key and value quantize their one input with different static scales (${inScales.join(', ')})`,
        'quantize the float32 model with bort-compress quantize --calibration (one scale per input tensor), or run this file with onnxruntime');
    }
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
  const onPooled = m.classifiers.filter((c) => c.source === 'pooler');
  const perToken = m.classifiers.filter((c) => c.source === 'hidden');
  if (onPooled.length > 1) throw unsupported(`${onPooled.length} classifiers on the pooled output`);
  if (perToken.length > 1) throw unsupported(`${perToken.length} classifiers on the hidden states`);
  if (onPooled.length === 1) lin('cls', onPooled[0].linear, 'classifier', H, onPooled[0].linear.outDim);
  if (perToken.length === 1) lin('tok', perToken[0].linear, 'token classifier', H, perToken[0].linear.outDim);
  if (m.maskProblem) throw unsupported(`attention mask: ${m.maskProblem}`);
  if (m.inputs.mask && m.maskValue === undefined) throw unsupported('the attention-mask expression (no (1 - mask) · value found)');
  const select = m.maskKind === 'select';
  if (m.maskValue !== undefined && !Number.isFinite(Math.fround(m.maskValue)) && !(select && m.maskValue === -Infinity)) {
    throw unsupported(select ? `the attention mask puts ${m.maskValue} in place of the scores` : `the attention mask adds ${m.maskValue} · (1 - mask)`,
      'onnxruntime would return NaN for this model; export it with a finite mask value');
  }
  const outputs = engineOutputs(m);
  return {
    config: {
      layers: m.arch.layers, heads: m.arch.heads, headSize: m.headSize, hidden: H, intermediate: I,
      vocab: m.vocab, maxPositions: posRows, typeVocab, scoreScale: scale, maskValue: m.maskValue ?? 0, maskSelect: select,
      embLnEps: e.ln.epsilon, lnEps, pooler: !!m.pooler, poolerActivation: m.pooler?.activation ?? 'tanh',
      mlm: m.mlm ? { lnEps: m.mlm.ln.epsilon } : null,
      classifier: onPooled.length ? { labels: onPooled[0].linear.outDim } : null,
      tokenClassifier: perToken.length ? { labels: perToken[0].linear.outDim } : null,
    },
    weights: w,
    inputs: { ids: m.inputs.ids, mask: m.inputs.mask, tokenTypes: m.inputs.tokenTypes },
    maxSeq,
    positions: ids.kind === 'from-ids' ? { fromIds: { paddingIdx: ids.paddingIdx } } : undefined,
    outputs,
    maskReading: m.maskReading,
    fixedLength: m.inputs.fixedLength,
  };
}

/** The spec's weights when all are float32 (training reads those); an int8 model is refused. */
export function floatWeights(spec: EngineSpec): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(spec.weights)) {
    if (!(v instanceof Float32Array)) throw new BortError(`the model's weight ${quoteName(k)} is int8-quantized`, 'train and distil the float32 model; quantize afterwards');
    out[k] = v;
  }
  return out;
}

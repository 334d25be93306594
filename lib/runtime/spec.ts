/**
 * The engine's view of a recognised model: the constants that change the math (score scale, mask
 * value, LayerNorm epsilons, which outputs exist) taken from the graph, and every weight in the
 * engine's canonical layout (linears as [in, out] row-major). Anything the engine cannot compute
 * exactly is refused here with an error naming the part.
 */
import { BortError } from '../errors.js';
import type { BertModel, Linear, LayerNorm } from '../bert/model.js';
import { initializerData, inOutMatrix } from '../bert/weights.js';
import { intValues } from '../onnx/tensor.js';

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
}

function unsupported(part: string, fix = 'the native engine runs BERT encoders exported in the stock pattern; use onnxruntime for this model'): BortError {
  return new BortError(`the native engine cannot run this model: ${part}`, fix);
}

/** Checks that the position lookup reads positions 0..S-1 (a Slice of an arange, or of the table). */
function checkPositions(m: BertModel): void {
  const pos = m.embeddings.position;
  if (!pos) throw unsupported('it has no position embeddings');
  if (pos.gather.opType === 'Slice') return;
  const ix = m.index;
  let t = pos.gather.input[1];
  for (let i = 0; i < 8; i++) {
    const c = ix.constant(t);
    if (c) {
      const v = intValues(c).map(Number);
      if (v.every((x, j) => x === j)) return;
      throw unsupported(`position ids '${t}' are not 0, 1, 2, …`);
    }
    const p = ix.producer.get(t);
    if (!p || !['Slice', 'Expand', 'Unsqueeze', 'Cast', 'Identity', 'Reshape'].includes(p.opType ?? '')) break;
    t = p.input[0];
  }
  throw unsupported('position ids are computed in a way the engine does not recognise');
}

export function engineSpec(m: BertModel): EngineSpec {
  const w: Record<string, Float32Array> = {};
  const vec = (name: string | undefined, n: number) => (name ? initializerData(m, name) : new Float32Array(n));
  // engine names: <part>_w / <part>_b, and <part>_w.<layer> inside layers
  const lin = (key: string, l: Linear, layer = '') => {
    w[`${key}_w${layer}`] = inOutMatrix(m, l);
    w[`${key}_b${layer}`] = vec(l.bias, l.outDim);
  };
  const ln = (key: string, n: LayerNorm, layer = '') => {
    w[`${key}_g${layer}`] = initializerData(m, n.gamma);
    w[`${key}_b${layer}`] = vec(n.beta, m.arch.hidden);
  };
  checkPositions(m);
  const e = m.embeddings;
  w.word_emb = initializerData(m, e.word.table);
  w.pos_emb = initializerData(m, e.position!.table);
  if (e.tokenType) w.type_emb = initializerData(m, e.tokenType.table);
  ln('emb_ln', e.ln);
  const scale = m.layers[0].attention.scoreScale;
  const lnEps: number[] = [];
  m.layers.forEach((l, i) => {
    if (l.ffn.activation !== 'gelu') throw unsupported(`layer ${i} uses ${l.ffn.activation} (only erf GELU is implemented)`);
    if (Math.abs(l.attention.scoreScale - scale) > 1e-7 * Math.abs(scale)) throw unsupported(`layer ${i} has a different attention-score scale`);
    const a = l.attention;
    const at = `.${i}`;
    lin('q', a.q, at); lin('k', a.k, at); lin('v', a.v, at); lin('o', a.o, at);
    ln('ln1', l.ln1, at);
    lin('ffn_in', l.ffn.in, at); lin('ffn_out', l.ffn.out, at);
    ln('ln2', l.ln2, at);
    lnEps.push(l.ln1.epsilon, l.ln2.epsilon);
  });
  if (m.pooler) lin('pooler', m.pooler.dense);
  if (m.mlm) {
    if (m.mlm.activation !== 'gelu') throw unsupported(`the masked-LM head uses ${m.mlm.activation}`);
    lin('mlm', m.mlm.transform);
    ln('mlm_ln', m.mlm.ln);
    lin('decoder', m.mlm.decoder);
  }
  const cls = m.classifiers;
  if (cls.some((c) => c.source !== 'pooler')) throw unsupported('a token classifier on the hidden states');
  if (cls.length > 1) throw unsupported(`${cls.length} classifiers on the pooled output`);
  if (cls.length === 1) lin('cls', cls[0].linear);
  if (m.inputs.mask && m.maskValue === undefined) throw unsupported('the attention-mask expression (no (1 - mask) · value found)');
  const outputs = m.outputs.map((o) => ({ name: o.name, from: ({ hidden: 'hidden', pooled: 'pooled', mlm: 'mlm', classifier: 'cls' } as const)[o.role] }));
  return {
    config: {
      layers: m.arch.layers, heads: m.arch.heads, headSize: m.headSize, hidden: m.arch.hidden, intermediate: m.arch.intermediate,
      vocab: m.vocab, maxPositions: m.maxPositions, typeVocab: m.typeVocab, scoreScale: scale, maskValue: m.maskValue ?? 0,
      embLnEps: e.ln.epsilon, lnEps, pooler: !!m.pooler, mlm: m.mlm ? { lnEps: m.mlm.ln.epsilon } : null,
      classifier: cls.length ? { labels: cls[0].linear.outDim } : null,
    },
    weights: w,
    inputs: { ids: m.inputs.ids, mask: m.inputs.mask, tokenTypes: m.inputs.tokenTypes },
    outputs,
  };
}

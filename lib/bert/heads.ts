/**
 * What reads the encoder's final hidden states: the pooler (first token → dense → tanh, or ReLU as
 * DistilBERT's pre_classifier), a masked-LM head (dense → activation → LayerNorm → decoder to the
 * vocabulary, often tied to the word table), and classifiers on the pooled output or on every token
 * (question answering: one per-token classifier of two labels split into start and end logits).
 */
import type { GraphIndex } from '../onnx/graph.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { floatData } from '../onnx/tensor.js';
import { BortError, quoteName } from '../errors.js';
import { inferenceDropout } from './evaluate.js';
import { activationBetween, activationOutputs, classifyActivation } from './ffn.js';
import { layerNormOf } from './layernorm.js';
import { readersOf } from '../quantize/linear-view.js';
import { linearAt } from './linear.js';
import { splitColumns } from './split-columns.js';
import type { Classifier, Embeddings, Linear, MaskedLmHead, Pooler } from './model.js';

/** Skips no-op nodes (Identity, inference Dropout) after a tensor. */
function through(ix: GraphIndex, t: string): string {
  const passed = new Set<string>([t]);
  for (;;) {
    const users = ix.consumersOf(t);
    if (users.length !== 1 || !(users[0].opType === 'Identity' || (users[0].opType === 'Dropout' && inferenceDropout(ix, users[0])))) return t;
    t = users[0].output[0];
    if (passed.has(t)) throw new BortError(`the graph has a cycle through ${quoteName(t)}`, 'the file is not a valid ONNX model; export it again');
    passed.add(t);
  }
}

function linearsReading(ix: GraphIndex, t: string): Linear[] {
  return readersOf(ix, t).map((n) => linearAt(ix, n)).filter((l): l is Linear => !!l && l.input === t);
}

/** Gather(index 0, axis 1) or Slice [0:1] on axis 1 (+ Squeeze): the first token. */
function firstToken(ix: GraphIndex, n: NodeProto): string | undefined {
  if (n.opType === 'Gather') {
    const axis = Number(n.attribute.find((a) => a.name === 'axis')?.i ?? 0);
    if (axis === 1 && ix.scalar(n.input[1]) === 0) return n.output[0];
  }
  if (n.opType === 'Slice') {
    const starts = ix.constantValues(n.input[1]);
    const ends = ix.constantValues(n.input[2]);
    const axes = n.input[3] ? ix.constantValues(n.input[3]) : undefined;
    if (starts?.[0] === 0 && ends?.[0] === 1 && axes?.[0] === 1) {
      const users = ix.consumersOf(n.output[0]);
      if (users.length === 1 && users[0].opType === 'Squeeze') return users[0].output[0];
    }
  }
  return undefined;
}

function sameAsTransposed(table: Float32Array, rows: number, cols: number, copy: Float32Array): boolean {
  // copy is [cols, rows] holding table[r, c] at copy[c * rows + r]
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (table[r * cols + c] !== copy[c * rows + r]) return false;
  return true;
}

export interface Heads {
  pooler?: Pooler;
  mlm?: MaskedLmHead;
  classifiers: Classifier[];
}

/** `tolerance`: how closely activations must match (wider for float16 models, see ffn.ts). */
export function recognizeHeads(ix: GraphIndex, last: string, hidden: number, emb: Embeddings, tolerance?: number): Heads {
  const heads: Heads = { classifiers: [] };
  const unknown = (what: string) => new BortError(`the encoder output is read by ${what}, which bort-compress does not recognise`, 'only the pooler, masked-LM and classifier heads are supported; export the base model instead');
  for (const n of readersOf(ix, last)) {
    const first = firstToken(ix, n);
    if (first !== undefined) {
      const dense = linearsReading(ix, first)[0];
      const users = dense ? ix.consumersOf(dense.output) : [];
      const act = users.length === 1 && !ix.outputs.has(dense!.output) && (users[0].opType === 'Tanh' || users[0].opType === 'Relu') ? users[0] : undefined;
      if (!dense || !act || dense.outDim !== hidden) throw unknown(`a first-token selection without a dense + tanh or ReLU pooler`);
      if (dense.inDim !== hidden) throw unknown(`a pooler whose weight ${quoteName(dense.weight)} reads ${dense.inDim} values, not ${hidden}`);
      heads.pooler = { select: n, dense, activation: act.opType === 'Tanh' ? 'tanh' : 'relu', output: act.output[0] };
      for (const c of linearsReading(ix, through(ix, heads.pooler.output))) {
        if (c.inDim !== hidden) throw unknown(`a classifier whose weight ${quoteName(c.weight)} reads ${c.inDim} values, not ${hidden}`);
        heads.classifiers.push({ linear: c, source: 'pooler' });
      }
      continue;
    }
    const lin = linearAt(ix, n);
    if (lin && lin.input === last) {
      if (lin.inDim !== hidden) throw unknown(`a dense layer whose weight ${quoteName(lin.weight)} reads ${lin.inDim} values, not ${hidden}`);
      if (lin.outDim === hidden) {
        // masked-LM transform: dense → activation → LayerNorm → decoder
        let mlm: MaskedLmHead | undefined;
        for (const s of activationOutputs(ix, lin.output)) {
          const ln = layerNormCandidate(ix, lin.output, s, hidden, tolerance);
          if (!ln) continue;
          const decoder = linearsReading(ix, ln.ln.output)[0];
          if (!decoder) continue;
          if (decoder.inDim !== hidden) throw unknown(`a masked-LM decoder whose weight ${quoteName(decoder.weight)} reads ${decoder.inDim} values, not ${hidden}`);
          const tiedShared = decoder.weight === emb.word.table;
          let tiedCopy = false;
          if (!tiedShared && !decoder.quant && decoder.layout === 'in_out' && decoder.outDim === emb.word.rows) {
            const w = ix.weight(emb.word.table)!;
            tiedCopy = sameAsTransposed(floatData(w.tensor), w.dims[0], w.dims[1], floatData(ix.weight(decoder.weight)!.tensor));
          }
          mlm = { transform: lin, activation: ln.activation, ln: ln.ln, decoder, tiedToWordEmbeddings: tiedShared || tiedCopy, tiedCopy };
          break;
        }
        if (!mlm) throw unknown(`a dense layer ${quoteName(lin.weight)} that is not a masked-LM head`);
        heads.mlm = mlm;
      } else {
        heads.classifiers.push({ linear: lin, source: 'hidden', columns: splitColumns(ix, lin.output, lin.outDim) });
      }
      continue;
    }
    // a copy of the hidden states as another output (Identity, or a Cast to float32 of float32 values)
    const copy = n.opType === 'Identity' || (n.opType === 'Cast' && Number(n.attribute.find((a) => a.name === 'to')?.i) === DataType.FLOAT);
    if (copy && (ix.outputs.has(last) || ix.outputs.has(n.output[0]))) continue;
    throw unknown(`a ${quoteName(n.opType)} node ${quoteName(n.name ?? '')}`);
  }
  return heads;
}

/** A LayerNorm of `s`, where `s` is reached from `from` through an activation. */
function layerNormCandidate(ix: GraphIndex, from: string, s: string, hidden: number, tolerance?: number) {
  if (!ix.consumersOf(s).some((n) => (n.opType === 'ReduceMean' || n.opType === 'LayerNormalization') && n.input[0] === s)) return undefined;
  const act = activationBetween(ix, from, s);
  if (!act) return undefined;
  const c = classifyActivation(ix, act, from, s, tolerance);
  if ('problem' in c) {
    throw new BortError(`the masked-LM head's activation between ${quoteName(from)} and ${quoteName(s)} is not recognised: ${c.problem}`,
      'bort-compress reads masked-LM heads with erf or tanh GELU or ReLU, constants as exported');
  }
  const ln = layerNormOf(ix, s, hidden);
  return ln ? { ln, activation: c.kind } : undefined;
}

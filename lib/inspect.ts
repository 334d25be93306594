/**
 * `inspect`: what a BERT ONNX model is, as recognised: architecture, sizes, parameters, heads, I/O.
 */
import { loadModel } from './onnx/io.js';
import { recognize } from './bert/recognize.js';
import { countParameters, weightBytes } from './bert/params.js';
import type { Arch, PositionIds } from './bert/model.js';
import { longestSequence } from './bert/positions.js';
import { weightPrecisions, type WeightPrecisionEntry } from './quantize/precision.js';

function positionSummary(p: PositionIds | undefined): InspectSummary['positionIds'] {
  if (!p) return { kind: 'none' };
  if (p.kind === 'arange') return { kind: 'arange', start: p.start };
  if (p.kind === 'from-ids') return { kind: 'from-ids', paddingIdx: p.paddingIdx };
  return { kind: 'other', problem: p.problem };
}

export interface InspectSummary {
  path: string;
  arch: Arch;
  vocab: number;
  params: number;
  headSize: number;
  attentionWidth: number;
  /** Rows of the position table. */
  maxPositions: number;
  /** The longest sequence the model reads (lib/bert/positions.ts `longestSequence`). */
  maxSequence: number;
  typeVocab: number;
  scoreScale: number;
  layerNorm: 'fused' | 'decomposed';
  activation: string;
  heads: { pooler: boolean; mlm: boolean; mlmTied: boolean; classifiers: { source: string; labels: number }[] };
  /** The pooler's (or pre-classifier's) activation, when there is one. */
  poolerActivation?: 'tanh' | 'relu';
  /** How token types are read: an input, one constant row (an export without the input), or none. */
  tokenTypeIds: { kind: 'input' } | { kind: 'constant'; row: number } | { kind: 'none' };
  /** Which position rows tokens read: start + t, RoBERTa's rows computed from the ids, or another form (why). */
  positionIds: { kind: 'arange'; start: number } | { kind: 'from-ids'; paddingIdx: number } | { kind: 'other'; problem: string } | { kind: 'none' };
  /** The attention mask: added ((1 - mask) · value) or put in place of padding keys' scores (Where), and its value. */
  attentionMask: { kind: 'add' | 'select'; value?: number; problem?: string } | { kind: 'none' };
  inputs: { ids: string; mask?: string; tokenTypes?: string };
  /** `column`: the output is that column of a per-token classifier's logits (question answering). */
  outputs: { name: string; role: string; column?: number }[];
  opset: number;
  irVersion: number;
  producer: string;
  fileBytes: number;
  weightBytes: number;
  /** How the file stores its float weights (float16 when its linear weights are float16, see `weights`). */
  weightType: 'float32' | 'float16';
  externalData: boolean;
  /** Precision of every linear weight (float32, or int8 per-channel / per-tensor after `quantize`). */
  weights: WeightPrecisionEntry[];
}

export function inspect(path: string): InspectSummary {
  const loaded = loadModel(path);
  const m = recognize(loaded.model);
  const e = m.embeddings;
  const opset = loaded.model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  const weights = weightPrecisions(m);
  return {
    path: loaded.path,
    arch: m.arch,
    vocab: m.vocab,
    params: countParameters(m),
    headSize: m.headSize,
    attentionWidth: m.attentionWidth,
    maxPositions: m.maxPositions,
    maxSequence: longestSequence(m),
    typeVocab: m.typeVocab,
    scoreScale: m.layers[0].attention.scoreScale,
    layerNorm: m.layers[0].ln1.kind,
    activation: m.layers[0].ffn.activation,
    heads: {
      pooler: !!m.pooler, mlm: !!m.mlm, mlmTied: !!m.mlm?.tiedToWordEmbeddings,
      classifiers: m.classifiers.map((c) => ({ source: c.source, labels: c.linear.outDim })),
    },
    poolerActivation: m.pooler?.activation,
    tokenTypeIds: !e.tokenType ? { kind: 'none' } : e.tokenType.constantRow !== undefined ? { kind: 'constant', row: e.tokenType.constantRow } : { kind: 'input' },
    positionIds: positionSummary(e.positionIds),
    attentionMask: m.maskKind === undefined && !m.maskProblem ? { kind: 'none' }
      : { kind: m.maskKind ?? 'add', ...(m.maskValue !== undefined ? { value: m.maskValue } : {}), ...(m.maskProblem ? { problem: m.maskProblem } : {}) },
    inputs: { ids: m.inputs.ids, mask: m.inputs.mask, tokenTypes: m.inputs.tokenTypes },
    outputs: m.outputs.map((o) => (o.column === undefined ? { name: o.name, role: o.role } : { name: o.name, role: o.role, column: o.column })),
    opset: Number(opset?.version ?? 0),
    irVersion: Number(loaded.model.irVersion ?? 0),
    producer: `${loaded.model.producerName ?? ''} ${loaded.model.producerVersion ?? ''}`.trim(),
    fileBytes: loaded.fileBytes,
    weightBytes: weightBytes(m),
    externalData: loaded.externalData,
    weights,
    weightType: weights.some((e) => e.precision === 'float16') ? 'float16' : 'float32',
  };
}


/**
 * Hand edits of synthetic BERT models (lib/synth naming, weights stored [in, out]) for building
 * reference models: zeroing or copying weight rows and columns, bypassing a layer, removing the
 * attention-score constant, and LayerNorm restricted to some channels. None of this uses the
 * recognition or rewrite code under test: tensors are found by the names synth gives them.
 */
import type { ModelProto, NodeProto, TensorProto } from '../lib/index.js';

export const layerPrefix = (l: number) => `bert.encoder.layer.${l}`;
/** Prefixes of the linears of layer l, as synth names them. */
export const linears = (l: number) => ({
  q: `${layerPrefix(l)}.attention.self.query`,
  k: `${layerPrefix(l)}.attention.self.key`,
  v: `${layerPrefix(l)}.attention.self.value`,
  o: `${layerPrefix(l)}.attention.output.dense`,
  ffnIn: `${layerPrefix(l)}.intermediate.dense`,
  ffnOut: `${layerPrefix(l)}.output.dense`,
});
export const layerNorms = (layers: number) => [
  'bert.embeddings.LayerNorm',
  ...Array.from({ length: layers }, (_, l) => [`${layerPrefix(l)}.attention.output.LayerNorm`, `${layerPrefix(l)}.output.LayerNorm`]).flat(),
];
export const weightOf = (prefix: string) => `onnx::MatMul_${prefix}`;
export const biasOf = (prefix: string) => `${prefix}.bias`;
export const EMBEDDING_TABLES = ['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight'];

export const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
export const without = (n: number, drop: number[]) => range(n).filter((i) => !drop.includes(i));
/** The channels of heads `heads` (head size d), in order. */
export const headChannels = (heads: number[], d: number) => heads.flatMap((h) => range(d, h * d));

function initializer(model: ModelProto, name: string): TensorProto {
  const t = model.graph!.initializer.find((i) => i.name === name);
  if (!t) throw new Error(`test model has no initializer ${name}`);
  return t;
}

/** Copies a float initializer's values, lets `fn` change them, and stores the result. */
export function editWeight(model: ModelProto, name: string, fn: (data: Float32Array, dims: number[]) => void): void {
  const t = initializer(model, name);
  const raw = t.rawData!;
  const data = new Float32Array(raw.byteLength / 4);
  new Uint8Array(data.buffer).set(raw);
  fn(data, t.dims.map(Number));
  t.rawData = new Uint8Array(data.buffer);
}

export function readWeight(model: ModelProto, name: string): Float32Array {
  const raw = initializer(model, name).rawData!;
  const data = new Float32Array(raw.byteLength / 4);
  new Uint8Array(data.buffer).set(raw);
  return data;
}

/** Sets columns `cols` of a [rows, cols] matrix (or entries of a vector) to `value(row, col)`. */
export function setColumns(model: ModelProto, name: string, cols: number[], value: (data: Float32Array, row: number, col: number, width: number) => number = () => 0): void {
  editWeight(model, name, (data, dims) => {
    const width = dims.length === 1 ? dims[0] : dims[1];
    const rows = dims.length === 1 ? 1 : dims[0];
    for (let r = 0; r < rows; r++) for (const c of cols) data[r * width + c] = value(data, r, c, width);
  });
}

export function zeroColumns(model: ModelProto, name: string, cols: number[]): void {
  setColumns(model, name, cols);
}

export function zeroRows(model: ModelProto, name: string, rows: number[]): void {
  editWeight(model, name, (data, dims) => {
    for (const r of rows) data.fill(0, r * dims[1], (r + 1) * dims[1]);
  });
}

/** Column to[i] := column from[i] (or entry, for a vector). */
export function copyColumns(model: ModelProto, name: string, from: number[], to: number[]): void {
  const src = new Map(to.map((t, i) => [t, from[i]]));
  setColumns(model, name, to, (data, r, c, width) => data[r * width + src.get(c)!]);
}

/** Multiplies every value of a float initializer by `factor`. */
export function scaleWeight(model: ModelProto, name: string, factor: number): void {
  editWeight(model, name, (data) => {
    for (let i = 0; i < data.length; i++) data[i] *= factor;
  });
}

/** The output tensor of the LayerNorm with this prefix (the node that reads its β or the fused node). */
export function layerNormOutput(model: ModelProto, prefix: string): string {
  const n = model.graph!.node.find((x) => (x.opType === 'Add' || x.opType === 'LayerNormalization') && x.input.includes(`${prefix}.bias`));
  if (!n) throw new Error(`no LayerNorm ${prefix}`);
  return n.output[0];
}

/**
 * Makes layer l an identity in the graph: its output tensor is now an Identity of its input, and
 * its own nodes are left without readers. (The rewrite under test instead re-points the next layer.)
 */
export function bypassLayer(model: ModelProto, l: number): void {
  const g = model.graph!;
  const input = layerNormOutput(model, l === 0 ? 'bert.embeddings.LayerNorm' : `${layerPrefix(l - 1)}.output.LayerNorm`);
  const output = layerNormOutput(model, `${layerPrefix(l)}.output.LayerNorm`);
  const at = g.node.findIndex((n) => n.output.includes(output));
  g.node[at].output = g.node[at].output.map((o) => (o === output ? `${output}__bypassed` : o));
  g.node.splice(at + 1, 0, { ...node('Identity', [input], [output]), name: `${output}__bypass` });
}

function node(opType: string, input: string[], output: string[], attribute: NodeProto['attribute'] = []): NodeProto {
  return { opType, input, output, name: output[0], attribute, domain: '' };
}

function floatInit(model: ModelProto, name: string, dims: number[], values: number[]): string {
  const data = Float32Array.from(values);
  model.graph!.initializer.push({
    name, dims, dataType: 1, rawData: new Uint8Array(data.buffer), floatData: [], int32Data: [], int64Data: [], doubleData: [],
    uint64Data: [], stringData: [], externalData: [], metadataProps: [],
  });
  return name;
}

function int64Init(model: ModelProto, name: string, values: number[]): string {
  const data = BigInt64Array.from(values, BigInt);
  model.graph!.initializer.push({
    name, dims: [values.length], dataType: 7, rawData: new Uint8Array(data.buffer), floatData: [], int32Data: [], int64Data: [],
    doubleData: [], uint64Data: [], stringData: [], externalData: [], metadataProps: [],
  });
  return name;
}

/**
 * Removes the scalar Div that scales the attention scores in every layer (the Add before each
 * Softmax then reads Q·Kᵀ directly), and folds that scale into the Q weights and biases instead:
 * the same function, with no score-scale constant left in the graph.
 */
export function foldScoreScaleIntoQ(model: ModelProto, layers: number, headSize: number): void {
  const g = model.graph!;
  const producer = (t: string) => g.node.find((n) => n.output.includes(t))!;
  for (const softmax of g.node.filter((n) => n.opType === 'Softmax')) {
    const add = producer(softmax.input[0]);
    const div = producer(add.input[0]);
    if (div.opType !== 'Div') throw new Error(`expected the scores Div before the mask Add, found ${div.opType}`);
    add.input[0] = div.input[0];
    g.node.splice(g.node.indexOf(div), 1);
  }
  for (let l = 0; l < layers; l++) {
    const q = linears(l).q;
    scaleWeight(model, weightOf(q), 1 / Math.sqrt(headSize));
    scaleWeight(model, biasOf(q), 1 / Math.sqrt(headSize));
  }
}

/**
 * Replaces every fused LayerNormalization (opset 17) by a LayerNorm whose mean and variance are taken
 * over the channels `kept` only: the other channels are masked out of the statistics, and the count
 * is |kept|, not the full width. (γ and β still apply to every channel.)
 */
export function layerNormOverChannels(model: ModelProto, width: number, kept: number[]): void {
  const g = model.graph!;
  const mask = floatInit(model, 'ref_ln_mask', [width], range(width).map((c) => (kept.includes(c) ? 1 : 0)));
  const count = floatInit(model, 'ref_ln_count', [], [kept.length]);
  const axes = int64Init(model, 'ref_ln_axes', [-1]);
  const out: NodeProto[] = [];
  let k = 0;
  for (const n of g.node) {
    if (n.opType !== 'LayerNormalization') {
      out.push(n);
      continue;
    }
    const [x, gamma, beta] = n.input;
    const eps = floatInit(model, `ref_ln_eps_${k}`, [], [n.attribute.find((a) => a.name === 'epsilon')?.f ?? 1e-5]);
    const t = (s: string) => `ref_ln${k}_${s}`;
    out.push(
      node('Mul', [x, mask], [t('masked')]),
      node('ReduceSum', [t('masked'), axes], [t('sum')]),
      node('Div', [t('sum'), count], [t('mean')]),
      node('Sub', [x, t('mean')], [t('centred')]),
      node('Mul', [t('centred'), mask], [t('diff')]),
      node('Mul', [t('diff'), t('diff')], [t('sq')]),
      node('ReduceSum', [t('sq'), axes], [t('sqsum')]),
      node('Div', [t('sqsum'), count], [t('var')]),
      node('Add', [t('var'), eps], [t('vareps')]),
      node('Sqrt', [t('vareps')], [t('std')]),
      node('Div', [t('diff'), t('std')], [t('normed')]),
      node('Mul', [t('normed'), gamma], [t('scaled')]),
      node('Add', [t('scaled'), beta!], [n.output[0]]),
    );
    k++;
  }
  if (k === 0) throw new Error('no LayerNormalization node to replace');
  g.node = out;
}

/** Values of the last axis restricted to `channels` ([..., width] → [..., |channels|]). */
export function lastAxis(data: Float32Array, width: number, channels: number[]): Float32Array {
  const rows = data.length / width;
  const out = new Float32Array(rows * channels.length);
  for (let r = 0; r < rows; r++) channels.forEach((c, i) => (out[r * channels.length + i] = data[r * width + c]));
  return out;
}

/**
 * `synth` writes the forms other exporters and tools write (issue 7): token types without an input,
 * QA and token-classification heads, RoBERTa positions, DistilBERT, onnxruntime's fused operators and
 * float16. Each variant must load in onnxruntime and compute what the stock model with the same weights
 * computes; heads are checked against a computation done here from the weights read back from the file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSynthModel, type SynthOptions } from '../lib/synth/bert.js';
import { toFloat16Bits } from '../lib/synth/fp16.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { floatData, tensorDims, intValues } from '../lib/onnx/tensor.js';
import { DataType, type ModelProto } from '../lib/onnx/types.js';
import { ROOT, REAL, maxAbsDiff, randomInputs, runOrt, sessionIO, tmpDir } from './helpers.js';
import { opCounts, ortOptimized } from './ort-optimized.js';

type Inputs = Record<string, { shape: number[]; data: number[] }>;
const H = 32, B = 2, S = 12, V = 100, P = 32;
const BASE: SynthOptions = { arch: `2,4,${H},64`, vocab: V, maxPositions: P, seed: 11 };
const dir = tmpDir('bort-variants-');
let counter = 0;

function write(opts: Partial<SynthOptions>): string {
  const file = path.join(dir, `v${counter++}.onnx`);
  saveModel(buildSynthModel({ ...BASE, ...opts }), file);
  return file;
}

/** Random ids (second row padded at the end), token types 0/1 and the same inputs with all-zero types. */
const INPUTS: Inputs = randomInputs({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' }, V, S);
const ZERO_TYPES: Inputs = { ...INPUTS, token_type_ids: { shape: [B, S], data: new Array(B * S).fill(0) } };

async function outputsOf(file: string, inputs: Inputs = ZERO_TYPES) {
  return runOrt(file, inputs);
}

/** The variant's outputs equal the reference's (all of them, or those named in `only`). */
async function expectSameOutputs(variant: string, reference: string, inputs: Inputs = ZERO_TYPES, refInputs: Inputs = inputs, only?: string[]) {
  const tol = 1e-5;
  const [a, b] = [await outputsOf(variant, inputs), await outputsOf(reference, refInputs)];
  if (only) expect(Object.keys(a)).toEqual(only);
  else expect(Object.keys(a)).toEqual(Object.keys(b));
  for (const k of only ?? Object.keys(b)) {
    expect(a[k].dims, k).toEqual(b[k].dims);
    expect(maxAbsDiff(a[k].data, b[k].data), k).toBeLessThanOrEqual(tol);
  }
}

function model(file: string): ModelProto {
  return loadModel(file).model;
}

function initializer(file: string, name: string): { dims: number[]; data: Float32Array } {
  const t = model(file).graph!.initializer.find((i) => i.name === name);
  if (!t) throw new Error(`no initializer ${name} in ${file}`);
  return { dims: tensorDims(t), data: floatData(t) };
}

function ops(file: string): string[] {
  return model(file).graph!.node.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType!));
}

/** y[t, j] = Σ_i x[t, i]·W[i, j] + b[j] for every token t, in float64. */
function perToken(x: Float32Array, w: Float32Array, b: Float32Array, inDim: number, outDim: number): Float64Array {
  const tokens = x.length / inDim;
  const y = new Float64Array(tokens * outDim);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < outDim; j++) {
      let s = b[j];
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * w[i * outDim + j];
      y[t * outDim + j] = s;
    }
  }
  return y;
}

/** [rows, cols] → [cols, rows]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

describe('synth: token types without a token_type_ids input', () => {
  it('constant-of-shape (transformers without token_type_ids) computes what the stock model computes on all-zero types', async () => {
    const stock = write({});
    const cos = write({ tokenTypes: 'constant-of-shape' });
    expect((await sessionIO(cos)).inputs).toEqual(['input_ids', 'attention_mask']);
    expect(ops(cos)).toContain('ConstantOfShape');
    await expectSameOutputs(cos, stock);
    // the comparison can fail: token types 1 give other hidden states
    const withTypes = await outputsOf(stock, INPUTS);
    expect(maxAbsDiff(withTypes.last_hidden_state.data, (await outputsOf(cos)).last_hidden_state.data)).toBeGreaterThan(1e-3);
  });

  it('zero-buffer: a registered int64 zero buffer [1, P], sliced and expanded', async () => {
    const zb = write({ tokenTypes: 'zero-buffer' });
    const buf = model(zb).graph!.initializer.find((i) => i.name === 'bert.embeddings.token_type_ids')!;
    expect(buf.dataType).toBe(DataType.INT64);
    expect(tensorDims(buf)).toEqual([1, P]);
    expect(intValues(buf).every((v) => Number(v) === 0)).toBe(true);
    expect(ops(zb)).toEqual(expect.arrayContaining(['Slice', 'Expand']));
    expect((await sessionIO(zb)).inputs).toEqual(['input_ids', 'attention_mask']);
    await expectSameOutputs(zb, write({}));
  });

  it('contradictions are refused: no table with a token-type form, a table with none', () => {
    expect(() => buildSynthModel({ ...BASE, typeVocab: 0, tokenTypes: 'zero-buffer' })).toThrow(/needs a token-type table.*--type-vocab/);
    expect(() => buildSynthModel({ ...BASE, typeVocab: 2, tokenTypes: 'none' })).toThrow(/has no table/);
  });
});

describe('synth: question-answering and token-classification heads', () => {
  it.each([11, 14])('qa at opset %i: qa_outputs [H, 2] → Split → Squeeze into start_logits/end_logits, as computed here', async (opset) => {
    const stock = write({ opset });
    const qa = write({ opset, head: 'qa' });
    const io = await sessionIO(qa);
    expect(io.outputs).toEqual(['start_logits', 'end_logits']);
    const g = model(qa).graph!;
    const split = g.node.find((n) => n.opType === 'Split')!;
    const squeeze = g.node.filter((n) => n.opType === 'Squeeze');
    expect(squeeze).toHaveLength(2);
    if (opset < 13) {
      expect(split.attribute.find((a) => a.name === 'split')!.ints.map(Number)).toEqual([1, 1]);
      expect(squeeze[0].attribute.find((a) => a.name === 'axes')!.ints.map(Number)).toEqual([-1]);
    } else {
      expect(split.input).toHaveLength(2);
      expect(squeeze[0].input).toHaveLength(2);
    }
    const w = initializer(qa, 'onnx::MatMul_qa_outputs');
    expect(w.dims).toEqual([H, 2]);
    const b = initializer(qa, 'qa_outputs.bias');
    const hidden = (await outputsOf(stock, INPUTS)).last_hidden_state.data;
    const logits = perToken(hidden, w.data, b.data, H, 2);
    const out = await outputsOf(qa, INPUTS);
    expect(out.start_logits.dims).toEqual([B, S]);
    expect(maxAbsDiff(out.start_logits.data, logits.filter((_, i) => i % 2 === 0))).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(out.end_logits.data, logits.filter((_, i) => i % 2 === 1))).toBeLessThanOrEqual(1e-5);
  });

  it('PyTorch 1.3 naming: inputs input_ids/input_mask/segment_ids, outputs start/end', async () => {
    const old = write({ head: 'qa', inputNames: { ids: 'input_ids', mask: 'input_mask', tokenTypes: 'segment_ids' }, outputNames: ['start', 'end'] });
    expect(await sessionIO(old)).toEqual({ inputs: ['input_ids', 'input_mask', 'segment_ids'], outputs: ['start', 'end'] });
    const renamed: Inputs = { input_ids: INPUTS.input_ids, input_mask: INPUTS.attention_mask, segment_ids: INPUTS.token_type_ids };
    const [a, b] = [await outputsOf(old, renamed), await outputsOf(write({ head: 'qa' }), INPUTS)];
    expect(maxAbsDiff(a.start.data, b.start_logits.data)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(a.end.data, b.end_logits.data)).toBeLessThanOrEqual(1e-6);
    expect(() => buildSynthModel({ ...BASE, head: 'qa', outputNames: ['start'] })).toThrow(/qa head has 2 outputs.*1 names/);
  });

  it('token-cls: classifier [H, labels] on every token, as computed here', async () => {
    const L = 5;
    const tok = write({ head: 'token-cls', labels: L });
    const w = initializer(tok, 'onnx::MatMul_classifier');
    expect(w.dims).toEqual([H, L]);
    const expected = perToken((await outputsOf(write({}), INPUTS)).last_hidden_state.data, w.data, initializer(tok, 'classifier.bias').data, H, L);
    const out = (await outputsOf(tok, INPUTS)).logits;
    expect(out.dims).toEqual([B, S, L]);
    expect(maxAbsDiff(out.data, expected)).toBeLessThanOrEqual(1e-5);
  });
});

/** transformers' create_position_ids_from_input_ids, computed here: cumsum(ids != pad) · (ids != pad) + pad. */
function robertaPositions(ids: number[], pad = 1): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < S; t++) {
      const keep = ids[b * S + t] !== pad ? 1 : 0;
      count += keep;
      out.push(count * keep + pad);
    }
  }
  return out;
}

describe('synth: RoBERTa', () => {
  // RoBERTa pads with id 1
  const ids = INPUTS.input_ids.data.map((v, i) => (INPUTS.attention_mask.data[i] === 0 ? 1 : v === 1 ? 2 : v));
  const robertaInputs: Inputs = { ...ZERO_TYPES, input_ids: { shape: [B, S], data: ids } };
  const positions = robertaPositions(ids);

  it('position ids computed from input_ids equal a model fed the positions computed here', async () => {
    const roberta = write({ family: 'roberta' });
    // the same weights (same seed, same table sizes) with position ids as an input
    const reference = write({ typeVocab: 1, maxPositions: P + 2, positionIds: 'input' });
    expect(initializer(roberta, 'roberta.embeddings.position_embeddings.weight').dims).toEqual([P + 2, H]);
    expect(initializer(roberta, 'roberta.embeddings.token_type_embeddings.weight').dims).toEqual([1, H]);
    expect(ops(roberta)).toEqual(expect.arrayContaining(['CumSum', 'Not', 'Equal']));
    expect((await sessionIO(roberta)).inputs).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    // the padded row really has padding positions, so a wrong formula would show
    expect(positions.slice(S)).not.toEqual(Array.from({ length: S }, (_, t) => t + 2));
    await expectSameOutputs(roberta, reference, robertaInputs, { ...robertaInputs, position_ids: { shape: [B, S], data: positions } });
    const arange = { ...robertaInputs, position_ids: { shape: [B, S], data: [...Array(B)].flatMap(() => Array.from({ length: S }, (_, t) => t + 2)) } };
    const wrong = (await outputsOf(reference, arange)).last_hidden_state.data;
    expect(maxAbsDiff((await outputsOf(roberta, robertaInputs)).last_hidden_state.data, wrong)).toBeGreaterThan(1e-3);
  });

  it.each(['constant-of-shape', 'zero-buffer'] as const)('without token_type_ids (%s) it computes what it computes on zero types', async (form) => {
    const v = write({ family: 'roberta', tokenTypes: form });
    expect((await sessionIO(v)).inputs).toEqual(['input_ids', 'attention_mask']);
    await expectSameOutputs(v, write({ family: 'roberta' }), robertaInputs);
  });

  it('refuses the BERT position buffer', () => {
    expect(() => buildSynthModel({ ...BASE, family: 'roberta', positionIds: 'buffer' })).toThrow(/RoBERTa computes its position ids/);
  });
});

describe('synth: DistilBERT', () => {
  it('is the BERT without token types, in DistilBERT names and mask pattern', async () => {
    const distil = write({ family: 'distilbert' });
    const io = await sessionIO(distil);
    expect(io).toEqual({ inputs: ['input_ids', 'attention_mask'], outputs: ['last_hidden_state'] });
    const names = model(distil).graph!.initializer.map((i) => i.name);
    for (const n of ['distilbert.embeddings.word_embeddings.weight', 'distilbert.embeddings.position_embeddings.weight', 'distilbert.transformer.layer.0.attention.q_lin.bias',
      'distilbert.transformer.layer.1.attention.out_lin.bias', 'distilbert.transformer.layer.0.sa_layer_norm.weight', 'distilbert.transformer.layer.0.ffn.lin1.bias',
      'distilbert.transformer.layer.0.ffn.lin2.bias', 'distilbert.transformer.layer.1.output_layer_norm.bias']) expect(names).toContain(n);
    expect(names.some((n) => n!.includes('token_type'))).toBe(false);
    expect(ops(distil)).toEqual(expect.arrayContaining(['Equal', 'Expand', 'Where']));
    // the mask fill is finfo(float32).min
    const fills = model(distil).graph!.node.filter((n) => n.opType === 'Where').map((n) => n.input[1]);
    const constants = new Map(model(distil).graph!.node.filter((n) => n.opType === 'Constant' && n.attribute[0].t!.dataType === DataType.FLOAT).map((n) => [n.output[0], floatData(n.attribute[0].t!)[0]]));
    expect(constants.get(fills[0])).toBe(-3.4028234663852886e38);
    await expectSameOutputs(distil, write({ typeVocab: 0 }), ZERO_TYPES, ZERO_TYPES, ['last_hidden_state']);
  });

  it('sequence classification: first token → pre_classifier → ReLU → classifier, as computed here', async () => {
    const cls = write({ family: 'distilbert', head: 'cls' });
    const hidden = (await outputsOf(write({ family: 'distilbert' }))).last_hidden_state.data;
    const first = new Float32Array(B * H);
    for (let b = 0; b < B; b++) first.set(hidden.subarray(b * S * H, b * S * H + H), b * H);
    const pre = initializer(cls, 'pre_classifier.weight');
    expect(pre.dims).toEqual([H, H]);
    const hiddenCls = perToken(first, transpose(pre.data, H, H), initializer(cls, 'pre_classifier.bias').data, H, H).map((v) => Math.max(0, v));
    const c = initializer(cls, 'classifier.weight');
    const expected = perToken(Float32Array.from(hiddenCls), transpose(c.data, 2, H), initializer(cls, 'classifier.bias').data, H, 2);
    const out = (await outputsOf(cls)).logits;
    expect(out.dims).toEqual([B, 2]);
    expect(maxAbsDiff(out.data, expected)).toBeLessThanOrEqual(1e-5);
    expect(ops(cls)).toContain('Relu');
  });

  it('refuses token types', () => {
    expect(() => buildSynthModel({ ...BASE, family: 'distilbert', typeVocab: 2 })).toThrow(/DistilBERT has no token types/);
  });
});

describe("synth: onnxruntime's fused operators", () => {
  const contrib = (file: string) => ops(file).filter((o) => o.startsWith('com.microsoft.'));

  it.each([
    ['attention', ['com.microsoft.Attention']],
    ['qkv-split', []],
    ['skip-ln', ['com.microsoft.SkipLayerNormalization']],
    ['embed-ln', ['com.microsoft.EmbedLayerNormalization']],
    ['bias-gelu', ['com.microsoft.BiasGelu']],
    ['gelu', ['com.microsoft.Gelu']],
  ] as const)('%s computes what the unfused model computes', async (form, expected) => {
    const fused = write({ fused: form });
    for (const op of expected) expect(contrib(fused)).toContain(op);
    if (form === 'qkv-split') {
      expect(ops(fused)).toContain('Split');
      expect(initializer(fused, 'onnx::MatMul_bert.encoder.layer.0.attention.self.qkv').dims).toEqual([H, 3 * H]);
    }
    if (expected.length) expect(model(fused).opsetImport).toContainEqual({ domain: 'com.microsoft', version: 1 });
    await expectSameOutputs(fused, write({}), INPUTS);
  });

  it('Attention holds Q, K and V side by side in one [H, 3H] weight, num_heads = A', () => {
    const stock = write({});
    const fused = write({ fused: 'attention' });
    const qkv = initializer(fused, 'Attention_0_qkv_weight');
    expect(qkv.dims).toEqual([H, 3 * H]);
    const parts = ['query', 'key', 'value'].map((p) => initializer(stock, `onnx::MatMul_bert.encoder.layer.0.attention.self.${p}`).data);
    for (let r = 0; r < H; r++) for (let c = 0; c < 3 * H; c++) expect(qkv.data[r * 3 * H + c]).toBe(parts[Math.floor(c / H)][r * H + (c % H)]);
    const att = model(fused).graph!.node.find((n) => n.opType === 'Attention')!;
    expect(Number(att.attribute.find((a) => a.name === 'num_heads')!.i)).toBe(4);
  });

  it('FastGelu is the tanh GELU: it matches a model with gelu_new, not erf GELU', async () => {
    const fast = write({ fused: 'fast-gelu' });
    expect(contrib(fast)).toContain('com.microsoft.FastGelu');
    const tanhRef = write({ activation: 'gelu-tanh' });
    expect(ops(tanhRef)).toContain('Tanh');
    await expectSameOutputs(fast, tanhRef, INPUTS);
    const erf = (await outputsOf(write({}), INPUTS)).last_hidden_state.data;
    expect(maxAbsDiff(erf, (await outputsOf(fast, INPUTS)).last_hidden_state.data)).toBeGreaterThan(1e-6);
    expect(() => buildSynthModel({ ...BASE, fused: 'fast-gelu', activation: 'gelu' })).toThrow(/tanh approximation/);
  });

  it.each([
    ['bert', { fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] }],
    ['bert at opset 11', { opset: 11, fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] }],
    ['roberta', { family: 'roberta', fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] }],
    ['distilbert', { family: 'distilbert', fused: ['attention', 'skip-ln', 'embed-ln', 'gelu'] }],
    ['bert, no token types, qkv-split', { tokenTypes: 'zero-buffer', fused: ['qkv-split', 'skip-ln', 'bias-gelu'] }],
  ] as [string, Partial<SynthOptions>][])('everything fused at once (%s) computes what the unfused model computes', async (_, opts) => {
    const { fused, ...unfused } = opts;
    const v = write(opts);
    expect(contrib(v).length).toBeGreaterThan(0);
    const roberta = opts.family === 'roberta';
    const ids = roberta ? INPUTS.input_ids.data.map((x, i) => (INPUTS.attention_mask.data[i] === 0 ? 1 : x)) : INPUTS.input_ids.data;
    const inputs = { ...ZERO_TYPES, input_ids: { shape: [B, S], data: ids } };
    await expectSameOutputs(v, write(unfused), inputs);
  });

  it('contradictory forms are refused', () => {
    expect(() => buildSynthModel({ ...BASE, fused: ['attention', 'qkv-split'] })).toThrow(/exclude each other/);
    expect(() => buildSynthModel({ ...BASE, fused: 'embed-ln', tokenTypes: 'constant-of-shape' })).toThrow(/EmbedLayerNormalization reads token types/);
    expect(() => buildSynthModel({ ...BASE, fused: 'attention', scale: 'mul' })).toThrow(/no score-scale/);
    expect(() => buildSynthModel({ ...BASE, fused: 'nope' as never })).toThrow(/fused form 'nope' is unknown/);
  });
});

/** binary16 bits → number, written here independently of the encoder. */
function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

describe('synth: float16', () => {
  it('encodes binary16, rounding to nearest even', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [0.1, 0x2e66], [1 / 3, 0x3555],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [2047, 0x67ff], [2049, 0x6800], [2051, 0x6802],
    ];
    for (const [v, bits] of cases) expect(toFloat16Bits(v), String(v)).toBe(bits);
    expect(toFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toFloat16Bits(NaN) & 0x3ff).not.toBe(0);
  });

  it('as onnxruntime converts: FLOAT16 initializers and constants, Casts back to float at the outputs; close to float32', async () => {
    const fp32 = write({});
    const fp16 = write({ dtype: 'float16' });
    const g = model(fp16).graph!;
    expect(g.initializer.filter((t) => t.dataType === DataType.FLOAT)).toEqual([]);
    const halves = g.initializer.filter((t) => t.dataType === DataType.FLOAT16);
    expect(halves.length).toBeGreaterThan(20);
    for (const t of halves) expect(t.rawData!.byteLength).toBe(2 * tensorDims(t).reduce((a, b) => a * b, 1));
    const floatConstants = g.node.filter((n) => n.opType === 'Constant' && n.attribute[0].t!.dataType === DataType.FLOAT);
    expect(floatConstants).toEqual([]);
    expect(g.node.filter((n) => n.opType === 'Cast' && n.name!.startsWith('graph_output_cast')).map((n) => n.output[0])).toEqual(['last_hidden_state', 'pooler_output']);
    // weights are the float32 model's, rounded to half precision
    const w16 = g.initializer.find((t) => t.name === 'onnx::MatMul_bert.encoder.layer.0.attention.self.query')!;
    const halfBits = new Uint16Array(w16.rawData!.buffer.slice(w16.rawData!.byteOffset, w16.rawData!.byteOffset + w16.rawData!.byteLength));
    const w32 = initializer(fp32, 'onnx::MatMul_bert.encoder.layer.0.attention.self.query').data;
    for (let i = 0; i < w32.length; i++) expect(Math.abs(fromFloat16Bits(halfBits[i]) - w32[i])).toBeLessThanOrEqual(Math.abs(w32[i]) * 2 ** -11 + 2 ** -25);
    const [a, b] = [await outputsOf(fp16, INPUTS), await outputsOf(fp32, INPUTS)];
    expect(a.last_hidden_state.data).toBeInstanceOf(Float32Array);
    const d = maxAbsDiff(a.last_hidden_state.data, b.last_hidden_state.data);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThanOrEqual(2e-2);
    expect(maxAbsDiff(a.pooler_output.data, b.pooler_output.data)).toBeLessThanOrEqual(2e-2);
  });

  it('ops kept in float32 (Softmax, LayerNormalization) get Casts around them; their own weights stay float32', async () => {
    const fp16 = write({ dtype: 'float16', opset: 17, fp16KeepFloat: ['Softmax', 'LayerNormalization'] });
    const g = model(fp16).graph!;
    const gamma = g.initializer.find((t) => t.name === 'bert.embeddings.LayerNorm.weight')!;
    expect(gamma.dataType).toBe(DataType.FLOAT);
    const softmax = g.node.find((n) => n.opType === 'Softmax')!;
    const producer = g.node.find((n) => n.output[0] === softmax.input[0])!;
    expect(producer.opType).toBe('Cast');
    expect(Number(producer.attribute[0].i)).toBe(DataType.FLOAT);
    const consumer = g.node.find((n) => n.input.includes(softmax.output[0]))!;
    expect(consumer.opType).toBe('Cast');
    expect(Number(consumer.attribute[0].i)).toBe(DataType.FLOAT16);
    const [a, b] = [await outputsOf(fp16, INPUTS), await outputsOf(write({ opset: 17 }), INPUTS)];
    expect(maxAbsDiff(a.last_hidden_state.data, b.last_hidden_state.data)).toBeLessThanOrEqual(2e-2);
  });

  it('fused operators in float16 run too', async () => {
    const opts: Partial<SynthOptions> = { fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] };
    const [a, b] = [await outputsOf(write({ ...opts, dtype: 'float16' }), INPUTS), await outputsOf(write(opts), INPUTS)];
    expect(maxAbsDiff(a.last_hidden_state.data, b.last_hidden_state.data)).toBeLessThanOrEqual(2e-2);
  });
});

describe('what onnxruntime itself saves (optimizedModelFilePath)', () => {
  it.each(['extended', 'all'] as const)('a stock synth model at level %s: FusedMatMul, BiasGelu, FusedGemm, LayerNormalization; same outputs', async (level) => {
    const stock = write({});
    const opt = await ortOptimized(stock, level);
    const counts = opCounts(opt);
    expect(counts['com.microsoft.FusedMatMul']).toBe(2);
    expect(counts['com.microsoft.BiasGelu']).toBe(2);
    expect(counts['com.microsoft.FusedGemm']).toBe(1);
    expect(counts.LayerNormalization).toBe(5);
    await expectSameOutputs(opt, stock, INPUTS);
  });

  it('the PyTorch 1.1 export at level extended: Attention and SkipLayerNormalization; same outputs', async () => {
    const opt = await ortOptimized(REAL, 'extended');
    const counts = opCounts(opt);
    expect(counts['com.microsoft.Attention']).toBe(5);
    expect(counts['com.microsoft.SkipLayerNormalization']).toBe(11);
    expect(counts['com.microsoft.BiasGelu']).toBe(6);
    const inputs = randomInputs({ ids: 'input_ids', mask: 'input_mask', tokenTypes: 'token_type_ids' }, 99, S);
    await expectSameOutputs(opt, REAL, inputs);
  });
});

describe('synth CLI: exporter variants', () => {
  const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'synth', '--arch', '2,4,32,64', '--vocab', '100', '--positions', '32', ...args], { encoding: 'utf8' });

  it('writes RoBERTa without token types, a QA head in PyTorch 1.3 names, fused attention, float16', async () => {
    const out = path.join(tmpDir(), 'r.onnx');
    const r = cli('--family', 'roberta', '--no-token-types', '--head', 'qa', '--output-names', 'start,end', '--fused', 'attention,skip-ln', '--dtype', 'float16', '-o', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote .*r\.onnx .*qa head/);
    expect(await sessionIO(out)).toEqual({ inputs: ['input_ids', 'attention_mask'], outputs: ['start', 'end'] });
    expect(opCounts(out)['com.microsoft.Attention']).toBe(2);
    expect(model(out).graph!.initializer.some((t) => t.name === 'roberta.embeddings.position_embeddings.weight' && t.dataType === DataType.FLOAT16)).toBe(true);
  });

  it('an unknown form is one clear line, exit 1, no file', () => {
    const d = tmpDir();
    const out = path.join(d, 'out.onnx');
    const r = cli('--fused', 'attention,nope', '-o', out);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^bort-compress: error: --fused 'nope' is unknown: use --fused attention, qkv-split, /);
    expect(fs.readdirSync(d)).toEqual([]);
  });
});

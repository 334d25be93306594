/**
 * Issue 7, items 5–7: what TensorFlow exporters, onnxruntime and float16 conversion write. For each
 * form: `inspect` reads the architecture; an identity compress reproduces onnxruntime's outputs; a
 * shrinking compress keeps the file's form (fused operators, float16) and computes what the same
 * compression of the stock model computes; the native engine matches onnxruntime, or refuses naming
 * the part it cannot compute exactly. The stock model is the same synth model (same seed, same
 * weights) in the PyTorch export pattern, so every comparison can fail.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { compress, Encoder, inspect, recognize } from '../lib/index.js';
import { BortError } from '../lib/errors.js';
import { buildSynthModel, type SynthOptions } from '../lib/synth/bert.js';
import { GraphIndex, makeAttrInt, makeNode } from '../lib/onnx/graph.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { tensorDims } from '../lib/onnx/tensor.js';
import { DataType, type ModelProto } from '../lib/onnx/types.js';
import { float32Copy, halfBits } from './float16-copy.js';
import { FIXTURES, REAL, REAL_EXPORTS, ROOT, fixture, maxAbsDiff, maxAbsDiffAtTokens, randomInputs, tmpDir } from './helpers.js';
import { opCounts, ortOptimized } from './ort-optimized.js';

type Feed = Record<string, { shape: number[]; data: number[] }>;
type Outputs = Record<string, Float32Array>;

const H = 32, V = 100, S = 12;
const BASE: SynthOptions = { arch: `2,4,${H},64`, vocab: V, maxPositions: 32, seed: 11 };
const NAMES = { ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' };
const INPUTS: Feed = randomInputs(NAMES, V, S);
const dir = tmpDir('bort-exporters-');
let counter = 0;

function write(opts: Partial<SynthOptions> = {}): string {
  const file = path.join(dir, `m${counter++}.onnx`);
  saveModel(buildSynthModel({ ...BASE, ...opts }), file);
  return file;
}

function save(m: ModelProto): string {
  const file = path.join(dir, `m${counter++}.onnx`);
  saveModel(m, file);
  return file;
}

/** onnxruntime's outputs, feeding each input in the integer type the model declares. */
async function ortRun(file: string, inputs: Feed): Promise<Outputs> {
  const session = await ort.InferenceSession.create(file);
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata as { name: string; type?: string }[]) {
    const x = inputs[meta.name];
    if (!x) throw new Error(`no data for input ${meta.name}`);
    feeds[meta.name] = meta.type === 'int32' ? new ort.Tensor('int32', Int32Array.from(x.data), x.shape) : new ort.Tensor('int64', BigInt64Array.from(x.data, (v) => BigInt(v)), x.shape);
  }
  const r = await session.run(feeds);
  const out: Outputs = {};
  for (const k of session.outputNames) out[k] = r[k].data as Float32Array;
  await session.release();
  return out;
}

/**
 * For outputs of nativeRun: each output's dims and the attention mask fed, so that expectClose compares
 * per-token outputs at real positions and requires the zeros the engine returns at padded ones (README).
 */
const NATIVE_RUNS = new WeakMap<Outputs, { dims: Record<string, number[]>; mask?: ArrayLike<number> }>();

/** The native engine's outputs (ids as int32 when asked). */
async function nativeRun(file: string, inputs: Feed, int32 = false): Promise<Outputs> {
  const enc = await Encoder.load(file, { threads: 1 });
  try {
    const feeds: Record<string, { data: BigInt64Array | Int32Array; dims: number[] }> = {};
    for (const name of enc.inputNames) {
      const x = inputs[name];
      if (x) feeds[name] = { data: int32 ? Int32Array.from(x.data) : BigInt64Array.from(x.data, (v) => BigInt(v)), dims: x.shape };
    }
    const r = await enc.run(feeds);
    const out: Outputs = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data]));
    const mask = Object.entries(inputs).find(([k]) => /mask/i.test(k))?.[1].data;
    // a QA head's start and end ([batch, seq]) are per-token outputs too: one value a token
    const split = new Set(enc.outputRoles.filter((o) => o.column !== undefined).map((o) => o.name));
    NATIVE_RUNS.set(out, { dims: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, split.has(k) ? [...v.dims, 1] : [...v.dims]])), mask });
    return out;
  } finally {
    enc.close();
  }
}

function expectClose(a: Outputs, b: Outputs, tol: number): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(b)) {
    expect(a[k].length, k).toBe(b[k].length);
    const run = NATIVE_RUNS.get(a);
    const d = run ? maxAbsDiffAtTokens(a[k], b[k], run.dims[k], run.mask) : maxAbsDiff(a[k], b[k]);
    expect(d, k).toBeLessThanOrEqual(tol);
  }
}

async function compressTo(file: string, arch: string, attentionScale?: 'keep' | 'rescale' | 'mean'): Promise<string> {
  const output = path.join(tmpDir('bort-exporters-out-'), path.basename(file));
  await compress(file, { arch, strategy: 'first', output, attentionScale });
  return output;
}

async function bortError(f: () => unknown): Promise<BortError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BortError);
    return e as BortError;
  }
  throw new Error('expected a BortError, got none');
}

function model(file: string): ModelProto {
  return loadModel(file).model;
}

function attrOf(file: string, op: string, name: string): number[] {
  return model(file).graph!.node.filter((n) => n.opType === op).map((n) => {
    const a = n.attribute.find((x) => x.name === name);
    return a === undefined ? NaN : a.f !== undefined && a.type === 1 ? a.f : Number(a.i);
  });
}

function initializerDims(file: string, name: string): number[] {
  return tensorDims(model(file).graph!.initializer.find((t) => t.name === name)!);
}

const ARCH = { layers: 2, heads: 4, hidden: H, intermediate: 64 };

describe('onnxruntime transformer-optimizer forms (synth, same weights as the stock model)', () => {
  const FORMS: [string, Partial<SynthOptions>, string[]][] = [
    ['Attention (QKV weight [H, 3H], num_heads, mask_index as lengths)', { fused: 'attention' }, ['com.microsoft.Attention']],
    ['Q, K, V as one MatMul followed by Split', { fused: 'qkv-split' }, ['Split']],
    ['Q, K, V as one MatMul + Split, weights stored [out, in]', { fused: 'qkv-split', weights: 'transposed' }, ['Split', 'Transpose']],
    ['SkipLayerNormalization', { fused: 'skip-ln' }, ['com.microsoft.SkipLayerNormalization']],
    ['EmbedLayerNormalization', { fused: 'embed-ln' }, ['com.microsoft.EmbedLayerNormalization']],
    ['BiasGelu', { fused: 'bias-gelu' }, ['com.microsoft.BiasGelu']],
    ['Gelu', { fused: 'gelu' }, ['com.microsoft.Gelu']],
    ['everything fused (Attention, Skip/EmbedLayerNormalization, BiasGelu)', { fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] },
      ['com.microsoft.Attention', 'com.microsoft.SkipLayerNormalization', 'com.microsoft.EmbedLayerNormalization', 'com.microsoft.BiasGelu']],
    ['QKV + Split, SkipLayerNormalization, BiasGelu at opset 11', { opset: 11, fused: ['qkv-split', 'skip-ln', 'bias-gelu'] },
      ['Split', 'com.microsoft.SkipLayerNormalization', 'com.microsoft.BiasGelu']],
  ];

  it.each(FORMS)('%s: inspect, identity compress, shrinking compress = the stock model shrunk, native engine', async (_, opts, ops) => {
    const file = write(opts);
    const stock = write({ opset: opts.opset, weights: opts.weights });
    for (const op of ops) expect(opCounts(file)[op], op).toBeGreaterThan(0);
    const s = inspect(file);
    expect(s.arch).toEqual(ARCH);
    expect(s.activation).toBe('gelu');
    expect(s.scoreScale).toBeCloseTo(1 / Math.sqrt(8), 6);
    expect(s.params).toBe(inspect(stock).params);
    expect(s.heads).toEqual({ pooler: true, mlm: false, mlmTied: false, classifiers: [] });
    const reference = await ortRun(file, INPUTS);
    expectClose(reference, await ortRun(stock, INPUTS), 1e-4);

    const same = await compressTo(file, '2,4,32,64');
    for (const op of ops) expect(opCounts(same)[op], op).toBe(opCounts(file)[op]);
    expectClose(await ortRun(same, INPUTS), reference, 1e-5);

    const small = await compressTo(file, '1,2,16,32');
    for (const op of ops) expect(opCounts(small)[op], op).toBeGreaterThan(0);
    expect(inspect(small).arch).toEqual({ layers: 1, heads: 2, hidden: 16, intermediate: 32 });
    const smallOut = await ortRun(small, INPUTS);
    expectClose(smallOut, await ortRun(await compressTo(stock, '1,2,16,32'), INPUTS), 1e-5);

    expectClose(await nativeRun(file, INPUTS), reference, 1e-4);
    expectClose(await nativeRun(small, INPUTS), smallOut, 1e-4);
  });

  it('Attention after a shrink: the fused weight sliced to [16, 48], num_heads 2, and the score scale written when heads merge', async () => {
    const file = write({ fused: 'attention' });
    const stock = write({});
    const small = await compressTo(file, '1,2,16,32');
    expect(initializerDims(small, 'Attention_0_qkv_weight')).toEqual([16, 48]);
    expect(initializerDims(small, 'Attention_0_qkv_bias')).toEqual([48]);
    expect(attrOf(small, 'Attention', 'num_heads')).toEqual([2]);
    expect(attrOf(small, 'Attention', 'scale')).toEqual([NaN]); // head size 8 kept: onnxruntime's default scale still holds
    // 4 heads of 8 → 2 heads of 16 (merged): onnxruntime's default 1/√16 would be wrong, so the scale is written
    const merged = await compressTo(file, '2,2,32,64');
    expect(attrOf(merged, 'Attention', 'num_heads')).toEqual([2, 2]);
    const scale = attrOf(merged, 'Attention', 'scale');
    expect(scale[0]).toBeCloseTo(inspect(merged).scoreScale, 7);
    expect(scale[0]).not.toBeCloseTo(0.25, 3);
    const out = await ortRun(merged, INPUTS);
    expectClose(out, await ortRun(await compressTo(stock, '2,2,32,64'), INPUTS), 1e-5);
    expectClose(await nativeRun(merged, INPUTS), out, 1e-4);
    // keeping the source's scale with merged heads: still written, as onnxruntime's default would change it
    const kept = await compressTo(file, '2,2,32,64', 'keep');
    expect(attrOf(kept, 'Attention', 'scale')[0]).toBeCloseTo(1 / Math.sqrt(8), 7);
    expectClose(await ortRun(kept, INPUTS), await ortRun(await compressTo(stock, '2,2,32,64', 'keep'), INPUTS), 1e-5);
  });

  it('Split sizes follow the sliced QKV weight', async () => {
    const file = write({ fused: 'qkv-split' });
    const small = await compressTo(file, '1,2,16,32');
    const split = model(small).graph!.node.find((n) => n.opType === 'Split')!;
    expect(new GraphIndex(model(small).graph!).constantValues(split.input[1])).toEqual([16, 16, 16]);
    expect(initializerDims(small, 'onnx::MatMul_bert.encoder.layer.0.attention.self.qkv')).toEqual([16, 48]);
  });

  it.each([
    ['ReduceSum of the mask', ['attention']],
    ['EmbedLayerNormalization\'s mask_index', ['attention', 'skip-ln', 'embed-ln', 'bias-gelu']],
  ] as [string, SynthOptions['fused']][])('mask_index as lengths (%s): the engine reads the mask as onnxruntime\'s Attention does, and refuses masks other than 0/1', async (_, fused) => {
    const file = write({ fused });
    const stock = write({});
    expect(recognize(model(file)).maskReading).toBe('lengths');
    // a hole in the mask: onnxruntime's Attention counts the ones and attends to that many first keys
    const holed: Feed = { ...INPUTS, attention_mask: { shape: [2, S], data: INPUTS.attention_mask.data.map((v, i) => (i === 3 ? 0 : v)) } };
    const fusedOut = await ortRun(file, holed);
    expect(maxAbsDiff(fusedOut.last_hidden_state, (await ortRun(stock, holed)).last_hidden_state)).toBeGreaterThan(1e-3);
    const native = await nativeRun(file, holed);
    // read as lengths, the padded positions (returned as zeros) are those past each row's count of ones
    const lengths = holed.attention_mask.data.map((_, i) => {
      const row = holed.attention_mask.data.slice(i - (i % S), i - (i % S) + S);
      return i % S < row.reduce((a, b) => a + b, 0) ? 1 : 0;
    });
    NATIVE_RUNS.get(native)!.mask = lengths;
    expectClose(native, fusedOut, 1e-4);
    const twos: Feed = { ...INPUTS, attention_mask: { shape: [2, S], data: INPUTS.attention_mask.data.map((v) => v * 2) } };
    await expect(nativeRun(file, twos)).rejects.toThrow(/'attention_mask'\[0\] = 2: attention-mask values must be 0 \(padding\) or 1 \(token\)/);
  });

  it('FastGelu: read as tanh GELU; compress works; the native engine refuses, naming it', async () => {
    const file = write({ fused: 'fast-gelu' });
    const stock = write({ activation: 'gelu-tanh' });
    expect(opCounts(file)['com.microsoft.FastGelu']).toBe(2);
    expect(inspect(file).activation).toBe('gelu_tanh');
    const reference = await ortRun(file, INPUTS);
    expectClose(await ortRun(await compressTo(file, '2,4,32,64'), INPUTS), reference, 1e-5);
    const small = await compressTo(file, '1,2,16,32');
    expect(opCounts(small)['com.microsoft.FastGelu']).toBe(1);
    expectClose(await ortRun(small, INPUTS), await ortRun(await compressTo(stock, '1,2,16,32'), INPUTS), 1e-5);
    const e = await bortError(() => Encoder.load(file));
    expect(e.message).toMatch(/the native engine cannot run this model: layer 0 uses gelu_tanh, GELU's tanh approximation \(as onnxruntime's FastGelu computes it\)/);
  });

  it('fused forms the engine and the rewrite cannot follow are refused, naming the node', async () => {
    const causal = model(write({ fused: 'attention' }));
    causal.graph!.node.find((n) => n.opType === 'Attention')!.attribute.push(makeAttrInt('unidirectional', 1));
    expect((await bortError(() => inspect(save(causal)))).message).toMatch(/^Attention '\/Attention_\d+' is causal \(unidirectional = 1\), which bort-compress cannot read/);
    const transA = model(await ortOptimized(write({}), 'extended'));
    const fused = transA.graph!.node.find((n) => n.opType === 'FusedMatMul')!;
    fused.attribute = [...fused.attribute.filter((a) => a.name !== 'transA'), makeAttrInt('transA', 1)];
    expect((await bortError(() => inspect(save(transA)))).message).toMatch(/FusedMatMul '[^']+' has transA = 1, which bort-compress cannot read/);
    // an onnxruntime operator no pass reads, in the middle of a layer
    const foreign = model(write({ fused: 'gelu' }));
    const gelu = foreign.graph!.node.find((n) => n.opType === 'Gelu')!;
    gelu.opType = 'QuickGelu';
    expect((await bortError(() => inspect(save(foreign)))).message).toMatch(/the graph has the node '[^']+' of the 'com\.microsoft' operator 'QuickGelu', which bort-compress does not read/);
  });
});

describe('what onnxruntime saves with optimizedModelFilePath (FusedMatMul, BiasGelu, FusedGemm, LayerNormalization; Attention, SkipLayerNormalization)', () => {
  const CASES: [string, string, 'extended' | 'all'][] = [
    ['bert-tiny-op11', path.join(FIXTURES, 'bert-tiny-op11.onnx'), 'extended'],
    ['bert-tiny-op14', path.join(FIXTURES, 'bert-tiny-op14.onnx'), 'all'],
    ['bert-tiny-op17', path.join(FIXTURES, 'bert-tiny-op17.onnx'), 'extended'],
    ['bert-tiny-mlm-op14', path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx'), 'extended'],
    ['bert-tiny-cls-op14', path.join(FIXTURES, 'bert-tiny-cls-op14.onnx'), 'extended'],
    ['PyTorch 1.1 BertForPreTraining', REAL, 'extended'],
  ];

  it.each(CASES)('%s at level %s: inspect, identity compress, shrinking compress = the original shrunk, native engine', async (name, src, level) => {
    const opt = await ortOptimized(src, level);
    const counts = opCounts(opt);
    if (name.startsWith('PyTorch')) {
      expect(counts['com.microsoft.Attention']).toBe(5);
      expect(counts['com.microsoft.SkipLayerNormalization']).toBe(11);
      expect(recognize(model(opt)).maskReading).toBe('raw');
    } else {
      expect(recognize(model(opt)).maskReading).toBeUndefined();
      expect(counts['com.microsoft.FusedMatMul']).toBe(2);
      expect(counts.LayerNormalization).toBeGreaterThanOrEqual(5);
    }
    expect(counts['com.microsoft.BiasGelu']).toBeGreaterThan(0);
    const inputs: Feed = name.startsWith('PyTorch')
      ? randomInputs({ ids: 'input_ids', mask: 'input_mask', tokenTypes: 'token_type_ids' }, 99, S)
      : fixture(name).inputs;
    const s = inspect(opt);
    expect(s.arch).toEqual(inspect(src).arch);
    expect(s.params).toBe(inspect(src).params);
    expect(s.outputs).toEqual(inspect(src).outputs);
    const reference = await ortRun(opt, inputs);
    expectClose(await ortRun(await compressTo(opt, Object.values(s.arch).join(',')), inputs), reference, 1e-5);
    const target = name.startsWith('PyTorch') ? '2,2,16,20' : '1,2,32,128';
    const small = await compressTo(opt, target);
    const smallOut = await ortRun(small, inputs);
    expectClose(smallOut, await ortRun(await compressTo(src, target), inputs), 1e-5);
    expectClose(await nativeRun(opt, inputs), reference, 1e-4);
    expectClose(await nativeRun(small, inputs), smallOut, 1e-4);
    if (name.startsWith('PyTorch')) {
      // Attention's raw 2-D mask: a hole in the mask is a hole, as in the original
      const holed: Feed = { ...inputs, input_mask: { shape: [2, S], data: inputs.input_mask.data.map((v, i) => (i === 3 ? 0 : v)) } };
      const out = await ortRun(opt, holed);
      expectClose(out, await ortRun(src, holed), 1e-4);
      expectClose(await nativeRun(opt, holed), out, 1e-4);
    }
  });

  it('FusedMatMul\'s alpha carries the score scale: patched when heads merge', async () => {
    const stock = write({});
    const opt = await ortOptimized(stock, 'extended');
    expect(attrOf(opt, 'FusedMatMul', 'alpha')[0]).toBeCloseTo(1 / Math.sqrt(8), 6);
    const merged = await compressTo(opt, '2,2,32,64');
    const alpha = attrOf(merged, 'FusedMatMul', 'alpha');
    expect(alpha).toHaveLength(2);
    expect(alpha[0]).toBeCloseTo(inspect(merged).scoreScale, 6);
    expect(alpha[0]).not.toBeCloseTo(1 / Math.sqrt(8), 3);
    const out = await ortRun(merged, INPUTS);
    expectClose(out, await ortRun(await compressTo(stock, '2,2,32,64'), INPUTS), 1e-5);
    expectClose(await nativeRun(merged, INPUTS), out, 1e-4);
  });
});

describe('half precision (weights FLOAT16, as onnxruntime\'s float16 converter writes them)', () => {
  const FORMS: [string, Partial<SynthOptions>][] = [
    ['stock pattern', { dtype: 'float16' }],
    ['fused operators', { dtype: 'float16', fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] }],
    ['Softmax and LayerNormalization kept in float32, with Casts around them', { dtype: 'float16', opset: 17, fp16KeepFloat: ['Softmax', 'LayerNormalization'] }],
  ];

  it.each(FORMS)('%s: read, sliced and written back in float16; the engine computes in float32 from the float16 values', async (name, opts) => {
    const file = write(opts);
    const s = inspect(file);
    expect(s.arch).toEqual(ARCH);
    expect(s.activation).toBe('gelu');
    expect(s.weightType).toBe('float16');
    if (!opts.fp16KeepFloat) expect(s.weightBytes).toBe(2 * s.params);
    const reference = await ortRun(file, INPUTS);
    const asFloat32 = await ortRun(float32Copy(file), INPUTS);
    // onnxruntime computes in float16: the float32 copy differs by float16's rounding, no more
    expect(maxAbsDiff(reference.last_hidden_state, asFloat32.last_hidden_state)).toBeGreaterThan(1e-5);
    expectClose(reference, asFloat32, 1e-2);

    const same = await compressTo(file, '2,4,32,64');
    expectClose(await ortRun(same, INPUTS), reference, 1e-5);

    const small = await compressTo(file, '1,2,16,32');
    const g = model(small).graph!;
    const word = g.initializer.find((t) => t.name === 'bert.embeddings.word_embeddings.weight')!;
    expect(word.dataType).toBe(DataType.FLOAT16);
    expect(tensorDims(word)).toEqual([V, 16]);
    // the kept columns are the file's float16 values, bit for bit ('first' keeps channels 0..15)
    const before = halfBits(model(file).graph!.initializer.find((t) => t.name === word.name)!);
    expect(halfBits(word)).toEqual(before.filter((_, i) => i % H < 16));
    expect(g.initializer.filter((t) => t.dataType === DataType.FLOAT16).length).toBeGreaterThan(10);
    const smallOut = await ortRun(small, INPUTS);
    const smallAsFloat32 = await ortRun(float32Copy(small), INPUTS);
    expectClose(smallOut, smallAsFloat32, 1e-2);

    // the engine: exact against the float32 copy, float16-close to onnxruntime's float16 run
    const native = await nativeRun(file, INPUTS);
    expectClose(native, asFloat32, 1e-4);
    expectClose(native, reference, 1e-2);
    expectClose(await nativeRun(small, INPUTS), smallAsFloat32, 1e-4);
    if (name === 'fused operators') expect(opCounts(small)['com.microsoft.Attention']).toBe(1);
  });

  it('a float16 scale constant stays float16 when compress rewrites it', async () => {
    const file = write({ dtype: 'float16' });
    const merged = await compressTo(file, '2,2,32,64');
    const g = model(merged).graph!;
    const div = g.node.find((n) => n.opType === 'Div' && /attention_scale/.test(n.input[1] ?? ''))!;
    expect(g.initializer.find((t) => t.name === div.input[1])!.dataType).toBe(DataType.FLOAT16);
    const out = await ortRun(merged, INPUTS);
    expectClose(await nativeRun(merged, INPUTS), await ortRun(float32Copy(merged), INPUTS), 1e-4);
    expect(out.last_hidden_state.every(Number.isFinite)).toBe(true);
  });
});

describe('TensorFlow: keras2onnx\'s TFBertForQuestionAnswering (opset 11, int32 inputs, fixed length 7)', () => {
  const KERAS = path.join(REAL_EXPORTS, 'keras2onnx_TFBertForQuestionAnswering_opset11.onnx');
  const LAST = 'tf_bert_for_question_answering/bert/encoder/layer_._23/output/LayerNorm/batchnorm/add_1:0';
  const keras: Feed = {
    input_ids: { shape: [2, 7], data: [3, 15, 7, 1, 19, 4, 2, 5, 9, 12, 0, 0, 0, 0] },
    attention_mask: { shape: [2, 7], data: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0] },
    token_type_ids: { shape: [2, 7], data: [0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0] },
  };

  /** The file with its QA head cut off: the encoder's final hidden state is the output. */
  function encoderOnly(): string {
    const m = model(KERAS);
    m.graph!.output = [{ name: LAST, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch_size' }, { dimValue: 7 }, { dimValue: 8 }] } } } }];
    return save(m);
  }

  it('the whole file is recognised: the encoder, and the QA head (output_1, output_2) as a per-token classifier split into columns', async () => {
    const full = inspect(KERAS);
    expect(full.arch).toEqual({ layers: 24, heads: 2, hidden: 8, intermediate: 32 });
    expect(full.heads.classifiers).toEqual([{ source: 'hidden', labels: 2 }]);
    expect(full.outputs).toEqual([{ name: 'output_1', role: 'classifier', column: 0 }, { name: 'output_2', role: 'classifier', column: 1 }]);
    const s = inspect(encoderOnly());
    expect(s.arch).toEqual({ layers: 24, heads: 2, hidden: 8, intermediate: 32 });
    expect(s.layerNorm).toBe('decomposed');
    expect(s.activation).toBe('gelu');
    expect(s.scoreScale).toBe(0.5);
    expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' });
    const m = recognize(model(encoderOnly()));
    expect(m.inputs.fixedLength).toBe(7);
    expect(m.maskValue).toBe(-10000);
    expect(m.embeddings.positionIds).toEqual({ kind: 'arange', start: 0, maxSeq: 10 });
    expect(m.layers.map((l) => l.ln1.epsilon)).toEqual(new Array(24).fill(Math.fround(1e-12)));
  });

  it('the whole file end to end: identity compress reproduces both logits, a shrunk copy keeps the QA head, the native engine matches onnxruntime', async () => {
    const reference = await ortRun(KERAS, keras);
    expect(Object.keys(reference).sort()).toEqual(['output_1', 'output_2']);
    expect(reference.output_1.length).toBe(2 * 7);
    expectClose(await ortRun(await compressTo(KERAS, '24,2,8,32'), keras), reference, 1e-5);
    expectClose(await nativeRun(KERAS, keras, true), reference, 1e-4);
    const small = await compressTo(KERAS, '2,1,6,16');
    expect(inspect(small).outputs.map((o) => o.name)).toEqual(['output_1', 'output_2']);
    const out = await ortRun(small, keras);
    expect(out.output_2.length).toBe(2 * 7);
    expect(out.output_2.every(Number.isFinite)).toBe(true);
    expectClose(await nativeRun(small, keras, true), out, 1e-4);
  });

  it('identity compress reproduces it; a shrinking compress patches the reshape widths TensorFlow computes at run time', async () => {
    const file = encoderOnly();
    const reference = await ortRun(file, keras);
    expectClose(await ortRun(await compressTo(file, '24,2,8,32'), keras), reference, 1e-5);
    const small = await compressTo(file, '2,1,6,16');
    expect(inspect(small).arch).toEqual({ layers: 2, heads: 1, hidden: 6, intermediate: 16 });
    const out = await ortRun(small, keras);
    expect(out[LAST].length).toBe(2 * 7 * 6);
    expect(out[LAST].every(Number.isFinite)).toBe(true);
    expectClose(await nativeRun(small, keras, true), out, 1e-4);
  });

  it('the native engine matches onnxruntime with int32 (and int64) ids, and takes only the declared length', async () => {
    const file = encoderOnly();
    const reference = await ortRun(file, keras);
    expectClose(await nativeRun(file, keras, true), reference, 1e-4);
    expectClose(await nativeRun(file, keras, false), reference, 1e-4);
    const five: Feed = Object.fromEntries(Object.entries(keras).map(([k, v]) => [k, { shape: [2, 5], data: v.data.filter((_, i) => i % 7 < 5) }]));
    await expect(ortRun(file, five)).rejects.toThrow();
    await expect(nativeRun(file, five, true)).rejects.toThrow(/sequence length 5: this model's inputs declare sequences of exactly 7 tokens/);
  });

  it('what onnxruntime makes of it (positions folded into a constant [1, 7, 8], shared reshapes, FusedMatMul): read, compressed, run', async () => {
    const file = encoderOnly();
    const opt = await ortOptimized(file, 'extended');
    expect(opCounts(opt)['com.microsoft.FusedMatMul']).toBe(24);
    expect(model(opt).graph!.initializer.some((t) => tensorDims(t).join(',') === '1,7,8')).toBe(true);
    const s = inspect(opt);
    expect(s.arch).toEqual({ layers: 24, heads: 2, hidden: 8, intermediate: 32 });
    expect(s.params).toBe(inspect(file).params - 3 * 8); // the table's 10 rows are 7 in the folded constant
    expect(recognize(model(opt)).embeddings.positionIds).toEqual({ kind: 'arange', start: 0, maxSeq: 7 });
    const reference = await ortRun(opt, keras);
    expectClose(await ortRun(await compressTo(opt, '24,2,8,32'), keras), reference, 1e-5);
    const small = await compressTo(opt, '2,1,6,16');
    const out = await ortRun(small, keras);
    expectClose(out, await ortRun(await compressTo(file, '2,1,6,16'), keras), 1e-5);
    expect(model(small).graph!.initializer.filter((t) => tensorDims(t).join(',') === '1,7,6')).toHaveLength(1);
    expectClose(await nativeRun(opt, keras, true), reference, 1e-4);
    expectClose(await nativeRun(small, keras, true), out, 1e-4);
  });
});

describe('a Cast of the encoder output to float32 is read through (float16 outputs, converters)', () => {
  it('an output written by Cast(to float) of the hidden state is the hidden state', () => {
    const m = buildSynthModel({ ...BASE, head: 'base' });
    const g = m.graph!;
    const out = g.output[0].name!;
    const producer = g.node.find((n) => n.output[0] === out)!;
    producer.output[0] = `${out}_inner`;
    for (const n of g.node) n.input = n.input.map((i) => (i === out ? `${out}_inner` : i));
    g.node.push(makeNode('Cast', [`${out}_inner`], [out], 'cast_out', [makeAttrInt('to', DataType.FLOAT)]));
    const file = save(m);
    expect(inspect(file).outputs).toEqual([{ name: 'last_hidden_state', role: 'hidden' }, { name: 'pooler_output', role: 'pooled' }]);
  });
});

describe('the command line on these forms', () => {
  const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

  it('inspect says the weights are float16; compress keeps a fused float16 model fused and float16', async () => {
    const file = write({ dtype: 'float16', fused: ['attention', 'skip-ln', 'embed-ln', 'bias-gelu'] });
    const r = cli('inspect', file);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/params +22,496 +\(45\.0 kB of weights; file/);
    expect(r.stdout).toMatch(/precision +linear weights: float16 \d+\n/);
    const out = path.join(tmpDir(), 'small.onnx');
    const c = cli(file, '--arch', '1,2,16,32', '-o', out);
    expect(c.stderr).toBe('');
    expect(c.status).toBe(0);
    expect(opCounts(out)['com.microsoft.Attention']).toBe(1);
    const qkv = model(out).graph!.initializer.filter((t) => /^Attention_\d_qkv_weight$/.test(t.name ?? ''));
    expect(qkv.map((t) => [t.dataType, ...tensorDims(t)])).toEqual([[DataType.FLOAT16, 16, 48]]);
    expect((await ortRun(out, INPUTS)).last_hidden_state.every(Number.isFinite)).toBe(true);
  });
});

// Encoder.load(quantized ONNX): the engine reads the file's own int8 weights and scales (no
// re-quantization) and runs them on its int8 kernels; compared with onnxruntime running the same file.
// Two forms: what `quantize` writes, and onnxruntime's own `quantize_dynamic` pattern, built here by
// hand from the float32 fixture (onnxruntime's Python tools are not installed): every MatMul with a
// constant B → DynamicQuantizeLinear(x) shared per input, MatMulInteger(x_q, W_q, x_zp, W_zp), Cast(to
// float), Mul(x_scale, W_scale) named "…_scales_mul", Mul(cast, scales) into the MatMul's old output;
// weights per tensor (its default: scalar scale and zero point) or per_channel=True (one per output
// column), QInt8 symmetric (scale = max|W| / 127, round half to even as numpy) or QUInt8 asymmetric
// (refused here: uint8 weights with a zero point).
//
// Bound: activations are quantized differently by design (ours: symmetric int8 per row; onnxruntime:
// uint8 per tensor), so the two agree within the sum of two quantization errors, not bit for bit. Each
// is ~1e-3 of the largest output on these fixtures (test/quantize.test.ts derives 3e-3 for one int8
// model against float32); the heads' path (MLM decoder int8, 1,000 logits from int8 LayerNorm outputs)
// measured 1.4e-2 against float32 there, bound 2.5e-2.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BortError, Encoder, inspect, loadModel, quantize, recognize, saveModel } from '../lib/index.js';
import { makeAttrInt, makeNode } from '../lib/onnx/graph.js';
import { floatData, makeFloatTensor } from '../lib/onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../lib/onnx/types.js';
import { FIXTURES, fixture, runOrt, tmpDir } from './helpers.js';

function relDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / m;
}

function tensorOf(name: string, dims: number[], dataType: DataType, bytes: Uint8Array): TensorProto {
  return { name, dims, dataType, rawData: bytes, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [], stringData: [], externalData: [], metadataProps: [] };
}

/** numpy's round (half to even). */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The float32 model rewritten as onnxruntime's quantize_dynamic writes it (see the header). */
function ortQuantizeDynamic(input: string, output: string, weightType: 'QInt8' | 'QUInt8', perChannel = false): void {
  const loaded = loadModel(input);
  const g = loaded.model.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const dql = new Map<string, [string, string, string]>();
  const nodes: NodeProto[] = [];
  for (const n of g.node) {
    const w = n.opType === 'MatMul' ? inits.get(n.input[1]) : undefined;
    if (!w || w.dataType !== DataType.FLOAT || w.dims.length !== 2) { nodes.push(n); continue; }
    const x = n.input[0];
    let xq = dql.get(x);
    if (!xq) {
      xq = [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`];
      dql.set(x, xq);
      nodes.push(makeNode('DynamicQuantizeLinear', [x], xq, `${x}_QuantizeLinear`));
    }
    const v = floatData(w);
    let q: Uint8Array, scale: number, zp: number, type: DataType;
    const cols = w.dims[1];
    let scales: Float32Array | undefined;
    if (weightType === 'QInt8' && perChannel) {
      // per_channel=True: one scale per output column (axis 1 of MatMul's B), zero points int8 [N] zeros
      scales = new Float32Array(cols);
      for (let i = 0; i < v.length; i++) scales[i % cols] = Math.max(scales[i % cols], Math.abs(v[i]));
      scales = scales.map((m) => Math.fround(m / 127));
      const i8 = Int8Array.from(v, (a, i) => Math.max(-127, Math.min(127, roundEven(a / scales![i % cols]))));
      q = new Uint8Array(i8.buffer);
      scale = 0;
      zp = 0;
      type = DataType.INT8;
    } else if (weightType === 'QInt8') {
      let mx = 0;
      for (const a of v) mx = Math.max(mx, Math.abs(a));
      scale = Math.fround(mx / 127);
      zp = 0;
      const i8 = Int8Array.from(v, (a) => Math.max(-127, Math.min(127, roundEven(a / scale))));
      q = new Uint8Array(i8.buffer);
      type = DataType.INT8;
    } else {
      let lo = 0, hi = 0;
      for (const a of v) { lo = Math.min(lo, a); hi = Math.max(hi, a); }
      scale = Math.fround((hi - lo) / 255);
      zp = roundEven(-lo / scale);
      q = Uint8Array.from(v, (a) => Math.max(0, Math.min(255, roundEven(a / scale) + zp)));
      type = DataType.UINT8;
    }
    const wq = `${w.name}_quantized`, ws = `${w.name}_scale`, wz = `${w.name}_zero_point`;
    if (scales) {
      g.initializer.push(tensorOf(wq, [...w.dims], type, q), makeFloatTensor(ws, [cols], scales), tensorOf(wz, [cols], type, new Uint8Array(cols)));
    } else {
      g.initializer.push(tensorOf(wq, [...w.dims], type, q), makeFloatTensor(ws, [], Float32Array.of(scale)),
        tensorOf(wz, [], type, Uint8Array.of(zp & 0xff)));
    }
    const out = n.output[0];
    nodes.push(makeNode('MatMulInteger', [xq[0], wq, xq[2], wz], [`${out}_output_quantized`], `${n.name}_quant`));
    nodes.push(makeNode('Cast', [`${out}_output_quantized`], [`${out}_output_quantized_cast_output`], `${out}_output_quantized_cast`, [makeAttrInt('to', DataType.FLOAT)]));
    nodes.push(makeNode('Mul', [xq[1], ws], [`${n.name}_quant_scales_mul:0`], `${n.name}_quant_scales_mul`));
    nodes.push(makeNode('Mul', [`${out}_output_quantized_cast_output`, `${n.name}_quant_scales_mul:0`], [out], `${n.name}_quant_output_scale_mul`));
  }
  g.node = nodes;
  const read = new Set(nodes.flatMap((n) => n.input));
  g.initializer = g.initializer.filter((t) => read.has(t.name ?? ''));
  g.input = g.input.filter((i) => !inits.has(i.name ?? '') || read.has(i.name ?? ''));
  saveModel(loaded.model as ModelProto, output);
}

async function compareWithOrt(file: string, name: string, bound: number, int8 = false): Promise<number> {
  const inputs = fixture(name).inputs;
  const want = await runOrt(file, inputs);
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { data: BigInt64Array.from(v.data, (x) => BigInt(x)), dims: v.shape }]));
  const enc = await Encoder.load(file, { threads: 2, int8 });
  let worst = 0;
  try {
    const got = await enc.run(feeds);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    const mask = inputs.attention_mask.data;
    for (const k of Object.keys(want)) {
      const o = Float32Array.from(want[k].data);
      // per-token outputs: zeros at padded positions (README), compared at the real ones
      if (got[k].dims.length === 3) {
        const width = got[k].dims[2];
        for (let i = 0; i < o.length; i++) if (mask[Math.floor(i / width)] === 0) o[i] = 0;
      }
      const d = relDiff(o, got[k].data);
      expect(d, k).toBeLessThan(bound);
      worst = Math.max(worst, d);
    }
  } finally {
    enc.close();
  }
  return worst;
}

const FIX = ['bert-tiny-op14', 'bert-tiny-mlm-op14', 'bert-tiny-cls-op14'];

describe('Encoder.load(quantized ONNX): the file\'s int8 weights on our kernels, close to onnxruntime on the same file', () => {
  for (const name of FIX) {
    for (const perTensor of [false, true]) {
      it(`${name}, written by quantize ${perTensor ? 'per tensor' : 'per channel'}: within 3e-3 of onnxruntime`, async () => {
        const q = path.join(tmpDir(), 'q.onnx');
        quantize(path.join(FIXTURES, `${name}.onnx`), { output: q, perTensor });
        const worst = await compareWithOrt(q, name, 3e-3);
        expect(worst).toBeGreaterThan(0);
      });
    }
  }

  it('bert-tiny-mlm-op14 written by quantize --all (heads int8 too): within 2.5e-2', async () => {
    const q = path.join(tmpDir(), 'q.onnx');
    quantize(path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx'), { output: q, all: true });
    await compareWithOrt(q, 'bert-tiny-mlm-op14', 2.5e-2);
  });

  it('the file\'s int8 weights are used as stored: value scales times 4 change the outputs as onnxruntime does (not re-quantized)', async () => {
    // scaling every column scale of layer 0's value by 4 moves the outputs by far more than the bound;
    // ours must follow onnxruntime's within the bound
    const dir = tmpDir();
    const q = path.join(dir, 'q.onnx');
    quantize(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { output: q });
    const loaded = loadModel(q);
    const l = recognize(loaded.model).layers[0].attention.v;
    const t = loaded.model.graph!.initializer.find((x) => x.name === l.quant!.scale)!;
    t.rawData = new Uint8Array(floatData(t).map((v) => v * 4).buffer);
    const edited = path.join(dir, 'edited.onnx');
    saveModel(loaded.model, edited);
    const before = await runOrt(q, fixture('bert-tiny-op14').inputs);
    const after = await runOrt(edited, fixture('bert-tiny-op14').inputs);
    const k = Object.keys(before)[0];
    expect(relDiff(before[k].data, after[k].data)).toBeGreaterThan(1e-2);
    await compareWithOrt(edited, 'bert-tiny-op14', 3e-3);
  });

  for (const name of FIX) {
    it(`${name} in onnxruntime's quantize_dynamic form (QInt8, per tensor, every constant-B MatMul): within 2.5e-2, inspect lists it`, async () => {
      const q = path.join(tmpDir(), 'ort.onnx');
      ortQuantizeDynamic(path.join(FIXTURES, `${name}.onnx`), q, 'QInt8');
      const s = inspect(q);
      expect(s.weights.filter((w) => w.precision === 'int8 per-tensor').length).toBeGreaterThanOrEqual(12);
      const worst = await compareWithOrt(q, name, 2.5e-2);
      expect(worst).toBeGreaterThan(0);
    });
  }

  for (const name of ['bert-tiny-mlm-op14', 'bert-tiny-cls-op14']) {
    it(`${name} in onnxruntime's quantize_dynamic form with per_channel=True: within 2.5e-2, inspect lists it`, async () => {
      const q = path.join(tmpDir(), 'ort-pc.onnx');
      ortQuantizeDynamic(path.join(FIXTURES, `${name}.onnx`), q, 'QInt8', true);
      const s = inspect(q);
      expect(s.weights.filter((w) => w.precision === 'int8 per-channel').length).toBeGreaterThanOrEqual(12);
      const worst = await compareWithOrt(q, name, 2.5e-2);
      expect(worst).toBeGreaterThan(0);
    });
  }

  it('Encoder.load(quantized, { int8: true }) also makes the word embeddings (and a float decoder) int8: within 2.5e-2', async () => {
    const q = path.join(tmpDir(), 'q.onnx');
    quantize(path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx'), { output: q });
    await compareWithOrt(q, 'bert-tiny-mlm-op14', 2.5e-2, true);
  });
});

describe('Encoder.load(quantized ONNX): forms it cannot run exactly are refused with a one-line BortError', () => {
  it('onnxruntime\'s QUInt8 form (uint8 weights with a zero point): refused, naming the fix; onnxruntime runs it', async () => {
    const q = path.join(tmpDir(), 'ort-u8.onnx');
    ortQuantizeDynamic(path.join(FIXTURES, 'bert-tiny-op14.onnx'), q, 'QUInt8');
    const out = await runOrt(q, fixture('bert-tiny-op14').inputs);
    expect(Object.keys(out).length).toBeGreaterThan(0);
    const err = await Encoder.load(q).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BortError);
    expect(String((err as Error).message)).toMatch(/weight '.*' of MatMulInteger .* is uint8 \(asymmetric weights with a zero point\)/);
    expect(String((err as Error).message)).toMatch(/weight_type=QuantType.QInt8/);
    expect((err as Error).message.split('\n')).toHaveLength(1);
  });

  it('an int8 weight holding -128 (the kernels negate weights): refused by the engine, inspect still reads it', async () => {
    const dir = tmpDir();
    const q = path.join(dir, 'q.onnx');
    quantize(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { output: q });
    const loaded = loadModel(q);
    const l = recognize(loaded.model).layers[1].ffn.in;
    const t = loaded.model.graph!.initializer.find((x) => x.name === l.weight)!;
    const v = Int8Array.from(new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.byteLength));
    v[7] = -128;
    t.rawData = new Uint8Array(v.buffer);
    const bad = path.join(dir, 'bad.onnx');
    saveModel(loaded.model, bad);
    expect(inspect(bad).weights.length).toBeGreaterThan(0);
    const err = await Encoder.load(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BortError);
    expect((err as Error).message).toMatch(/layer 1 feed-forward input weight '.*' holds -128 at index 7; the int8 kernels take weights in \[-127, 127\]/);
  });

  const scaleCases: [string, (v: Float32Array) => void, RegExp][] = [
    ['zero', (v) => { v[5] = 0; }, /has value 0 at 5/],
    ['negative', (v) => { v[0] = -v[0]; }, /has value -[\d.e-]+ at 0/],
    ['NaN', (v) => { v[63] = NaN; }, /has value NaN at 63/],
    ['infinite', (v) => { v[2] = Infinity; }, /has value Infinity at 2/],
  ];
  for (const [what, edit, message] of scaleCases) {
    it(`a ${what} weight scale: Encoder.load rejects it in one line`, async () => {
      const dir = tmpDir();
      const q = path.join(dir, 'q.onnx');
      quantize(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { output: q });
      const loaded = loadModel(q);
      const l = recognize(loaded.model).layers[0].attention.q;
      const t = loaded.model.graph!.initializer.find((x) => x.name === l.quant!.scale)!;
      const v = Float32Array.from(floatData(t));
      edit(v);
      t.rawData = new Uint8Array(v.buffer);
      const bad = path.join(dir, 'bad.onnx');
      saveModel(loaded.model, bad);
      const err = await Encoder.load(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BortError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).toMatch(/a scale must be a finite number above 0/);
      expect((err as Error).message.split('\n')).toHaveLength(1);
      expect(fs.readdirSync(dir).sort()).toEqual(['bad.onnx', 'q.onnx']);
    });
  }

  it('a weight zero point other than 0: rejected', async () => {
    const dir = tmpDir();
    const q = path.join(dir, 'q.onnx');
    quantize(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { output: q });
    const loaded = loadModel(q);
    const l = recognize(loaded.model).layers[0].attention.k;
    const t = loaded.model.graph!.initializer.find((x) => x.name === l.quant!.zeroPoint)!;
    const v = Int8Array.from(new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.byteLength));
    v[3] = -5;
    t.rawData = new Uint8Array(v.buffer);
    const bad = path.join(dir, 'bad.onnx');
    saveModel(loaded.model, bad);
    const err = await Encoder.load(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BortError);
    expect((err as Error).message).toMatch(/weight zero point '.*' of MatMulInteger .* is -5 at 3: bort-compress reads symmetric int8 weights/);
  });
});

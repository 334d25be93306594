// `quantize`: int8 weights as DynamicQuantizeLinear + MatMulInteger. onnxruntime runs the result and its
// outputs stay within the quantization error of the float32 model's; the stored int8 weights and scales
// are checked against the float32 weights directly (scale = max |column| / 127, |W - q·s| <= s/2);
// damaged scales and zero points, already
// quantized models and non-BERT graphs are refused in one line.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BortError, inspect, loadModel, quantize, recognize, saveModel } from '../lib/index.js';
import { inOutMatrix } from '../lib/bert/weights.js';
import { quantizableLinears } from '../lib/quantize/quantize.js';
import { int8Values } from '../lib/quantize/linear-view.js';
import { floatData } from '../lib/onnx/tensor.js';
import { removeDeadCode } from '../lib/rewrite/prune.js';
import { DataType, type ModelProto, type TensorProto } from '../lib/onnx/types.js';
import { FIXTURES, ROOT, fixture, runOrt, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Largest |a - b| relative to the largest |a|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / m;
}

async function worstRelDiff(fp32: string, int8: string, name: string): Promise<number> {
  const inputs = fixture(name).inputs;
  const [a, b] = [await runOrt(fp32, inputs), await runOrt(int8, inputs)];
  let worst = 0;
  for (const k of Object.keys(a)) worst = Math.max(worst, relDiff(a[k].data, b[k].data));
  return worst;
}

// Measured on these fixtures: 0.5e-3 to 0.9e-3 of the largest output (per channel and per tensor alike:
// their random columns all have about the same size). Per linear, rounding W to s_w/2 and x to s_x/2
// with s = max/127 (x: range/255 over uint8) puts each product term within about 0.6 % of its size,
// and the errors of K such terms add up like sqrt(K) (independent roundings), not K: the output error is
// ~1e-3 of the output. 3e-3 leaves room for the LayerNorms in between; a dropped or doubled scale is
// off by far more. The scale axis (per column, not per row) is checked exactly on the stored weights below.
const BOUND = 3e-3;

describe('quantize: onnxruntime runs the int8 model, close to the float32 one', () => {
  for (const name of ['bert-tiny-op11', 'bert-tiny-op17', 'bert-tiny-mlm-op14', 'bert-tiny-cls-op14']) {
    for (const perTensor of [false, true]) {
      it(`${name}, ${perTensor ? 'per tensor' : 'per channel'}: outputs within ${BOUND} of the largest`, async () => {
        const input = path.join(FIXTURES, `${name}.onnx`);
        const out = path.join(tmpDir(), 'q.onnx');
        const s = quantize(input, { output: out, perTensor });
        expect(s.quantized).toHaveLength(12);
        expect(s.scheme).toBe(perTensor ? 'per-tensor' : 'per-channel');
        const worst = await worstRelDiff(input, out, name);
        expect(worst).toBeLessThan(BOUND);
        expect(worst).toBeGreaterThan(0); // really quantized: not the float32 graph again
      });
    }
  }

  it('--all also quantizes the heads (masked-LM transform and decoder); onnxruntime within 2.5e-2', async () => {
    const input = path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx');
    const out = path.join(tmpDir(), 'q.onnx');
    const s = quantize(input, { output: out, all: true });
    expect(s.quantized).toEqual(expect.arrayContaining(['masked-LM transform', 'masked-LM decoder']));
    expect(inspect(out).weights.every((w) => w.precision === 'int8 per-channel')).toBe(true);
    // measured 1.4e-2: the decoder's 1,000 logits read int8 activations of the LayerNorm output
    expect(await worstRelDiff(input, out, 'bert-tiny-mlm-op14')).toBeLessThan(2.5e-2);
  });
});

describe('quantize: the stored weights are int8 and match the float32 weights', () => {
  for (const perChannel of [true, false]) {
    it(`${perChannel ? 'per channel' : 'per tensor'}: scale = max |W| / 127 over each ${perChannel ? 'output column' : 'matrix'}, |W - q·scale| <= scale / 2`, () => {
      const out = path.join(tmpDir(), 'q.onnx');
      quantize(OP14, { output: out, perTensor: !perChannel });
      const fm = recognize(loadModel(OP14).model);
      const qm = recognize(loadModel(out).model);
      const qinit = new Map(qm.model.graph!.initializer.map((t) => [t.name, t]));
      const floats = quantizableLinears(fm, false), ints = quantizableLinears(qm, false);
      expect(ints.map((t) => t.role)).toEqual(floats.map((t) => t.role));
      for (let k = 0; k < floats.length; k++) {
        const f = floats[k].linear, q = ints[k].linear;
        const w = inOutMatrix(fm, f); // [in, out]
        const [I, O] = [f.inDim, f.outDim];
        const wt = qinit.get(q.weight)!;
        expect(wt.dataType).toBe(DataType.INT8);
        expect(wt.dims.map(Number)).toEqual([I, O]);
        expect(qinit.has(f.weight)).toBe(false); // the float32 matrix is gone from the file
        const qv = int8Values(wt);
        const scales = floatData(qinit.get(q.quant!.scale)!);
        expect(scales.length).toBe(perChannel ? O : 1);
        const expected = new Float64Array(perChannel ? O : 1);
        for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) {
          const c = perChannel ? o : 0;
          expected[c] = Math.max(expected[c], Math.abs(w[i * O + o]));
        }
        for (let c = 0; c < expected.length; c++) expect(scales[c]).toBeCloseTo(expected[c] / 127, 9);
        let maxQ = 0;
        for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) {
          const s = scales[perChannel ? o : 0], v = qv[i * O + o];
          expect(Math.abs(w[i * O + o] - v * s)).toBeLessThanOrEqual(s / 2 + 1e-7);
          expect(v).toBeGreaterThanOrEqual(-127);
          maxQ = Math.max(maxQ, Math.abs(v));
        }
        expect(maxQ).toBe(127);
        // zero points: int8 zeros, one per scale
        const zp = qinit.get(q.quant!.zeroPoint!)!;
        expect(zp.dataType).toBe(DataType.INT8);
        expect(Array.from(int8Values(zp))).toEqual(new Array(scales.length).fill(0));
      }
      const weightsIn = inspect(out).weights;
      expect(weightsIn.filter((x) => x.precision === (perChannel ? 'int8 per-channel' : 'int8 per-tensor'))).toHaveLength(12);
      expect(weightsIn.find((x) => x.role === 'pooler')!.precision).toBe('float32');
      expect(fs.statSync(out).size).toBeLessThan(fs.statSync(OP14).size * 0.75);
    });
  }
});

/** A copy of the per-channel int8 OP14 with `edit` applied to layer 0's query scale / zero point. */
function damaged(edit: (scale: TensorProto, zeroPoint: TensorProto, model: ModelProto) => void): string {
  const dir = tmpDir();
  const q = path.join(dir, 'q.onnx');
  quantize(OP14, { output: q });
  const loaded = loadModel(q);
  const l = recognize(loaded.model).layers[0].attention.q;
  const find = (n: string) => loaded.model.graph!.initializer.find((t) => t.name === n)!;
  edit(find(l.quant!.scale), find(l.quant!.zeroPoint!), loaded.model);
  const bad = path.join(dir, 'bad.onnx');
  saveModel(loaded.model, bad);
  return bad;
}

function setFloats(t: TensorProto, v: number[]): void {
  t.rawData = new Uint8Array(Float32Array.from(v).buffer);
  t.dims = [v.length];
}

describe('quantize: bad input is refused in one line, exit 1, nothing written', () => {
  const scaleCases: [string, (s: TensorProto, z: TensorProto) => void, RegExp][] = [
    ['a zero weight scale', (s) => setFloats(s, Array.from(floatData(s), (v, i) => (i === 5 ? 0 : v))), /weight scale '.*' of MatMulInteger .* has value 0 at 5: a scale must be a finite number above 0/],
    ['a negative weight scale', (s) => setFloats(s, Array.from(floatData(s), (v, i) => (i === 0 ? -v : v))), /weight scale .* has value -[\d.e-]+ at 0/],
    ['a NaN weight scale', (s) => setFloats(s, Array.from(floatData(s), (v, i) => (i === 63 ? NaN : v))), /weight scale .* has value NaN at 63/],
    ['a weight scale of the wrong length', (s) => setFloats(s, Array.from(floatData(s)).slice(1)), /weight scale .* is float32 \[63\], not float32 \[1\] or \[64\]/],
    ['a non-zero weight zero point', (_s, z) => { const v = new Int8Array(64); v[3] = 2; z.rawData = new Uint8Array(v.buffer); }, /weight zero point .* is 2 at 3: bort-compress reads symmetric int8 weights/],
    ['a uint8 weight zero point', (_s, z) => { z.dataType = DataType.UINT8; }, /weight zero point .* is uint8 \[64\], not int8/],
  ];
  for (const [what, edit, message] of scaleCases) {
    it(`${what}: inspect and quantize refuse it (API and CLI)`, () => {
      const bad = damaged(edit);
      expect(() => inspect(bad)).toThrow(BortError);
      expect(() => inspect(bad)).toThrow(message);
      for (const args of [['inspect', bad], ['quantize', bad, '-o', 'out.onnx']]) {
        const dir = tmpDir();
        const r = cli(args, dir);
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^bort-compress: error: /);
        expect(r.stderr).toMatch(message);
        expect(fs.readdirSync(dir)).toEqual([]);
      }
    });
  }

  it('an already quantized model: refused, nothing written', () => {
    const dir = tmpDir();
    const q = path.join(dir, 'q.onnx');
    quantize(OP14, { output: q, perTensor: true });
    const r = cli(['quantize', q, '-o', 'again.onnx'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bort-compress: error: the model is already int8-quantized \(layer 0 attention query weight '.*'\): quantize the float32 model it was made from\n$/);
    expect(fs.readdirSync(dir)).toEqual(['q.onnx']);
  });

  it('a graph that is not a BERT encoder: refused, nothing written', () => {
    const dir = tmpDir();
    const loaded = loadModel(OP14);
    const g = loaded.model.graph!;
    // cut the model after the embeddings: the output becomes the embedding LayerNorm's output
    const emb = recognize(loadModel(OP14).model).embeddings.output;
    g.output = [{ ...g.output[0], name: emb }];
    removeDeadCode(g);
    const file = path.join(dir, 'embeddings-only.onnx');
    saveModel(loaded.model, file);
    const r = cli(['quantize', file, '-o', 'out.onnx'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bort-compress: error: .*(no transformer layer|not a BERT|does not look like)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.readdirSync(dir)).toEqual(['embeddings-only.onnx']);
  });

  it('the CLI writes the model, prints its summary, and inspect --json lists each weight\'s precision', () => {
    const dir = tmpDir();
    const r = cli(['quantize', OP14, '-o', 'q.onnx', '--per-tensor'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/int8 +12 linear weights, symmetric per-tensor/);
    const j = JSON.parse(cli(['inspect', 'q.onnx', '--json'], dir).stdout);
    expect(j.weights).toHaveLength(13);
    expect(j.weights[0]).toEqual({ role: 'layer 0 attention query', weight: expect.any(String), precision: 'int8 per-tensor' });
    expect(cli(['inspect', 'q.onnx'], dir).stdout).toMatch(/precision +linear weights: int8 per-tensor 12, float32 1/);
  });
});

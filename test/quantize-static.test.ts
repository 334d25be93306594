// `quantize --calibration`: static int8 activation scales. The scales written are checked against max |x|
// computed independently with onnxruntime (each linear's input exposed as a graph output of the float32
// model, run over the same calibration sequences); onnxruntime runs the written file and the native
// engine, reading the same file, agrees with it; bad input is refused in one line.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, recognize, saveModel } from '../lib/index.js';
import { calibrate, inputStatistic, readCalibrationText } from '../lib/quantize/calibrate.js';
import { quantizableLinears, quantize } from '../lib/quantize/quantize.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { synth } from '../lib/synth/bert.js';
import { floatData } from '../lib/onnx/tensor.js';
import { DataType } from '../lib/onnx/types.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { FIXTURES, ROOT, maxAbsDiff, maxAbsDiffAtTokens, randomInputs, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const VOCAB = path.join(FIXTURES, 'text', 'wordpiece-uncased-vocab.txt');
// words of the 48-token fixture vocabulary (and a few it lacks: [UNK])
const TEXT = [
  'the quick brown fox jumps over the lazy dog.',
  'hello world, what is the capital of france?',
  'paris is a city in france!',
  'i don\'t jump; the dog jumped over a fox.',
  'where is the cafe? the naive resume is unaffable.',
  'straße and strasse, 4 and 26 - hello again',
  'the lazy dog is jumping over the brown fox',
  'a b c d e f g',
].join('\n');

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string, model: string, textFile: string;
beforeAll(() => {
  dir = tmpDir('bort-static-');
  model = path.join(dir, 'mlm.onnx');
  synth({ arch: '2,2,32,64', vocab: 48, head: 'mlm', maxPositions: 24, seed: 11, output: model });
  textFile = path.join(dir, 'calibration.txt');
  fs.writeFileSync(textFile, TEXT + '\n');
});

/** max |x| of every quantizable linear's input over the calibration lines, computed by onnxruntime on the float32 model. */
async function ortInputMax(file: string, all: boolean): Promise<Map<string, number>> {
  const loaded = loadModel(file);
  const inputs = [...new Set(quantizableLinears(recognize(loaded.model), all).map((t) => t.linear.input))];
  const g = loaded.model.graph!;
  for (const t of inputs) g.output.push({ name: t, type: { tensorType: { elemType: DataType.FLOAT } } });  // rank unknown
  const exposed = path.join(tmpDir(), 'exposed.onnx');
  saveModel(loaded.model, exposed);
  const s = await ort.InferenceSession.create(exposed);
  const tok = TextTokenizer.fromFile(VOCAB);
  const max = new Map<string, number>(inputs.map((t) => [t, 0]));
  for (const line of readCalibrationText(textFile)) {
    const ids = tok.encode(line, null, { maxLength: 24, truncation: 'longest_first' }).ids;
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of s.inputNames) {
      feeds[name] = new ort.Tensor('int64', name.includes('input_ids') ? BigInt64Array.from(ids, BigInt) : name.includes('mask') ? new BigInt64Array(n).fill(1n) : new BigInt64Array(n), [1, n]);
    }
    const r = await s.run(feeds);
    for (const t of inputs) for (const v of r[t].data as Float32Array) max.set(t, Math.max(max.get(t)!, Math.abs(v)));
  }
  await s.release();
  return max;
}

async function runOurs(file: string, inputs: Record<string, { shape: number[]; data: number[] }>) {
  const e = await Encoder.load(file, { threads: 1 });
  try {
    const feeds: Record<string, { data: BigInt64Array; dims: number[] }> = {};
    for (const [k, v] of Object.entries(inputs)) feeds[k] = { data: BigInt64Array.from(v.data, BigInt), dims: v.shape };
    return await e.run(feeds);
  } finally {
    e.close();
  }
}

async function runOrtOn(file: string, inputs: Record<string, { shape: number[]; data: number[] }>) {
  const s = await ort.InferenceSession.create(file);
  const feeds: Record<string, ort.Tensor> = {};
  for (const n of s.inputNames) feeds[n] = new ort.Tensor('int64', BigInt64Array.from(inputs[n].data, BigInt), inputs[n].shape);
  const r = await s.run(feeds);
  await s.release();
  return r;
}

/** The static scale of each input tensor as the written file stores it (its QuantizeLinear's). */
function writtenScales(file: string): Map<string, number> {
  const m = recognize(loadModel(file).model);
  const out = new Map<string, number>();
  for (const t of quantizableLinears(m, true)) {
    if (!t.linear.quant?.inputScale) continue;
    out.set(t.linear.input, floatData(m.index.initializers.get(t.linear.quant.inputScale)!)[0]);
  }
  return out;
}

describe('quantize --calibration: static scales', () => {
  for (const all of [false, true]) {
    it(`equal max |x| / 127 computed with onnxruntime on the same text${all ? ' (--all: the heads too)' : ''}`, async () => {
      const ref = await ortInputMax(model, all);
      const cal = await calibrate(model, readCalibrationText(textFile), TextTokenizer.fromFile(VOCAB), { all });
      expect(cal.sequences).toBe(8);
      expect([...cal.rowMaxima.keys()].sort()).toEqual([...ref.keys()].sort());
      const out = path.join(dir, `static-${all}.onnx`);
      const s = quantize(model, { output: out, all, inputMax: new Map([...cal.rowMaxima].map(([k, v]) => [k, inputStatistic(v, 100)])) });
      expect(s.activations).toBe('static');
      const written = writtenScales(out);
      expect(written.size).toBe(ref.size);
      for (const [t, max] of ref) {
        expect(max).toBeGreaterThan(0);
        // the engine's float32 run and onnxruntime's differ by float rounding only
        expect(Math.abs(written.get(t)! - max / 127) / (max / 127), t).toBeLessThan(1e-5);
      }
    });
  }

  it('the percentile statistic is the nearest-rank percentile of the row maxima', () => {
    const rows = Float32Array.from([5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
    expect(inputStatistic(rows, 100)).toBe(10);
    expect(inputStatistic(rows, 90)).toBe(9);
    expect(inputStatistic(rows, 50)).toBe(5);
    expect(inputStatistic(rows, 1)).toBe(1);
  });
});

// Both compute the same int8 products from the same int8 inputs (our static quantizer rounds as
// onnxruntime's QuantizeLinear: x / s, half to even, behind the same clip) and the same int32 sums;
// they differ only where float rounding differs (an FMA in our epilogue, LayerNorm and softmax sums),
// which can move an activation across a rounding boundary: one step of s on one input element.
// Measured: 3.7e-7 (layers) and 0.7e-7 (--all) of the largest output. Bound 2e-5 of the largest
// output, and the int8 file must differ from the float32 model by 20x that at least (measured: 1.0e-3
// layers only, 7.1e-2 with --all), so agreement is not the float32 graph agreeing with itself.
const ORT_BOUND = 2e-5;

describe('the static int8 file: onnxruntime runs it and the native engine agrees', () => {
  for (const all of [false, true]) {
    it(`${all ? '--all' : 'layers only'}: native within ${ORT_BOUND} of onnxruntime, both a real quantization of the float32 model`, async () => {
      const out = path.join(dir, `run-${all}.onnx`);
      const r = cli(['quantize', model, '-o', out, '--calibration', textFile, '--vocab', VOCAB, ...(all ? ['--all'] : []), '--json'], dir);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.activations).toBe('static');
      expect(j.calibration).toMatchObject({ sequences: 8, percentile: 100 });
      const inputs = randomInputs({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' }, 48, 20);
      const [ortQ, ortF, ours] = [await runOrtOn(out, inputs), await runOrtOn(model, inputs), await runOurs(out, inputs)];
      const mask = inputs.attention_mask.data;
      for (const k of Object.keys(ortQ)) {
        const a = ortQ[k].data as Float32Array;
        const largest = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const vsOrt = maxAbsDiffAtTokens(ours[k].data, a, ortQ[k].dims, mask) / largest;
        const vsFloat = maxAbsDiff(a, ortF[k].data as Float32Array) / largest;
        expect(vsOrt, k).toBeLessThan(ORT_BOUND);
        expect(vsFloat, k).toBeGreaterThan(20 * ORT_BOUND);
        expect(vsFloat, k).toBeLessThan(all ? 0.1 : 3e-3);
      }
    });
  }

  it('inspect reads the static file as int8; quantize refuses it (already quantized)', () => {
    const out = path.join(dir, 'run-false.onnx');
    expect(fs.existsSync(out)).toBe(true);
    const ins = cli(['inspect', out], dir);
    expect(ins.code, ins.stderr).toBe(0);
    expect(ins.stdout).toMatch(/precision +linear weights: int8 per-channel 12/);
    const r = cli(['quantize', out, '-o', 'again.onnx'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bort-compress: error: the model is already int8-quantized/);
  });

  it('a Clip that does not stop at ±127·scale is refused (the kernels clamp there)', async () => {
    const out = path.join(dir, 'run-false.onnx');
    const loaded = loadModel(out);
    const clip = loaded.model.graph!.node.find((n) => n.opType === 'Clip')!;
    const hi = loaded.model.graph!.initializer.find((t) => t.name === clip.input[2])!;
    const v = floatData(hi)[0];
    hi.rawData = new Uint8Array(Float32Array.of(v * 2).buffer);
    hi.floatData = [];
    const bad = path.join(tmpDir(), 'bad-clip.onnx');
    saveModel(loaded.model, bad);
    const r = cli(['inspect', bad], dir);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^bort-compress: error: the input of QuantizeLinear .* is not clipped to \[-127·scale, 127·scale\]/);
    await expect(Encoder.load(bad)).rejects.toThrow(/not clipped/);
  });

  it('query, key and value with different static scales are refused by the engine (it runs them as one GEMM)', async () => {
    const loaded = loadModel(path.join(dir, 'run-false.onnx'));
    const g = loaded.model.graph!;
    const k = recognize(loaded.model).layers[0].attention.k;
    const q = k.quant!.quantizeInput, clip = k.quant!.clip!;
    const scale = floatData(g.initializer.find((t) => t.name === k.quant!.inputScale)!)[0];
    const f32 = (name: string, v: number) => ({ ...g.initializer.find((t) => t.name === k.quant!.inputScale)!, name, rawData: new Uint8Array(Float32Array.of(v).buffer), floatData: [] });
    g.initializer.push(f32('k_scale2', 2 * scale), f32('k_lo2', -254 * scale), f32('k_hi2', 254 * scale));
    g.node.splice(g.node.indexOf(q) + 1, 0,
      { ...clip, name: 'k_Clip2', input: [clip.input[0], 'k_lo2', 'k_hi2'], output: ['k_clipped2'] },
      { ...q, name: 'k_QuantizeLinear2', input: ['k_clipped2', 'k_scale2', q.input[2]], output: ['k_quantized2'] });
    k.node.input[0] = 'k_quantized2';
    const bad = path.join(tmpDir(), 'two-scales.onnx');
    saveModel(loaded.model, bad);
    await expect(Encoder.load(bad)).rejects.toThrow(/layer 0's query, key and value quantize their one input with different static scales/);
  });
});

describe('quantize --calibration refuses bad input in one line', () => {
  const cases: [string, () => string[], RegExp][] = [
    ['a missing calibration file', () => ['quantize', model, '-o', 'o.onnx', '--calibration', 'nope.txt', '--vocab', VOCAB], /cannot read --calibration 'nope\.txt': no such file: give a text file/],
    ['an empty calibration file', () => {
      fs.writeFileSync(path.join(dir, 'empty.txt'), '\n  \n');
      return ['quantize', model, '-o', 'o.onnx', '--calibration', 'empty.txt', '--vocab', VOCAB];
    }, /--calibration 'empty\.txt' has no text: give a text file/],
    ['no vocabulary (none beside the model, no --vocab)', () => ['quantize', model, '-o', 'o.onnx', '--calibration', textFile], /no tokenizer\.json or vocab\.txt beside .*: pass --vocab/],
    ['--vocab without --calibration', () => ['quantize', model, '-o', 'o.onnx', '--vocab', VOCAB], /--vocab is only used with --calibration: add --calibration TEXT/],
    ['a percentile out of range', () => ['quantize', model, '-o', 'o.onnx', '--calibration', textFile, '--vocab', VOCAB, '--calibration-percentile', '0'], /--calibration-percentile '0' is not a number in \(0, 100\]/],
    ['calibration of an already-quantized model', () => {
      quantize(model, { output: path.join(dir, 'dyn.onnx') });
      return ['quantize', 'dyn.onnx', '-o', 'o.onnx', '--calibration', textFile, '--vocab', VOCAB];
    }, /the model is already int8-quantized \(layer 0 attention query weight .*\); calibration needs float32 activations: calibrate and quantize the float32 model/],
  ];
  for (const [what, args, message] of cases) {
    it(what, () => {
      const r = cli(args(), dir);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^bort-compress: error: /);
      expect(r.stderr).toMatch(message);
      expect(fs.existsSync(path.join(dir, 'o.onnx'))).toBe(false);
    });
  }
});

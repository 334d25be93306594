/**
 * Teacher fidelity of int8 (not a test): on every case of ../shared/teacher/mlm-eval.json, the masked
 * word's top-1 from the int8 teacher against the float32 teacher's (agreement) and against the label
 * (accuracy), for our engine quantizing at load, our engine on the int8 ONNX that `quantize` writes
 * (and with `{ int8: true }` on top: embeddings, pooler and decoder int8 too), and onnxruntime-node on
 * that int8 ONNX. The float32 reference is onnxruntime-node on the float32 teacher.
 * Static activation scales (`quantize --calibration`): calibrated on train.txt (never heldout.txt or
 * the evaluation set), one file per --percentiles value, each run by our engine and onnxruntime.
 *
 *   BORT_TEACHER_DIR=/path/to/shared/teacher npx tsx bench/int8-teacher.ts [--limit N] [--batch 8] [--threads 2]
 *     [--percentiles 100,99.99,99.9] [--calibration-samples 256] [--dynamic-only | --static-only]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { quantize } from '../lib/quantize/quantize.js';
import { calibrate, inputStatistic, readCalibrationText } from '../lib/quantize/calibrate.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { argmax } from '../lib/search/masked-lm.js';

interface EvalCase { input_ids: number[]; masked_index: number; label: number }

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const teacherDir = process.env.BORT_TEACHER_DIR ?? path.resolve(__dirname, '..', '..', 'shared', 'teacher');
const batchSize = Number(opt('batch', '8'));
const threads = Number(opt('threads', '2'));
const evalSet = JSON.parse(fs.readFileSync(path.join(teacherDir, 'mlm-eval.json'), 'utf8')) as { cases: EvalCase[]; mask_id: number };
const cases = evalSet.cases.slice(0, Number(opt('limit', String(evalSet.cases.length))));

/** Case indices by sequence length, in chunks of at most batchSize. */
function batches(): number[][] {
  const byLen = new Map<number, number[]>();
  cases.forEach((c, i) => byLen.set(c.input_ids.length, [...(byLen.get(c.input_ids.length) ?? []), i]));
  const out: number[][] = [];
  for (const len of [...byLen.keys()].sort((a, b) => a - b)) {
    const l = byLen.get(len)!;
    for (let i = 0; i < l.length; i += batchSize) out.push(l.slice(i, i + batchSize));
  }
  return out;
}

type Runner = (ids: BigInt64Array, b: number, len: number) => Promise<{ data: Float32Array; vocab: number }>;

function ortRunner(s: ort.InferenceSession): Runner {
  return async (ids, b, len) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const n of s.inputNames) {
      feeds[n] = new ort.Tensor('int64', n === 'input_ids' ? ids : n === 'attention_mask' ? new BigInt64Array(b * len).fill(1n) : new BigInt64Array(b * len), [b, len]);
    }
    const r = await s.run(feeds);
    const t = Object.values(r).find((x) => x.dims.length === 3)!;
    return { data: t.data as Float32Array, vocab: t.dims[2] };
  };
}

function ourRunner(e: Encoder): Runner {
  const roles = e.inputRoles;
  return async (ids, b, len) => {
    const inputs: Record<string, { data: BigInt64Array; dims: number[] }> = { [roles.ids]: { data: ids, dims: [b, len] } };
    if (roles.mask) inputs[roles.mask] = { data: new BigInt64Array(b * len).fill(1n), dims: [b, len] };
    if (roles.tokenTypes) inputs[roles.tokenTypes] = { data: new BigInt64Array(b * len), dims: [b, len] };
    const r = await e.run(inputs);
    const mlm = e.outputRoles.find((o) => o.from === 'mlm')!;
    return { data: r[mlm.name].data, vocab: e.info.vocab };
  };
}

/** log-softmax of logits (float64). */
function logSoftmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let z = 0;
  for (const v of x) z += Math.exp(v - m);
  const lz = m + Math.log(z);
  return Float64Array.from(x, (v) => v - lz);
}

/** The float32 reference's log-probabilities at each case's masked position (for KL). */
let refLogp: Float64Array[] | undefined;
/** KL(reference ‖ engine) at the masked position of each case, from the last top1() run. */
let lastKl: Float64Array | undefined;

/** Top-1 at the masked position of every case (and, once the reference ran, the KL to it). */
async function top1(run: Runner, isRef = false): Promise<Int32Array> {
  const out = new Int32Array(cases.length);
  const kl = new Float64Array(cases.length);
  if (isRef) refLogp = new Array(cases.length);
  for (const batch of batches()) {
    const len = cases[batch[0]].input_ids.length;
    const ids = new BigInt64Array(batch.length * len);
    batch.forEach((ci, r) => cases[ci].input_ids.forEach((t, j) => { ids[r * len + j] = BigInt(j === cases[ci].masked_index ? evalSet.mask_id : t); }));
    const { data, vocab } = await run(ids, batch.length, len);
    batch.forEach((ci, r) => {
      const at = (r * len + cases[ci].masked_index) * vocab;
      const logits = data.subarray(at, at + vocab);
      out[ci] = argmax(logits);
      const lp = logSoftmax(logits);
      if (isRef) refLogp![ci] = lp;
      else {
        const r = refLogp![ci];
        let k = 0;
        for (let j = 0; j < vocab; j++) k += Math.exp(r[j]) * (r[j] - lp[j]);
        kl[ci] = k;
      }
    });
  }
  lastKl = kl;
  return out;
}

async function main(): Promise<void> {
  const fp32 = path.join(teacherDir, 'teacher-mlm.onnx');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-int8-teacher-'));
  const q8 = path.join(dir, 'teacher.int8.onnx');
  try {
    quantize(fp32, { output: q8 });
    const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    const t0 = performance.now();
    const ref = await top1(ortRunner(await ort.InferenceSession.create(fp32, so)), true);
    const engines: [string, () => Promise<Runner>][] = args.includes('--static-only') ? [] : [
      ['ours float32', async () => ourRunner(await Encoder.load(fp32, { threads }))],
      ['ours int8 (Encoder.load(fp32, { int8: true }), int8 attention)', async () => ourRunner(await Encoder.load(fp32, { threads, int8: true }))],
      ['ours int8, float32 attention ({ int8: true, int8Attention: false })', async () => ourRunner(await Encoder.load(fp32, { threads, int8: true, int8Attention: false }))],
      ['ours on the int8 ONNX (file\'s scales; embeddings, heads float32)', async () => ourRunner(await Encoder.load(q8, { threads }))],
      ['ours on the int8 ONNX with { int8Attention: true }', async () => ourRunner(await Encoder.load(q8, { threads, int8Attention: true }))],
      ['ours on the int8 ONNX with { int8: true }', async () => ourRunner(await Encoder.load(q8, { threads, int8: true }))],
      ['onnxruntime on the int8 ONNX', async () => ortRunner(await ort.InferenceSession.create(q8, so))],
    ];
    if (!args.includes('--dynamic-only')) {
      const c0 = performance.now();
      const cal = await calibrate(fp32, readCalibrationText(path.join(teacherDir, 'train.txt')), TextTokenizer.fromFile(path.join(teacherDir, 'vocab.txt')),
        { samples: Number(opt('calibration-samples', '256')), threads });
      console.log(`calibration: ${cal.sequences} sequences, ${cal.tokens} tokens of train.txt, ${((performance.now() - c0) / 1000).toFixed(1)} s`);
      for (const p of opt('percentiles', '100,99.99,99.9').split(',').map(Number)) {
        const file = path.join(dir, `teacher.static-p${p}.onnx`);
        quantize(fp32, { output: file, inputMax: new Map([...cal.rowMaxima].map(([k, v]) => [k, inputStatistic(v, p)])) });
        engines.push([`ours on the static int8 ONNX (percentile ${p})`, async () => ourRunner(await Encoder.load(file, { threads }))],
          [`onnxruntime on the static int8 ONNX (percentile ${p})`, async () => ortRunner(await ort.InferenceSession.create(file, so))]);
      }
    }
    const acc = (p: Int32Array) => (100 * p.reduce((s, v, i) => s + (v === cases[i].label ? 1 : 0), 0)) / cases.length;
    const agree = (p: Int32Array) => (100 * p.reduce((s, v, i) => s + (v === ref[i] ? 1 : 0), 0)) / cases.length;
    const meanKl = () => lastKl!.reduce((a, b) => a + b, 0) / cases.length;
    const rows = [`| onnxruntime float32 (reference) | 100.00 % | 0 | ${acc(ref).toFixed(2)} % |`];
    for (const [name, make] of engines) {
      const p = await top1(await make());
      rows.push(`| ${name} | ${agree(p).toFixed(2)} % | ${meanKl().toExponential(2)} | ${acc(p).toFixed(2)} % |`);
      console.log(rows[rows.length - 1]);
    }
    console.log(`\n${cases.length} cases, batch ${batchSize}, ${threads} threads, ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log('| engine | top-1 agreement with the float32 teacher | mean KL(teacher ‖ engine) | accuracy |\n|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();

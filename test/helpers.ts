import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll } from 'vitest';
import { synth } from '../lib/synth/bert.js';

export const ROOT = path.resolve(__dirname, '..');
/** Test inputs live in the repository (copied from ../shared, which a user's clone does not have). */
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const REAL_EXPORTS = path.join(FIXTURES, 'real-exports');
export const REAL = path.join(REAL_EXPORTS, 'bert_toy_pretraining_pt1.1_opset12.onnx');

/** Models with PyTorch reference outputs (see test/fixtures/README.md). */
export const FIXTURE_NAMES = ['bert-tiny-op11', 'bert-tiny-op14', 'bert-tiny-op17', 'bert-tiny-mlm-op14', 'bert-tiny-cls-op14'];

let teacherPath: string | undefined;
/**
 * A masked-LM with the shared teacher's shape (6 layers, 8 heads, hidden 256, intermediate 1024, 8,000
 * words, 128 positions, decoder tied to the word table), random weights, written once per test process.
 * The trained teacher (35 MB) stays out of the repository; benchmarks use it from ../shared.
 */
export function teacherShaped(): string {
  if (!teacherPath) {
    const file = path.join(tmpDir('bort-teacher-'), 'teacher-shaped.onnx');
    synth({ arch: '6,8,256,1024', vocab: 8000, maxPositions: 128, head: 'mlm', seed: 2020, output: file });
    teacherPath = file;
  }
  return teacherPath;
}

export interface FixtureSpec {
  config: { layers: number; heads: number; hidden: number; intermediate: number; vocab: number; opset: number; head: string };
  inputs: Record<string, { shape: number[]; data: number[] }>;
  outputs: Record<string, { shape: number[]; file: string }>;
  tolerance: { abs: number };
}

export function fixture(name: string): FixtureSpec {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8'));
}

export function referenceOutput(name: string, output: string): Float32Array {
  const b = fs.readFileSync(path.join(FIXTURES, `${name}.${output}.f32`));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const created: string[] = [];
// registered in every test file that imports these helpers
afterAll(() => {
  for (const d of created.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  teacherPath = undefined;
});

/** A fresh temporary folder, removed when the test process exits. */
export function tmpDir(prefix = 'bort-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

/** Int64 feeds for every input the session declares, from name → {shape, data}. */
export function feedsFor(session: ort.InferenceSession, inputs: Record<string, { shape: number[]; data: number[] }>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  const int32 = new Set(session.inputMetadata.filter((m) => m.isTensor && m.type === 'int32').map((m) => m.name));
  for (const name of session.inputNames) {
    const x = inputs[name];
    if (!x) throw new Error(`no data for input ${name}`);
    feeds[name] = int32.has(name)
      ? new ort.Tensor('int32', Int32Array.from(x.data), x.shape)
      : new ort.Tensor('int64', BigInt64Array.from(x.data, (v) => BigInt(v)), x.shape);
  }
  return feeds;
}

export async function runOrt(model: string, inputs: Record<string, { shape: number[]; data: number[] }>): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const session = await ort.InferenceSession.create(model);
  const r = await session.run(feedsFor(session, inputs));
  const out: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
  for (const k of session.outputNames) out[k] = { dims: r[k].dims, data: r[k].data as Float32Array };
  await session.release();
  return out;
}

export async function sessionIO(model: string): Promise<{ inputs: string[]; outputs: string[] }> {
  const s = await ort.InferenceSession.create(model);
  const io = { inputs: [...s.inputNames], outputs: [...s.outputNames] };
  await s.release();
  return io;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Random int64-style inputs (batch 2, second row padded) for a model with the given input names. */
/**
 * maxAbsDiff of the engine's output against onnxruntime's where they are meant to agree: for a
 * per-position output (dims [batch, seq, …] with a mask of batch × seq) only the real positions
 * (mask 1) are compared, and the engine's padded positions must be exactly 0 (it skips them;
 * onnxruntime computes values there) — Infinity when one is not. Other outputs: maxAbsDiff.
 */
export function maxAbsDiffAtTokens(got: ArrayLike<number>, want: ArrayLike<number>, dims: readonly number[], mask?: ArrayLike<number | bigint>): number {
  if (!mask || dims.length !== 3 || dims[0] * dims[1] !== mask.length) return maxAbsDiff(got, want);
  if (got.length !== want.length) return Infinity;
  const width = dims[2];
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number(mask[Math.floor(i / width)]) === 0) {
      if (got[i] !== 0) return Infinity;
      continue;
    }
    m = Math.max(m, Math.abs(got[i] - want[i]));
  }
  return m;
}

export function randomInputs(names: { ids: string; mask?: string; tokenTypes?: string }, vocab: number, seq = 12, typeVocab = 2): Record<string, { shape: number[]; data: number[] }> {
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const B = 2;
  const ids: number[] = [], mask: number[] = [], types: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < seq; t++) {
      const pad = b === 1 && t >= seq - 3;
      ids.push(pad ? 0 : Math.floor(rnd() * vocab));
      mask.push(pad ? 0 : 1);
      types.push(t >= seq / 2 && !pad ? Math.min(1, typeVocab - 1) : 0);
    }
  }
  const out: Record<string, { shape: number[]; data: number[] }> = { [names.ids]: { shape: [B, seq], data: ids } };
  if (names.mask) out[names.mask] = { shape: [B, seq], data: mask };
  if (names.tokenTypes) out[names.tokenTypes] = { shape: [B, seq], data: types };
  return out;
}

/** ISA paths this CPU can run (what the engine accepts in BORT_ISA here), read from /proc/cpuinfo. */
export function supportedIsas(): string[] {
  const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const isas = ['scalar'];
  if (process.arch === 'x64') {
    if (/\bavx2\b/.test(flags) && /\bfma\b/.test(flags)) isas.push('avx2');
    if (/\bavx512f\b/.test(flags)) isas.push('avx512');
  }
  if (process.arch === 'arm64') isas.push('neon');
  return isas;
}

/**
 * The least-squares refit after an extraction (lib/extract/reconstruct.ts), on synthetic models:
 * - an exactly recoverable case: the pruned FFN neurons are copies of kept ones (same W_in column and
 *   bias, so the same activation), so the kept neuron's W_out row plus its copy's is an exact
 *   reconstruction; the refit must find those rows (computed here from the weights) and give the
 *   source's logits on tokens it never saw, where plain pruning does not;
 * - a layer cut: the refit (stretch end aimed at the source's last hidden state) lowers
 *   KL(source ‖ student) on the calibration tokens and on other tokens;
 * - ridgeSolve against a float64 reference solve written here (Gauss–Jordan on the normal equations);
 * - refusals with one-line messages.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import type { BertModel, Linear } from '../lib/bert/model.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { floatData } from '../lib/onnx/tensor.js';
import { synth } from '../lib/synth/bert.js';
import { compress } from '../lib/compress.js';
import { firstScorer } from '../lib/extract/scorer.js';
import { depthTargets, refitFile, refitModel, ridgeSolve } from '../lib/extract/reconstruct.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { BortError } from '../lib/errors.js';
import { tmpDir } from './helpers.js';

const dir = tmpDir('bort-refit-');
const SEQ = 16;

function sequences(n: number, seed: number): Int32Array[] {
  return Array.from({ length: n }, (_, r) => Int32Array.from({ length: SEQ }, (_, i) => (i === 0 ? 2 : i === SEQ - 1 ? 3 : 5 + ((r * 13 + i * 7 + seed * (r + 1) * (i + 3)) % 45))));
}

/** Stored matrix as [in, out] and back (tests read initializers themselves). */
function inOut(m: BertModel, l: Linear): Float32Array {
  const w = floatData(m.index.weight(l.weight)!.tensor);
  if (l.layout === 'in_out') return Float32Array.from(w);
  const out = new Float32Array(l.inDim * l.outDim);
  for (let o = 0; o < l.outDim; o++) for (let i = 0; i < l.inDim; i++) out[i * l.outDim + o] = w[o * l.inDim + i];
  return out;
}
function store(m: BertModel, l: Linear, w: Float32Array): void {
  const t = m.index.weight(l.weight)!.tensor;
  const data = new Float32Array(w.length);
  if (l.layout === 'in_out') data.set(w);
  else for (let i = 0; i < l.inDim; i++) for (let o = 0; o < l.outDim; o++) data[o * l.inDim + i] = w[i * l.outDim + o];
  t.rawData = new Uint8Array(data.buffer);
  t.floatData = [];
}

/** Log-softmax rows of the MLM logits of `file` on `seqs`. */
async function logProbs(file: string, seqs: Int32Array[]): Promise<Float64Array[]> {
  const enc = await Encoder.load(file, { threads: 1 });
  try {
    const ids = new Int32Array(seqs.length * SEQ);
    seqs.forEach((r, i) => ids.set(r, i * SEQ));
    const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [enc.inputRoles.ids]: { data: ids, dims: [seqs.length, SEQ] } };
    if (enc.inputRoles.mask) inputs[enc.inputRoles.mask] = { data: new Int32Array(ids.length).fill(1), dims: [seqs.length, SEQ] };
    const out = (await enc.run(inputs))[enc.outputNames[0]];
    const V = out.dims[2];
    const rows: Float64Array[] = [];
    for (let r = 0; r < seqs.length * SEQ; r++) {
      const x = out.data.subarray(r * V, (r + 1) * V);
      let max = -Infinity;
      for (const v of x) max = Math.max(max, v);
      let z = 0;
      for (const v of x) z += Math.exp(v - max);
      rows.push(Float64Array.from(x, (v) => v - max - Math.log(z)));
    }
    return rows;
  } finally {
    enc.close();
  }
}

function meanKl(p: Float64Array[], q: Float64Array[]): number {
  let s = 0;
  p.forEach((row, r) => { for (let v = 0; v < row.length; v++) s += Math.exp(row[v]) * (row[v] - q[r][v]); });
  return s / p.length;
}

describe('least-squares refit after extraction', () => {
  it('recovers pruned neurons that copy kept ones exactly (W_out rows summed), and the source logits with them', async () => {
    const src = path.join(dir, 'dup.onnx');
    synth({ arch: '2,4,32,16', vocab: 50, maxPositions: 32, head: 'mlm', seed: 7, output: src });
    // neurons 8..15 copy neurons 0..7's input weights and biases: the same activations
    const loaded = loadModel(src);
    const m = recognize(loaded.model);
    for (const l of m.layers) {
      const win = inOut(m, l.ffn.in);
      for (let h = 0; h < 32; h++) for (let n = 8; n < 16; n++) win[h * 16 + n] = win[h * 16 + n - 8];
      store(m, l.ffn.in, win);
      // and write 10× more than the synthetic scale, so that dropping them shows in the logits
      const wout = inOut(m, l.ffn.out);
      for (let n = 8; n < 16; n++) for (let h = 0; h < 32; h++) wout[n * 32 + h] *= 10;
      store(m, l.ffn.out, wout);
      const bt = m.index.weight(l.ffn.in.bias!)!.tensor;
      const b = Float32Array.from(floatData(bt));
      for (let n = 8; n < 16; n++) b[n] = b[n - 8];
      bt.rawData = new Uint8Array(b.buffer);
      bt.floatData = [];
    }
    saveModel(loaded.model, src, { protect: [] });
    const source = recognize(loadModel(src).model);
    const student = path.join(dir, 'dup-student.onnx');
    const s = await compress(src, { arch: '2,4,32,8', strategy: firstScorer, output: student });
    expect(s.plan.layers).toEqual([0, 1]);
    const held = sequences(6, 5);
    const plainKl = meanKl(await logProbs(src, held), await logProbs(student, held));
    expect(plainKl).toBeGreaterThan(1e-5);
    const report = await refitFile(src, student, s.plan.layers, sequences(24, 1), { ridge: 1e-10 });
    expect(report.fits.map((f) => f.part)).toEqual(['ffn', 'ffn']);
    for (const f of report.fits) expect(f.after).toBeLessThan(1e-8 + 1e-6 * f.before);
    // the refitted rows are the kept row plus its copy's (the source's weights, summed here)
    const out = recognize(loadModel(student).model);
    for (let l = 0; l < 2; l++) {
      const w = inOut(source, source.layers[l].ffn.out), got = inOut(out, out.layers[l].ffn.out);
      for (let n = 0; n < 8; n++) for (let h = 0; h < 32; h++) {
        expect(Math.abs(got[n * 32 + h] - (w[n * 32 + h] + w[(n + 8) * 32 + h]))).toBeLessThan(2e-4);
      }
    }
    // unseen tokens: the refitted student gives the source's distribution
    const refitKl = meanKl(await logProbs(src, held), await logProbs(student, held));
    expect(refitKl).toBeLessThan(1e-3 * plainKl);
  });

  it('lowers KL(source ‖ student) at a layer cut (stretch end aimed at the source depth), on the calibration tokens and others', async () => {
    const src = path.join(dir, 'cut.onnx');
    synth({ arch: '4,4,32,64', vocab: 50, maxPositions: 32, head: 'mlm', seed: 3, output: src });
    const student = path.join(dir, 'cut-student.onnx');
    const s = await compress(src, { arch: '2,4,32,48', strategy: 'first', output: student });
    const cal = sequences(48, 1), other = sequences(12, 9);
    const [pc, po] = [await logProbs(src, cal), await logProbs(src, other)];
    const beforeCal = meanKl(pc, await logProbs(student, cal)), beforeOther = meanKl(po, await logProbs(student, other));
    const report = await refitFile(src, student, s.plan.layers, cal);
    expect(report.fits.map((f) => `${f.layer}:${f.part}`)).toEqual(['0:ffn', '1:ffn→depth']);
    for (const f of report.fits) expect(f.after).toBeLessThan(f.before);
    const afterCal = meanKl(pc, await logProbs(student, cal)), afterOther = meanKl(po, await logProbs(student, other));
    expect(afterCal).toBeLessThan(0.5 * beforeCal);
    expect(afterOther).toBeLessThan(beforeOther);
  });

  it('ridgeSolve matches a float64 reference solve of the regularised normal equations', () => {
    const T = 40, F = 5, N = 3;
    let seed = 11;
    const rnd = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32 - 0.5; };
    const x = Float32Array.from({ length: T * F }, rnd), y = Float32Array.from({ length: T * N }, rnd);
    const w0 = Float32Array.from({ length: F * N }, rnd), b0 = Float32Array.from({ length: N }, rnd);
    const ridge = 0.3;
    // reference: A = [X 1]ᵀ[X 1] + λI, B = [X 1]ᵀY + λ[W0; b0], λ = ridge · mean diag(XᵀX); Gauss–Jordan
    const P = F + 1;
    const row = (t: number, i: number) => (i < F ? x[t * F + i] : 1);
    let diag = 0;
    for (let i = 0; i < F; i++) for (let t = 0; t < T; t++) diag += x[t * F + i] ** 2;
    const lambda = ridge * diag / F;
    const a = Array.from({ length: P }, (_, i) => [
      ...Array.from({ length: P }, (_, j) => { let s = 0; for (let t = 0; t < T; t++) s += row(t, i) * row(t, j); return s + (i === j ? lambda : 0); }),
      ...Array.from({ length: N }, (_, n) => { let s = 0; for (let t = 0; t < T; t++) s += row(t, i) * y[t * N + n]; return s + lambda * (i < F ? w0[i * N + n] : b0[n]); }),
    ]);
    for (let c = 0; c < P; c++) {
      const p = a[c][c];
      for (let k = 0; k < P + N; k++) a[c][k] /= p;
      for (let r = 0; r < P; r++) if (r !== c) { const f = a[r][c]; for (let k = 0; k < P + N; k++) a[r][k] -= f * a[c][k]; }
    }
    const got = ridgeSolve(x, T, F, y, N, w0, b0, ridge);
    for (let i = 0; i < F; i++) for (let n = 0; n < N; n++) expect(got.w[i * N + n]).toBeCloseTo(a[i][P + n], 5);
    for (let n = 0; n < N; n++) expect(got.b[n]).toBeCloseTo(a[F][P + n], 5);
  });

  it('aims stretch ends (and, by default, a first layer after removed layers) at the source depth they stand for', () => {
    expect(depthTargets([0, 1, 2, 3, 4, 5], 6, true)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(depthTargets([0, 2, 4], 6, true)).toEqual([2, 4, 6]);
    expect(depthTargets([1, 2, 4], 6, true)).toEqual([2, 4, 6]);
    expect(depthTargets([1, 2, 4], 6, false)).toEqual([0, 4, 6]);
    expect(depthTargets([2, 3], 4, false)).toEqual([0, 0]);
    expect(depthTargets([2, 3], 4, true)).toEqual([3, 0]);
  });

  it('refuses a student whose hidden size changed, in one line', async () => {
    const src = path.join(dir, 'h.onnx');
    synth({ arch: '2,4,32,16', vocab: 50, maxPositions: 32, head: 'mlm', seed: 1, output: src });
    const student = path.join(dir, 'h-student.onnx');
    const s = await compress(src, { arch: '2,2,16,16', strategy: 'first', output: student });
    const run = () => refitModel(recognize(loadModel(src).model), recognize(loadModel(student).model), s.plan.layers, sequences(4, 1));
    expect(run).toThrow(BortError);
    expect(run).toThrow(/^cannot refit the extracted model: the hidden size changed \(32 → 16\)[^\n]*$/);
  });
});

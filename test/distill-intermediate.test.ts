import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import { compress } from '../lib/compress.js';
import { distill, type DistillOptions, type DistillProgress } from '../lib/distill/distill.js';
import { gatherLayers, intermediateLoss, pairLayers } from '../lib/distill/intermediate.js';
import { loadModel } from '../lib/onnx/io.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { engineSpec, floatWeights } from '../lib/runtime/spec.js';
import { synth } from '../lib/synth/bert.js';
import { distillSetup } from './distill-setup.js';
import { FIXTURES, runOrt, tmpDir } from './helpers.js';

function inputs(ids: number[][], lens: number[]) {
  const B = ids.length, S = ids[0].length;
  const flat = Int32Array.from(ids.flat());
  const mask = new Int32Array(B * S);
  lens.forEach((n, b) => mask.fill(1, b * S, b * S + n));
  return { input_ids: { data: flat, dims: [B, S] }, attention_mask: { data: mask, dims: [B, S] }, token_type_ids: { data: new Int32Array(B * S), dims: [B, S] } };
}

describe('pairing student layers with teacher layers', () => {
  it('maps uniformly, the last onto the last (TinyBERT), and refuses a deeper student', () => {
    expect(pairLayers(6, 3)).toEqual([1, 3, 5]);
    expect(pairLayers(24, 4)).toEqual([5, 11, 17, 23]);
    expect(pairLayers(4, 3)).toEqual([0, 2, 3]);
    expect(pairLayers(3, 3)).toEqual([0, 1, 2]);
    expect(() => pairLayers(2, 3)).toThrow(/the student has 3 layers and the teacher only 2/);
    expect(intermediateLoss(undefined, 0, 6, 3)).toBeUndefined();
    expect(intermediateLoss(0.5, undefined, 6, 3)!.match).toEqual(Int32Array.from([0, 1, 2]));
    expect(() => intermediateLoss(-1, 0, 6, 3)).toThrow(/--hidden-weight -1 is not a loss weight/);
    expect(() => intermediateLoss(0, Number.NaN, 6, 3)).toThrow(/--attention-weight NaN/);
    const all = Float32Array.from({ length: 12 }, (_, i) => i);
    expect(Array.from(gatherLayers(all, 4, [2, 0]))).toEqual([8, 9, 10, 11, 0, 1, 2, 3]);
  });
});

describe('Encoder.intermediates()', () => {
  it('gives every layer output (each equal to a shallower extraction\'s final state) and head-averaged attention maps (against float64)', async () => {
    const dir = tmpDir('bort-intermediates-');
    const model = path.join(dir, 'm.onnx');
    synth({ arch: '3,4,32,64', vocab: 120, maxPositions: 16, seed: 11, output: model });
    const ids = [[2, 17, 33, 45, 61, 3, 0, 0], [2, 99, 12, 7, 70, 81, 90, 3]];
    const lens = [6, 8];
    const B = 2, S = 8, H = 32, L = 3, heads = 4, d = 8;
    const enc = await Encoder.load(model, { threads: 2 });
    const r = await enc.intermediates(inputs(ids, lens));
    const plain = await enc.run(inputs(ids, lens));
    enc.close();
    expect(r.layers.dims).toEqual([L, B, S, H]);
    expect(r.attention.dims).toEqual([L, B, S, S]);
    const real = (b: number, s: number) => s < lens[b];
    // the last layer's output is the model's final hidden state (which run() computes packed)
    const hidName = Object.keys(plain).find((k) => plain[k].dims.length === 3 && plain[k].dims[2] === H)!;
    const last = r.layers.data.subarray((L - 1) * B * S * H);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let j = 0; j < H; j++) {
      const i = (b * S + s) * H + j;
      if (real(b, s)) expect(Math.abs(last[i] - plain[hidName].data[i])).toBeLessThan(1e-4);
      else expect(last[i]).toBe(0);
    }
    // layer k's output is the final state of the first-k-layers extraction, run by onnxruntime
    for (const k of [1, 2]) {
      const cut = path.join(dir, `cut${k}.onnx`);
      await compress(model, { arch: `${k},4,32,64`, strategy: 'first', output: cut });
      const o = await runOrt(cut, {
        input_ids: { shape: [B, S], data: ids.flat() }, attention_mask: { shape: [B, S], data: ids.flatMap((row, b) => row.map((_, s) => (real(b, s) ? 1 : 0))) },
        token_type_ids: { shape: [B, S], data: Array(B * S).fill(0) },
      });
      const want = Object.values(o).find((t) => t.dims.length === 3 && t.dims[2] === H)!;
      const got = r.layers.data.subarray((k - 1) * B * S * H, k * B * S * H);
      let worst = 0;
      for (let b = 0; b < B; b++) for (let s = 0; s < lens[b]; s++) for (let j = 0; j < H; j++) {
        const i = (b * S + s) * H + j;
        worst = Math.max(worst, Math.abs(got[i] - Number(want.data[i])));
      }
      expect(worst).toBeLessThan(1e-4);
    }
    // attention of layers 1 and 2 from their inputs (layers 0 and 1's outputs) and the query/key weights, in float64
    const spec = engineSpec(recognize(loadModel(model).model));
    const w = floatWeights(spec);
    const scale = spec.config.scoreScale, maskValue = spec.config.maskValue;
    for (const l of [1, 2]) {
      const x = r.layers.data.subarray((l - 1) * B * S * H, l * B * S * H);
      const proj = (name: string) => {
        const W = w[`${name}_w.${l}`], bias = w[`${name}_b.${l}`];
        const out = new Float64Array(B * S * H);
        for (let t = 0; t < B * S; t++) for (let o = 0; o < H; o++) {
          let a = bias[o];
          for (let i = 0; i < H; i++) a += x[t * H + i] * W[i * H + o];
          out[t * H + o] = a;
        }
        return out;
      };
      const q = proj('q'), kk = proj('k');
      const got = r.attention.data.subarray(l * B * S * S, (l + 1) * B * S * S);
      let worst = 0;
      for (let b = 0; b < B; b++) for (let i = 0; i < S; i++) {
        const row = got.subarray((b * S + i) * S, (b * S + i + 1) * S);
        if (!real(b, i)) {
          expect(Array.from(row).every((v) => v === 0)).toBe(true);
          continue;
        }
        const avg = new Float64Array(S);
        for (let h = 0; h < heads; h++) {
          const sc = new Float64Array(S);
          for (let j = 0; j < S; j++) {
            let a = 0;
            for (let t = 0; t < d; t++) a += q[(b * S + i) * H + h * d + t] * kk[(b * S + j) * H + h * d + t];
            sc[j] = a * scale + (real(b, j) ? 0 : maskValue);
          }
          const mx = Math.max(...sc);
          let sum = 0;
          for (let j = 0; j < S; j++) sum += (sc[j] = Math.exp(sc[j] - mx));
          for (let j = 0; j < S; j++) avg[j] += sc[j] / sum / heads;
        }
        let rowSum = 0;
        for (let j = 0; j < S; j++) {
          worst = Math.max(worst, Math.abs(row[j] - avg[j]));
          rowSum += row[j];
          if (!real(b, j)) expect(row[j]).toBe(0);
        }
        expect(Math.abs(rowSum - 1)).toBeLessThan(1e-5);
      }
      expect(worst).toBeLessThan(1e-5);
    }
  });
});

/** A tiny masked-LM teacher (2 layers, hidden 32) and a corpus; students cut from it. */
function setup(studentArch: string): Promise<{ dir: string; base: Omit<DistillOptions, 'output'> }> {
  return distillSetup({
    prefix: 'bort-distill-mid-', teacherArch: '2,2,32,64', teacherSeed: 7, studentArch,
    run: { steps: 12, batch: 4, seq: 16, lr: 3e-3, threads: 1, seed: 3 },
  });
}

describe('distill() with intermediate-layer terms', () => {
  it('trains the hidden-state and attention-map terms down, reports them, and keeps them in the run identity', async () => {
    const { dir, base } = await setup('1,1,32,32');
    const seen: DistillProgress[] = [];
    const out = path.join(dir, 'mid.onnx');
    const r = await distill({ ...base, output: out, hiddenWeight: 1, attentionWeight: 1, checkpointEvery: 6, onProgress: (p) => seen.push(p) });
    expect(r.finished).toBe(true);
    expect(seen.every((p) => Number.isFinite(p.hidden) && Number.isFinite(p.attention))).toBe(true);
    const first = seen[0], lastP = seen[seen.length - 1];
    expect(first.hidden!).toBeGreaterThan(0);
    expect(first.attention!).toBeGreaterThan(0);
    // the student's one layer learns the teacher's last: both terms fall over 12 steps
    expect(lastP.hidden!).toBeLessThan(0.8 * first.hidden!);
    expect(lastP.attention!).toBeLessThan(0.8 * first.attention!);
    // loss = T²·KL + the weighted terms (default loss: no MLM term)
    expect(Math.abs(first.loss - (4 * first.kl + first.hidden! + first.attention!))).toBeLessThan(1e-4 * first.loss);
    // the written model is the student's graph: onnxruntime runs it with the same outputs
    const ids = { shape: [1, 6], data: [2, 10, 11, 12, 13, 3] };
    const o = await runOrt(out, { input_ids: ids, attention_mask: { shape: [1, 6], data: Array(6).fill(1) }, token_type_ids: { shape: [1, 6], data: Array(6).fill(0) } });
    expect(Object.keys(o)).toEqual(['logits']);
    // a different weight is another run: the checkpoint is refused
    await expect(distill({ ...base, output: out, hiddenWeight: 2, attentionWeight: 1, resume: true })).rejects.toThrow(/from another run \(hiddenWeight 1 vs 2\)/);
  });

  it('learns a projection when the hidden sizes differ, and does not write it into the model', async () => {
    const { dir, base } = await setup('1,2,16,32');
    const seen: DistillProgress[] = [];
    const out = path.join(dir, 'proj.onnx');
    const r = await distill({ ...base, output: out, hiddenWeight: 1, onProgress: (p) => seen.push(p) });
    expect(r.finished).toBe(true);
    expect(seen[seen.length - 1].hidden!).toBeLessThan(0.8 * seen[0].hidden!);
    expect(seen[0].attention).toBe(0);
    const before = loadModel(base.student).model.graph!.initializer!.map((t) => `${t.name}:${(t.dims ?? []).join('x')}`).sort();
    const after = loadModel(out).model.graph!.initializer!.map((t) => `${t.name}:${(t.dims ?? []).join('x')}`).sort();
    expect(after).toEqual(before);
  });

  it('refuses the terms with module replacing and a student deeper than the teacher, before training', async () => {
    const { dir, base } = await setup('1,2,32,32');
    const out = path.join(dir, 'x.onnx');
    await expect(distill({ ...base, output: out, hiddenWeight: 1, method: 'theseus' })).rejects.toThrow(/apply to plain distillation only/);
    await expect(distill({ ...base, output: out, attentionWeight: -0.5 })).rejects.toThrow(/--attention-weight -0.5 is not a loss weight/);
    const deep = path.join(dir, 'deep.onnx');
    synth({ arch: '3,2,32,64', vocab: 8000, maxPositions: 32, head: 'mlm', seed: 8, output: deep });
    await expect(distill({ ...base, student: deep, output: out, hiddenWeight: 1 })).rejects.toThrow(/the student has 3 layers and the teacher only 2/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import { BortError } from '../lib/errors.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { Trainer, type TrainBatch } from '../lib/train/trainer.js';
import { FIXTURES, fixture, referenceOutput, runOrt, tmpDir } from './helpers.js';

const NAME = 'bert-tiny-mlm-op14';
const FILE = path.join(FIXTURES, `${NAME}.onnx`);
const spec = fixture(NAME);
const V = spec.config.vocab;
const B = 2;
const S = 16;
const ids = Int32Array.from(spec.inputs.input_ids.data);
const mask = Int32Array.from(spec.inputs.attention_mask.data);
const types = Int32Array.from(spec.inputs.token_type_ids.data);
// every third token of each sequence, the padded ones of sequence 1 included
const positions = Int32Array.from({ length: Math.ceil((B * S) / 3) }, (_, i) => 3 * i);

/** Mean cross-entropy at `positions` of row-major [B*S, V] logits against `labels`, in double. */
function meanCE(logits: Float32Array, labels: Int32Array): number {
  let sum = 0;
  positions.forEach((p, i) => {
    const row = logits.subarray(p * V, (p + 1) * V);
    let mx = -Infinity;
    for (const z of row) mx = Math.max(mx, z);
    let s = 0;
    for (const z of row) s += Math.exp(z - mx);
    sum += Math.log(s) - (row[labels[i]] - mx);
  });
  return sum / positions.length;
}

function ortInputs(): Record<string, { shape: number[]; data: number[] }> {
  return spec.inputs;
}

describe('Trainer (native training engine through N-API)', () => {
  it('starts from the model: KL against the PyTorch logits of the same model is 0', async () => {
    const m = recognize(loadModel(FILE).model);
    const t = Trainer.fromModel(m, { threads: 2 });
    try {
      const ref = referenceOutput(NAME, 'logits');
      const teacher = new Float32Array(positions.length * V);
      positions.forEach((p, i) => teacher.set(ref.subarray(p * V, (p + 1) * V), i * V));
      const r = await t.gradients({ ids, mask, types, batch: B, seq: S, positions, teacher, mlmWeight: 0, klWeight: 1, temperature: 2 });
      expect(r.kl).toBeGreaterThanOrEqual(-1e-6);
      expect(r.kl).toBeLessThan(1e-6);
      expect(r.step).toBe(0);
      expect(t.tiedDecoder).toBe(true);
    } finally {
      t.close();
    }
  });

  it('trains: loss falls, and the saved ONNX gives onnxruntime the loss the trainer reports', async () => {
    const loaded = loadModel(FILE);
    const m = recognize(loaded.model);
    const labels = Int32Array.from(positions, (p) => ids[p]);
    const masked = Int32Array.from(ids);
    for (const p of positions) masked[p] = 3; // one id as the [MASK] token of this toy vocabulary
    const batch: TrainBatch = { ids: masked, mask, types, batch: B, seq: S, positions, labels, mlmWeight: 1, klWeight: 0 };
    const before = meanCE((await runOrt(FILE, { ...ortInputs(), input_ids: { shape: [B, S], data: [...masked] } })).logits.data, labels);
    const t = Trainer.fromModel(m, { lr: 5e-3, warmupSteps: 2, totalSteps: 25, threads: 2 });
    try {
      const first = await t.step(batch);
      // the engine's loss at the starting weights is onnxruntime's
      expect(Math.abs(first.mlm - before)).toBeLessThan(1e-4 * Math.max(1, before));
      expect(first.lr).toBeCloseTo(2.5e-3, 9);
      let last = first;
      for (let i = 1; i < 25; i++) last = await t.step(batch);
      expect(last.step).toBe(25);
      expect(last.lr).toBe(0);
      const now = await t.gradients(batch);
      expect(now.mlm).toBeLessThan(0.5 * first.mlm);
      t.writeInto();
      const out = path.join(tmpDir(), 'trained.onnx');
      saveModel(loaded.model, out);
      const after = meanCE((await runOrt(out, { ...ortInputs(), input_ids: { shape: [B, S], data: [...masked] } })).logits.data, labels);
      expect(Math.abs(after - now.mlm)).toBeLessThan(1e-4 * Math.max(1, now.mlm));
      // the same outputs as the original, and the word table (tied decoder) really changed
      const again = recognize(loadModel(out).model);
      expect(again.outputs.map((o) => o.name)).toEqual(m.outputs.map((o) => o.name));
    } finally {
      t.close();
    }
  });

  it('resumes from state(): the same parameters, moments and step count', async () => {
    const labels = Int32Array.from(positions, (p) => ids[p]);
    const batch: TrainBatch = { ids, mask, types, batch: B, seq: S, positions, labels };
    const a = Trainer.fromModel(recognize(loadModel(FILE).model), { lr: 1e-3, totalSteps: 10, threads: 1 });
    const b = Trainer.fromModel(recognize(loadModel(FILE).model), { lr: 1e-3, totalSteps: 10, threads: 1 });
    try {
      await a.step(batch);
      await a.step(batch);
      b.setState(a.state());
      expect(b.steps).toBe(2);
      const ra = await a.step(batch);
      const rb = await b.step(batch);
      expect(rb.loss).toBe(ra.loss);
      expect(rb.lr).toBe(ra.lr);
      expect(b.weight('q_w.1')).toEqual(a.weight('q_w.1'));
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses bad batches, overlapping steps and models without an MLM head', async () => {
    const t = Trainer.fromModel(recognize(loadModel(FILE).model), { threads: 1 });
    try {
      const labels = Int32Array.from(positions, (p) => ids[p]);
      const ok: TrainBatch = { ids, mask, types, batch: B, seq: S, positions, labels };
      const outside = { ...ok, positions: Int32Array.of(0, B * S), labels: labels.subarray(0, 2) };
      await expect(t.step(outside)).rejects.toThrow(RangeError);
      await expect(t.step(outside)).rejects.toThrow(/positions\[1\] = 32 is outside/);
      await expect(t.step({ ...ok, ids: Int32Array.from(ids, (x, i) => (i === 5 ? V : x)) })).rejects.toThrow(/ids\[5\] = 1000 is outside the vocabulary/);
      await expect(t.step({ ...ok, labels: Int32Array.of(1) })).rejects.toThrow(/labels has 1 values, expected 11/);
      await expect(t.step({ ...ok, labels: null, teacher: null })).rejects.toThrow(/labels.*teacher/);
      const p = t.step(ok);
      await expect(t.step(ok)).rejects.toThrow(/in flight/);
      expect(() => t.weight('q_w.0')).toThrow(/in flight/);
      expect((await p).step).toBe(1);
      expect(() => t.weight('nope')).toThrow(/no weight named 'nope'/);
    } finally {
      t.close();
    }
    expect(() => t.weight('q_w.0')).toThrow(/closed/);
    const plain = recognize(loadModel(path.join(FIXTURES, 'bert-tiny-op14.onnx')).model);
    expect(() => Trainer.fromModel(plain)).toThrow(BortError);
    expect(() => Trainer.fromModel(plain)).toThrow(/no masked-LM head/);
    expect(fs.existsSync(FILE)).toBe(true);
  });
});

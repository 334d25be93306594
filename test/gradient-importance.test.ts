/**
 * Taylor (head-mask) importance from the training engine, checked against central finite differences
 * of the loss when a head's W_O rows or a neuron's W_out row are scaled by (1 ± δ): d/dξ L(ξ·W_part)
 * at ξ = 1 is Σ W_part ⊙ ∂L/∂W_part, the formula gradientImportance sums.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import type { BertModel, Linear } from '../lib/bert/model.js';
import { loadModel } from '../lib/onnx/io.js';
import { floatData } from '../lib/onnx/tensor.js';
import { synth } from '../lib/synth/bert.js';
import { gradientImportance } from '../lib/extract/gradient-importance.js';
import type { CalibrationSet } from '../lib/search/calibration.js';
import { Trainer } from '../lib/train/trainer.js';
import { tmpDir } from './helpers.js';

const dir = tmpDir('bort-gradimp-');
const file = path.join(dir, 'm.onnx');
synth({ arch: '2,4,32,48', vocab: 40, maxPositions: 16, head: 'mlm', seed: 5, output: file });

/** 4 sequences of 12 tokens, 3 masked positions each, labels drawn from the vocabulary. */
function calibration(): CalibrationSet {
  const inputs: Int32Array[] = [], masked: number[][] = [], labels: number[][] = [];
  for (let r = 0; r < 4; r++) {
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i === 0 ? 2 : i === 11 ? 3 : 5 + ((r * 7 + i * 3) % 35)));
    const pos = [2 + r, 5, 9 - r];
    labels.push(pos.map((p) => ids[p]));
    for (const p of pos) ids[p] = 4;
    inputs.push(ids);
    masked.push(pos);
  }
  return { seq: 12, inputs, masked, labels, maskId: 4, positions: 12 };
}

/** A fresh model with the inputs `from..to` of linear `pick(m)` scaled by `f`. */
function scaled(pick: (m: BertModel) => Linear, from: number, to: number, f: number): BertModel {
  const m = recognize(loadModel(file).model);
  const l = pick(m);
  const t = m.index.weight(l.weight)!.tensor;
  const w = Float32Array.from(floatData(t));
  for (let i = from; i < to; i++) {
    for (let o = 0; o < l.outDim; o++) w[l.layout === 'in_out' ? i * l.outDim + o : o * l.inDim + i] *= f;
  }
  t.rawData = new Uint8Array(w.buffer);
  t.floatData = [];
  return m;
}

async function loss(m: BertModel, cal: CalibrationSet): Promise<number> {
  const tr = Trainer.fromModel(m, { threads: 1 });
  try {
    const ids = new Int32Array(cal.inputs.length * cal.seq);
    cal.inputs.forEach((r, i) => ids.set(r, i * cal.seq));
    const positions = cal.masked.flatMap((ps, i) => ps.map((p) => i * cal.seq + p));
    const r = await tr.gradients({ ids, types: new Int32Array(ids.length), mask: new Int32Array(ids.length).fill(1), batch: cal.inputs.length, seq: cal.seq,
      positions: Int32Array.from(positions), labels: Int32Array.from(cal.labels.flat()), mlmWeight: 1, klWeight: 0 });
    return r.mlm;
  } finally {
    tr.close();
  }
}

describe('gradient importance (Taylor, head mask)', () => {
  it('head and neuron scores equal |dL/dξ| by central differences, and differ between parts', async () => {
    const cal = calibration();
    const g = await gradientImportance(recognize(loadModel(file).model), cal, { batch: 4, threads: 1 });
    expect(g.batches).toBe(1);
    expect(g.heads.map((h) => h.length)).toEqual([4, 4]);
    expect(g.neurons.map((n) => n.length)).toEqual([48, 48]);
    const d = 8, δ = 1e-2;
    for (const [layer, head] of [[0, 1], [1, 3]]) {
      const o = (m: BertModel) => m.layers[layer].attention.o;
      const fd = ((await loss(scaled(o, head * d, (head + 1) * d, 1 + δ), cal)) - (await loss(scaled(o, head * d, (head + 1) * d, 1 - δ), cal))) / (2 * δ);
      expect(g.heads[layer][head]).toBeGreaterThan(0);
      expect(Math.abs(Math.abs(fd) - g.heads[layer][head])).toBeLessThan(0.02 * g.heads[layer][head] + 1e-5);
    }
    for (const [layer, n] of [[0, 7], [1, 30]]) {
      const out = (m: BertModel) => m.layers[layer].ffn.out;
      const fd = ((await loss(scaled(out, n, n + 1, 1 + δ), cal)) - (await loss(scaled(out, n, n + 1, 1 - δ), cal))) / (2 * δ);
      expect(Math.abs(Math.abs(fd) - g.neurons[layer][n])).toBeLessThan(0.02 * g.neurons[layer][n] + 1e-5);
    }
    expect(new Set(g.heads[0]).size).toBe(4);
    // labels 'own' need the model's arg-max
    await expect(gradientImportance(recognize(loadModel(file).model), cal, { labels: 'own' })).rejects.toThrow(/needs ownArgmax/);
  });
});

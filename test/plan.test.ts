import { describe, expect, it } from 'vitest';
import { buildSynthModel, planExtraction, recognize, weightScorer, firstScorer } from '../lib/index.js';
import { topK } from '../lib/extract/plan.js';
import { matrixOf } from '../lib/bert/weights.js';
import { loadModel } from '../lib/onnx/io.js';
import { teacherShaped } from './helpers.js';

describe('extraction plans', () => {
  it('topK keeps the k best in source order, ties to the lower index', () => {
    expect(topK([0.1, 0.9, 0.5, 0.9, 0.2], 3)).toEqual([1, 2, 3]);
    expect(topK([1, 1, 1], 2)).toEqual([0, 1]);
  });

  it('first keeps the first k of everything', () => {
    const m = recognize(loadModel(teacherShaped()).model);
    const p = planExtraction(m, { layers: 3, heads: 4, hidden: 128, intermediate: 100 }, firstScorer);
    expect(p.layers.map((l) => l.source)).toEqual([0, 1, 2]);
    expect(p.hidden).toEqual(Array.from({ length: 128 }, (_, i) => i));
    expect(p.layers[0].neurons).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(p.layers[0].headSources).toEqual([[0], [1], [2], [3]]);
    expect(p.layers[0].attention.slice(0, 32)).toEqual(Array.from({ length: 32 }, (_, i) => i));
  });

  it('importance keeps the neurons with the largest in·out weight norms', () => {
    const m = recognize(loadModel(teacherShaped()).model);
    const p = planExtraction(m, { layers: 6, heads: 8, hidden: 256, intermediate: 64 }, weightScorer);
    const f = m.layers[0].ffn;
    const win = matrixOf(m, f.in.weight), wout = matrixOf(m, f.out.weight);
    // independent computation of the score of every neuron
    const score = Array.from({ length: 1024 }, (_, n) => {
      let a = 0, b = 0;
      for (let r = 0; r < win.rows; r++) a += win.data[r * win.cols + n] ** 2;
      for (let c = 0; c < wout.cols; c++) b += wout.data[n * wout.cols + c] ** 2;
      return Math.sqrt(a * b);
    });
    const kept = new Set(p.layers[0].neurons);
    const minKept = Math.min(...[...kept].map((n) => score[n]));
    const maxDropped = Math.max(...score.filter((_, n) => !kept.has(n)));
    expect(minKept).toBeGreaterThanOrEqual(maxDropped);
    expect(p.layers[0].neurons).not.toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  it('importance drops the heads whose weights were zeroed', () => {
    const model = buildSynthModel({ arch: '1,4,32,64', vocab: 50, seed: 9 });
    const m = recognize(model);
    // silence head 1: zero its V columns
    const v = matrixOf(m, m.layers[0].attention.v.weight);
    for (let r = 0; r < v.rows; r++) for (let c = 8; c < 16; c++) v.data[r * v.cols + c] = 0;
    const p = planExtraction(m, { layers: 1, heads: 3, hidden: 24, intermediate: 64 }, weightScorer);
    expect(p.layers[0].headSources).toEqual([[0], [2], [3]]);
  });

  it('merging pairs heads that attend alike', () => {
    const model = buildSynthModel({ arch: '1,4,32,64', vocab: 50, seed: 11 });
    const m = recognize(model);
    const a = m.layers[0].attention;
    // make head 3 a copy of head 0 (Q and K columns), so their score patterns are identical
    for (const lin of [a.q, a.k]) {
      const w = matrixOf(m, lin.weight);
      for (let r = 0; r < w.rows; r++) for (let c = 0; c < 8; c++) w.data[r * w.cols + 24 + c] = w.data[r * w.cols + c];
    }
    const p = planExtraction(m, { layers: 1, heads: 2, hidden: 32, intermediate: 64 }, weightScorer);
    expect(p.headSize).toBe(16);
    expect(p.layers[0].headSources).toContainEqual([0, 3]);
    expect(p.layers[0].scoreScale).toBeCloseTo(a.scoreScale / 2, 9);
  });
});

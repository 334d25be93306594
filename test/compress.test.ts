import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compress, inspect, synth, archParameters, parseArch } from '../lib/index.js';
import { FIXTURES, FIXTURE_NAMES, REAL, fixture, teacherShaped, maxAbsDiff, randomInputs, referenceOutput, runOrt, sessionIO, tmpDir } from './helpers.js';

const models = [
  ...FIXTURE_NAMES.map((n) => ({ name: n, file: path.join(FIXTURES, `${n}.onnx`) })),
  { name: 'bert-tiny-extdata', file: path.join(FIXTURES, 'bert-tiny-extdata', 'model.onnx') },
  { name: 'real-export', file: REAL },
];

function inputsFor(name: string) {
  if (name === 'real-export') return randomInputs({ ids: 'input_ids', mask: 'input_mask', tokenTypes: 'token_type_ids' }, 99, 10, 16);
  return fixture(name === 'bert-tiny-extdata' ? 'bert-tiny-op14' : name).inputs;
}

describe('compress to the source architecture reproduces the source', () => {
  for (const { name, file } of models) {
    it(name, async () => {
      const dir = tmpDir();
      const info = inspect(file);
      const out = path.join(dir, 'same.onnx');
      const s = await compress(file, { arch: info.arch, output: out });
      expect(s.target.arch).toEqual(info.arch);
      expect(s.target.params).toBe(info.params);
      const inputs = inputsFor(name);
      const [a, b] = await Promise.all([runOrt(file, inputs), runOrt(out, inputs)]);
      expect(Object.keys(b)).toEqual(Object.keys(a));
      for (const k of Object.keys(a)) {
        expect(b[k].dims).toEqual(a[k].dims);
        expect(maxAbsDiff(a[k].data, b[k].data)).toBeLessThanOrEqual(1e-5);
      }
      // and onnxruntime on the source agrees with PyTorch's reference outputs
      if (name !== 'real-export') {
        const ref = name === 'bert-tiny-extdata' ? 'bert-tiny-op14' : name;
        for (const k of Object.keys(fixture(ref).outputs)) {
          expect(maxAbsDiff(b[k].data, referenceOutput(ref, k))).toBeLessThanOrEqual(fixture(ref).tolerance.abs);
        }
      }
    });
  }
});

function smallerArch(a: { layers: number; heads: number; hidden: number; intermediate: number }) {
  const heads = Math.max(1, a.heads / 2);
  const headSize = a.hidden / a.heads;
  return { layers: Math.max(1, a.layers - 1), heads, hidden: heads * headSize, intermediate: Math.floor(a.intermediate / 2) + 1 };
}

describe('compress to a smaller architecture gives a model onnxruntime runs', () => {
  for (const { name, file } of models) {
    for (const strategy of ['importance', 'first'] as const) {
      it(`${name} (${strategy})`, async () => {
        const dir = tmpDir();
        const src = inspect(file);
        const target = smallerArch(src.arch);
        const out = path.join(dir, 'small.onnx');
        const s = await compress(file, { arch: target, output: out, strategy });
        const got = inspect(out);
        expect(got.arch).toEqual(target);
        const closed = archParameters(target, {
          vocab: src.vocab, positions: src.maxPositions, typeVocab: src.typeVocab, pooler: src.heads.pooler, mlm: src.heads.mlm,
          classifiers: src.heads.classifiers.map((c) => c.labels),
        });
        expect(got.params).toBe(closed);
        expect(s.target.params).toBe(closed);
        const [io0, io1] = await Promise.all([sessionIO(file), sessionIO(out)]);
        expect(io1).toEqual(io0);
        const inputs = inputsFor(name);
        const [a, b] = await Promise.all([runOrt(file, inputs), runOrt(out, inputs)]);
        for (const k of Object.keys(a)) {
          const expected = [...a[k].dims];
          const role = got.outputs.find((o) => o.name === k)!.role;
          if (role === 'hidden' || role === 'pooled') expected[expected.length - 1] = target.hidden;
          expect(b[k].dims).toEqual(expected);
          expect(b[k].data.every(Number.isFinite)).toBe(true);
        }
      });
    }
  }
});

describe('closed-form parameter counts', () => {
  it('Bort from BERT-large has 55,941,120 parameters (the issue’s figure)', () => {
    expect(archParameters(parseArch('4,8,1024,768'), { vocab: 30522, positions: 512, typeVocab: 2, pooler: true, mlm: false, classifiers: [] })).toBe(55_941_120);
  });
  it('BERT-large base model has about 335M parameters', () => {
    expect(archParameters(parseArch('24,16,1024,4096'), { vocab: 30522, positions: 512, typeVocab: 2, pooler: true, mlm: false, classifiers: [] })).toBe(335_141_888);
  });
});

// What the smaller models compute is checked against hand-built references in extract-numeric.test.ts;
// here: the summary, the scale constant written, and that onnxruntime runs the result.
describe('head size changes', () => {
  const dir = tmpDir();
  const src = path.join(dir, 'src.onnx');
  synth({ arch: '3,8,128,256', vocab: 300, output: src, seed: 5 });
  const inputs = randomInputs({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' }, 300, 9);

  it('merging heads (8×16 → 4×32) keeps every channel and averages the merged heads\' logits', async () => {
    const out = path.join(dir, 'merged.onnx');
    const s = await compress(src, { arch: '3,4,128,256', output: out });
    expect(s.plan.headSize).toBe(32);
    expect(s.plan.notes.join(' ')).toMatch(/merges 2 source heads/);
    expect(s.plan.notes.join(' ')).toMatch(/changed from 0.250000 to 0.125000 so merged heads' logits are averaged/);
    expect(inspect(out).scoreScale).toBeCloseTo(0.125, 6);
    const b = await runOrt(out, inputs);
    expect(b.last_hidden_state.dims).toEqual([2, 9, 128]);
  });

  it('attentionScale keep leaves the graph\'s scale as it was', async () => {
    const out = path.join(dir, 'kept.onnx');
    const s = await compress(src, { arch: '3,4,128,256', output: out, attentionScale: 'keep' });
    expect(s.plan.notes.join(' ')).toMatch(/scale kept at the source's 0.250000/);
    expect(inspect(out).scoreScale).toBeCloseTo(0.25, 6);
  });

  it('--rescale-attention sets 1/sqrt(new head size)', async () => {
    const out = path.join(dir, 'rescaled.onnx');
    const s = await compress(src, { arch: '3,4,128,256', output: out, attentionScale: 'rescale' });
    expect(s.plan.notes.join(' ')).toMatch(/changed from 0.250000 to 1\/sqrt\(32\)/);
    expect(inspect(out).scoreScale).toBeCloseTo(1 / Math.sqrt(32), 6);
    await runOrt(out, inputs);
  });

  it('smaller heads (8×16 → 8×8) keep the best channels of each head', async () => {
    const out = path.join(dir, 'narrow.onnx');
    const s = await compress(src, { arch: '2,8,64,100', output: out });
    expect(s.plan.headSize).toBe(8);
    expect(inspect(out).arch).toEqual({ layers: 2, heads: 8, hidden: 64, intermediate: 100 });
    const b = await runOrt(out, inputs);
    expect(b.pooler_output.dims).toEqual([2, 64]);
  });
});

describe('external data', () => {
  it('writes the compressed model with external data on request, and onnxruntime runs it', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'ext.onnx');
    const s = await compress(path.join(FIXTURES, 'bert-tiny-extdata', 'model.onnx'), { arch: '1,2,32,64', output: out, externalData: true });
    expect(s.dataFile).toBe(path.join(dir, 'ext.onnx.data'));
    expect(fs.statSync(out).size + fs.statSync(s.dataFile!).size).toBeGreaterThanOrEqual(s.target.weightBytes);
    expect(inspect(out).arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
    const r = await runOrt(out, fixture('bert-tiny-op14').inputs);
    expect(r.last_hidden_state.dims).toEqual([2, 16, 32]);
  });
});

describe('a teacher-shaped masked-LM', () => {
  it('extracts to 3,4,256,512 and 2,8,256,256 with both strategies', async () => {
    const dir = tmpDir();
    for (const arch of ['3,4,256,512', '2,8,256,256']) {
      for (const strategy of ['importance', 'first'] as const) {
        const out = path.join(dir, `${arch}-${strategy}.onnx`);
        const s = await compress(teacherShaped(), { arch, output: out, strategy });
        expect(inspect(out).arch).toEqual(parseArch(arch));
        expect(fs.statSync(out).size).toBe(s.target.bytes);
      }
    }
  });
});

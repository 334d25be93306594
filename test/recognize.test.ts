import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSynthModel, compress, inspect, recognize, type SynthOptions } from '../lib/index.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { removeDeadCode } from '../lib/rewrite/prune.js';
import { GraphBuilder, modelOf, tensorInfo, DataType } from '../lib/synth/builder.js';
import { FIXTURES, FIXTURE_NAMES, REAL, fixture, teacherShaped, maxAbsDiff, randomInputs, runOrt, tmpDir } from './helpers.js';

describe('recognises every fixture model', () => {
  for (const name of FIXTURE_NAMES) {
    it(name, () => {
      const cfg = fixture(name).config;
      const s = inspect(path.join(FIXTURES, `${name}.onnx`));
      expect(s.arch).toEqual({ layers: cfg.layers, heads: cfg.heads, hidden: cfg.hidden, intermediate: cfg.intermediate });
      expect(s.vocab).toBe(cfg.vocab);
      expect(s.headSize).toBe(cfg.hidden / cfg.heads);
      expect(s.scoreScale).toBeCloseTo(1 / Math.sqrt(cfg.hidden / cfg.heads), 6);
      expect(s.layerNorm).toBe(cfg.opset >= 17 ? 'fused' : 'decomposed');
      expect(s.heads.pooler).toBe(cfg.head !== 'mlm');
      expect(s.heads.mlm).toBe(cfg.head === 'mlm');
      if (cfg.head === 'mlm') expect(s.heads.mlmTied).toBe(true);
      expect(s.heads.classifiers.length).toBe(cfg.head === 'cls' ? 1 : 0);
    });
  }

  it('the real PyTorch 1.1 export (input_mask, 16 token types, shape constants [0,0,4,8], shared tied decoder)', () => {
    const s = inspect(REAL);
    expect(s.arch).toEqual({ layers: 5, heads: 4, hidden: 32, intermediate: 37 });
    expect(s.vocab).toBe(99);
    expect(s.typeVocab).toBe(16);
    expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'input_mask', tokenTypes: 'token_type_ids' });
    expect(s.heads).toEqual({ pooler: true, mlm: true, mlmTied: true, classifiers: [{ source: 'pooler', labels: 2 }] });
    expect(s.outputs).toEqual([{ name: 'prediction_scores', role: 'mlm' }, { name: 'seq_relationship_score', role: 'classifier' }]);
  });

  it('a teacher-shaped masked-LM (6,8,256,1024, 8,000 words, 128 positions)', () => {
    const s = inspect(teacherShaped());
    expect(s.arch).toEqual({ layers: 6, heads: 8, hidden: 256, intermediate: 1024 });
    expect(s.vocab).toBe(8000);
    expect(s.maxPositions).toBe(128);
  });

  it('knows the mask value and LayerNorm epsilon from the graph', () => {
    const m = recognize(loadModel(REAL).model);
    expect(m.maskValue).toBe(-10000);
    expect(m.layers[0].ln1.epsilon).toBeCloseTo(1e-12, 18);
  });
});

describe('recognises graphs other exporters write, and compresses them', () => {
  const variants: [string, Partial<SynthOptions>][] = [
    ['transposed weights (MatMul of Transpose)', { weights: 'transposed' }],
    ['one shape constant [0,0,A,d]', { headShape: 'constant' }],
    ['score scale as Mul', { scale: 'mul' }],
    ['score scale on Q and K', { scale: 'qk' }],
    ['fused LayerNormalization', { opset: 17 }],
    ['opset 11', { opset: 11 }],
    ['no token_type_ids', { typeVocab: 0 }],
    ['other input names', { inputNames: { ids: 'ids', mask: 'input_mask', tokenTypes: 'segment_ids' } }],
    ['masked-LM head', { head: 'mlm' }],
    ['classifier head', { head: 'cls', labels: 3 }],
    ['head size 24', { arch: '2,3,72,100' }],
  ];
  for (const [label, v] of variants) {
    it(label, async () => {
      const dir = tmpDir();
      const src = path.join(dir, 'src.onnx');
      const opts: SynthOptions = { arch: '2,4,64,96', vocab: 200, seed: 3, ...v };
      saveModel(buildSynthModel(opts), src);
      const s = inspect(src);
      const arch = typeof opts.arch === 'string' ? opts.arch.split(',').map(Number) : [];
      expect([s.arch.layers, s.arch.heads, s.arch.hidden, s.arch.intermediate]).toEqual(arch);
      expect(s.scoreScale).toBeCloseTo(1 / Math.sqrt(arch[2] / arch[1]), 6);
      const names = { ids: s.inputs.ids, mask: s.inputs.mask, tokenTypes: s.inputs.tokenTypes };
      expect(names.ids).toBe(v.inputNames?.ids ?? 'input_ids');
      expect(names.tokenTypes).toBe(v.typeVocab === 0 ? undefined : v.inputNames?.tokenTypes ?? 'token_type_ids');
      const inputs = randomInputs(names, 200, 8);
      // same arch: identical outputs; smaller: loads and runs
      const same = path.join(dir, 'same.onnx');
      await compress(src, { arch: s.arch, output: same });
      const [a, b] = await Promise.all([runOrt(src, inputs), runOrt(same, inputs)]);
      for (const k of Object.keys(a)) expect(maxAbsDiff(a[k].data, b[k].data)).toBeLessThanOrEqual(1e-5);
      const small = path.join(dir, 'small.onnx');
      const target = { layers: 1, heads: 2, hidden: 2 * s.headSize, intermediate: 40 };
      await compress(src, { arch: target, output: small });
      expect(inspect(small).arch).toEqual(target);
      const c = await runOrt(small, inputs);
      expect(Object.keys(c)).toEqual(Object.keys(a));
    });
  }
});

describe('graphs that are not BERT get an error that names what is missing', () => {
  function write(build: (g: GraphBuilder) => void, inputs = [tensorInfo('x', DataType.FLOAT, [1, 4])], outputs = [tensorInfo('y', DataType.FLOAT, [1, 4])]): string {
    const g = new GraphBuilder(14);
    build(g);
    const file = path.join(tmpDir(), 'm.onnx');
    saveModel(modelOf(g.graph('g', inputs, outputs), 14, 'test'), file);
    return file;
  }

  it('a graph with no embeddings', () => {
    const file = write((g) => g.node('Relu', ['x'], {}, 'y'));
    expect(() => inspect(file)).toThrow(/embeddings: no word-embedding lookup feeding a LayerNorm was found: this graph does not look like a BERT model/);
  });

  it('embeddings with no transformer layer', () => {
    const full = buildSynthModel({ arch: '1,2,16,32', vocab: 50 });
    // cut the graph right after the embedding LayerNorm
    const m = recognize(full);
    const embOut = m.embeddings.output;
    full.graph!.output = [tensorInfo(embOut, DataType.FLOAT, ['b', 's', 16])];
    const file = path.join(tmpDir(), 'emb.onnx');
    removeDeadCode(full.graph!);
    saveModel(full, file);
    expect(() => inspect(file)).toThrow(/no transformer layer found after the embeddings/);
  });

  it('attention without a head split', () => {
    const full = buildSynthModel({ arch: '1,2,16,32', vocab: 50, headShape: 'constant' });
    // replace the head count and size in every split shape by -1 and 0: nothing tells the head count
    for (const n of full.graph!.node) {
      if (n.opType !== 'Constant') continue;
      const t = n.attribute[0].t!;
      if (t.dims.length === 1 && Number(t.dims[0]) === 4) {
        const v = new BigInt64Array(t.rawData!.buffer.slice(t.rawData!.byteOffset, t.rawData!.byteOffset + 32));
        if (v[2] === 2n) { v[2] = -1n; v[3] = 0n; t.rawData = new Uint8Array(v.buffer); }
      }
    }
    const file = path.join(tmpDir(), 'nohead.onnx');
    saveModel(full, file);
    expect(() => inspect(file)).toThrow(/layer 0 attention: the head count .* not found/);
  });
});

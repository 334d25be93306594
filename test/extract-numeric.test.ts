// Extraction checked numerically: each way of shrinking a model is compared, in onnxruntime, with a
// reference built by hand from the source (parts zeroed, a layer bypassed, heads duplicated), which
// computes exactly what the smaller model should. Plans are explicit (a scorer that marks what to keep,
// or a hand-written plan) and asserted, so the test knows what was kept.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyPlan, buildSynthModel, compress, firstScorer, inspect, planExtraction, recognize, saveModel, weightScorer,
  type Arch, type BertModel, type ExtractionPlan, type ImportanceScorer, type ModelProto, type SynthOptions,
} from '../lib/index.js';
import { maxAbsDiff, randomInputs, runOrt, tmpDir } from './helpers.js';
import {
  EMBEDDING_TABLES, biasOf, bypassLayer, copyColumns, foldScoreScaleIntoQ, headChannels, lastAxis, layerNormOverChannels,
  layerNorms, linears, range, readWeight, weightOf, without, zeroColumns, zeroRows,
} from './model-edits.js';

const TOL = 1e-5;
const VOCAB = 120;
const INPUTS = randomInputs({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' }, VOCAB, 10);
const SOURCE: Arch = { layers: 3, heads: 4, hidden: 32, intermediate: 64 };
const D = SOURCE.hidden / SOURCE.heads;

function source(opts: Partial<SynthOptions> = {}): ModelProto {
  return buildSynthModel({ arch: SOURCE, vocab: VOCAB, maxPositions: 16, seed: 31, ...opts });
}

const dir = tmpDir('bort-numeric-');
let files = 0;
function save(model: ModelProto): string {
  const file = path.join(dir, `m${files++}.onnx`);
  saveModel(model, file);
  return file;
}

type Outputs = Awaited<ReturnType<typeof runOrt>>;
const run = (model: ModelProto | string) => runOrt(typeof model === 'string' ? model : save(model), INPUTS);

/** Largest difference over all outputs, which must have the same names and dims. */
function worst(a: Outputs, b: Outputs): number {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  let w = 0;
  for (const k of Object.keys(a)) {
    expect(b[k].dims).toEqual(a[k].dims);
    w = Math.max(w, maxAbsDiff(a[k].data, b[k].data));
  }
  return w;
}

/** A scorer that ranks the listed parts 1 and every other part 0, so top-k keeps exactly the listed ones. */
function keeping(spec: { layers?: number[]; heads?: (l: number) => number[]; channels?: (l: number) => number[]; neurons?: (l: number) => number[]; hidden?: number[] }): ImportanceScorer {
  const mark = (n: number, keep?: number[]) => range(n).map((i) => (!keep || keep.includes(i) ? 1 : 0));
  return {
    name: 'explicit',
    layers: (m) => mark(m.arch.layers, spec.layers),
    heads: (m, l) => mark(m.arch.heads, spec.heads?.(l)),
    attentionChannels: (m, l) => mark(m.attentionWidth, spec.channels?.(l)),
    neurons: (m, l) => mark(m.arch.intermediate, spec.neurons?.(l)),
    hidden: (m) => mark(m.arch.hidden, spec.hidden),
  };
}

/** Recognises `model`, plans with `plan`, applies the plan and saves the result. */
function extract(model: ModelProto, plan: (m: BertModel) => ExtractionPlan): { file: string; plan: ExtractionPlan } {
  const m = recognize(model);
  const p = plan(m);
  applyPlan(m, p);
  return { file: save(model), plan: p };
}

describe('removing FFN neurons equals zeroing them in the source', () => {
  // 32 of 64 neurons kept in each layer, a different set in each
  const kept = [
    range(32).map((i) => 2 * i),
    [...range(16), ...range(16, 48)],
    range(64).filter((n) => (n * 37) % 64 < 32),
  ];
  it('per layer: in-columns and bias zeroed (GELU(0) = 0), out-rows zeroed, or both', async () => {
    const small = extract(source(), (m) => planExtraction(m, { ...SOURCE, intermediate: 32 }, keeping({ neurons: (l) => kept[l] })));
    expect(small.plan.layers.map((l) => l.neurons)).toEqual(kept);
    const ref = source();
    kept.forEach((keep, l) => {
      const drop = without(64, keep);
      const { ffnIn, ffnOut } = linears(l);
      if (l !== 1) {
        zeroColumns(ref, weightOf(ffnIn), drop);
        zeroColumns(ref, biasOf(ffnIn), drop);
      }
      if (l !== 0) zeroRows(ref, weightOf(ffnOut), drop);
    });
    const [a, b, src] = await Promise.all([run(ref), run(small.file), run(source())]);
    expect(worst(a, b)).toBeLessThanOrEqual(TOL);
    // the dropped neurons mattered: the source itself is far from both
    expect(worst(src, b)).toBeGreaterThan(1e-3);
  });
});

/** A hand-written plan that keeps everything but what `layer` changes; the score scale stays the source's. */
function handPlan(m: BertModel, target: Arch, headSize: number, layer: (l: number) => Pick<ExtractionPlan['layers'][number], 'attention' | 'headSources'>): ExtractionPlan {
  return {
    source: m.arch, target, strategy: 'hand', sourceHeadSize: m.headSize, headSize,
    hidden: range(m.arch.hidden),
    layers: m.layers.map((_, l) => ({ source: l, ...layer(l), neurons: range(m.arch.intermediate), scoreScale: m.layers[l].attention.scoreScale })),
    notes: [],
  };
}

describe('removing whole heads equals zeroing them in the source', () => {
  const keptHeads = [[0, 2], [1, 3], [0, 3]];
  it('2 of 4 heads per layer (attention width 16 beside hidden 32): V columns, O rows, or both zeroed', async () => {
    const small = extract(source(), (m) => handPlan(m, { ...SOURCE, heads: 2 }, D, (l) => ({ attention: headChannels(keptHeads[l], D), headSources: keptHeads[l].map((h) => [h]) })));
    const got = inspect(small.file);
    expect(got.arch).toEqual({ ...SOURCE, heads: 2 });
    expect(got.headSize).toBe(D);
    const ref = source();
    keptHeads.forEach((keep, l) => {
      const drop = headChannels(without(4, keep), D);
      const { v, o } = linears(l);
      if (l !== 1) {
        zeroColumns(ref, weightOf(v), drop);
        zeroColumns(ref, biasOf(v), drop);
      }
      if (l !== 0) zeroRows(ref, weightOf(o), drop);
    });
    const [a, b] = await Promise.all([run(ref), run(small.file)]);
    expect(worst(a, b)).toBeLessThanOrEqual(TOL);
  });

  it('removing channels inside heads (4 heads of 8 → 4 of 6) equals zeroing their Q and V columns', async () => {
    // head h keeps every channel but h·8+1 and h·8+6 (layer 0), h·8+0 and h·8+7 (others)
    const dropped = (l: number) => range(4).flatMap((h) => (l === 0 ? [h * D + 1, h * D + 6] : [h * D, h * D + 7]));
    const small = extract(source(), (m) => handPlan(m, SOURCE, 6, (l) => ({ attention: without(32, dropped(l)), headSources: range(4).map((h) => [h]) })));
    expect(inspect(small.file).headSize).toBe(6);
    const ref = source();
    for (let l = 0; l < 3; l++) {
      const { q, k, v } = linears(l);
      // a zero q_c (or k_c) removes channel c from Q·Kᵀ; a zero v_c removes it from the context
      for (const name of [weightOf(l === 2 ? k : q), biasOf(l === 2 ? k : q), weightOf(v), biasOf(v)]) zeroColumns(ref, name, dropped(l));
    }
    const [a, b] = await Promise.all([run(ref), run(small.file)]);
    expect(worst(a, b)).toBeLessThanOrEqual(TOL);
  });
});

describe('removing a layer equals bypassing it in the source', () => {
  for (const keep of [[0, 2], [0, 1], [1, 2]]) {
    const gone = without(3, keep)[0];
    it(`layers ${keep.join(',')} kept (layer ${gone} removed)`, async () => {
      const small = extract(source(), (m) => planExtraction(m, { ...SOURCE, layers: 2 }, keeping({ layers: keep })));
      expect(small.plan.layers.map((l) => l.source)).toEqual(keep);
      const ref = source();
      bypassLayer(ref, gone);
      const [a, b, src] = await Promise.all([run(ref), run(small.file), run(source())]);
      expect(worst(a, b)).toBeLessThanOrEqual(TOL);
      expect(worst(src, b)).toBeGreaterThan(1e-3);
    });
  }
});

/** Makes head `to` a copy of head `from` in Q, K and V (weights and biases) of every layer. */
function duplicateHeads(model: ModelProto, pairs: [number, number][]): void {
  for (let l = 0; l < SOURCE.layers; l++) {
    const { q, k, v } = linears(l);
    for (const [from, to] of pairs) {
      for (const name of [q, k, v].flatMap((p) => [weightOf(p), biasOf(p)])) copyColumns(model, name, headChannels([from], D), headChannels([to], D));
    }
  }
}

describe('merging duplicated heads with --attention-scale mean reproduces the source', () => {
  // heads 3 = 0 and 2 = 1: the importance planner must pair them by their identical Q·Kᵀ forms, and the
  // O rows of each pair must be kept in the order of the merged channels for the two halves to sum
  const pairs: [number, number][] = [[0, 3], [1, 2]];
  for (const variant of [{}, { scale: 'mul' }, { scale: 'qk' }, { headShape: 'constant' }] as Partial<SynthOptions>[]) {
    it(`4×8 → 2×16, importance planner${Object.keys(variant).length ? ` (${JSON.stringify(variant)})` : ''}`, async () => {
      const src = source(variant);
      duplicateHeads(src, pairs);
      const file = save(src);
      const plan = planExtraction(recognize(src), { ...SOURCE, heads: 2 }, weightScorer, { attentionScale: 'mean' });
      for (const l of plan.layers) {
        expect(l.headSources).toEqual([[0, 3], [1, 2]]);
        expect(l.attention).toEqual(headChannels([0, 3, 1, 2], D));
      }
      const out = path.join(dir, `merged-${files++}.onnx`);
      await compress(file, { arch: { ...SOURCE, heads: 2 }, output: out, attentionScale: 'mean' });
      expect(inspect(out).scoreScale).toBeCloseTo(1 / Math.sqrt(D) / 2, 7);
      const [a, b] = await Promise.all([run(file), run(out)]);
      expect(worst(a, b)).toBeLessThanOrEqual(TOL);
    });
  }

  it('the planner\'s fallback (no head similarity: whole heads merged in rank order) merges neighbours, also exact', async () => {
    const src = source();
    duplicateHeads(src, [[0, 1], [2, 3]]);
    const file = save(src);
    const plan = planExtraction(recognize(src), { ...SOURCE, heads: 2 }, firstScorer);
    expect(firstScorer.headSimilarity).toBeUndefined();
    for (const l of plan.layers) {
      expect(l.headSources).toEqual([[0, 1], [2, 3]]);
      expect(l.attention).toEqual(range(32));
      expect(l.scoreScale).toBeCloseTo(1 / Math.sqrt(D) / 2, 7);
    }
    const out = path.join(dir, `fallback-${files++}.onnx`);
    await compress(file, { arch: { ...SOURCE, heads: 2 }, output: out, strategy: 'first' });
    const [a, b] = await Promise.all([run(file), run(out)]);
    expect(worst(a, b)).toBeLessThanOrEqual(TOL);
  });

  // keep and rescale are exact too, against the source with its scale multiplied by 2·s'/s
  // (a merged head's logits sum its two identical halves)
  for (const mode of ['keep', 'rescale'] as const) {
    it(`--attention-scale ${mode} equals the source with the score scale ${mode === 'keep' ? 'doubled' : 'set to 2/sqrt(16)'}`, async () => {
      const src = source();
      duplicateHeads(src, pairs);
      const file = save(src);
      const out = path.join(dir, `${mode}-${files++}.onnx`);
      await compress(file, { arch: { ...SOURCE, heads: 2 }, output: out, attentionScale: mode });
      const ref = source({ scale: 'mul' });
      duplicateHeads(ref, pairs);
      const constant = ref.graph!.node.filter((n) => n.opType === 'Mul' && n.input[0].startsWith('/MatMul'));
      expect(constant).toHaveLength(3);
      const newScale = mode === 'keep' ? 2 / Math.sqrt(D) : 2 / Math.sqrt(16);
      for (const n of constant) {
        const c = ref.graph!.node.find((x) => x.output[0] === n.input[1])!;
        c.attribute[0].t!.rawData = new Uint8Array(Float32Array.of(newScale).buffer);
      }
      const [a, b, s] = await Promise.all([run(ref), run(out), run(file)]);
      expect(worst(a, b)).toBeLessThanOrEqual(TOL);
      expect(worst(s, b)).toBeGreaterThan(1e-4);
    });
  }

  it('a graph with no score-scale constant (scale folded into Q) gets a Mul on Q with the new scale', async () => {
    const src = source();
    foldScoreScaleIntoQ(src, SOURCE.layers, D);
    duplicateHeads(src, pairs);
    const file = save(src);
    expect(inspect(file).scoreScale).toBe(1);
    const unfolded = source();
    duplicateHeads(unfolded, pairs);
    const out = path.join(dir, `folded-${files++}.onnx`);
    await compress(file, { arch: { ...SOURCE, heads: 2 }, output: out, attentionScale: 'mean' });
    expect(inspect(out).scoreScale).toBeCloseTo(0.5, 7);
    const [a, b, u] = await Promise.all([run(file), run(out), run(unfolded)]);
    // folding the scale into Q kept the function, and the extraction reproduces it
    expect(worst(u, a)).toBeLessThanOrEqual(TOL);
    expect(worst(a, b)).toBeLessThanOrEqual(TOL);
  });
});

describe('the planner\'s fallback branch: new heads of 10 from source heads of 8 (not a whole multiple)', () => {
  it('takes whole heads in rank order, the last one partially (its best channels), grouped in source order', () => {
    const m = recognize(source());
    const scorer: ImportanceScorer = {
      ...keeping({}),
      heads: () => [1, 3, 2, 0],
      // within head 0 the odd channels rank higher
      attentionChannels: () => range(32).map((c) => (c % 2 ? 1 : 0)),
    };
    const plan = planExtraction(m, { layers: 1, heads: 2, hidden: 20, intermediate: 64 }, scorer);
    expect(plan.headSize).toBe(10);
    const l = plan.layers[0];
    expect(l.attention).toEqual([1, 3, 5, 7, ...range(8, 8), ...range(8, 16)]);
    expect(l.headSources).toEqual([[0, 1], [1, 2]]);
    expect(l.scoreScale).toBeCloseTo(m.layers[0].attention.scoreScale * 8 / 10, 9);
    expect(plan.notes.join(' ')).toMatch(/head size 8 → 10: each new head merges 1.25 source heads' channels(?!, paired)/);
  });

  it('the model it makes runs in onnxruntime with the planned shapes', async () => {
    const small = extract(source(), (m) => planExtraction(m, { layers: 1, heads: 2, hidden: 20, intermediate: 64 }, { ...keeping({}), heads: () => [1, 3, 2, 0] }));
    expect(inspect(small.file).arch).toEqual({ layers: 1, heads: 2, hidden: 20, intermediate: 64 });
    const b = await run(small.file);
    expect(b.last_hidden_state.dims).toEqual([2, 10, 20]);
    expect(b.last_hidden_state.data.every(Number.isFinite)).toBe(true);
  });
});

/*
 * Hidden channels. If channels Z hold zeros everywhere in the source (embeddings, every LayerNorm's γ
 * and β, every weight and bias that writes the residual stream), they stay zero through the network
 * and nothing reads anything else from them. But the source does not compute the same function as the
 * model without them: each LayerNorm divides by the full width H, so its mean and variance over H
 * channels (|Z| of them zero) differ from those over the H − |Z| kept ones. Two exact statements hold:
 *  1. the extracted model equals the zeroed source whose LayerNorms take mean and variance over the
 *     kept channels only (a reference graph with masked statistics);
 *  2. if instead each channel in Z holds a copy of one kept channel (written by copied weights, read
 *     by nothing), the LayerNorm statistics over H equal those over the kept channels, and the plain
 *     source graph equals the extracted model.
 * Both are tested; the plain zeroed source is shown to differ, which is why statement 1 needs its
 * reference.
 */
describe('hidden channels removed where the source holds nothing of its own', () => {
  const Z = [3, 7, 8, 13, 19, 22, 28, 31];
  const K = without(32, Z);
  const keptHeads = [[0, 2, 3], [0, 1, 3]];
  const TARGET: Arch = { layers: 2, heads: 3, hidden: 24, intermediate: 64 };

  function zeroHidden(model: ModelProto, mlm: boolean): void {
    for (const t of EMBEDDING_TABLES) zeroColumns(model, t, Z);
    const lns = [...layerNorms(2), ...(mlm ? ['cls.transform_ln'] : [])];
    for (const ln of lns) for (const p of ['weight', 'bias']) zeroColumns(model, `${ln}.${p}`, Z);
    const writers = [...range(2).flatMap((l) => [linears(l).o, linears(l).ffnOut]), ...(mlm ? ['cls.transform_dense'] : [])];
    for (const w of writers) {
      zeroColumns(model, weightOf(w), Z);
      zeroColumns(model, biasOf(w), Z);
    }
    // the masked-LM decoder is a transposed copy of the word table: keep it one
    if (mlm) zeroRows(model, 'onnx::MatMul_decoder', Z);
  }

  for (const head of ['base', 'mlm'] as const) {
    it(`${head} head: equals the zeroed source with LayerNorm statistics over the kept channels`, async () => {
      const opts = { arch: { ...SOURCE, layers: 2 }, opset: 17, head } as const;
      const zeroed = () => {
        const m = source(opts);
        zeroHidden(m, head === 'mlm');
        return m;
      };
      const small = extract(zeroed(), (m) => planExtraction(m, TARGET, keeping({ hidden: K, heads: (l) => keptHeads[l] })));
      expect(small.plan.hidden).toEqual(K);
      expect(small.plan.layers.map((l) => l.headSources)).toEqual(keptHeads.map((hs) => hs.map((h) => [h])));
      // the weight scorer finds the zero channels on its own
      expect(planExtraction(recognize(zeroed()), TARGET, weightScorer).hidden).toEqual(K);

      const ref = zeroed();
      keptHeads.forEach((keep, l) => zeroRows(ref, weightOf(linears(l).o), headChannels(without(4, keep), D)));
      const plainRef = zeroed();
      keptHeads.forEach((keep, l) => zeroRows(plainRef, weightOf(linears(l).o), headChannels(without(4, keep), D)));
      layerNormOverChannels(ref, 32, K);
      const [a, b, plain] = await Promise.all([run(ref), run(small.file), run(plainRef)]);
      const restrict = (o: Outputs, name: string) => (head === 'mlm' ? o[name].data : lastAxis(o[name].data, 32, K));
      for (const name of Object.keys(b)) {
        expect(maxAbsDiff(restrict(a, name), b[name].data)).toBeLessThanOrEqual(TOL);
        // with statistics over all 32 channels the numbers are not the same
        expect(maxAbsDiff(restrict(plain, name), b[name].data)).toBeGreaterThan(1e-3);
      }
    });
  }

  it('with each removed channel a copy of a kept one, the plain source equals the extracted model', async () => {
    // half the channels are copies of the other half, so LayerNorm statistics over all 32 are those over
    // the 16 kept; the copies need 16 hidden channels, hence 2 heads of 8
    const kept = [0, 2, 5, 6, 9, 10, 12, 15, 17, 18, 20, 23, 25, 26, 29, 30];
    const copies = without(32, kept);
    const twinOf = new Map(copies.map((z, i) => [z, kept[(i * 5) % 16]]));
    const from = copies.map((z) => twinOf.get(z)!);
    const keptHeads2 = [[1, 2], [0, 3]];
    const twins = () => {
      const m = source({ arch: { ...SOURCE, layers: 2 } });
      // writers copy the twin's values; readers ignore the copies
      for (const t of EMBEDDING_TABLES) copyColumns(m, t, from, copies);
      for (const ln of layerNorms(2)) for (const p of ['weight', 'bias']) copyColumns(m, `${ln}.${p}`, from, copies);
      for (let l = 0; l < 2; l++) {
        const { q, k, v, o, ffnIn, ffnOut } = linears(l);
        for (const w of [o, ffnOut]) {
          copyColumns(m, weightOf(w), from, copies);
          copyColumns(m, biasOf(w), from, copies);
        }
        for (const r of [q, k, v, ffnIn]) zeroRows(m, weightOf(r), copies);
      }
      zeroColumns(m, 'bert.pooler.dense.weight', copies); // stored [out, in]: columns are inputs
      return m;
    };
    const small = extract(twins(), (m) => planExtraction(m, { layers: 2, heads: 2, hidden: 16, intermediate: 64 }, keeping({ hidden: kept, heads: (l) => keptHeads2[l] })));
    expect(small.plan.hidden).toEqual(kept);
    expect(small.plan.layers.map((l) => l.headSources)).toEqual(keptHeads2.map((hs) => hs.map((h) => [h])));
    const ref = twins();
    keptHeads2.forEach((keep, l) => zeroRows(ref, weightOf(linears(l).o), headChannels(without(4, keep), D)));
    const [a, b] = await Promise.all([run(ref), run(small.file)]);
    // the copies really are copies in the source's output
    const h = a.last_hidden_state.data;
    expect(maxAbsDiff(lastAxis(h, 32, copies), lastAxis(h, 32, from))).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(lastAxis(h, 32, kept), b.last_hidden_state.data)).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(lastAxis(a.pooler_output.data, 32, kept), b.pooler_output.data)).toBeLessThanOrEqual(TOL);
  });
});

describe('applyPlan refuses a plan that does not fit the model, before changing it', () => {
  const cases: [string, (p: ExtractionPlan) => void, RegExp][] = [
    ['a neuron index past the end', (p) => (p.layers[0].neurons[3] = 64), /plan\.layers\[0\]\.neurons\[3\] = 64 is not an index in \[0, 64\)/],
    ['a neuron kept twice', (p) => (p.layers[1].neurons[1] = p.layers[1].neurons[0]), /plan\.layers\[1\]\.neurons keeps index 0 twice/],
    ['too few attention channels', (p) => p.layers[2].attention.pop(), /plan\.layers\[2\]\.attention has 31 entries where the target needs 32/],
    ['layers out of order', (p) => p.layers.reverse(), /plan\.layers\[\]\.source must be in ascending \(source\) order/],
    ['hidden channels out of order', (p) => ([p.hidden[0], p.hidden[1]] = [p.hidden[1], p.hidden[0]]), /plan\.hidden must be in ascending/],
    ['a NaN score scale', (p) => (p.layers[0].scoreScale = NaN), /scoreScale = NaN is not a finite non-zero number/],
    ['a plan for another model', (p) => (p.source = { ...p.source, hidden: 64 }), /the plan was made for 3,4,64,64, this model is 3,4,32,64/],
  ];
  for (const [what, spoil, message] of cases) {
    it(what, () => {
      const model = source();
      const m = recognize(model);
      const plan = planExtraction(m, SOURCE, firstScorer);
      spoil(plan);
      const before = readWeight(model, weightOf(linears(0).ffnIn));
      const nodes = model.graph!.node.length;
      expect(() => applyPlan(m, plan)).toThrow(RangeError);
      expect(() => applyPlan(m, plan)).toThrow(message);
      expect(readWeight(model, weightOf(linears(0).ffnIn))).toEqual(before);
      expect(model.graph!.node.length).toBe(nodes);
    });
  }
});

/**
 * Exact or refuse: synthetic BERT graphs altered in one place each. For every alteration the native
 * engine either matches onnxruntime within 1e-4, or loading refuses with a BortError naming the part;
 * never plausible numbers that differ. Where an alteration changes what onnxruntime computes, the
 * test shows that too, so a refusal is not vacuous.
 */
import { describe, expect, it } from 'vitest';
import { Encoder, inspect } from '../lib/index.js';
import { makeAttrFloat, makeAttrInt, makeAttrInts } from '../lib/onnx/graph.js';
import { runOrt } from './helpers.js';
import {
  base, constantOf, errorOf, expectBortError, expectEngineMatchesOrt, feeds, floatConst, indexOf, insertBefore, intConst, nodes,
  ortDifference, ortGivesNonFinite, producerOf, readerOf, removeNode, save, setAttr, setFloats, setInt64s,
} from './graph-edits.js';
import type { ModelProto, NodeProto } from '../lib/onnx/types.js';

const original = save(base(), 'original.onnx');

async function engineRefuses(file: string, re: RegExp): Promise<void> {
  expectBortError(await errorOf(() => Encoder.load(file, { threads: 1 })), re);
}

/** The embedding LayerNorm's nodes in the synth pattern, found from the first ReduceMean. */
function firstLayerNorm(m: ModelProto) {
  const mean = nodes(m, 'ReduceMean')[0];
  const x = mean.input[0];
  const sub = readerOf(m, x, 'Sub');
  const pow = readerOf(m, sub.output[0], 'Pow');
  const varMean = readerOf(m, pow.output[0], 'ReduceMean');
  const addEps = readerOf(m, varMean.output[0], 'Add');
  const sqrt = readerOf(m, addEps.output[0], 'Sqrt');
  const div = readerOf(m, sqrt.output[0], 'Div');
  return { x, mean, sub, pow, varMean, addEps, sqrt, div };
}

/** Layer 0's GELU in the synth pattern: Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5. */
function firstGelu(m: ModelProto) {
  const erf = nodes(m, 'Erf')[0];
  const div = producerOf(m, erf.input[0]);
  const add = readerOf(m, erf.output[0], 'Add');
  const mulX = readerOf(m, add.output[0], 'Mul');
  const mulHalf = readerOf(m, mulX.output[0], 'Mul');
  return { x: div.input[0], div, erf, add, mulX, mulHalf };
}

function softmaxes(m: ModelProto): NodeProto[] {
  return nodes(m, 'Softmax');
}

/** The scale Div and the mask Add in front of layer `l`'s Softmax. */
function scoresOf(m: ModelProto, l: number) {
  const softmax = softmaxes(m)[l];
  const add = producerOf(m, softmax.input[0]);
  const div = producerOf(m, add.input[0]);
  const matmul = producerOf(m, div.input[0]);
  return { softmax, add, div, matmul, mask: add.input[1] };
}

/** The shared mask chain: Unsqueeze → Unsqueeze → Cast → Sub(1, ·) → Mul(·, value). */
function maskChain(m: ModelProto) {
  const first = readerOf(m, 'attention_mask', 'Unsqueeze');
  const second = readerOf(m, first.output[0], 'Unsqueeze');
  const cast = readerOf(m, second.output[0], 'Cast');
  const sub = readerOf(m, cast.output[0], 'Sub');
  const mul = readerOf(m, sub.output[0], 'Mul');
  return { first, second, cast, sub, mul };
}

/** The Slice that cuts the position ids, and the Gather of the position table. */
function positionsOf(m: ModelProto) {
  const slice = readerOf(m, 'bert.embeddings.position_ids', 'Slice');
  const gather = readerOf(m, slice.output[0], 'Gather');
  return { slice, gather, seqLen: slice.input[2] };
}

function gemms(m: ModelProto): NodeProto[] {
  return nodes(m, 'Gemm');
}

describe('constants the math depends on are read from the graph, and the engine matches onnxruntime', () => {
  it('the unaltered model (control)', async () => {
    await expectEngineMatchesOrt(original);
  });

  it('a pooler Gemm with alpha = 2 and beta = 0.5', async () => {
    const m = base();
    const g = gemms(m)[0];
    setAttr(g, makeAttrFloat('alpha', 2));
    setAttr(g, makeAttrFloat('beta', 0.5));
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-2);
    await expectEngineMatchesOrt(file);
  });

  it('a classifier Gemm with alpha = 0.5 and beta = 3 after a pooler with alpha = 1.5', async () => {
    const m = base({ head: 'cls', labels: 3 });
    const [pooler, cls] = gemms(m);
    setAttr(pooler, makeAttrFloat('alpha', 1.5));
    setAttr(cls, makeAttrFloat('alpha', 0.5));
    setAttr(cls, makeAttrFloat('beta', 3));
    const file = save(m);
    expect(await ortDifference(file, save(base({ head: 'cls', labels: 3 })))).toBeGreaterThan(1e-3);
    await expectEngineMatchesOrt(file);
  });

  it('position ids from a Slice that starts at 2 (positions 2 … S+1, as RoBERTa-style offsets)', async () => {
    const m = base();
    const { slice, seqLen } = positionsOf(m);
    setInt64s(constantOf(m, slice.input[1]), [2]);
    slice.input[2] = insertBefore(m, slice, 'Add', [seqLen, intConst(m, [2])]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-2);
    const s = inspect(file);
    expect(s.maxPositions).toBe(40);
    await expectEngineMatchesOrt(file);
    // the longest sequence is 38: positions 2 … 39
    const enc = await Encoder.load(file, { threads: 1 });
    expect(enc.info.maxPositions).toBe(38);
    enc.close();
  });

  it('position ids from Range(3, S + 3) broadcast over the batch', async () => {
    const m = base();
    const { slice, gather } = positionsOf(m);
    // seq as a scalar: the Gather of the Shape before its Unsqueeze
    const seqScalar = producerOf(m, slice.input[2]).input[0];
    const limit = insertBefore(m, slice, 'Add', [seqScalar, intConst(m, [3], [])]);
    const range = insertBefore(m, slice, 'Range', [intConst(m, [3], []), limit, intConst(m, [1], [])]);
    gather.input[1] = range;
    removeNode(m, slice);
    await expectEngineMatchesOrt(save(m));
  });

  it('a Slice of the position table itself, from row 5', async () => {
    const m = base();
    const { slice, gather, seqLen } = positionsOf(m);
    const end = insertBefore(m, gather, 'Add', [seqLen, intConst(m, [5])]);
    const cut = insertBefore(m, gather, 'Slice', [gather.input[0], intConst(m, [5]), end, intConst(m, [0])], {}, gather.output[0]);
    removeNode(m, gather);
    removeNode(m, slice);
    expect(indexOf(m).producer.get(cut)!.opType).toBe('Slice');
    await expectEngineMatchesOrt(save(m));
  });

  it('LayerNorm epsilon 1e-3 instead of 1e-12, in every LayerNorm', async () => {
    const m = base();
    const ix = indexOf(m);
    let changed = 0;
    for (const n of nodes(m, 'Add')) {
      const eps = n.input.find((i) => ix.scalar(i) !== undefined && Math.abs(ix.scalar(i)!) < 1e-9);
      if (eps && ix.producer.get(n.input[0])?.opType === 'ReduceMean') { setFloats(constantOf(m, eps), [1e-3]); changed++; }
    }
    expect(changed).toBe(2 * 2 + 1);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    await expectEngineMatchesOrt(file);
  });

  it('a LayerNorm written with Reciprocal(Sqrt(·)) and a Mul', async () => {
    const m = base();
    const ln = firstLayerNorm(m);
    const rec = insertBefore(m, ln.div, 'Reciprocal', [ln.sqrt.output[0]]);
    ln.div.opType = 'Mul';
    ln.div.input = [ln.sub.output[0], rec];
    await expectEngineMatchesOrt(save(m));
  });

  it('erf GELU written as x · 0.5 · (1 + erf(x · 0.70710678))', async () => {
    const m = base();
    for (const erf of nodes(m, 'Erf')) {
      const div = producerOf(m, erf.input[0]);
      div.opType = 'Mul';
      div.input[1] = floatConst(m, Math.SQRT1_2);
    }
    await expectEngineMatchesOrt(save(m));
  });

  it('the mask written value · (1 - mask), value -10000', async () => {
    const m = base();
    const { mul, sub } = maskChain(m);
    mul.input = [floatConst(m, -10000), sub.output[0]];
    const file = save(m);
    await expectEngineMatchesOrt(file);
  });
});

describe('what the engine cannot compute exactly is refused, naming the part', () => {
  it('a LayerNorm with no epsilon added to the variance (eps added after the square root)', async () => {
    const m = base();
    const ln = firstLayerNorm(m);
    ln.sqrt.input[0] = ln.varMean.output[0];
    ln.div.input[1] = insertBefore(m, ln.div, 'Add', [ln.sqrt.output[0], floatConst(m, 1e-3)]);
    removeNode(m, ln.addEps);
    const file = save(m);
    await runsInOrt(file);
    expectBortError(await errorOf(() => inspect(file)), /LayerNorm of '.*' has no epsilon/);
    await engineRefuses(file, /LayerNorm of .* has no epsilon/);
  });

  it('a LayerNorm whose mean is over the sequence axis', async () => {
    const m = base();
    const ln = firstLayerNorm(m);
    setAttr(ln.mean, makeAttrInts('axes', [1]));
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-2);
    expectBortError(await errorOf(() => inspect(file)), /LayerNorm of '.*' is not one: ReduceMean .* averages over axes \[1\], not the last axis/);
  });

  it('a LayerNorm whose variance is a mean of cubes (Pow 3)', async () => {
    const m = base();
    const ln = firstLayerNorm(m);
    setFloats(constantOf(m, ln.pow.input[1]), [3]);
    const file = save(m);
    await runsInOrt(file);
    expectBortError(await errorOf(() => inspect(file)), /LayerNorm of '.*' does not compute \(x - mean\) \/ sqrt\(variance \+ 1e-12\)/);
  });

  it('a LayerNorm that divides x, not x - mean', async () => {
    const m = base();
    const ln = firstLayerNorm(m);
    ln.div.input[0] = ln.x;
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-2);
    expectBortError(await errorOf(() => inspect(file)), /LayerNorm of '.*' does not compute \(x - mean\)/);
  });

  it('a fused LayerNormalization over axis 1', async () => {
    const m = base({ opset: 17 });
    setAttr(nodes(m, 'LayerNormalization')[1], makeAttrInt('axis', 1));
    const file = save(m);
    await runsInOrt(file);
    expectBortError(await errorOf(() => inspect(file)), /LayerNormalization .* normalises from axis 1, not over the last axis/);
  });

  it('a GELU with 0.6 in place of 0.5', async () => {
    const m = base();
    const g = firstGelu(m);
    setFloats(constantOf(m, g.mulHalf.input[1]), [0.6]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 feed-forward: the activation between .* is not recognised: it computes 1\.00961 at x = 1/);
  });

  it('a GELU that divides by 1.5 in place of √2', async () => {
    const m = base();
    const g = firstGelu(m);
    setFloats(constantOf(m, g.div.input[1]), [1.5]);
    const file = save(m);
    await runsInOrt(file);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 feed-forward: the activation .* matches neither GELU/);
  });

  it('erf swapped for tanh without the cubic term (neither GELU form)', async () => {
    const m = base();
    for (const n of nodes(m, 'Erf')) n.opType = 'Tanh';
    expectBortError(await errorOf(() => inspect(save(m))), /layer 0 feed-forward: the activation .* is not recognised/);
  });

  it('tanh GELU is recognised as such and refused by the engine', async () => {
    const m = base();
    for (const erf of nodes(m, 'Erf')) {
      // Div(x, √2) → Erf   becomes   Mul(x + 0.044715 x³, √(2/π)) → Tanh
      const div = producerOf(m, erf.input[0]);
      const x = div.input[0];
      const cube = insertBefore(m, div, 'Pow', [x, floatConst(m, 3)]);
      const inner = insertBefore(m, div, 'Add', [x, insertBefore(m, div, 'Mul', [cube, floatConst(m, 0.044715)])]);
      div.opType = 'Mul';
      div.input = [inner, floatConst(m, Math.sqrt(2 / Math.PI))];
      erf.opType = 'Tanh';
    }
    const file = save(m);
    expect(inspect(file).activation).toBe('gelu_tanh');
    await engineRefuses(file, /the native engine cannot run this model: layer 0 uses gelu_tanh/);
  });

  it('a Softmax over the query axis', async () => {
    const m = base();
    setAttr(softmaxes(m)[0], makeAttrInt('axis', 2));
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-2);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 attention: the Softmax normalises over axis 2, not the key axis/);
  });

  it('a Softmax with no axis at opset 11 (coerced to 2-D from axis 1)', async () => {
    const m = base({ opset: 11 });
    const s = softmaxes(m)[1];
    s.attribute = s.attribute.filter((a) => a.name !== 'axis');
    const file = save(m);
    expect(await ortDifference(file, save(base({ opset: 11 })))).toBeGreaterThan(1e-3);
    expectBortError(await errorOf(() => inspect(file)), /layer 1 attention: the Softmax normalises over axis 1/);
  });

  it('scores divided by 0', async () => {
    const m = base();
    setFloats(constantOf(m, scoresOf(m, 0).div.input[1]), [0]);
    const file = save(m);
    expect(await ortGivesNonFinite(file)).toBe(true);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 attention: the scores are divided by 0/);
  });

  it('a mask value of NaN', async () => {
    const m = base();
    setFloats(constantOf(m, maskChain(m).mul.input[1]), [NaN]);
    const file = save(m);
    expect(await ortGivesNonFinite(file)).toBe(true);
    await engineRefuses(file, /the attention mask adds NaN · \(1 - mask\)/);
  });

  it('a mask value of -Infinity', async () => {
    const m = base();
    setFloats(constantOf(m, maskChain(m).mul.input[1]), [-Infinity]);
    const file = save(m);
    expect(await ortGivesNonFinite(file)).toBe(true);
    await engineRefuses(file, /the attention mask adds -Infinity · \(1 - mask\)/);
  });

  it('a mask taken from 2, not 1: (2 - mask) · value', async () => {
    const m = base();
    const { sub, mul } = maskChain(m);
    setFloats(constantOf(m, sub.input[0]), [2]);
    setFloats(constantOf(m, mul.input[1]), [-1]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    expect(inspect(file).inputs.mask).toBe('attention_mask');
    await engineRefuses(file, /attention mask: layer 0: Sub .* does not compute 1 - mask/);
  });

  it('a mask unsqueezed to [batch, 1, seq, 1] (masks queries, not keys)', async () => {
    const m = base();
    setInt64s(constantOf(m, maskChain(m).second.input[1]), [3]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    await engineRefuses(file, /attention mask: layer 0: the mask is broadcast as \[batch, 1, seq, 1\], not \[batch, 1, 1, seq\]/);
  });

  it('a mask that goes through a Cast to bool', async () => {
    const m = base();
    const { cast } = maskChain(m);
    const b = insertBefore(m, cast, 'Cast', [cast.input[0]], { to: 9 });
    cast.input[0] = b;
    await engineRefuses(save(m), /attention mask: layer 0: Cast .* turns the mask into type 9/);
  });

  it('a mask added before the scores are scaled', async () => {
    const m = base();
    const { add, div, softmax, matmul } = scoresOf(m, 0);
    // softmax(Div(Add(scores, mask), c)) in place of softmax(Add(Div(scores, c), mask))
    add.input[0] = matmul.output[0];
    div.input[0] = add.output[0];
    softmax.input[0] = div.output[0];
    const g = m.graph!.node;
    g.splice(g.indexOf(div), 1);
    g.splice(g.indexOf(add) + 1, 0, div);
    const file = save(m);
    await runsInOrt(file);
    await engineRefuses(file, /attention mask: layer 0: the mask is added before the scores are scaled/);
  });

  it('layer 1 adds a different mask from layer 0', async () => {
    const m = base();
    const { sub } = maskChain(m);
    const { add } = scoresOf(m, 1);
    add.input[1] = insertBefore(m, add, 'Mul', [sub.output[0], floatConst(m, -1)]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-4);
    await engineRefuses(file, /attention mask: layer 1 applies a different attention mask from layer 0/);
  });

  it('scores masked by a Where in layer 0 while layer 1 adds the mask', async () => {
    const m = base();
    const { add } = scoresOf(m, 0);
    const { second } = maskChain(m);
    const keep = insertBefore(m, add, 'Cast', [second.output[0]], { to: 9 });
    const where = insertBefore(m, add, 'Where', [keep, add.input[0], floatConst(m, -10000)]);
    add.opType = 'Identity';
    add.input = [where];
    const file = save(m);
    await runsInOrt(file);
    expect(inspect(file).attentionMask).toMatchObject({ kind: 'select', problem: 'layer 1 applies a different attention mask from layer 0' });
    await engineRefuses(file, /attention mask: layer 1 applies a different attention mask from layer 0/);
  });

  it('position ids that are not consecutive (0, 2, 4, …)', async () => {
    const m = base();
    setInt64s(constantOf(m, 'bert.embeddings.position_ids'), Array.from({ length: 40 }, (_, i) => Math.min(2 * i, 39)));
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    const enc = await Encoder.load(file, { threads: 1 }).catch((e: Error) => e);
    // either refused, or the run limited to the one consecutive position (0): a 10-token run must not pass
    if (enc instanceof Error) throw enc;
    expect(enc.info.maxPositions).toBe(1);
    await expect(enc.run({ input_ids: { data: new BigInt64Array(10), dims: [1, 10] } })).rejects.toThrow(/sequence length 10 exceeds the model's 1 positions/);
    enc.close();
  });

  it('position ids from a Slice that steps by 2', async () => {
    const m = base();
    const { slice } = positionsOf(m);
    setInt64s(constantOf(m, slice.input[4]), [2]);
    await engineRefuses(save(m), /position ids: Slice .* steps by 2/);
  });

  it('position ids that are the graph input ids', async () => {
    const m = base();
    positionsOf(m).gather.input[1] = 'input_ids';
    await engineRefuses(save(m), /embeddings: expected a word table, optionally a token-type table and a position table/);
  });

  it('a Slice of the position ids that ends at a constant', async () => {
    const m = base();
    const { slice } = positionsOf(m);
    slice.input[2] = intConst(m, [1]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    await engineRefuses(file, /position ids: Slice .* does not cut the position ids to the sequence length/);
  });

  it('NaN in a weight: the message names the part and the model\'s own tensor', async () => {
    const m = base();
    const name = 'onnx::MatMul_bert.encoder.layer.0.output.dense';
    const t = constantOf(m, name);
    const data = new Float32Array(t.rawData!.slice().buffer);
    data[5] = NaN;
    setFloats(t, Array.from(data));
    const file = save(m);
    expect(await ortGivesNonFinite(file)).toBe(true);
    expect(inspect(file).arch.layers).toBe(2);
    await engineRefuses(file, /layer 0 feed-forward output weight 'onnx::MatMul_bert\.encoder\.layer\.0\.output\.dense' holds NaN at index 5/);
  });

  it('an infinite word embedding', async () => {
    const m = base();
    const t = constantOf(m, 'bert.embeddings.word_embeddings.weight');
    const data = new Float32Array(t.rawData!.slice().buffer);
    data.fill(Infinity, 0, 16 * 50);
    setFloats(t, Array.from(data));
    const file = save(m);
    expect(await ortGivesNonFinite(file)).toBe(true);
    await engineRefuses(file, /word embedding table 'bert\.embeddings\.word_embeddings\.weight' holds Infinity/);
  });

  it('a tensor name with a newline and terminal escapes is quoted, not echoed', async () => {
    const m = base();
    const evil = 'evil\nname\u001b[31m';
    const t = constantOf(m, 'bert.pooler.dense.bias');
    const data = new Float32Array(t.rawData!.slice().buffer);
    data[0] = NaN;
    setFloats(t, Array.from(data));
    t.name = evil;
    gemms(m)[0].input[2] = evil;
    const e = await errorOf(() => Encoder.load(save(m), { threads: 1 }));
    expectBortError(e, /pooler bias 'evil\\x0aname\\x1b\[31m' holds NaN/);
    expect(e.message).not.toContain('\u001b');
  });
});

describe('graph shapes that are not the attention they look like are refused', () => {
  it('K not transposed (Q·K in place of Q·Kᵀ, shapes agree when seq = head size)', async () => {
    const m = base();
    const k = producerOf(m, scoresOf(m, 0).matmul.input[1]);
    expect(k.opType).toBe('Transpose');
    setAttr(k, makeAttrInts('perm', [0, 2, 1, 3]));
    const file = save(m);
    expect(await ortDifference(file, original, 8)).toBeGreaterThan(1e-3);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 attention: K arrives with the axes \[B, A, K, d\], not \[B, A, d, K\]/);
  });

  it('V scaled by a constant', async () => {
    const m = base();
    const ctx = readerOf(m, softmaxes(m)[0].output[0], 'MatMul');
    const v = ctx.input[1];
    ctx.input[1] = insertBefore(m, ctx, 'Mul', [v, floatConst(m, 2)]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-3);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 attention: Mul .* scales V/);
  });

  it('a constant added to the scores (one value per key position)', async () => {
    const m = base();
    const { add, softmax } = scoresOf(m, 0);
    softmax.input[0] = insertBefore(m, softmax, 'Add', [add.output[0], floatConst(m, Array.from({ length: 10 }, (_, i) => i / 4), [1, 1, 1, 10])]);
    const file = save(m);
    expect(await ortDifference(file, original)).toBeGreaterThan(1e-4);
    expectBortError(await errorOf(() => inspect(file)), /layer 0 attention: Add .* adds a constant to the scores/);
  });

  it('a pooler Gemm that transposes its input (transA = 1)', async () => {
    const m = base();
    setAttr(gemms(m)[0], makeAttrInt('transA', 1));
    expectBortError(await errorOf(() => inspect(save(m))), /Gemm .* transposes its input \(transA = 1\)/);
  });
});

/** onnxruntime accepts the model and returns finite outputs (the alteration is a valid model). */
async function runsInOrt(file: string): Promise<void> {
  const r = await runOrt(file, feeds());
  expect(Object.values(r).every((o) => o.data.every(Number.isFinite))).toBe(true);
}

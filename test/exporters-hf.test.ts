/**
 * What transformers' PyTorch exports look like beyond the stock BERT (issue 7, items 1–4): token
 * types without an input (ConstantOfShape, a registered zero buffer), question-answering and token
 * classification heads (also PyTorch 1.3's names), DistilBERT (the real optimum export and synth's),
 * and RoBERTa's position ids computed from the token ids. For each model: what `inspect` reads, an
 * identity compress reproduces onnxruntime's outputs (1e-5), a shrinking compress runs in
 * onnxruntime, and the native Encoder matches onnxruntime within 1e-4 on a padded batch, before and
 * after the compress. Then the hard cases: a sequence without tokens, padding ids inside a RoBERTa
 * sequence, a token-type row other than 0; and altered graphs that must be refused, naming the part.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Encoder, buildSynthModel, compress, inspect, type InspectSummary, type SynthOptions } from '../lib/index.js';
import { saveModel } from '../lib/onnx/io.js';
import type { ModelProto } from '../lib/onnx/types.js';
import { REAL_EXPORTS, ROOT, maxAbsDiff, maxAbsDiffAtTokens, randomInputs, runOrt, tmpDir } from './helpers.js';
import { constantOf, errorOf, expectBortError, nodes, producerOf, readerOf, setInt64s } from './graph-edits.js';

type Inputs = Record<string, { shape: number[]; data: number[] }>;
type Outputs = Awaited<ReturnType<typeof runOrt>>;

const dir = tmpDir('bort-hf-');
const DISTILBERT = path.join(REAL_EXPORTS, 'optimum_tiny-distilbert-seqcls.onnx');
const SYNTH: SynthOptions = { arch: '2,4,32,64', vocab: 100, maxPositions: 32, seed: 11 };
const SHRUNK = '1,2,16,32';

function save(m: ModelProto, name: string): string {
  const file = path.join(dir, `${name}.onnx`);
  saveModel(m, file);
  return file;
}

function synthFile(name: string, opts: Partial<SynthOptions>): string {
  return save(buildSynthModel({ ...SYNTH, ...opts }), name);
}

/** A padded batch of two sequences for the model's inputs (the second padded at the end). */
function inputsFor(s: InspectSummary, seq = 12): Inputs {
  return randomInputs({ ids: s.inputs.ids, mask: s.inputs.mask, tokenTypes: s.inputs.tokenTypes }, s.vocab, seq, Math.max(1, s.typeVocab));
}

/** RoBERTa's padding: id 1 where the mask is 0, and one id 1 inside the first sequence (its position stays 1). */
function robertaInputs(s: InspectSummary): Inputs {
  const x = inputsFor(s);
  const ids = x[s.inputs.ids].data, mask = x[s.inputs.mask!].data;
  mask.forEach((m, i) => { if (m === 0) ids[i] = 1; });
  ids[4] = 1;
  return x;
}

async function runEncoder(file: string, inputs: Inputs) {
  const enc = await Encoder.load(file, { threads: 2 });
  try {
    const feeds: Record<string, { data: BigInt64Array; dims: number[] }> = {};
    for (const [k, v] of Object.entries(inputs)) feeds[k] = { data: BigInt64Array.from(v.data, BigInt), dims: v.shape };
    return await enc.run(feeds);
  } finally {
    enc.close();
  }
}

/** The attention-mask values of a feed, if it has a mask input. */
const maskOf = (x: Inputs) => Object.entries(x).find(([k]) => /mask/i.test(k))?.[1].data;

const largest = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/**
 * Every output equal (same names, dims) within `tol`, and within `rel` of the output's largest value,
 * so that small logits (a tiny model's are about 1e-3) are compared as closely as large ones.
 */
function expectClose(got: Record<string, { dims: readonly number[]; data: Float32Array }>, want: Outputs, tol: number, rel = 1e-3, mask?: ArrayLike<number>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const k of Object.keys(want)) {
    expect([...got[k].dims], k).toEqual([...want[k].dims]);
    expect(want[k].data.every(Number.isFinite), k).toBe(true);
    // the native engine returns zeros at padded positions of per-token outputs (README); compared at real ones
    const qa = want[k].dims.length === 2 && /^(start|end)(_logits)?$/.test(k); // [batch, seq]: one value a token
    const dims = qa ? [...want[k].dims, 1] : want[k].dims;
    const d = mask ? maxAbsDiffAtTokens(got[k].data, want[k].data, dims, mask) : maxAbsDiff(got[k].data, want[k].data);
    expect(d, k).toBeLessThanOrEqual(tol);
    expect(d, k).toBeLessThanOrEqual(rel * largest(want[k].data));
  }
}

interface Case {
  name: string;
  file: () => string;
  /** What inspect must read. */
  expectInspect: (s: InspectSummary) => void;
  shrink?: string;
  inputs?: (s: InspectSummary) => Inputs;
}

const BERT_MASK = { kind: 'add', value: -3.4028234663852886e38 };
const FLOAT32_MIN = -3.4028234663852886e38;

const CASES: Case[] = [
  {
    name: 'no token_type_ids input: ConstantOfShape(Shape(input_ids))',
    file: () => synthFile('cos', { tokenTypes: 'constant-of-shape' }),
    expectInspect: (s) => {
      expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: undefined });
      expect(s.tokenTypeIds).toEqual({ kind: 'constant', row: 0 });
      expect(s.typeVocab).toBe(2);
      expect(s.positionIds).toEqual({ kind: 'arange', start: 0 });
      expect(s.attentionMask).toEqual(BERT_MASK);
      expect(s.outputs).toEqual([{ name: 'last_hidden_state', role: 'hidden' }, { name: 'pooler_output', role: 'pooled' }]);
    },
  },
  {
    name: 'no token_type_ids input: a registered zero buffer, sliced and expanded',
    file: () => synthFile('zero-buffer', { tokenTypes: 'zero-buffer' }),
    expectInspect: (s) => {
      expect(s.inputs.tokenTypes).toBeUndefined();
      expect(s.tokenTypeIds).toEqual({ kind: 'constant', row: 0 });
      expect(s.typeVocab).toBe(2);
      expect(s.heads).toEqual({ pooler: true, mlm: false, mlmTied: false, classifiers: [] });
      expect(s.poolerActivation).toBe('tanh');
    },
  },
  {
    name: 'question answering (BertForQuestionAnswering, opset 14)',
    file: () => synthFile('qa', { head: 'qa' }),
    expectInspect: (s) => {
      expect(s.heads).toEqual({ pooler: false, mlm: false, mlmTied: false, classifiers: [{ source: 'hidden', labels: 2 }] });
      expect(s.outputs).toEqual([{ name: 'start_logits', role: 'classifier', column: 0 }, { name: 'end_logits', role: 'classifier', column: 1 }]);
      expect(s.tokenTypeIds).toEqual({ kind: 'input' });
    },
  },
  {
    name: 'question answering as PyTorch 1.3 named it (input_ids/input_mask/segment_ids → start/end, opset 11)',
    file: () => synthFile('qa-pt13', { head: 'qa', opset: 11, inputNames: { ids: 'input_ids', mask: 'input_mask', tokenTypes: 'segment_ids' }, outputNames: ['start', 'end'] }),
    expectInspect: (s) => {
      expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'input_mask', tokenTypes: 'segment_ids' });
      expect(s.outputs).toEqual([{ name: 'start', role: 'classifier', column: 0 }, { name: 'end', role: 'classifier', column: 1 }]);
      expect(s.opset).toBe(11);
    },
  },
  {
    name: 'token classification (5 labels on every token)',
    file: () => synthFile('token-cls', { head: 'token-cls', labels: 5 }),
    expectInspect: (s) => {
      expect(s.heads.classifiers).toEqual([{ source: 'hidden', labels: 5 }]);
      expect(s.outputs).toEqual([{ name: 'logits', role: 'classifier' }]);
    },
  },
  {
    name: 'DistilBERT encoder (synth: Where with finfo.min)',
    file: () => synthFile('distilbert', { family: 'distilbert' }),
    expectInspect: (s) => {
      expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: undefined });
      expect(s.tokenTypeIds).toEqual({ kind: 'none' });
      expect(s.typeVocab).toBe(0);
      expect(s.attentionMask).toEqual({ kind: 'select', value: FLOAT32_MIN });
      expect(s.scoreScale).toBeCloseTo(1 / Math.sqrt(8), 6);
      expect(s.heads).toEqual({ pooler: false, mlm: false, mlmTied: false, classifiers: [] });
    },
  },
  {
    name: 'DistilBERT sequence classification (synth: pre_classifier → ReLU → classifier)',
    file: () => synthFile('distilbert-cls', { family: 'distilbert', head: 'cls', labels: 3 }),
    expectInspect: (s) => {
      expect(s.heads).toEqual({ pooler: true, mlm: false, mlmTied: false, classifiers: [{ source: 'pooler', labels: 3 }] });
      expect(s.poolerActivation).toBe('relu');
      expect(s.outputs).toEqual([{ name: 'logits', role: 'classifier' }]);
    },
  },
  {
    name: 'DistilBertForSequenceClassification as optimum exported it (PyTorch 1.10, opset 11, -inf fill)',
    file: () => DISTILBERT,
    shrink: '1,1,2,1',
    expectInspect: (s) => {
      expect(s.arch).toEqual({ layers: 2, heads: 2, hidden: 2, intermediate: 2 });
      expect(s.vocab).toBe(30522);
      expect(s.maxPositions).toBe(512);
      expect(s.maxSequence).toBe(512);
      expect(s.producer).toBe('pytorch 1.10');
      expect(s.opset).toBe(11);
      expect(s.inputs).toEqual({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: undefined });
      expect(s.tokenTypeIds).toEqual({ kind: 'none' });
      expect(s.positionIds).toEqual({ kind: 'arange', start: 0 });
      expect(s.attentionMask).toEqual({ kind: 'select', value: -Infinity });
      expect(s.scoreScale).toBe(1);
      expect(s.activation).toBe('gelu');
      expect(s.poolerActivation).toBe('relu');
      expect(s.heads).toEqual({ pooler: true, mlm: false, mlmTied: false, classifiers: [{ source: 'pooler', labels: 2 }] });
      expect(s.outputs).toEqual([{ name: 'logits', role: 'classifier' }]);
    },
  },
  {
    name: 'RoBERTa encoder (position ids from the ids, one token type)',
    file: () => synthFile('roberta', { family: 'roberta' }),
    inputs: robertaInputs,
    expectInspect: (s) => {
      expect(s.positionIds).toEqual({ kind: 'from-ids', paddingIdx: 1 });
      expect(s.maxPositions).toBe(34);
      // rows 0 and 1 sit at or below the padding id: 32 tokens at most
      expect(s.maxSequence).toBe(32);
      expect(s.typeVocab).toBe(1);
      expect(s.tokenTypeIds).toEqual({ kind: 'input' });
      expect(s.attentionMask).toEqual(BERT_MASK);
    },
  },
  {
    name: 'RoBERTa sequence classification (classifier.dense → tanh → out_proj), no token-type input',
    file: () => synthFile('roberta-cls', { family: 'roberta', head: 'cls', tokenTypes: 'constant-of-shape' }),
    inputs: robertaInputs,
    expectInspect: (s) => {
      expect(s.positionIds).toEqual({ kind: 'from-ids', paddingIdx: 1 });
      expect(s.tokenTypeIds).toEqual({ kind: 'constant', row: 0 });
      expect(s.poolerActivation).toBe('tanh');
      expect(s.heads.classifiers).toEqual([{ source: 'pooler', labels: 2 }]);
    },
  },
];

for (const c of CASES) {
  describe(c.name, () => {
    let file: string, s: InspectSummary, inputs: Inputs, ref: Outputs, shrunk: string;
    beforeAll(async () => {
      file = c.file();
      s = inspect(file);
      inputs = (c.inputs ?? inputsFor)(s);
      ref = await runOrt(file, inputs);
      shrunk = path.join(dir, `${path.basename(file, '.onnx')}.small.onnx`);
      await compress(file, { arch: c.shrink ?? SHRUNK, output: shrunk });
    });

    it('inspect reads it', () => {
      c.expectInspect(s);
    });

    it('an identity compress reproduces its outputs in onnxruntime (1e-5)', async () => {
      const same = path.join(dir, `${path.basename(file, '.onnx')}.same.onnx`);
      await compress(file, { arch: s.arch, output: same });
      expectClose(await runOrt(same, inputs), ref, 1e-5, 1e-5);
    });

    it('a shrinking compress runs in onnxruntime, with the same inputs and outputs', async () => {
      const small = inspect(shrunk);
      const target = (c.shrink ?? SHRUNK).split(',').map(Number);
      expect(small.arch).toEqual({ layers: target[0], heads: target[1], hidden: target[2], intermediate: target[3] });
      expect(small.inputs).toEqual(s.inputs);
      expect(small.outputs).toEqual(s.outputs);
      expect(small.tokenTypeIds).toEqual(s.tokenTypeIds);
      expect(small.positionIds).toEqual(s.positionIds);
      const out = await runOrt(shrunk, inputs);
      for (const [k, v] of Object.entries(ref)) {
        const dims = [...v.dims];
        if (s.outputs.find((o) => o.name === k)!.role === 'hidden' || s.outputs.find((o) => o.name === k)!.role === 'pooled') dims[dims.length - 1] = target[2];
        expect([...out[k].dims], k).toEqual(dims);
        expect(out[k].data.every(Number.isFinite), k).toBe(true);
      }
    });

    it('the native Encoder matches onnxruntime within 1e-4 on a padded batch, before and after the compress', async () => {
      expectClose(await runEncoder(file, inputs), ref, 1e-4, 1e-3, maskOf(inputs));
      expectClose(await runEncoder(shrunk, inputs), await runOrt(shrunk, inputs), 1e-4, 1e-3, maskOf(inputs));
    });
  });
}

describe('bort-compress inspect says which forms it read', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli', 'main.js'), 'inspect', ...args], { encoding: 'utf8' });

  it('the real DistilBERT: the Where mask with -inf (also in --json), the ReLU pre-classifier', () => {
    const r = cli(DISTILBERT);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/mask +Where, -Infinity in place of padding keys' scores/);
    expect(r.stdout).toMatch(/heads +pooler \(relu\); classifier on pooler \(2 labels\)/);
    expect(r.stdout).toMatch(/token types none/);
    const j = JSON.parse(cli(DISTILBERT, '--json').stdout);
    expect(j.attentionMask).toEqual({ kind: 'select', value: '-Infinity' });
    expect(j.poolerActivation).toBe('relu');
  });

  it('QA without a token-type input, RoBERTa positions', () => {
    const qa = cli(synthFile('cli-qa', { head: 'qa', tokenTypes: 'zero-buffer' })).stdout;
    expect(qa).toMatch(/token types 2 \(no input: row 0 for every token\)/);
    expect(qa).toMatch(/classifier on every token \(2 labels, split into start_logits, end_logits\)/);
    expect(qa).toMatch(/positions +token t reads row t/);
    const roberta = cli(synthFile('cli-roberta', { family: 'roberta' })).stdout;
    expect(roberta).toMatch(/positions +computed from the ids \(padding id 1\)/);
    expect(roberta).toMatch(/mask +added, \(1 - mask\) · -3\.4\d*e\+38/);
  });
});

describe('the hard cases', () => {
  it('a sequence whose mask is all 0: NaN with the real DistilBERT\'s -inf fill, uniform attention with finfo.min, as onnxruntime', async () => {
    for (const file of [DISTILBERT, synthFile('distilbert-empty', { family: 'distilbert', head: 'cls' })]) {
      const s = inspect(file);
      const inputs = inputsFor(s, 6);
      inputs.attention_mask.data.fill(0, 6);
      const ref = await runOrt(file, inputs);
      const got = await runEncoder(file, inputs);
      const nanFill = s.attentionMask.kind === 'select' && s.attentionMask.value === -Infinity;
      const [a, b] = [ref.logits.data, got.logits.data];
      const n = a.length / 2;
      expect(Array.from(a.slice(n)).every(Number.isNaN)).toBe(nanFill);
      expect(Array.from(b.slice(n)).every(Number.isNaN)).toBe(nanFill);
      if (!nanFill) expect(maxAbsDiff(a.slice(n), b.slice(n))).toBeLessThanOrEqual(1e-3 * largest(a));
      expect(maxAbsDiff(a.slice(0, n), b.slice(0, n))).toBeLessThanOrEqual(1e-3 * largest(a.slice(0, n)));
    }
  });

  it('RoBERTa: padding ids anywhere in the sequence read row padding_idx, as the graph computes; longer sequences than the table allows are refused', async () => {
    const file = synthFile('roberta-pads', { family: 'roberta' });
    const s = inspect(file);
    const inputs = inputsFor(s);
    inputs.input_ids.data.splice(0, 6, 1, 5, 1, 1, 7, 1);
    const ref = await runOrt(file, inputs);
    expectClose(await runEncoder(file, inputs), ref, 1e-4, 1e-3, maskOf(inputs));
    // the same weights with position ids given as an input: transformers' formula gives the same
    // outputs, the plain offset arange (as if no id were padding) does not
    const given = synthFile('roberta-given', { family: 'roberta', positionIds: 'input' });
    const withPositions = (rows: number[][]) => ({ ...inputs, position_ids: { shape: [2, 12], data: rows.flat() } });
    const formula = [1, 2, 1, 1, 3, 1, 4, 5, 6, 7, 8, 9].concat(inputs.input_ids.data.slice(12).map((id, t) => (id === 1 ? 1 : 0) || t + 2));
    expect(inputs.input_ids.data.slice(6).includes(1)).toBe(false);
    expectClose(await runOrt(given, withPositions([formula])), ref, 1e-5, 1e-5);
    const arange = Array.from({ length: 24 }, (_, i) => (i % 12) + 2);
    expect(maxAbsDiff((await runOrt(given, withPositions([arange]))).last_hidden_state.data, ref.last_hidden_state.data)).toBeGreaterThan(1e-3);
    const enc = await Encoder.load(file, { threads: 1 });
    try {
      expect(enc.info.maxPositions).toBe(32);
      const long = { data: new BigInt64Array(33).fill(5n), dims: [1, 33] };
      await expect(enc.run({ input_ids: long })).rejects.toThrow(/sequence length 33 exceeds the model's 32 positions/);
    } finally {
      enc.close();
    }
  });

  it('no token_type_ids input, ids made by ConstantOfShape of 1: row 1 is read, not row 0', async () => {
    const m = buildSynthModel({ ...SYNTH, tokenTypes: 'constant-of-shape' });
    const cos = nodes(m, 'ConstantOfShape')[0];
    setInt64s(cos.attribute.find((a) => a.name === 'value')!.t!, [1]);
    const file = save(m, 'cos-row1');
    expect(inspect(file).tokenTypeIds).toEqual({ kind: 'constant', row: 1 });
    const s = inspect(file);
    const inputs = inputsFor(s);
    const ref = await runOrt(file, inputs);
    const row0 = await runOrt(synthFile('cos-row0', { tokenTypes: 'constant-of-shape' }), inputs);
    expect(maxAbsDiff(ref.last_hidden_state.data, row0.last_hidden_state.data)).toBeGreaterThan(1e-3);
    expectClose(await runEncoder(file, inputs), ref, 1e-4, 1e-3, maskOf(inputs));
  });
});

describe('altered graphs are refused, naming the part (onnxruntime still runs them)', () => {
  async function refused(file: string, re: RegExp): Promise<void> {
    const s = inspect(file);
    await runOrt(file, inputsFor(s));
    expectBortError(await errorOf(() => Encoder.load(file, { threads: 1 })), re);
  }

  it('DistilBERT mask filling where the mask is 1 (Equal(mask, 1))', async () => {
    const m = buildSynthModel({ ...SYNTH, family: 'distilbert' });
    for (const eq of nodes(m, 'Equal')) setInt64s(constantOf(m, eq.input[1]), [1]);
    const file = save(m, 'where-inverted');
    expect(inspect(file).attentionMask).toMatchObject({ kind: 'select', problem: expect.stringMatching(/does not put .* in place of the scores of padding keys only/) });
    await refused(file, /attention mask: layer 0: Where .* does not put -3\.4\d*e\+38 in place of the scores of padding keys only \(mask 0\)/);
  });

  it('DistilBERT mask reshaped to [batch, 1, seq, 1]: it would mask queries, not keys', async () => {
    const m = buildSynthModel({ ...SYNTH, family: 'distilbert' });
    for (const eq of nodes(m, 'Equal')) {
      const reshape = readerOf(m, eq.output[0], 'Reshape');
      const concat = producerOf(m, reshape.input[1]);
      concat.input = [concat.input[0], concat.input[1], concat.input[3], concat.input[2]];
    }
    const file = save(m, 'where-queries');
    await refused(file, /attention mask: layer 0: the mask is broadcast as \[batch, 1, key, 1\], not \[batch, 1, 1, sequence\]/);
  });

  it('RoBERTa position ids offset by 2 while padding is compared with 1', async () => {
    const m = buildSynthModel({ ...SYNTH, family: 'roberta' });
    const gather = readerOf(m, 'roberta.embeddings.position_embeddings.weight', 'Gather');
    const add = producerOf(m, gather.input[1]);
    setInt64s(constantOf(m, add.input[1]), [2]);
    const file = save(m, 'roberta-offset');
    expect(inspect(file).positionIds).toEqual({ kind: 'other', problem: 'the position ids computed from the token ids are not cumsum(ids != 1) · (ids != 1) + 1' });
    await refused(file, /position ids: the position ids computed from the token ids are not cumsum\(ids != 1\) · \(ids != 1\) \+ 1/);
  });

  it('a token-type buffer that is not all one value is not read as constant token types', async () => {
    const m = buildSynthModel({ ...SYNTH, tokenTypes: 'zero-buffer' });
    const buffer = m.graph!.initializer.find((t) => t.name === 'bert.embeddings.token_type_ids')!;
    setInt64s(buffer, Array.from({ length: 32 }, (_, i) => i % 2));
    const file = save(m, 'buffer-alternating');
    await runOrt(file, randomInputs({ ids: 'input_ids', mask: 'attention_mask' }, 100));
    expectBortError(await errorOf(() => inspect(file)), /embeddings: expected a word table, optionally a token-type table and a position table/);
  });
});

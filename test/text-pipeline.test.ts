// Text tasks through the library: fill-mask / embed / classify against onnxruntime-node on the same
// ids, batching with padding, streaming with bounded memory, pair token types, QA span selection.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from '../lib/tasks/pipeline.js';
import { bestSpan, answerTask } from '../lib/tasks/answer.js';
import { padBatch } from '../lib/tasks/batch.js';
import { topK } from '../lib/tasks/scores.js';
import type { Backend, PaddedBatch } from '../lib/tasks/backend.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { synth } from '../lib/synth/bert.js';
import { FIXTURES, runOrt, tmpDir } from './helpers.js';

const VOCAB = path.join(FIXTURES, 'text', 'wordpiece-uncased-vocab.txt');
const VOCAB_SIZE = 48; // lines in wordpiece-uncased-vocab.txt
let dir = '';
let mlm = '';
let base = '';

function ortInputs(ids: number[], types?: number[]) {
  const n = ids.length;
  return {
    input_ids: { shape: [1, n], data: ids },
    attention_mask: { shape: [1, n], data: ids.map(() => 1) },
    token_type_ids: { shape: [1, n], data: types ?? ids.map(() => 0) },
  };
}

function argmax(a: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}

beforeAll(() => {
  dir = tmpDir('bort-text-');
  mlm = path.join(dir, 'mlm.onnx');
  base = path.join(dir, 'base.onnx');
  synth({ arch: '2,2,32,64', vocab: VOCAB_SIZE, head: 'mlm', maxPositions: 24, seed: 7, output: mlm });
  synth({ arch: '2,2,32,64', vocab: VOCAB_SIZE, head: 'base', maxPositions: 24, seed: 8, output: base });
  expect(fs.readFileSync(VOCAB, 'utf8').trim().split('\n')).toHaveLength(VOCAB_SIZE);
});

const TEXTS = ['the [MASK] brown fox', 'what is the capital of [MASK] ?', 'hello [MASK]', 'paris is a city in france , the [MASK] jumped over the lazy dog .'];

describe('fill-mask', () => {
  it('top-1 at [MASK] equals onnxruntime arg-max on the same ids, in batches of mixed lengths', async () => {
    const tok = TextTokenizer.fromFile(VOCAB);
    const fill = await pipeline('fill-mask', mlm, { tokenizer: VOCAB, batch: 3, topK: 3 });
    const results = await fill.run(TEXTS);
    await fill.close();
    expect(results.map((r) => r.text)).toEqual(TEXTS);
    for (const r of results) {
      const ids = tok.encode(r.text).ids;
      const at = ids.indexOf(4); // [MASK] is line 5 of the vocabulary
      expect(at).toBeGreaterThan(0);
      const logits = (await runOrt(mlm, ortInputs(ids))).logits.data;
      const want = argmax(logits, at * VOCAB_SIZE, VOCAB_SIZE);
      expect(r.predictions).toHaveLength(3);
      expect(r.predictions[0].id).toBe(want);
      expect(r.predictions[0].token).toBe(fs.readFileSync(VOCAB, 'utf8').split('\n')[want]);
      expect(r.predictions[0].score).toBeGreaterThanOrEqual(r.predictions[1].score);
      // the score is the softmax probability
      let sum = 0;
      for (let v = 0; v < VOCAB_SIZE; v++) sum += Math.exp(logits[at * VOCAB_SIZE + v] - logits[at * VOCAB_SIZE + want]);
      expect(r.predictions[0].score).toBeCloseTo(1 / sum, 4);
    }
  });

  it('padding does not change results: batch 4 equals batch 1', async () => {
    const one = await pipeline('fill-mask', mlm, { tokenizer: VOCAB, batch: 1 });
    const four = await pipeline('fill-mask', mlm, { tokenizer: VOCAB, batch: 4 });
    const a = await one.run(TEXTS), b = await four.run(TEXTS);
    await one.close();
    await four.close();
    for (let i = 0; i < TEXTS.length; i++) {
      expect(b[i].predictions.map((p) => p.id)).toEqual(a[i].predictions.map((p) => p.id));
      for (let k = 0; k < 5; k++) expect(Math.abs(b[i].predictions[k].score - a[i].predictions[k].score)).toBeLessThan(1e-5);
    }
  });

  it('several masks: predictions at each', async () => {
    const fill = await pipeline('fill-mask', mlm, { tokenizer: VOCAB });
    const [r] = await fill.run(['the [MASK] fox [MASK] over']);
    await fill.close();
    expect(r.masks).toHaveLength(2);
    expect(r.predictions).toEqual(r.masks![0]);
  });

  it('a 10,000-line input streams: at most one batch held, results in input order', async () => {
    const fill = await pipeline('fill-mask', mlm, { tokenizer: VOCAB, batch: 16, topK: 1 });
    let pulled = 0, yielded = 0, worst = 0;
    async function* lines() {
      for (let i = 0; i < 10_000; i++) {
        pulled++;
        worst = Math.max(worst, pulled - yielded);
        yield i % 2 ? `the [MASK] fox ${'a '.repeat(i % 7)}` : `hello [MASK] ${i % 5 ? 'world' : ''}`;
      }
    }
    let n = 0;
    for await (const r of fill.stream(lines())) {
      expect(r.text.startsWith(n % 2 ? 'the [MASK] fox' : 'hello [MASK]')).toBe(true);
      n++;
      yielded++;
    }
    await fill.close();
    expect(n).toBe(10_000);
    expect(fill.maxHeld).toBe(16);
    expect(worst).toBeLessThanOrEqual(16 + 1);
  }, 120_000);

  it('refuses: no [MASK], empty text, too long without truncate; cuts with truncate', async () => {
    const fill = await pipeline('fill-mask', mlm, { tokenizer: VOCAB });
    await expect(fill.run(['no mask here'])).rejects.toThrow(/input 1 has no \[MASK\]/);
    await expect(fill.run(['the [MASK]', '  '])).rejects.toThrow(/input 2 is empty/);
    const long = `[MASK] ${'the '.repeat(30)}`;
    await expect(fill.run([long])).rejects.toThrow(/input 1: the text has 33 tokens but the model takes at most 24.*--truncate/);
    await fill.close();
    const cut = await pipeline('fill-mask', mlm, { tokenizer: VOCAB, truncate: true });
    const [r] = await cut.run([long]);
    expect(r.predictions).toHaveLength(5);
    await expect(cut.run([`${'the '.repeat(30)} [MASK]`])).rejects.toThrow(/no \[MASK\] \(it was cut off by --truncate\)/);
    await cut.close();
  });

  it('a tokenizer bigger than the model\'s vocabulary is refused', async () => {
    await expect(pipeline('fill-mask', mlm, { tokenizer: path.join(FIXTURES, 'text', 'teacher-vocab.txt') })).rejects.toThrow(/has 8000 tokens but the model's vocabulary has 48/);
  });
});

describe('embed and classify', () => {
  it('cls and mean pooling equal the hidden states onnxruntime computes; --normalize gives unit vectors', async () => {
    const tok = TextTokenizer.fromFile(VOCAB);
    const texts = ['hello world', 'the quick brown fox jumped'];
    const cls = await pipeline('embed', base, { tokenizer: VOCAB, batch: 2 });
    const mean = await pipeline('embed', base, { tokenizer: VOCAB, batch: 2, pooling: 'mean' });
    const unit = await pipeline('embed', base, { tokenizer: VOCAB, batch: 2, pooling: 'mean', normalize: true });
    const [c, m, u] = [await cls.run(texts), await mean.run(texts), await unit.run(texts)];
    for (const p of [cls, mean, unit]) await p.close();
    for (let t = 0; t < texts.length; t++) {
      const ids = tok.encode(texts[t]).ids;
      const h = (await runOrt(base, ortInputs(ids))).last_hidden_state.data;
      for (let j = 0; j < 32; j++) {
        expect(Math.abs(c[t].embedding[j] - h[j])).toBeLessThan(1e-4);
        let s = 0;
        for (let i = 0; i < ids.length; i++) s += h[i * 32 + j];
        expect(Math.abs(m[t].embedding[j] - s / ids.length)).toBeLessThan(1e-4);
      }
      const norm = Math.hypot(...u[t].embedding);
      expect(norm).toBeCloseTo(1, 5);
      expect(u[t].embedding[0] / m[t].embedding[0]).toBeCloseTo(u[t].embedding[5] / m[t].embedding[5], 4);
    }
  });

  it('classify: the label with the largest logit, probabilities summing to 1', async () => {
    const file = path.join(dir, 'cls.onnx');
    synth({ arch: '2,2,32,64', vocab: VOCAB_SIZE, head: 'cls', labels: 3, seed: 9, output: file });
    const tok = TextTokenizer.fromFile(VOCAB);
    const p = await pipeline('classify', file, { tokenizer: VOCAB, labels: ['a', 'b', 'c'] });
    const texts = ['hello world', 'the lazy dog'];
    const rs = await p.run(texts);
    await p.close();
    for (let t = 0; t < texts.length; t++) {
      const logits = (await runOrt(file, ortInputs(tok.encode(texts[t]).ids))).logits.data;
      expect(rs[t].label).toBe(['a', 'b', 'c'][argmax(logits, 0, 3)]);
      expect(rs[t].scores.reduce((s, x) => s + x.score, 0)).toBeCloseTo(1, 6);
    }
    await expect(pipeline('classify', file, { tokenizer: VOCAB, labels: ['x', 'y'] })).rejects.toThrow(/2 label names given but the classifier has 3 labels/);
  });

  it('a task the model has no output for is refused', async () => {
    await expect(pipeline('fill-mask', base, { tokenizer: VOCAB })).rejects.toThrow(/fill-mask needs a masked-LM head/);
    await expect(pipeline('embed', mlm, { tokenizer: VOCAB })).rejects.toThrow(/embed needs hidden states/);
    await expect(pipeline('answer', base, { tokenizer: VOCAB })).rejects.toThrow(/answer needs a question-answering head/);
  });
});

describe('pairs and question answering', () => {
  it('a question + context pair gets token types 0 then 1, [CLS] q [SEP] c [SEP]', () => {
    const tok = TextTokenizer.fromFile(VOCAB);
    const e = tok.encode('where is paris?', 'paris is in france.');
    // [CLS] where is paris ? [SEP] | paris is in france . [SEP]  (ids from the vocabulary's line numbers)
    expect(e.ids).toEqual([2, 40, 34, 33, 8, 3, 33, 34, 37, 38, 5, 3]);
    expect(e.typeIds).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(e.sequenceIds).toEqual([null, 0, 0, 0, 0, null, 1, 1, 1, 1, 1, null]);
  });

  it('bestSpan: the largest start + end logit with start ≤ end, within the allowed tokens and length', () => {
    const start = [9, 0, 1, 5, 0, 0];
    const end = [9, 0, 0, 1, 0, 4];
    const ctx = (i: number) => i >= 2; // token 0 is not context
    expect(bestSpan(start, end, 0, 6, ctx)).toMatchObject({ start: 3, end: 5 });
    expect(bestSpan(start, end, 0, 6, ctx, 2)).toMatchObject({ start: 3, end: 3 });
    // the separate arg-maxes (start 3, end 2) are not a span: the best span ending at 2 wins
    expect(bestSpan([0, 0, 0, 5], [0, 0, 7, 0], 0, 4, () => true)).toMatchObject({ start: 0, end: 2 });
    const s = bestSpan([0, 2], [0, 2], 0, 2, () => true)!;
    const p = Math.exp(2) / (1 + Math.exp(2));
    expect(s.score).toBeCloseTo(p * p, 10);
    expect(bestSpan(start, end, 0, 6, () => false)).toBeNull();
  });

  it('answer: the span is cut from the context by token offsets', () => {
    const tokenizer = TextTokenizer.fromFile(VOCAB);
    // a stand-in QA head that points at "Paris" (token 6) .. "France" (token 9) in the second row
    const backend: Backend = {
      engine: 'native', maxPositions: 64, vocab: VOCAB_SIZE, hidden: 32, typeVocab: 2, roles: new Set(['start', 'end']),
      run: async () => ({}), close() {},
    };
    const task = answerTask({ tokenizer, backend, truncate: false });
    const inputs = [{ question: 'what?', context: 'x' }, { question: 'Where is Paris?', context: '  Paris is in  France.' }];
    const prepared = inputs.map((x, i) => task.prepare(x, i));
    const b: PaddedBatch = padBatch(prepared.map((p) => p.enc), 0, 2);
    const start = new Float32Array(b.batch * b.seq), end = new Float32Array(b.batch * b.seq);
    start[b.seq + 6] = 5;
    end[b.seq + 9] = 5;
    const r = task.finish({ start, end }, 1, b, prepared[1]);
    expect(r.answer).toBe('Paris is in  France');
    expect([r.start, r.end]).toEqual([2, 21]);
  });
});

describe('scores', () => {
  it('topK returns the k largest, largest first, ties by index', () => {
    expect(topK([1, 5, 3, 5, 2], 3)).toEqual([1, 3, 2]);
    expect(topK([1, 2], 5)).toEqual([1, 0]);
  });
});

describe('a model whose inputs declare a fixed sequence length (keras2onnx QA export, 7 tokens)', () => {
  const KERAS = path.join(FIXTURES, 'real-exports', 'keras2onnx_TFBertForQuestionAnswering_opset11.onnx');
  const WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o'];
  // 6, 6 and 5 tokens: no row fills the 7 the model declares
  const inputs = [{ question: 'a', context: 'c d' }, { question: 'e', context: 'f g' }, { question: 'i', context: 'j' }];

  it('answer pads every batch to the declared length; native and onnxruntime agree with the raw logits', async () => {
    const vocab = path.join(tmpDir(), 'vocab.txt');
    fs.writeFileSync(vocab, WORDS.join('\n') + '\n');
    const results = [];
    for (const engine of ['native', 'onnxruntime'] as const) {
      const qa = await pipeline('answer', KERAS, { tokenizer: vocab, batch: 3, engine });
      try {
        results.push(await qa.run(inputs));
      } finally {
        await qa.close();
      }
    }
    // the reference: onnxruntime on hand-built rows of exactly 7 tokens, [CLS] q [SEP] c [SEP] then [PAD]
    for (const [i, x] of inputs.entries()) {
      const q = x.question.split(' ').map((w) => WORDS.indexOf(w)), c = x.context.split(' ').map((w) => WORDS.indexOf(w));
      const ids = [2, ...q, 3, ...c, 3];
      const n = ids.length;
      const types = ids.map((_, t) => (t > q.length + 1 ? 1 : 0));
      const pad = (a: number[], v: number) => [...a, ...new Array(7 - n).fill(v)];
      const out = await runOrt(KERAS, {
        input_ids: { shape: [1, 7], data: pad(ids, 0) }, attention_mask: { shape: [1, 7], data: pad(ids.map(() => 1), 0) },
        token_type_ids: { shape: [1, 7], data: pad(types, 0) },
      });
      const ctx = (t: number) => t > q.length + 1 && t < n - 1;
      const best = bestSpan(Array.from(out.output_1.data), Array.from(out.output_2.data), 0, 7, ctx)!;
      for (const r of results) {
        expect(r[i].score).toBeCloseTo(best.score, 4);
        expect(r[i].answer).toBe(x.context.split(' ').slice(best.start - q.length - 2, best.end - q.length - 1).join(' '));
      }
    }
  });

  it('an input longer than the declared length is refused, naming the length', async () => {
    const vocab = path.join(tmpDir(), 'vocab.txt');
    fs.writeFileSync(vocab, WORDS.join('\n') + '\n');
    const qa = await pipeline('answer', KERAS, { tokenizer: vocab });
    try {
      await expect(qa.run([{ question: 'a b c', context: 'd e f' }])).rejects.toThrow(/\b7\b/);
    } finally {
      await qa.close();
    }
  });
});

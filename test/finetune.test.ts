// Fine-tuning (lib/finetune, `bort-compress finetune`): a synthetic task a tiny model can learn (the label
// is decided by one keyword among random filler words), the written classifier as recognition,
// onnxruntime and `classify` read it, task distillation, the head's gradients through N-API against
// finite differences, every bad input line refused, and resume after an abort.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import { encodeExamples, EpochBatches } from '../lib/finetune/class-batches.js';
import { finetune, type FinetuneOptions, type FinetuneSummary } from '../lib/finetune/finetune.js';
import { loadModel } from '../lib/onnx/io.js';
import { floatData } from '../lib/onnx/tensor.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { synth } from '../lib/synth/bert.js';
import { labelsFromMetadata, readMetadataProps } from '../lib/tasks/metadata.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { Trainer } from '../lib/train/trainer.js';
import { FIXTURES, ROOT, maxAbsDiff, runOrt, tmpDir } from './helpers.js';

const VOCAB = path.join(FIXTURES, 'text', 'teacher-vocab.txt');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const KEYS: Record<string, string> = { animals: 'cat', music: 'song', food: 'bread' };
const FILLER = 'the a man walks into bar and is closed never trust computer you cannot throw out of window quick brown fox jumps over lazy dog'.split(' ');

/** n examples: 6-11 filler words with the label's keyword at a random place (a fixed LCG, so the data never changes). */
function examples(n: number, seed: number): { text: string; label: string }[] {
  let s = seed;
  const rnd = (k: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % k;
  };
  return Array.from({ length: n }, () => {
    const label = Object.keys(KEYS)[rnd(3)];
    const w = Array.from({ length: 6 + rnd(6) }, () => FILLER[rnd(FILLER.length)]);
    w.splice(rnd(w.length), 0, KEYS[label]);
    return { text: w.join(' '), label };
  });
}

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

let dir: string;
let base: Omit<FinetuneOptions, 'output'>;
let trained: FinetuneSummary;
let out: string;
const dev = examples(60, 2);

beforeAll(async () => {
  dir = tmpDir('bort-finetune-');
  const model = path.join(dir, 'mlm.onnx');
  synth({ arch: '2,2,32,64', vocab: 8000, maxPositions: 32, head: 'mlm', seed: 7, output: model });
  fs.writeFileSync(path.join(dir, 'train.jsonl'), jsonl(examples(192, 1)));
  fs.writeFileSync(path.join(dir, 'dev.jsonl'), jsonl(dev));
  base = {
    model, train: path.join(dir, 'train.jsonl'), dev: path.join(dir, 'dev.jsonl'), vocab: VOCAB,
    epochs: 10, batch: 16, seq: 16, lr: 3e-3, headLr: 3e-2, threads: 1, seed: 3,
  };
  out = path.join(dir, 'cls.onnx');
  trained = await finetune({ ...base, output: out });
});

/** Encoded dev rows as onnxruntime feeds (int64), padded to the longest. */
function devFeeds(rows: { text: string }[]) {
  const tok = TextTokenizer.fromFile(VOCAB);
  const enc = rows.map((r) => tok.encode(r.text, null, { maxLength: 16, truncation: 'longest_first' }));
  const S = Math.max(...enc.map((e) => e.ids.length));
  const ids: number[] = [], mask: number[] = [], types: number[] = [];
  for (const e of enc) for (let i = 0; i < S; i++) {
    ids.push(i < e.ids.length ? e.ids[i] : 0);
    mask.push(i < e.ids.length ? 1 : 0);
    types.push(0);
  }
  const shape = [rows.length, S];
  return { input_ids: { shape, data: ids }, attention_mask: { shape, data: mask }, token_type_ids: { shape, data: types } };
}

describe('finetune(): a keyword task on a tiny masked-LM model', () => {
  it('learns: dev accuracy well above chance (1/3), and the reported accuracy is what onnxruntime gets from the written model', async () => {
    expect(trained.finished).toBe(true);
    expect(trained.labels).toEqual(['animals', 'food', 'music']);
    expect(trained.reusedHead).toBe(false);
    expect(trained.devHistory).toHaveLength(10);
    expect(trained.devAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(trained.devAccuracy).toBe(Math.max(...trained.devHistory));
    const r = await runOrt(out, devFeeds(dev));
    expect(r.logits.dims).toEqual([60, 3]);
    let correct = 0;
    dev.forEach((e, i) => {
      const z = r.logits.data.subarray(3 * i, 3 * i + 3);
      const arg = z.indexOf(Math.max(...z));
      if (trained.labels[arg] === e.label) correct++;
    });
    expect(correct / 60).toBeCloseTo(trained.devAccuracy!, 10);
  });

  it('writes a classifier: recognised pooler + classifier (no MLM head), labels in the metadata, native logits = onnxruntime', async () => {
    const m = recognize(loadModel(out).model);
    expect(m.mlm).toBeUndefined();
    expect(m.pooler?.activation).toBe('tanh');
    expect(m.classifiers.map((c) => [c.source, c.linear.outDim])).toEqual([['pooler', 3]]);
    expect(m.outputs.map((o) => [o.name, o.role])).toEqual([['logits', 'classifier']]);
    expect(labelsFromMetadata(readMetadataProps(out))).toEqual(['animals', 'food', 'music']);
    expect(JSON.parse(readMetadataProps(out).label2id)).toEqual({ animals: 0, food: 1, music: 2 });
    const feeds = devFeeds(dev.slice(0, 7));
    const want = (await runOrt(out, feeds)).logits.data;
    const enc = await Encoder.load(out, { threads: 1 });
    try {
      const got = await enc.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, { data: Int32Array.from(v.data), dims: v.shape }])));
      expect(maxAbsDiff(got.logits.data, want)).toBeLessThan(1e-4);
    } finally {
      enc.close();
    }
  });

  it('`classify` reads the labels from the written model', () => {
    const r = spawnSync(process.execPath, [CLI, 'classify', out, '--vocab', VOCAB, 'the cat is out of the window', 'a song for the man', 'bread and the quick fox'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(['animals', 'food', 'music']).toContain(l[1].split(' ')[0]);
    const right = lines.filter((l, i) => l[1].startsWith(['animals', 'music', 'food'][i])).length;
    expect(right).toBeGreaterThanOrEqual(2);
  });

  it('reuses a classification head with as many labels, and distils from a classifier teacher with the same labels', async () => {
    const again = await finetune({ ...base, model: out, epochs: 1, output: path.join(dir, 'again.onnx') });
    expect(again.reusedHead).toBe(true);
    expect(again.devAccuracy).toBeGreaterThanOrEqual(0.5);
    let kl = 0;
    const kd = await finetune({ ...base, epochs: 2, teacher: out, output: path.join(dir, 'kd.onnx'), onProgress: (p) => (kl = Math.max(kl, p.kl)) });
    expect(kd.finished).toBe(true);
    expect(kl).toBeGreaterThan(0);
    // a teacher whose labels differ is refused before training
    const other = path.join(dir, 'other-train.jsonl');
    fs.writeFileSync(other, jsonl(examples(30, 5).map((e) => ({ ...e, label: e.label === 'food' ? 'meals' : e.label }))));
    const dev2 = path.join(dir, 'other-dev.jsonl');
    fs.writeFileSync(dev2, jsonl([{ text: 'a cat', label: 'animals' }]));
    await expect(finetune({ ...base, train: other, dev: dev2, teacher: out, output: path.join(dir, 'no.onnx') }))
      .rejects.toThrow(/the teacher .* has the labels 'animals', 'food', 'music', the training data 'animals', 'meals', 'music'/);
    expect(fs.existsSync(path.join(dir, 'no.onnx'))).toBe(false);
  });

  it('head gradients through N-API (CE + T²·KL) match finite differences of the loss', async () => {
    const m = recognize(loadModel(out).model);
    const t = Trainer.fromModel(m, { head: 'classifier', threads: 1 });
    try {
      const feeds = devFeeds(dev.slice(0, 4));
      const [B, S] = feeds.input_ids.shape;
      const batch = {
        ids: Int32Array.from(feeds.input_ids.data), mask: Int32Array.from(feeds.attention_mask.data), types: Int32Array.from(feeds.token_type_ids.data),
        batch: B, seq: S, classes: Int32Array.from([0, 2, 1, 1]), classTeacher: Float32Array.from({ length: B * 3 }, (_, i) => Math.sin(i) * 2),
        ceWeight: 0.7, klWeight: 1.3, temperature: 2,
      };
      await t.gradients(batch);
      for (const name of ['cls_b', 'cls_w', 'pooler_b']) {
        const g = t.grad(name);
        const w0 = t.weight(name);
        for (const i of [0, 1, g.length - 1]) {
          const h = 1e-2;
          const w = Float32Array.from(w0);
          w[i] = w0[i] + h;
          t.setWeight(name, w);
          const up = (await t.gradients(batch)).loss;
          w[i] = w0[i] - h;
          t.setWeight(name, w);
          const down = (await t.gradients(batch)).loss;
          t.setWeight(name, w0);
          expect(Math.abs((up - down) / (2 * h) - g[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(g[i])));
        }
      }
    } finally {
      t.close();
    }
  });
});

describe('finetune(): pairs, shuffling, the trainer without a classifier', () => {
  it('encodes text pairs with token types 0 then 1, cut to seq; each epoch is a seeded permutation', () => {
    const tok = TextTokenizer.fromFile(VOCAB);
    const [e] = encodeExamples(tok, [{ text: 'the cat', pair: 'a song and a dog and a fox', label: 'b', line: 1 }], ['a', 'b'], 8);
    expect(e.label).toBe(1);
    expect(e.ids.length).toBe(8);
    expect([...e.types]).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const a = new EpochBatches(10, 4, 7), b = new EpochBatches(10, 4, 7);
    const rows = (x: EpochBatches) => [x.next(), x.next(), x.next()].flatMap((r) => r.rows);
    const first = rows(a);
    expect([...first].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rows(b)).toEqual(first);
    expect(rows(a)).not.toEqual(first);
  });

  it('Trainer with head "classifier" refuses a model without one', () => {
    expect(() => Trainer.fromModel(recognize(loadModel(base.model).model), { head: 'classifier' })).toThrow(/no sequence-classification head \(pooler \+ classifier\) to train/);
  });
});

describe('finetune(): abort and resume', () => {
  it('an abort leaves a checkpoint and no model; resuming gives the same weights as an uninterrupted run', async () => {
    const opts = { ...base, epochs: 3, patience: 0 };
    const whole = path.join(dir, 'whole.onnx');
    await finetune({ ...opts, output: whole });
    const cut = path.join(dir, 'cut.onnx');
    const ac = new AbortController();
    const first = await finetune({ ...opts, output: cut, signal: ac.signal, onProgress: (p) => p.step === 17 && ac.abort() });
    expect(first.finished).toBe(false);
    expect(first.steps).toBe(17);
    expect(first.devHistory).toHaveLength(1);
    expect(fs.existsSync(cut)).toBe(false);
    expect(fs.existsSync(`${cut}.ckpt`)).toBe(true);
    const second = await finetune({ ...opts, output: cut, resume: true });
    expect(second.finished).toBe(true);
    expect(second.steps).toBe(36);
    expect(fs.existsSync(`${cut}.ckpt`)).toBe(false);
    const a = loadModel(whole).model.graph!.initializer, b = loadModel(cut).model.graph!.initializer;
    expect(b.map((x) => x.name)).toEqual(a.map((x) => x.name));
    a.forEach((x, i) => {
      if (x.dataType === 1) expect(maxAbsDiff(floatData(x), floatData(b[i])), x.name!).toBe(0);
    });
    // another run's checkpoint is refused
    const ac2 = new AbortController();
    await finetune({ ...opts, output: cut, signal: ac2.signal, onProgress: () => ac2.abort() });
    await expect(finetune({ ...opts, seed: 4, output: cut, resume: true })).rejects.toThrow(/is from another run \(seed differs\)/);
  });
});

describe('bort-compress finetune: SIGTERM', () => {
  it('stops after the current step: exit 130, a checkpoint, no model; --resume continues and finishes', async () => {
    const d = tmpDir('bort-finetune-sig-');
    const args = [CLI, 'finetune', base.model, '--train', base.train, '--dev', base.dev, '--task', 'cls', '--vocab', VOCAB, '--epochs', '5000',
      '--batch', '16', '--seq', '16', '--threads', '1', '-o', 'out.onnx'];
    const child = spawn(process.execPath, args, { cwd: d });
    let err = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (b) => {
        err += b;
        if (/step \d+\/60000/.test(err) && !child.killed) child.kill('SIGTERM');
      });
      child.on('close', (c) => resolve(c));
    });
    expect(code, err).toBe(130);
    expect(fs.readdirSync(d)).toEqual(['out.onnx.ckpt']);
    const r = spawnSync(process.execPath, [...args.slice(0, -4), '--epochs', '5000', '--threads', '1', '-o', 'out.onnx', '--resume', '--json', '--patience', '1'], { cwd: d, encoding: 'utf8' });
    // patience is not part of the run: the resumed run may stop early
    expect(r.status, r.stderr).toBe(0);
    const sum = JSON.parse(r.stdout);
    expect(sum.finished).toBe(true);
    expect(sum.steps).toBeGreaterThan(0);
    expect(fs.readdirSync(d)).toEqual(['out.onnx']);
  });
});

describe('bort-compress finetune: bad input is refused in one line, exit 1, nothing written', () => {
  const cases: [string, string, string | undefined, RegExp][] = [
    ['invalid JSON', 'train', '{"text": "a cat", "label": "animals"}\n{"text": "oops"\n', /'train\.jsonl' line 2 is not valid JSON .*: write one JSON object a line/],
    ['not an object', 'train', '{"text": "a cat", "label": "animals"}\n["a", "b"]\n', /'train\.jsonl' line 2 is not a JSON object/],
    ['missing text', 'train', '{"text": "a cat", "label": "animals"}\n\n{"label": "food"}\n', /'train\.jsonl' line 3 has no "text" field/],
    ['label not a string', 'train', '{"text": "a cat", "label": 3}\n', /'train\.jsonl' line 1: "label" is a number, not a string: write the label as a JSON string/],
    ['text_pair not a string', 'dev', '{"text": "a cat", "text_pair": null, "label": "animals"}\n', /'dev\.jsonl' line 1: "text_pair" is a null, not a string/],
    ['unknown dev label', 'dev', '{"text": "a cat", "label": "animals"}\n{"text": "a car", "label": "vehicles"}\n', /'dev\.jsonl' line 2: label 'vehicles' is not among the training labels \('animals', 'food', 'music'\): fix the label, or add examples of it/],
    ['empty file', 'dev', '\n\n', /the dev file '.*dev\.jsonl' has no examples/],
    ['one label only', 'train', '{"text": "a cat", "label": "animals"}\n', /has only one label \('animals'\): a classifier needs examples of at least 2 labels/],
    ['another task', 'task', undefined, /--task 'ner' is not available: only --task cls \(sequence classification\) is available/],
  ];
  for (const [what, which, content, message] of cases) {
    it(what, () => {
      const d = tmpDir('bort-finetune-bad-');
      fs.copyFileSync(base.train, path.join(d, 'train.jsonl'));
      fs.copyFileSync(base.dev, path.join(d, 'dev.jsonl'));
      if (content !== undefined) fs.writeFileSync(path.join(d, `${which}.jsonl`), content);
      const before = fs.readdirSync(d).sort();
      const r = spawnSync(process.execPath, [CLI, 'finetune', base.model, '--train', 'train.jsonl', '--dev', 'dev.jsonl', '--task', which === 'task' ? 'ner' : 'cls',
        '--vocab', VOCAB, '--epochs', '1', '--threads', '1', '-o', 'out.onnx'], { encoding: 'utf8', cwd: d });
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^bort-compress: error: /);
      expect(lines[0]).toMatch(message);
      expect(fs.readdirSync(d).sort()).toEqual(before);
    });
  }
});

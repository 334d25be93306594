import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compress } from '../lib/compress.js';
import { distill, type DistillOptions } from '../lib/distill/distill.js';
import { MaskedLmBatches } from '../lib/distill/masked-batches.js';
import { synth } from '../lib/synth/bert.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { CORPUS_LINES, TEACHER_VOCAB, distillSetup } from './distill-setup.js';
import { FIXTURES, runOrt, tmpDir } from './helpers.js';

const VOCAB = TEACHER_VOCAB;
const LINES = CORPUS_LINES;

/** A tiny masked-LM teacher with the 8,000-word vocabulary, a 1-layer student cut from it, and a corpus. */
function setup(): Promise<{ dir: string; base: Omit<DistillOptions, 'output'> }> {
  return distillSetup({
    prefix: 'bort-distill-', teacherArch: '2,2,32,64', teacherSeed: 7, studentArch: '1,2,32,32',
    run: { steps: 6, batch: 3, seq: 16, lr: 1e-3, threads: 1, seed: 3 },
  });
}

describe('masked-LM batches', () => {
  it('cuts [CLS] … [SEP] rows, masks ~15% of the text tokens 80/10/10, and resumes exactly', () => {
    const tok = TextTokenizer.fromFile(VOCAB);
    const text = LINES.join('\n');
    const a = MaskedLmBatches.create(tok, text, { batch: 8, seq: 16, seed: 5 });
    const cls = tok.tokenToId('[CLS]')!, sep = tok.tokenToId('[SEP]')!, mask = tok.mask!.id;
    let masked = 0, chosen = 0, text_ = 0;
    for (let i = 0; i < 20; i++) {
      const b = a.next();
      for (let r = 0; r < 8; r++) {
        expect(b.ids[r * 16]).toBe(cls);
        expect(b.ids[r * 16 + 15]).toBe(sep);
      }
      b.positions.forEach((p, j) => {
        chosen++;
        if (b.ids[p] === mask) masked++;
        expect(b.labels[j]).not.toBe(mask);
      });
      text_ += 8 * 14;
    }
    expect(chosen / text_).toBeGreaterThan(0.1);
    expect(chosen / text_).toBeLessThan(0.2);
    expect(masked / chosen).toBeGreaterThan(0.7);
    expect(masked / chosen).toBeLessThan(0.9);
    const s = a.state;
    const want = a.next();
    const b = MaskedLmBatches.create(tok, text, { batch: 8, seq: 16, seed: 5 });
    b.restore(s);
    expect(b.next()).toEqual(want);
  });
});

describe('distill()', () => {
  it('trains the student, writes its ONNX with the same outputs; an abort leaves a checkpoint that resumes to the same model', async () => {
    const { dir, base } = await setup();
    const full = path.join(dir, 'full.onnx');
    const seen: number[] = [];
    const r = await distill({ ...base, output: full, onProgress: (p) => seen.push(p.step) });
    expect(r.finished).toBe(true);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Number.isFinite(r.lastLoss)).toBe(true);
    const ids = { shape: [1, 8], data: [2, 10, 11, 12, 13, 14, 15, 3] };
    const before = await runOrt(base.student, { input_ids: ids, attention_mask: { shape: [1, 8], data: Array(8).fill(1) }, token_type_ids: { shape: [1, 8], data: Array(8).fill(0) } });
    const after = await runOrt(full, { input_ids: ids, attention_mask: { shape: [1, 8], data: Array(8).fill(1) }, token_type_ids: { shape: [1, 8], data: Array(8).fill(0) } });
    expect(Object.keys(after)).toEqual(Object.keys(before));
    expect(after.logits.dims).toEqual(before.logits.dims);
    expect(after.logits.data).not.toEqual(before.logits.data);

    // stop after step 2: checkpoint, no model; resume: the same weights as the run that never stopped
    const out = path.join(dir, 'resumed.onnx');
    const ac = new AbortController();
    const stopped = await distill({ ...base, output: out, signal: ac.signal, onProgress: (p) => { if (p.step === 2) ac.abort(); } });
    expect(stopped.finished).toBe(false);
    expect(stopped.steps).toBe(2);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(`${out}.ckpt`)).toBe(true);
    const resumed = await distill({ ...base, output: out, resume: true });
    expect(resumed.finished).toBe(true);
    expect(resumed.steps).toBe(6);
    const again = await runOrt(out, { input_ids: ids, attention_mask: { shape: [1, 8], data: Array(8).fill(1) }, token_type_ids: { shape: [1, 8], data: Array(8).fill(0) } });
    expect(again.logits.data).toEqual(after.logits.data);
  }, 60_000);

  it('weights the loss as asked (--mlm-weight, --kl-weight, --temperature), refuses bad weights, and keeps them in the run identity', async () => {
    const { dir, base } = await setup();
    const seen: { loss: number; mlm: number; kl: number }[] = [];
    // pure distillation at T = 1: the loss is the KL term alone; at T = 3 with both terms, their weighted sum
    await distill({ ...base, steps: 2, output: path.join(dir, 'kd.onnx'), mlmWeight: 0, klWeight: 1, temperature: 1, onProgress: (p) => seen.push(p) });
    await distill({ ...base, steps: 2, output: path.join(dir, 'mix.onnx'), mlmWeight: 0.5, klWeight: 2, temperature: 3, onProgress: (p) => seen.push(p) });
    expect(seen).toHaveLength(4);
    for (const p of seen.slice(0, 2)) expect(p.loss).toBeCloseTo(p.kl, 5);
    for (const p of seen.slice(2)) expect(p.loss).toBeCloseTo(0.5 * p.mlm + 2 * 9 * p.kl, 4);
    expect(seen[0].mlm).toBeGreaterThan(0);
    const out = path.join(dir, 'w.onnx');
    await expect(distill({ ...base, output: out, mlmWeight: -1 })).rejects.toThrow(/^--mlm-weight -1 is not a loss weight/);
    await expect(distill({ ...base, output: out, mlmWeight: 0, klWeight: 0 })).rejects.toThrow(/both 0/);
    await expect(distill({ ...base, output: out, temperature: 0 })).rejects.toThrow(/^--temperature 0 is not a softmax temperature/);
    await expect(distill({ ...base, output: out, klWeight: Number.NaN })).rejects.toThrow(/^--kl-weight NaN is not a loss weight/);
    // a checkpoint of a run with a masked-LM term does not resume a run with the default (pure distillation)
    const ac = new AbortController();
    ac.abort();
    await distill({ ...base, output: out, signal: ac.signal, mlmWeight: 0.1, klWeight: 0.9 });
    await expect(distill({ ...base, output: out, resume: true })).rejects.toThrow(/from another run \(mlmWeight 0\.1 vs 0\)/);
    await expect(distill({ ...base, output: out, resume: true, mlmWeight: 0.1 })).rejects.toThrow(/from another run \(klWeight 0\.9 vs 1\)/);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);

  it('refuses a damaged checkpoint and one from another run, writing nothing', async () => {
    const { dir, base } = await setup();
    const out = path.join(dir, 'x.onnx');
    fs.writeFileSync(`${out}.ckpt`, '{"magic":"bort-distill-checkpoint/1","params":10}\nshort');
    await expect(distill({ ...base, output: out, resume: true })).rejects.toThrow(/not a complete distillation checkpoint/);
    const ac = new AbortController();
    ac.abort();
    await distill({ ...base, output: out, signal: ac.signal });
    await expect(distill({ ...base, output: out, resume: true, batch: 4 })).rejects.toThrow(/from another run \(batch 3 vs 4\)/);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);
});

/** Top word at each case's masked position, by onnxruntime (the oracle), [MASK] = 4. */
async function ortTop(model: string, cases: { input_ids: number[]; masked_index: number }[]): Promise<number[]> {
  const top: number[] = [];
  for (const c of cases) {
    const S = c.input_ids.length;
    const ids = [...c.input_ids];
    ids[c.masked_index] = 4;
    const r = await runOrt(model, { input_ids: { shape: [1, S], data: ids }, attention_mask: { shape: [1, S], data: Array(S).fill(1) }, token_type_ids: { shape: [1, S], data: Array(S).fill(0) } });
    const row = r.logits.data.subarray(c.masked_index * 8000, (c.masked_index + 1) * 8000);
    let best = 0;
    for (let j = 1; j < 8000; j++) if (row[j] > row[best]) best = j;
    top.push(best);
  }
  return top;
}

describe('distill() with held-out evaluation', () => {
  it('scores agreement at step 0 and every k steps as onnxruntime does on the student and on the written model', async () => {
    const { dir, base } = await setup();
    const tok = TextTokenizer.fromFile(VOCAB);
    const cases = LINES.slice(0, 4).map((l, i) => {
      const ids = tok.encode(l).ids;
      return { input_ids: ids, masked_index: 1 + i, label: ids[1 + i] };
    });
    const file = path.join(dir, 'eval.json');
    fs.writeFileSync(file, JSON.stringify({ cases }));
    const out = path.join(dir, 'eval-out.onnx');
    const scores: { step: number; agreement: number; accuracy: number }[] = [];
    await distill({ ...base, output: out, evalCases: file, evalEvery: 3, onEval: (e) => scores.push(e) });
    expect(scores.map((e) => e.step)).toEqual([0, 3, 6]);
    const teacherTop = await ortTop(base.teacher, cases);
    const agree = (top: number[]) => top.filter((t, i) => t === teacherTop[i]).length / cases.length;
    const hits = (top: number[]) => top.filter((t, i) => t === cases[i].label).length / cases.length;
    const before = await ortTop(base.student, cases);
    expect(scores[0].agreement).toBe(agree(before));
    expect(scores[0].accuracy).toBe(hits(before));
    const after = await ortTop(out, cases);
    expect(scores[2].agreement).toBe(agree(after));
    expect(scores[2].accuracy).toBe(hits(after));
  }, 60_000);

  it('refuses a vocabulary larger than the student before training', async () => {
    const { dir, base } = await setup();
    const big = path.join(dir, 'big-vocab.txt');
    fs.writeFileSync(big, fs.readFileSync(VOCAB, 'utf8').trimEnd() + '\nextra1\nextra2\n');
    const out = path.join(dir, 'never2.onnx');
    await expect(distill({ ...base, vocab: big, output: out })).rejects.toThrow(/has 8002 tokens but the student only 8000/);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);

  it('refuses malformed evaluation cases before training', async () => {
    const { dir, base } = await setup();
    const file = path.join(dir, 'bad-eval.json');
    fs.writeFileSync(file, JSON.stringify({ cases: [{ input_ids: [2, 9000, 3], masked_index: 1, label: 5 }] }));
    const out = path.join(dir, 'never.onnx');
    await expect(distill({ ...base, output: out, evalCases: file, onEval: () => {} })).rejects.toThrow(/evaluation case 0 .* is malformed/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(`${out}.ckpt`)).toBe(false);
  }, 60_000);
});

describe('bort-compress distill', () => {
  const CLI = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
  it('trains and writes the model; a bad option is one line, exit 1, nothing written; Ctrl-C leaves a checkpoint and no model', async () => {
    const { spawnSync, spawn } = await import('node:child_process');
    const { dir, base } = await setup();
    const args = ['distill', base.teacher, base.student, '--corpus', base.corpus, '--vocab', VOCAB, '--batch', '3', '--seq', '16', '--threads', '1'];
    const out = path.join(dir, 'cli.onnx');
    const evalFile = path.join(dir, 'cases.json');
    fs.writeFileSync(evalFile, JSON.stringify({ cases: [{ input_ids: [2, 10, 11, 12, 3], masked_index: 2, label: 11 }] }));
    const ok = spawnSync(process.execPath, [CLI, ...args, '--steps', '3', '--eval', evalFile, '--eval-every', '2', '-o', out], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr.match(/^eval at step (\d+): agreement with the teacher (100|0)\.0%, accuracy (100|0)\.0% \(1 cases\)$/gm)?.map((l) => l.split(' ')[3])).toEqual(['0:', '2:', '3:']);
    expect(ok.stdout).toMatch(/distilled 3 steps in [\d.]+ s/);
    expect(ok.stderr).toMatch(/step 1\/3 +loss [\d.]+ \(mlm [\d.]+, kl [\d.]+\) +lr [\d.e+-]+ +\d+ tokens\/s +ETA/);
    expect(fs.existsSync(out)).toBe(true);

    const bad = path.join(dir, 'bad.onnx');
    const r = spawnSync(process.execPath, [CLI, ...args, '--lr', 'fast', '-o', bad], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^bort-compress: error: --lr 'fast' is not a learning rate/);
    expect(fs.existsSync(bad)).toBe(false);
    for (const [flags, msg] of [
      [['--mlm-weight', 'x'], /^bort-compress: error: --mlm-weight 'x' is not a number/],
      [['--mlm-weight', '0', '--kl-weight', '0'], /^bort-compress: error: --mlm-weight and --kl-weight are both 0/],
      [['--temperature', '0'], /^bort-compress: error: --temperature 0 is not a softmax temperature/],
    ] as const) {
      const w = spawnSync(process.execPath, [CLI, ...args, ...flags, '-o', bad], { encoding: 'utf8' });
      expect(w.status).toBe(1);
      expect(w.stderr.trim().split('\n')).toHaveLength(1);
      expect(w.stderr).toMatch(msg);
      expect(fs.existsSync(bad)).toBe(false);
    }
    const nodir = spawnSync(process.execPath, [CLI, ...args, '-o', dir], { encoding: 'utf8' });
    expect(nodir.status).toBe(1);
    expect(nodir.stderr.trim().split('\n')).toHaveLength(1);

    const stopped = path.join(dir, 'stopped.onnx');
    const child = spawn(process.execPath, [CLI, ...args, '--steps', '100000', '-o', stopped], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d) => {
        err += d;
        if (/step 1\//.test(err)) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(stdout).toMatch(/stopped at step \d+; state saved in .*stopped\.onnx\.ckpt/);
    expect(fs.existsSync(stopped)).toBe(false);
    expect(fs.existsSync(`${stopped}.ckpt`)).toBe(true);
  }, 60_000);
});

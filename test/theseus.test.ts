import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { recognize } from '../lib/bert/recognize.js';
import { compress } from '../lib/compress.js';
import { distill, type DistillOptions } from '../lib/distill/distill.js';
import { RouteSampler, layerGroups, replaceRate } from '../lib/distill/module-replacing.js';
import { loadModel } from '../lib/onnx/io.js';
import { engineSpec } from '../lib/runtime/spec.js';
import { synth } from '../lib/synth/bert.js';
import { Trainer } from '../lib/train/trainer.js';
import { CORPUS_LINES, TEACHER_VOCAB, distillSetup } from './distill-setup.js';
import { FIXTURES, runOrt, tmpDir } from './helpers.js';

const VOCAB = TEACHER_VOCAB;
const CLI = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
/** A 3-layer masked-LM teacher (8,000 words), a 2-layer first-k student of it (same H), and a corpus. */
function setup(): Promise<{ dir: string; base: Omit<DistillOptions, 'output'> }> {
  return distillSetup({
    prefix: 'bort-theseus-', teacherArch: '3,2,32,64', teacherSeed: 11, studentArch: '2,2,32,48',
    lines: CORPUS_LINES.slice(0, 5),
    run: { steps: 6, batch: 3, seq: 16, lr: 1e-3, threads: 1, seed: 5 },
  });
}

describe('module-replacing schedule, groups and routes', () => {
  it('gives the hand-computed p at given steps for each schedule', () => {
    // R = 10 replacing steps, b = 0.3: linear k = 0.07; curriculum C = 5, then k = 0.14
    const lin = { schedule: 'linear', rate: 0.3, replacingSteps: 10 } as const;
    expect([1, 5, 9, 10, 11, 40].map((t) => replaceRate(lin, t))).toEqual([0.37, 0.65, 0.93, 1, 1, 1].map((x) => expect.closeTo(x, 12)));
    const cur = { schedule: 'curriculum', rate: 0.3, replacingSteps: 10 } as const;
    expect([1, 5, 6, 8, 10, 11].map((t) => replaceRate(cur, t))).toEqual([0.3, 0.3, 0.44, 0.72, 1, 1].map((x) => expect.closeTo(x, 12)));
    const con = { schedule: 'constant', rate: 0.5, replacingSteps: 7 } as const;
    expect([1, 7, 8].map((t) => replaceRate(con, t))).toEqual([0.5, 0.5, 1]);
    // odd R: C = 3 of R = 7, k = 0.5 / 4
    expect(replaceRate({ schedule: 'curriculum', rate: 0.5, replacingSteps: 7 }, 5)).toBeCloseTo(0.75, 12);
  });

  it('cuts the teacher into even groups, longer first, and refuses more student than teacher layers', () => {
    expect(layerGroups(6, 3)).toEqual([[0, 2], [2, 4], [4, 6]]);
    expect(layerGroups(6, 4)).toEqual([[0, 2], [2, 4], [4, 5], [5, 6]]);
    expect(layerGroups(7, 3)).toEqual([[0, 3], [3, 5], [5, 7]]);
    expect(layerGroups(4, 4)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4]]);
    expect(() => layerGroups(3, 4)).toThrow(/the student has 4 layers and the teacher only 3/);
  });

  it('draws routes from a seed: the same routes again, resumable from its state, p = 1 the student alone', () => {
    const g = layerGroups(6, 3);
    const a = new RouteSampler(g, 9), b = new RouteSampler(g, 9);
    const ra = Array.from({ length: 20 }, () => Array.from(a.next(0.5).route));
    const rb = Array.from({ length: 20 }, () => Array.from(b.next(0.5).route));
    expect(rb).toEqual(ra);
    // a group is either its student layer g or teacher layers 3 + [start, end)
    const allowed = [[[0], [3, 4]], [[1], [5, 6]], [[2], [7, 8]]];
    for (const r of ra) {
      let at = 0;
      for (const opts of allowed) {
        const hit = opts.find((o) => o.every((x, i) => r[at + i] === x))!;
        expect(hit).toBeDefined();
        at += hit.length;
      }
      expect(at).toBe(r.length);
    }
    expect(new Set(ra.map((r) => r.join())).size).toBeGreaterThan(3);
    const s = a.state;
    const want = Array.from(a.next(0.5).route);
    b.state = s;
    expect(Array.from(b.next(0.5).route)).toEqual(want);
    expect(Array.from(a.next(1).route)).toEqual([0, 1, 2]);
    expect(Array.from(a.next(1e-12).route)).toEqual([3, 4, 5, 6, 7, 8]);
  });
});

describe('Trainer with the teacher layers as frozen predecessors', () => {
  it('the all-teacher route is the teacher (KL 0 against its logits); steps leave predecessors, and frozen embeddings and head, unchanged', async () => {
    const { base } = await setup();
    const teacherModel = recognize(loadModel(base.teacher).model);
    const student = recognize(loadModel(base.student).model);
    const t = Trainer.fromModel(student, { predecessors: teacherModel, sharedFrozenUntil: 3, totalSteps: 10, lr: 1e-2, threads: 1 });
    try {
      const ids = Int32Array.from([2, 10, 11, 12, 13, 14, 15, 3, 2, 20, 21, 4, 22, 23, 24, 3]);
      const B = 2, S = 8, V = 8000;
      const positions = Int32Array.of(1, 4, 11, 13);
      const feeds = { shape: [B, S], data: [...ids] };
      const ref = (await runOrt(base.teacher, { input_ids: feeds, attention_mask: { shape: [B, S], data: Array(B * S).fill(1) }, token_type_ids: { shape: [B, S], data: Array(B * S).fill(0) } })).logits.data;
      const teacher = new Float32Array(positions.length * V);
      positions.forEach((p, i) => teacher.set(ref.subarray(p * V, (p + 1) * V), i * V));
      const batch = { ids, batch: B, seq: S, positions, teacher, mlmWeight: 0, klWeight: 1 };
      // student layers 0, 1; teacher layers at 2, 3, 4
      const all = await t.gradients({ ...batch, route: Int32Array.of(2, 3, 4) });
      const own = await t.gradients(batch);
      expect(Math.abs(all.kl)).toBeLessThan(1e-3 * own.kl);
      expect(all.gradNorm).toBe(0); // nothing on that route trains while the embeddings and head are frozen

      const tw = engineSpec(teacherModel).weights, sw = engineSpec(student).weights;
      const route = Int32Array.of(2, 3, 1); // teacher group [0, 2) then student layer 1
      for (let i = 0; i < 3; i++) await t.step({ ...batch, route });
      expect(t.predecessorNames()).toHaveLength(3 * 16);
      for (const n of t.predecessorNames()) expect(t.weight(n), n).toEqual(tw[n.slice(5)]);
      for (const n of ['word_emb', 'pos_emb', 'emb_ln_g', 'mlm_w', 'mlm_ln_b', 'decoder_b']) expect(t.weight(n), n).toEqual(sw[n]);
      expect(t.weight('q_w.0')).toEqual(sw['q_w.0']); // student layer 0 is not on the route
      expect(t.weight('q_w.1')).not.toEqual(sw['q_w.1']);
      expect(() => t.grad('pred.q_w.0')).toThrow(/frozen predecessor weight/);
      await expect(t.step({ ...batch, route: Int32Array.of(1, 1) })).rejects.toThrow(/route\[1\] = 1 runs a layer a second time/);
      await expect(t.step({ ...batch, route: Int32Array.of(0, 5) })).rejects.toThrow(/route\[1\] = 5 is outside the layer stack \[0, 5\)/);
      // update 4: embeddings and head thaw
      await t.step(batch);
      expect(t.weight('word_emb')).not.toEqual(sw['word_emb']);
    } finally {
      t.close();
    }
  }, 60_000);
});

describe('distill({ method: "theseus" })', () => {
  it('with p = 1 from step 0 (embeddings and head trained) writes the same model as plain distillation, bit for bit', async () => {
    const { dir, base } = await setup();
    const kd = path.join(dir, 'kd.onnx'), th = path.join(dir, 'th.onnx');
    await distill({ ...base, output: kd });
    const seen: number[] = [];
    await distill({ ...base, output: th, method: 'theseus', replaceRate: 1, schedule: 'constant', shared: 'trained', onProgress: (p) => seen.push(p.replaceRate!) });
    expect(seen).toEqual([1, 1, 1, 1, 1, 1]);
    expect(fs.readFileSync(th).equals(fs.readFileSync(kd))).toBe(true);
    expect(fs.readFileSync(th).equals(fs.readFileSync(base.student))).toBe(false);
  }, 60_000);

  it('mixes, reports p, resumes exactly from a checkpoint, and --from-scratch starts the layers from N(0, 0.02)', async () => {
    const { dir, base } = await setup();
    const opts = { ...base, steps: 8, method: 'theseus' as const, replaceRate: 0.4, schedule: 'linear' as const, studentOnlySteps: 2 };
    const full = path.join(dir, 'full.onnx');
    const ps: number[] = [];
    await distill({ ...opts, output: full, onProgress: (p) => ps.push(p.replaceRate!) });
    // R = 6, k = 0.1
    expect(ps).toEqual([0.5, 0.6, 0.7, 0.8, 0.9, 1, 1, 1].map((x) => expect.closeTo(x, 12)));
    const out = path.join(dir, 'resumed.onnx');
    const ac = new AbortController();
    const stopped = await distill({ ...opts, output: out, signal: ac.signal, onProgress: (p) => { if (p.step === 3) ac.abort(); } });
    expect(stopped.finished).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    await distill({ ...opts, output: out, resume: true });
    expect(fs.readFileSync(out).equals(fs.readFileSync(full))).toBe(true);
    // a kd checkpoint is not a theseus one
    await expect(distill({ ...base, steps: 8, output: out, resume: true })).rejects.toThrow(/from another run/);

    const scratch = path.join(dir, 'scratch.onnx');
    await distill({ ...opts, steps: 1, studentOnlySteps: 0, lr: 1e-9, output: scratch, fromScratch: true });
    const m = recognize(loadModel(scratch).model);
    const w = engineSpec(m).weights;
    const q = w['ffn_in_w.1'];
    const std = Math.sqrt(q.reduce((a, x) => a + x * x, 0) / q.length);
    expect(std).toBeGreaterThan(0.017);
    expect(std).toBeLessThan(0.023);
    expect(Math.max(...w['ln1_g.0'].map((x) => Math.abs(x - 1)))).toBeLessThan(1e-6);
    expect(Math.max(...w['q_b.0'].map(Math.abs))).toBeLessThan(1e-6);
    expect(w['word_emb']).toEqual(engineSpec(recognize(loadModel(base.student).model)).weights['word_emb'].map((x) => x));
  }, 60_000);

  it('refuses a hidden size other than the teacher\'s and more layers than the teacher, writing nothing', async () => {
    const { dir, base } = await setup();
    const narrow = path.join(dir, 'narrow.onnx');
    await compress(base.teacher, { arch: '2,2,16,32', strategy: 'first', output: narrow });
    const out = path.join(dir, 'never.onnx');
    await expect(distill({ ...base, student: narrow, output: out, method: 'theseus' })).rejects.toThrow(/the teacher's hidden size 32 and the student's 16 differ.*--arch D,A,32,I/);
    const deep = path.join(dir, 'deep.onnx');
    synth({ arch: '4,2,32,48', vocab: 8000, maxPositions: 32, head: 'mlm', seed: 3, output: deep });
    await expect(distill({ ...base, student: deep, output: out, method: 'theseus' })).rejects.toThrow(/the student has 4 layers and the teacher only 3/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(`${out}.ckpt`)).toBe(false);
  }, 60_000);
});

describe('bort-compress distill --method theseus', () => {
  it('trains with p on the progress line; bad option values are one line, exit 1, nothing written', async () => {
    const { dir, base } = await setup();
    const args = ['distill', base.teacher, base.student, '--corpus', base.corpus, '--vocab', VOCAB, '--batch', '2', '--seq', '16', '--threads', '1', '--steps', '3'];
    const out = path.join(dir, 'cli.onnx');
    const ok = spawnSync(process.execPath, [CLI, ...args, '--method', 'theseus', '--replace-rate', '0.5', '--schedule', 'constant', '--student-only-steps', '1', '-o', out], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/step 3\/3 +loss [\d.]+ \(mlm [\d.]+, kl [\d.]+\) +lr [\d.e+-]+ +p 1\.000 +\d+ tokens\/s/);
    expect(fs.existsSync(out)).toBe(true);

    const bad: [string[], RegExp][] = [
      [['--method', 'theseus', '--replace-rate', '0'], /--replace-rate '0' is not a probability above 0/],
      [['--method', 'theseus', '--replace-rate', '1.5'], /--replace-rate '1\.5' is not a probability/],
      [['--method', 'theseus', '--replace-rate', 'half'], /--replace-rate 'half' is not a probability/],
      [['--method', 'theseus', '--schedule', 'cosine'], /--schedule 'cosine' is not a replacement schedule/],
      [['--method', 'theseus', '--student-only-steps', '3'], /--student-only-steps 3 leaves no replacing phase in 3 steps/],
      [['--method', 'theseus', '--student-only-steps', '1.5'], /--student-only-steps '1\.5' is not a whole number/],
      [['--method', 'theseus', '--shared', 'maybe'], /--shared 'maybe' is not frozen or trained/],
      [['--method', 'distil'], /--method 'distil' is not a distillation method/],
      [['--schedule', 'linear'], /--schedule only applies to module replacing/],
      [['--from-scratch'], /--from-scratch only applies to module replacing/],
    ];
    for (const [extra, msg] of bad) {
      const o = path.join(dir, 'bad.onnx');
      const r = spawnSync(process.execPath, [CLI, ...args, ...extra, '-o', o], { encoding: 'utf8' });
      expect(r.status, extra.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), extra.join(' ')).toHaveLength(1);
      expect(r.stderr, extra.join(' ')).toMatch(msg);
      expect(r.stderr).toMatch(/^bort-compress: error: /);
      expect(fs.existsSync(o)).toBe(false);
      expect(fs.existsSync(`${o}.ckpt`)).toBe(false);
    }
  }, 60_000);
});

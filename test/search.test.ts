/**
 * The sub-architecture search: the W-coefficient, Pareto dominance and the FPTAS step against
 * hand-computed values; space parsing and its one-line errors; a whole search over a small random
 * masked-LM (tiny vocabulary, generated corpus) whose choice is checked against an independent
 * dominance computation; resuming an interrupted search; the HTML report in headless Chromium.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../lib/synth/bert.js';
import { inspect } from '../lib/inspect.js';
import { BortError } from '../lib/errors.js';
import { wCoefficient } from '../lib/search/w-coefficient.js';
import { dominates, paretoFlags } from '../lib/search/pareto.js';
import { argmaxW, representatives } from '../lib/search/fptas.js';
import { fitCostModel } from '../lib/search/cost-model.js';
import { candidatesOf, completeSpace, defaultSpace, parseSpace } from '../lib/search/space.js';
import { search } from '../lib/search/search.js';
import type { SearchFile } from '../lib/search/search-file.js';
import { ROOT, tmpDir } from './helpers.js';

describe('W-coefficient, dominance, FPTAS intervals (hand-computed)', () => {
  const T = { params: 100, latencyMs: 10, error: 2 };

  it('W is the product of the ratios to the maximum point', () => {
    expect(wCoefficient(T, T)).toBe(1);
    // half the parameters, half the latency, twice the error: 2 · 2 · 0.5 = 2
    expect(wCoefficient({ params: 50, latencyMs: 5, error: 4 }, T)).toBeCloseTo(2, 12);
    // a quarter of the parameters, same latency, 1.25× the error: 4 · 1 · 0.8 = 3.2
    expect(wCoefficient({ params: 25, latencyMs: 10, error: 2.5 }, T)).toBeCloseTo(3.2, 12);
    expect(() => wCoefficient({ params: 0, latencyMs: 1, error: 1 }, T)).toThrow(/params must be a positive/);
  });

  it('dominance and the front', () => {
    const a = { params: 1, latencyMs: 1, error: 1 };
    const b = { params: 2, latencyMs: 1, error: 1 };
    const c = { params: 1, latencyMs: 3, error: 0.5 };
    expect(dominates(a, b)).toBe(true);
    expect(dominates(b, a)).toBe(false);
    expect(dominates(a, a)).toBe(false);
    expect(dominates(a, c)).toBe(false);
    expect(paretoFlags([a, b, c])).toEqual([true, false, true]);
  });

  it('one representative per interval of ε, the fastest of it, sorted by parameters', () => {
    const cands = [
      { params: 40, latencyMs: 4 }, // 0
      { params: 10, latencyMs: 3 }, // 1
      { params: 30, latencyMs: 1 }, // 2
      { params: 20, latencyMs: 2 }, // 3
      { params: 50, latencyMs: 9 }, // 4
    ];
    // by params: 1 (10), 3 (20), 2 (30), 0 (40), 4 (50); ε = 2 → [1,3] [2,0] [4]
    expect(representatives(cands, 2)).toEqual([3, 2, 4]);
    expect(representatives(cands, 1)).toEqual([1, 3, 2, 0, 4]);
    expect(representatives(cands, 5)).toEqual([2]);
    expect(() => representatives(cands, 0)).toThrow(RangeError);
    expect(argmaxW([undefined, 2, 3, 3])).toBe(2);
  });

  it('the cost model recovers an exact line and reports zero error on it', () => {
    const m = fitCostModel([{ gflop: 1, ms: 3 }, { gflop: 2, ms: 5 }, { gflop: 4, ms: 9 }]);
    expect(m.interceptMs).toBeCloseTo(1, 12);
    expect(m.msPerGflop).toBeCloseTo(2, 12);
    expect(m.maxRelError).toBeLessThan(1e-12);
    expect(m.looMaxRelError).toBeLessThan(1e-12);
  });
});

describe('search space', () => {
  it('parses lists, ranges and steps, as text and as JSON', () => {
    expect(parseSpace('D=2..4,A=4|8,H=128..256/64,I=256')).toEqual({ D: [2, 3, 4], A: [4, 8], H: [128, 192, 256], I: [256] });
    expect(parseSpace('{"D":[4,2],"H":"128..256/64","I":512}')).toEqual({ D: [2, 4], H: [128, 192, 256], I: [512] });
  });

  it('fills defaults from the source and keeps only H divisible by A', () => {
    const src = { layers: 6, heads: 8, hidden: 256, intermediate: 1024 };
    expect(defaultSpace(src)).toEqual({ D: [2, 3, 5, 6], A: [4, 8], H: [128, 192, 256], I: [256, 512, 1024] });
    const space = completeSpace(parseSpace('A=3|4,H=12'), { layers: 2, heads: 4, hidden: 16, intermediate: 32 });
    expect(candidatesOf(space).map((a) => `${a.heads},${a.hidden}`)).toEqual(expect.arrayContaining(['3,12', '4,12']));
  });

  const bad: [string, RegExp][] = [
    ['D=2..', /D .* is neither a number/],
    ['X=2', /unknown dimension 'X'/],
    ['D=5..2', /range 5\.\.2 is empty/],
    ['H=64..128/0', /step 0/],
    ['D=2,D=3', /D is given twice/],
    ['{"D":[0]}', /not a whole number ≥ 1/],
    ['{"D":', /not valid JSON/],
  ];
  for (const [text, re] of bad) {
    it(`refuses ${text} in one line`, () => {
      let err: unknown;
      try { parseSpace(text); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(BortError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain('\n');
    });
  }

  it('refuses sizes above the source', () => {
    expect(() => completeSpace(parseSpace('D=2..8'), { layers: 6, heads: 8, hidden: 256, intermediate: 1024 })).toThrow(/D = 7\|8 is larger than the source's layers 6/);
  });
});

/** A tiny masked-LM and calibration text it can read. */
function smallTeacher(): { dir: string; model: string; vocab: string; corpus: string } {
  const dir = tmpDir('bort-search-');
  const words = Array.from({ length: 59 }, (_, i) => `w${i}`);
  const vocab = path.join(dir, 'vocab.txt');
  fs.writeFileSync(vocab, ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words].join('\n') + '\n');
  let s = 7;
  const r = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
  const corpus = path.join(dir, 'corpus.txt');
  fs.writeFileSync(corpus, Array.from({ length: 120 }, () => Array.from({ length: 10 }, () => words[Math.floor(r() * r() * words.length)]).join(' ')).join('\n') + '\n');
  const model = path.join(dir, 'teacher.onnx');
  synth({ arch: '3,4,32,64', vocab: 64, maxPositions: 32, head: 'mlm', seed: 11, output: model });
  return { dir, model, vocab, corpus };
}

const SPACE = 'D=2..3,A=2|4,H=16..32/16,I=32|64'; // 2·2·2·2 = 16 candidates

function independentFront(s: SearchFile): Set<string> {
  const ev = s.candidates.filter((c) => c.error !== undefined);
  const front = new Set<string>();
  for (const a of ev) {
    const beaten = ev.some((b) => b !== a && b.params <= a.params && b.latencyMs! <= a.latencyMs! && b.error! <= a.error! &&
      (b.params < a.params || b.latencyMs! < a.latencyMs! || b.error! < a.error!));
    if (!beaten) front.add(a.key);
  }
  return front;
}

describe('search over a small masked-LM', () => {
  let t: ReturnType<typeof smallTeacher>;
  let out: string;
  let result: Awaited<ReturnType<typeof search>>;
  const events: string[] = [];
  beforeAll(async () => {
    t = smallTeacher();
    out = path.join(t.dir, 'out');
    result = await search(t.model, {
      space: SPACE, corpus: t.corpus, vocab: t.vocab, shape: '1x16', output: out, extract: true, runs: 3, threads: 1, steps: 0,
      calibrationSequences: 8, onProgress: (p) => events.push(`${p.phase} ${p.done}/${p.total}`),
    });
  }, 120_000);

  it('measures every candidate and chooses a point on the Pareto front', () => {
    const s: SearchFile = JSON.parse(fs.readFileSync(path.join(out, 'search.json'), 'utf8'));
    expect(s.status).toBe('done');
    expect(s.candidates.length).toBe(16);
    for (const c of s.candidates) {
      expect(c.latencyMs).toBeGreaterThan(0);
      expect(c.error).toBeGreaterThan(0);
      expect(c.plan!.layers.length).toBe(c.arch.layers);
    }
    const front = independentFront(s);
    expect(new Set(s.candidates.filter((c) => c.pareto).map((c) => c.key))).toEqual(front);
    expect(front.has(s.chosen!)).toBe(true);
    // the chosen one has the largest W, recomputed here from the recorded objectives
    const T = s.maximumPoint;
    expect(T.key).toBe('3,4,32,64');
    const w = (c: SearchFile['candidates'][number]) => (T.params / c.params) * (T.latencyMs! / c.latencyMs!) * (T.error! / c.error!);
    const best = [...s.candidates].sort((a, b) => w(b) - w(a))[0];
    expect(s.chosen).toBe(best.key);
    // p̂ is the exact count of the extracted model
    expect(inspect(result.extracted!.output).params).toBe(s.candidates.find((c) => c.key === s.chosen)!.params);
    expect(inspect(result.extracted!.output).arch).toEqual(s.candidates.find((c) => c.key === s.chosen)!.arch);
    // strategy data: the written model was refitted (or says why not)
    expect(result.extracted!.plan.notes.join('\n')).toMatch(/refit/);
    expect(events).toContain('latency 16/16');
    expect(events).toContain('error 16/16');
  });

  it('search.html renders in headless Chromium with one circle per candidate and no console errors', () => {
    const html = path.join(out, 'search.html');
    const render = (file: string) => {
      const profile = tmpDir('bort-chromium-');
      const r = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', '--dump-dom', `file://${file}`], { encoding: 'utf8', timeout: 60_000 });
      if (r.error) throw new Error(`chromium could not be started (${r.error.message}); install it: apt-get install -y chromium`);
      return { dom: r.stdout, console: r.stderr.split('\n').filter((l) => /:CONSOLE/.test(l)) };
    };
    // the console check can fail: a page that logs an error is caught
    const bad = path.join(t.dir, 'bad.html');
    fs.writeFileSync(bad, '<!DOCTYPE html><html><body><script>console.error("boom")</script></body></html>');
    expect(render(bad).console.join('\n')).toMatch(/boom/);
    const r = render(html);
    expect(r.console).toEqual([]);
    expect((r.dom.match(/<circle\b/g) ?? []).length).toBe(16);
    expect((r.dom.match(/<circle\b[^>]*class="candidate pareto"/g) ?? []).length).toBe(independentFront(JSON.parse(fs.readFileSync(path.join(out, 'search.json'), 'utf8'))).size);
    expect(r.dom).toContain('Chosen architecture');
    expect(r.dom).toMatch(new RegExp(`<b>${result.file.chosen}</b>`));
  });

  it('an interrupted search keeps what it measured and resumes from search.json', async () => {
    const dir = path.join(t.dir, 'resume');
    const controller = new AbortController();
    const first = await search(t.model, {
      space: SPACE, corpus: t.corpus, vocab: t.vocab, shape: '1x16', output: dir, runs: 3, threads: 1, calibrationSequences: 8, strategy: 'first', steps: 0,
      signal: controller.signal, onProgress: (p) => { if (p.phase === 'error' && p.done === 5) controller.abort(); },
    });
    expect(first.file.status).toBe('interrupted');
    const partial: SearchFile = JSON.parse(fs.readFileSync(path.join(dir, 'search.json'), 'utf8'));
    expect(partial.status).toBe('interrupted');
    const measured = partial.candidates.filter((c) => c.error !== undefined);
    expect(measured.length).toBe(5);
    const events: string[] = [];
    const second = await search(t.model, {
      space: SPACE, corpus: t.corpus, vocab: t.vocab, shape: '1x16', output: dir, runs: 3, threads: 1, calibrationSequences: 8, strategy: 'first', steps: 0,
      onProgress: (p) => events.push(`${p.phase} ${p.done}/${p.total}`),
    });
    expect(second.file.status).toBe('done');
    // nothing timed again, only the 11 missing errors measured; earlier values kept exactly
    expect(events.some((e) => e.startsWith('latency'))).toBe(false);
    expect(events).toContain('error 11/11');
    for (const c of measured) {
      const now = second.file.candidates.find((x) => x.key === c.key)!;
      expect(now.latencyMs).toBe(c.latencyMs);
      expect(now.error).toBe(c.error);
    }
    // other settings are refused rather than overwritten
    await expect(search(t.model, { space: SPACE, corpus: t.corpus, vocab: t.vocab, shape: '1x8', output: dir, strategy: 'first', steps: 0 }))
      .rejects.toThrow(/holds a search with other settings/);
  }, 120_000);
});

describe('search with n > 0 distillation steps', () => {
  // T = 2,2,32,64 (the space's maximum point); the three smaller candidates are trained from T's logits
  const SMALL = 'D=1..2,A=2,H=16..32/16,I=64';
  let t: ReturnType<typeof smallTeacher>;
  const base = () => ({ space: SMALL, corpus: t.corpus, vocab: t.vocab, shape: '1x16', runs: 2, threads: 1, calibrationSequences: 8, strategy: 'first' as const, train: { lr: 0.001 } });
  const errors = (f: SearchFile) => new Map(f.candidates.filter((c) => c.error !== undefined).map((c) => [c.key, c.error!]));
  let zero: SearchFile, two: SearchFile, three: SearchFile, eight: SearchFile;
  beforeAll(async () => {
    t = smallTeacher();
    zero = (await search(t.model, { ...base(), steps: 0, output: path.join(t.dir, 'n0') })).file;
    two = (await search(t.model, { ...base(), steps: 2, output: path.join(t.dir, 'n2') })).file;
    three = (await search(t.model, { ...base(), steps: 3, output: path.join(t.dir, 'n3') })).file;
    eight = (await search(t.model, { ...base(), steps: 8, output: path.join(t.dir, 'n8') })).file;
  }, 120_000);

  it('ê after n steps differs from the zero-shot ê and falls with n (2, 3, 8) where the candidate is narrower than T', () => {
    const e0 = errors(zero), e2 = errors(two), e3 = errors(three), e8 = errors(eight);
    expect(e0.size).toBe(4);
    expect(e3.size).toBe(4);
    for (const key of e0.keys()) expect(e2.get(key), key).not.toBe(e0.get(key));
    // the trainable case: hidden 32 → 16, where the zero-shot candidate is furthest from T
    for (const key of ['1,2,16,64', '2,2,16,64']) {
      expect(e2.get(key)!, key).toBeLessThan(e0.get(key)!);
      expect(e3.get(key)!, key).toBeLessThan(e2.get(key)!);
      expect(e8.get(key)!, key).toBeLessThan(e3.get(key)!);
    }
    // T's logits were computed once: one batch per step, positions × vocab float32
    expect(three.teacherLogits!.batches).toBe(3);
    expect(three.teacherLogits!.bytes % (64 * 4)).toBe(0);
    expect(three.config.steps).toBe(3);
    expect(three.config.training).toEqual({ batch: 8, seq: 32, lr: 0.001, seed: 1, loss: { mlmWeight: 0, klWeight: 1, temperature: 2 } });
    const c = three.candidates.find((x) => x.key === '1,2,16,64')!;
    expect(c.training!.lastLoss).toBeLessThan(c.training!.firstLoss);
    expect(zero.candidates.every((x) => x.training === undefined)).toBe(true);
    expect(three.notes.join(' ')).toMatch(/after n = 3 steps of distillation from T/);
  });

  it('resume with n > 0 skips the candidates already measured and keeps their values', async () => {
    const dir = path.join(t.dir, 'resume3');
    const controller = new AbortController();
    const first = await search(t.model, { ...base(), steps: 3, output: dir, signal: controller.signal, onProgress: (p) => { if (p.phase === 'error' && p.done === 2) controller.abort(); } });
    expect(first.file.status).toBe('interrupted');
    const measured = first.file.candidates.filter((c) => c.error !== undefined);
    expect(measured.length).toBe(2);
    expect(measured.every((c) => c.training !== undefined)).toBe(true);
    const events: string[] = [];
    const second = await search(t.model, { ...base(), steps: 3, output: dir, onProgress: (p) => events.push(`${p.phase} ${p.done}/${p.total}`) });
    expect(second.file.status).toBe('done');
    expect(events).toContain('error 2/2');
    expect(events).not.toContain('error 3/3');
    for (const c of measured) expect(second.file.candidates.find((x) => x.key === c.key)!.error).toBe(c.error);
    // the same data and settings give the same ê as the uninterrupted run
    for (const [k, e] of errors(second.file)) expect(e, k).toBeCloseTo(errors(three).get(k)!, 6);
    // another n is another search: refused rather than overwritten
    await expect(search(t.model, { ...base(), steps: 2, output: dir })).rejects.toThrow(/holds a search with other settings/);
  }, 120_000);

  it('bad training values are refused before anything is written', async () => {
    const out = path.join(t.dir, 'bad');
    await expect(search(t.model, { ...base(), steps: 1.5, output: out })).rejects.toThrow(/--steps 1\.5 is not a whole number from 0 to 1,000,000/);
    await expect(search(t.model, { ...base(), steps: 2, train: { lr: 0 }, output: out })).rejects.toThrow(/training learning rate 0 is not in \(0, 1\]/);
    await expect(search(t.model, { ...base(), steps: 2, train: { batch: 0 }, output: out })).rejects.toThrow(/training batch 0 is not a whole number from 1 to 256/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('search CLI', () => {
  const cliPath = path.join(ROOT, 'dist', 'cli', 'main.js');
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('a bad --space is one line, exit 1, and nothing written', () => {
    const t = smallTeacher();
    const out = path.join(t.dir, 'cli-out');
    const r = run(['search', t.model, '--corpus', t.corpus, '--vocab', t.vocab, '--space', 'D=2..x', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bort-compress: error: --space 'D=2\.\.x': D .* is neither a number, a list a\|b\|c nor a range/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('bad --steps values are one line, exit 1, and nothing written', () => {
    const t = smallTeacher();
    const out = path.join(t.dir, 'cli-out');
    for (const [v, msg] of [['-1', /--steps '-1' is not a whole number ≥ 0/], ['2.5', /--steps '2\.5' is not a whole number ≥ 0/], ['2000000', /--steps 2000000 is not a whole number from 0 to 1,000,000.*--steps 0 \(zero-shot\)/]] as const) {
      const r = run(['search', t.model, '--corpus', t.corpus, '--vocab', t.vocab, `--steps=${v}`, '-o', out]);
      expect(r.code, v).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('compress --strategy data needs --corpus and --vocab', () => {
    const t = smallTeacher();
    const out = path.join(t.dir, 'x.onnx');
    const r = run([t.model, '--arch', '2,4,32,64', '--strategy', 'data', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--strategy data needs --corpus TEXT/);
    expect(fs.existsSync(out)).toBe(false);
    const ok = run([t.model, '--arch', '2,4,32,64', '--strategy', 'data', '--corpus', t.corpus, '--vocab', t.vocab, '-o', out, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).strategy).toBe('data');
    // the least-squares refit runs by default (FFN 64 → 64 is whole, so the removed layer's stretch end is refitted)
    expect(JSON.parse(ok.stdout).plan.notes.join('\n')).toMatch(/refit by least squares on \d+ calibration tokens \(.*W_out→depth/);
    expect(execFileSync(process.execPath, [cliPath, 'inspect', out, '--json'], { encoding: 'utf8' })).toMatch(/"layers": 2/);
    const plain = run([t.model, '--arch', '2,4,32,64', '--strategy', 'data', '--no-refit', '--corpus', t.corpus, '--vocab', t.vocab, '-o', out, '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).plan.notes.join('\n')).not.toMatch(/refit/);
    const wrong = run([t.model, '--arch', '2,4,32,64', '--no-refit', '-o', out]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/--no-refit is only used by --strategy data/);
  });
});

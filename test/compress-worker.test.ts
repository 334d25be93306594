/**
 * compress() runs its job on a worker thread: the caller's event loop keeps turning during a compress
 * of a large model, progress steps still arrive, and a BortError thrown in the worker arrives as a
 * BortError with the same message and fix as the job gives on the calling thread. Both ways of starting
 * the worker are exercised: the TypeScript source here (vitest), the compiled dist/ in a child process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compress } from '../lib/compress.js';
import { runCompress } from '../lib/compress-job.js';
import { firstScorer } from '../lib/extract/scorer.js';
import { synth } from '../lib/synth/bert.js';
import { BortError } from '../lib/errors.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');
const STEPS = ['reading model', 'recognising structure', 'scoring importance', 'rewriting graph', 'writing model'];

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('compress() off the JS thread', () => {
  it('the event loop keeps ticking while a large model is read, recognised and rewritten', async () => {
    const dir = tmpDir();
    const src = path.join(dir, 'large.onnx');
    synth({ arch: '4,8,256,1024', vocab: 30522, seed: 3, output: src }); // 45 MB
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const at = new Map<string, number>();
    try {
      await compress(src, { arch: '2,4,128,512', output: path.join(dir, 'small.onnx'), onProgress: (s) => at.set(s, ticks) });
    } finally {
      clearInterval(timer);
    }
    expect([...at.keys()]).toEqual(STEPS);
    // on the calling thread these steps would run back to back with no tick in between
    expect(at.get('writing model')! - at.get('reading model')!).toBeGreaterThanOrEqual(10);
  });

  it('a BortError from the worker is a BortError with the same message and fix as on the calling thread', async () => {
    const dir = tmpDir();
    const opts = { arch: '3,8,128,512', output: path.join(dir, 'out.onnx') };
    const local = caught(() => runCompress(OP14, opts)) as BortError;
    expect(local).toBeInstanceOf(BortError);
    const remote = await compress(OP14, opts).then(() => undefined, (e: unknown) => e as BortError);
    expect(remote).toBeInstanceOf(BortError);
    expect(remote!.message).toBe(local.message);
    expect(remote!.fix).toBe(local.fix);
    expect(remote!.message).toMatch(/asks for more than the source/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('gives the same summary as the job on the calling thread, and calls back for every step', async () => {
    const dir = tmpDir();
    const steps: string[] = [];
    const remote = await compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'a.onnx'), onProgress: (s) => steps.push(s) });
    const local = runCompress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'b.onnx') });
    expect(steps).toEqual(STEPS);
    expect({ ...remote, output: '', seconds: 0 }).toEqual({ ...local, output: '', seconds: 0 });
    expect(fs.readFileSync(path.join(dir, 'a.onnx')).equals(fs.readFileSync(path.join(dir, 'b.onnx')))).toBe(true);
  });

  it('several calls at once each get their own result', async () => {
    const dir = tmpDir();
    const archs = ['1,2,32,64', '2,4,64,128', '1,4,32,64'];
    const results = await Promise.allSettled([
      ...archs.map((arch, i) => compress(OP14, { arch, output: path.join(dir, `o${i}.onnx`) })),
      compress(path.join(dir, 'missing.onnx'), { arch: '1,2,32,64', output: path.join(dir, 'x.onnx') }),
    ]);
    archs.forEach((arch, i) => {
      const r = results[i];
      expect(r.status).toBe('fulfilled');
      const s = (r as PromiseFulfilledResult<Awaited<ReturnType<typeof compress>>>).value;
      expect(`${s.target.arch.layers},${s.target.arch.heads},${s.target.arch.hidden},${s.target.arch.intermediate}`).toBe(arch);
    });
    expect(results[3].status).toBe('rejected');
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(BortError);
    expect((results[3] as PromiseRejectedResult).reason.message).toMatch(/missing\.onnx: no such file/);
  });

  it('a custom scorer object (functions cannot cross threads) runs the job on the calling thread', async () => {
    const dir = tmpDir();
    const s = await compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'c.onnx'), strategy: { ...firstScorer, name: 'mine' } });
    const f = await compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'f.onnx'), strategy: 'first' });
    expect(s.strategy).toBe('mine');
    expect(fs.readFileSync(path.join(dir, 'c.onnx')).equals(fs.readFileSync(path.join(dir, 'f.onnx')))).toBe(true);
  });

  it('the compiled package starts its worker from dist/ (summary, progress and BortError)', () => {
    const dir = tmpDir();
    const script = `
      const { compress, BortError } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
      (async () => {
        const steps = [];
        const ok = await compress(${JSON.stringify(OP14)}, { arch: '1,2,32,64', output: ${JSON.stringify(path.join(dir, 'd.onnx'))}, onProgress: (s) => steps.push(s) });
        let err;
        try { await compress(${JSON.stringify(OP14)}, { arch: '3,8,128,512', output: ${JSON.stringify(path.join(dir, 'e.onnx'))} }); } catch (e) { err = e; }
        process.stdout.write(JSON.stringify({ steps, arch: ok.target.arch, bort: err instanceof BortError, message: err && err.message, fix: err && err.fix }));
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.steps).toEqual(STEPS);
    expect(out.arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
    expect(out.bort).toBe(true);
    const local = caught(() => runCompress(OP14, { arch: '3,8,128,512', output: path.join(dir, 'e.onnx') })) as BortError;
    expect(out.message).toBe(local.message);
    expect(out.fix).toBe(local.fix);
    expect(fs.existsSync(path.join(ROOT, 'dist', 'compress-worker.js'))).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['d.onnx']);
  });
});

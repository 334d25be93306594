/**
 * Latency of the native engine against onnxruntime-node on the same inputs and thread count:
 * alternating runs in one process after warm-up, medians, the ratio ort/ours, and GFLOP/s.
 */
import type { Arch } from '../bert/model.js';
import { Encoder } from './encoder.js';

export interface BenchOptions {
  batch?: number;
  seq?: number;
  threads?: number;
  /** Timed runs of each engine (at least 10). */
  runs?: number;
  warmup?: number;
  /** Compare with onnxruntime-node when it is installed (default true). */
  compareOrt?: boolean;
  /** Idle time before each timed run, letting the other engine's threads go quiet (default 100 ms). */
  pauseMs?: number;
}

export interface BenchResult {
  model: string;
  arch: Arch;
  batch: number;
  seq: number;
  threads: number;
  isa: string;
  gflop: number;
  ours: { medianMs: number; gflops: number; runsMs: number[] };
  ort?: { medianMs: number; gflops: number; runsMs: number[]; version: string };
  /** ort median / our median: above 1 means we are faster. */
  ratio?: number;
}

/** Floating-point operations of one encoder forward pass (multiply-add = 2). */
export function encoderFlops(a: Arch, batch: number, seq: number, extras: { pooler: boolean; mlmVocab?: number } = { pooler: true }): number {
  const t = batch * seq;
  const H = a.hidden, I = a.intermediate;
  const perLayer = 2 * t * (4 * H * H + 2 * H * I) + 4 * batch * seq * seq * H;
  let f = a.layers * perLayer;
  if (extras.pooler) f += 2 * batch * H * H;
  if (extras.mlmVocab) f += 2 * t * (H * H + H * extras.mlmVocab);
  return f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function inputsFor(batch: number, seq: number, vocab: number) {
  const n = batch * seq;
  const ids = new BigInt64Array(n);
  for (let i = 0; i < n; i++) ids[i] = BigInt((i * 7919 + 13) % vocab);
  const ones = new BigInt64Array(n).fill(1n);
  const zeros = new BigInt64Array(n);
  return { ids, ones, zeros };
}

export async function benchmark(model: string, opts: BenchOptions = {}): Promise<BenchResult> {
  const batch = opts.batch ?? 1, seq = opts.seq ?? 128;
  const runs = Math.max(10, opts.runs ?? 10), warmup = opts.warmup ?? 3;
  const enc = await Encoder.load(model, { threads: opts.threads });
  const threads = enc.threads;
  const info = enc.info;
  const roles = enc.inputRoles;
  const { ids, ones, zeros } = inputsFor(batch, seq, info.vocab);
  const dims = [batch, seq];
  const ourFeeds: Record<string, { data: BigInt64Array; dims: number[] }> = { [roles.ids]: { data: ids, dims } };
  if (roles.mask) ourFeeds[roles.mask] = { data: ones, dims };
  if (roles.tokenTypes) ourFeeds[roles.tokenTypes] = { data: zeros, dims };

  let ort: typeof import('onnxruntime-node') | undefined;
  if (opts.compareOrt !== false) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ort = require('onnxruntime-node');
    } catch {
      ort = undefined;
    }
  }
  let session: import('onnxruntime-node').InferenceSession | undefined;
  let ortFeeds: Record<string, import('onnxruntime-node').Tensor> = {};
  if (ort) {
    session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
    ortFeeds = {};
    for (const n of session.inputNames) ortFeeds[n] = new ort.Tensor('int64', ourFeeds[n]?.data ?? zeros, dims);
  }
  // Each timed run starts after a short pause, so that neither engine's worker threads (onnxruntime's
  // spin-wait after a run above all) are still busy on the cores when the other engine starts.
  const pause = () => new Promise((r) => setTimeout(r, opts.pauseMs ?? 100));
  const time = async (fn: () => Promise<unknown>) => {
    await pause();
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  for (let i = 0; i < warmup; i++) {
    await enc.run(ourFeeds);
    if (session) await session.run(ortFeeds);
  }
  const ours: number[] = [], theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(await time(() => enc.run(ourFeeds)));
    if (session) theirs.push(await time(() => session!.run(ortFeeds)));
  }
  const flops = encoderFlops(enc.arch, batch, seq, { pooler: info.pooler, mlmVocab: info.mlm ? info.vocab : undefined });
  const gflop = flops / 1e9;
  const result: BenchResult = {
    model, arch: enc.arch, batch, seq, threads, isa: enc.isa, gflop,
    ours: { medianMs: median(ours), gflops: gflop / (median(ours) / 1e3), runsMs: ours },
  };
  if (session && ort) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const version: string = require('onnxruntime-node/package.json').version;
    result.ort = { medianMs: median(theirs), gflops: gflop / (median(theirs) / 1e3), runsMs: theirs, version };
    result.ratio = result.ort.medianMs / result.ours.medianMs;
    await session.release();
  }
  enc.close();
  return result;
}

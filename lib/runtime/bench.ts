/**
 * Latency of the native engine against onnxruntime-node on the same inputs and thread count:
 * alternating runs in one process after warm-up, medians, the ratio ort/ours, and GFLOP/s.
 */
import type { Arch } from '../bert/model.js';
import { BortError } from '../errors.js';
import { Encoder } from './encoder.js';
import { MAX_THREADS } from './threads.js';

/** The most tokens (batch × seq) one benchmark run may have. */
export const BENCH_MAX_TOKENS = 1 << 20;
/** The most timed runs, or warm-up runs, a benchmark may ask for. */
export const BENCH_MAX_RUNS = 10_000;

/** Every option is checked before the model is loaded (seq against the model's positions just after): a BortError names it. */
export interface BenchOptions {
  /** Sequences per run: an integer ≥ 1 (default 1); batch × seq at most BENCH_MAX_TOKENS. */
  batch?: number;
  /** Tokens per sequence: an integer in [1, the model's positions] (default 128). */
  seq?: number;
  /** An integer in [1, 256] (default: the number of cores). */
  threads?: number;
  /** Timed runs of each engine: an integer in [1, BENCH_MAX_RUNS]; fewer than 10 are raised to 10. */
  runs?: number;
  /** An integer in [0, BENCH_MAX_RUNS] (default 3). */
  warmup?: number;
  /** Compare with onnxruntime-node when it is installed (default true). */
  compareOrt?: boolean;
  /** Idle time before each timed run, letting the other engine's threads go quiet (default 100 ms, at most 60000). */
  pauseMs?: number;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? `${v}n` : String(v);
}

/** `v` (or `dflt` when undefined) when it is an integer in [min, max]; else a BortError naming the option. */
function intOption(name: string, v: unknown, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new BortError(`bench ${name} ${show(v)} is not an integer in [${min}, ${max}]`, `use a ${name} between ${min} and ${max}`);
  }
  return v;
}

/** The options with their defaults, each checked (BortError). */
export function checkBenchOptions(opts: BenchOptions): Required<Omit<BenchOptions, 'threads' | 'compareOrt'>> & { threads?: number; compareOrt: boolean } {
  if (opts === null || typeof opts !== 'object') throw new BortError(`bench options must be an object, got ${show(opts)}`, 'pass { batch, seq, threads, runs } or nothing');
  const batch = intOption('batch', opts.batch, 1, 1, BENCH_MAX_TOKENS);
  const seq = intOption('seq', opts.seq, 128, 1, BENCH_MAX_TOKENS);
  if (batch * seq > BENCH_MAX_TOKENS) {
    throw new BortError(`bench batch ${batch} × seq ${seq} = ${batch * seq} tokens is more than one run may have (${BENCH_MAX_TOKENS})`, 'use a smaller batch or seq');
  }
  const threads = opts.threads === undefined ? undefined : intOption('threads', opts.threads, 1, 1, MAX_THREADS);
  const runs = intOption('runs', opts.runs, 10, 1, BENCH_MAX_RUNS);
  const warmup = intOption('warmup', opts.warmup, 3, 0, BENCH_MAX_RUNS);
  const pauseMs = opts.pauseMs ?? 100;
  if (typeof pauseMs !== 'number' || !(pauseMs >= 0 && pauseMs <= 60_000)) {
    throw new BortError(`bench pauseMs ${show(pauseMs)} is not a number of milliseconds in [0, 60000]`, 'use a pause between 0 and 60000 ms');
  }
  return { batch, seq, threads, runs, warmup, pauseMs, compareOrt: opts.compareOrt !== false };
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

export async function benchmark(model: string, options: BenchOptions = {}): Promise<BenchResult> {
  const opts = checkBenchOptions(options);
  const enc = await Encoder.load(model, { threads: opts.threads });
  try {
    return await measure(enc, model, opts);
  } finally {
    enc.close();
  }
}

async function measure(enc: Encoder, model: string, opts: ReturnType<typeof checkBenchOptions>): Promise<BenchResult> {
  const { batch, seq, warmup } = opts;
  const runs = Math.max(10, opts.runs);
  const threads = enc.threads;
  const info = enc.info;
  if (seq > info.maxPositions) {
    throw new BortError(`bench seq ${seq} is longer than the model's ${info.maxPositions} positions`, `use a seq between 1 and ${info.maxPositions}`);
  }
  const roles = enc.inputRoles;
  const { ids, ones, zeros } = inputsFor(batch, seq, info.vocab);
  const dims = [batch, seq];
  const ourFeeds: Record<string, { data: BigInt64Array; dims: number[] }> = { [roles.ids]: { data: ids, dims } };
  if (roles.mask) ourFeeds[roles.mask] = { data: ones, dims };
  if (roles.tokenTypes) ourFeeds[roles.tokenTypes] = { data: zeros, dims };

  let ort: typeof import('onnxruntime-node') | undefined;
  if (opts.compareOrt) {
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
  const pause = () => new Promise((r) => setTimeout(r, opts.pauseMs));
  const time = async (fn: () => Promise<unknown>) => {
    await pause();
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  // a shape the engine cannot hold (an output over the largest Float32Array, or over the memory) is the user's choice of batch and seq
  const runOurs = () => enc.run(ourFeeds).catch((e: unknown) => {
    if (e instanceof RangeError) throw new BortError(`bench batch ${batch} × seq ${seq}: ${e.message}`, 'use a smaller batch or seq');
    throw e;
  });
  for (let i = 0; i < warmup; i++) {
    await runOurs();
    if (session) await session.run(ortFeeds);
  }
  const ours: number[] = [], theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(await time(runOurs));
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
  return result;
}

/**
 * The options each command accepts (the `parseArgs` configuration; help.ts lists the same ones, and
 * test/cli-surface.test.ts checks that it does), and the ranges of the numeric ones.
 */
import { BortError, quoteName } from '../errors.js';
import { SYNTH_VARIANT_FLAGS } from '../synth/cli-flags.js';
import { SYNTH_OPSETS } from '../synth/options.js';
import { MAX_THREADS } from '../runtime/threads.js';

type OptionSpec = { type: 'string' | 'boolean'; short?: string };

export const COMMANDS = ['compress', 'inspect', 'synth', 'bench', 'demo', 'quantize', 'distill', 'finetune'] as const;
export type Command = (typeof COMMANDS)[number];

const help: Record<string, OptionSpec> = { help: { type: 'boolean', short: 'h' } };
const json: Record<string, OptionSpec> = { json: { type: 'boolean' } };

export const OPTIONS: Record<Command, Record<string, OptionSpec>> = {
  compress: {
    ...help, ...json,
    arch: { type: 'string', short: 'a' },
    output: { type: 'string', short: 'o' },
    strategy: { type: 'string', short: 's' },
    corpus: { type: 'string' },
    vocab: { type: 'string' },
    'attention-scale': { type: 'string' },
    'rescale-attention': { type: 'boolean' },
    'external-data': { type: 'boolean' },
    'no-refit': { type: 'boolean' },
  },
  inspect: { ...help, ...json },
  synth: {
    ...help, ...json,
    arch: { type: 'string', short: 'a' },
    output: { type: 'string', short: 'o' },
    vocab: { type: 'string' },
    head: { type: 'string' },
    opset: { type: 'string' },
    positions: { type: 'string' },
    'type-vocab': { type: 'string' },
    labels: { type: 'string' },
    seed: { type: 'string' },
    'external-data': { type: 'boolean' },
    // exporter variants (lib/synth/cli-flags.ts)
    ...SYNTH_VARIANT_FLAGS,
  },
  bench: {
    ...help, ...json,
    batch: { type: 'string' },
    seq: { type: 'string' },
    threads: { type: 'string' },
    runs: { type: 'string' },
  },
  demo: { ...help },
  quantize: {
    ...help, ...json,
    output: { type: 'string', short: 'o' },
    'per-tensor': { type: 'boolean' },
    all: { type: 'boolean' },
    calibration: { type: 'string' },
    vocab: { type: 'string' },
    'calibration-samples': { type: 'string' },
    'calibration-percentile': { type: 'string' },
  },
  distill: {
    ...help, ...json,
    output: { type: 'string', short: 'o' },
    corpus: { type: 'string' },
    vocab: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    lr: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
    'checkpoint-every': { type: 'string' },
    resume: { type: 'boolean' },
    eval: { type: 'string' },
    'eval-every': { type: 'string' },
    'mlm-weight': { type: 'string' },
    'kl-weight': { type: 'string' },
    temperature: { type: 'string' },
    'hidden-weight': { type: 'string' },
    'attention-weight': { type: 'string' },
    method: { type: 'string' },
    'replace-rate': { type: 'string' },
    schedule: { type: 'string' },
    'student-only-steps': { type: 'string' },
    'from-scratch': { type: 'boolean' },
    shared: { type: 'string' },
  },
  finetune: {
    ...help, ...json,
    output: { type: 'string', short: 'o' },
    train: { type: 'string' },
    dev: { type: 'string' },
    task: { type: 'string' },
    vocab: { type: 'string' },
    teacher: { type: 'string' },
    epochs: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    lr: { type: 'string' },
    'head-lr': { type: 'string' },
    patience: { type: 'string' },
    seed: { type: 'string' },
    threads: { type: 'string' },
    resume: { type: 'boolean' },
  },
};

/** Inclusive ranges of the numeric options (bench's --seq is further bounded by the model's positions). */
export const RANGES = {
  batch: [1, 1024],
  seq: [1, 65536],
  threads: [1, MAX_THREADS],
  runs: [10, 10000],
  vocab: [1, 1_000_000],
  opset: [SYNTH_OPSETS.min, SYNTH_OPSETS.max],
  positions: [1, 65536],
  'type-vocab': [0, 1024],
  labels: [1, 100_000],
  seed: [0, 4294967295],
  steps: [1, 100_000_000],
  'checkpoint-every': [1, 100_000_000],
  'eval-every': [1, 100_000_000],
  epochs: [1, 10_000],
  patience: [0, 10_000],
  'student-only-steps': [0, 100_000_000],
  'calibration-samples': [1, 10_000_000],
} as const satisfies Record<string, readonly [number, number]>;

/** Tokens per bench run (batch × seq) at most. */
export const MAX_BENCH_TOKENS = 65536;

/**
 * A decimal number as typed (digits, an optional fraction and exponent; a leading sign only when
 * `signed`), else NaN: "0x10", "1_000", "Infinity" and "" are not numbers here, unlike Number().
 */
export function decimalNumber(v: string, signed = false): number {
  return (signed ? /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i : /^(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i).test(v) ? Number(v) : NaN;
}

/** A whole-number option within its range, or `dflt` when absent. */
export function intOption(v: string | undefined, name: keyof typeof RANGES, dflt: number): number {
  if (v === undefined) return dflt;
  const [lo, hi] = RANGES[name];
  const fix = `pass --${name} N with N a whole number from ${lo} to ${hi.toLocaleString('en-US')}`;
  if (!/^\d+$/.test(v)) throw new BortError(`--${name} ${quoteName(v)} is not a whole number`, fix);
  const n = Number(v);
  if (n < lo || n > hi) throw new BortError(`--${name} ${v} is out of range`, fix);
  return n;
}

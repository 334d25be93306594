/**
 * î: the latency of an architecture on the native engine at batch × seq, measured on a random-weight
 * model of that shape (synth, same vocabulary, positions and heads as the source): latency does not
 * depend on the weights' values. Median of a few timed runs after warm-up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Arch } from '../bert/model.js';
import { Encoder } from '../runtime/encoder.js';
import { synth } from '../synth/bert.js';

export interface Shape { batch: number; seq: number }

export interface LatencyOptions {
  shape: Shape;
  vocab: number;
  maxPositions: number;
  typeVocab: number;
  mlm: boolean;
  threads?: number;
  /** Timed runs (default 5) after `warmup` (default 2). */
  runs?: number;
  warmup?: number;
  /** Folder for the temporary model. */
  tmpDir: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times an already-loaded encoder at `shape`: median milliseconds of `runs` runs. */
export async function timeEncoder(enc: Encoder, shape: Shape, runs = 5, warmup = 2): Promise<number> {
  const n = shape.batch * shape.seq;
  const vocab = enc.info.vocab;
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = (i * 7919 + 13) % vocab;
  const input = { [enc.inputRoles.ids]: { data: ids, dims: [shape.batch, shape.seq] } };
  for (let i = 0; i < warmup; i++) await enc.run(input);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await enc.run(input);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ms);
}

export async function measureLatency(arch: Arch, o: LatencyOptions): Promise<number> {
  const file = path.join(o.tmpDir, `latency-${arch.layers}-${arch.heads}-${arch.hidden}-${arch.intermediate}.onnx`);
  synth({
    arch, vocab: o.vocab, maxPositions: o.maxPositions, typeVocab: o.typeVocab,
    head: o.mlm ? 'mlm' : 'base', seed: 7, output: file,
  });
  let enc: Encoder | undefined;
  try {
    enc = await Encoder.load(file, { threads: o.threads });
    return await timeEncoder(enc, o.shape, o.runs ?? 5, o.warmup ?? 2);
  } finally {
    enc?.close();
    fs.rmSync(file, { force: true });
  }
}

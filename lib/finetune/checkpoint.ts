/**
 * Resumable fine-tuning state in one file: a JSON header line (the run, the epoch order and cursor,
 * early-stopping state) and then the trainer's parameters, Adam moments and, once a dev evaluation has
 * happened, the best parameters so far, as raw float32. Written to a temporary file beside the target
 * and renamed, so a kill at any moment leaves the previous checkpoint or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';
import type { TrainerState } from '../train/trainer.js';
import type { EpochState } from './class-batches.js';

const MAGIC = 'bort-finetune-checkpoint/1';

export interface FinetuneCheckpoint {
  /** What must match for a resume. */
  run: Record<string, string | number>;
  step: number;
  batches: EpochState;
  /** Dev accuracy after each finished epoch so far. */
  history: number[];
  bestEpoch: number;
  /** Epochs since the best one (early stopping). */
  sinceBest: number;
}

export function writeFinetuneCheckpoint(file: string, header: FinetuneCheckpoint, s: TrainerState, best: Float32Array | undefined): void {
  const arrays = best ? [s.params, s.m, s.v, best] : [s.params, s.m, s.v];
  const head = Buffer.from(JSON.stringify({ magic: MAGIC, ...header, params: s.params.length, arrays: arrays.length }) + '\n', 'utf8');
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, head);
      for (const a of arrays) fs.writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new BortError(`cannot write the checkpoint ${quoteName(file)}: ${(e as Error).message}`, 'check the output folder is writable and has space');
  }
}

export function readFinetuneCheckpoint(file: string): { header: FinetuneCheckpoint; state: TrainerState; best?: Float32Array } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new BortError(`cannot read the checkpoint ${quoteName(file)}: ${(e as Error).message}`, 'start without --resume, or give the checkpoint a run wrote');
  }
  const nl = buf.indexOf(10);
  let h: FinetuneCheckpoint & { magic?: string; params?: number; arrays?: number };
  try {
    h = JSON.parse(buf.subarray(0, nl < 0 ? 0 : nl).toString('utf8'));
  } catch {
    h = {} as FinetuneCheckpoint;
  }
  const n = h.params!, k = h.arrays!;
  if (h.magic !== MAGIC || !Number.isSafeInteger(n) || n < 0 || (k !== 3 && k !== 4) || buf.length !== nl + 1 + 4 * k * n) {
    throw new BortError(`${quoteName(file)} is not a complete fine-tuning checkpoint`, 'start without --resume (the checkpoint is damaged or from another tool)');
  }
  const floats = (i: number) => {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(buf.subarray(nl + 1 + 4 * n * i, nl + 1 + 4 * n * (i + 1)));
    return out;
  };
  return { header: h, state: { step: h.step, params: floats(0), m: floats(1), v: floats(2) }, best: k === 4 ? floats(3) : undefined };
}

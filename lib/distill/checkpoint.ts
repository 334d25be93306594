/**
 * Resumable distillation state in one file: a JSON header line (what the run was, the step, the
 * batches' random state) and then the trainer's parameters and Adam moments as raw float32. Written to
 * a temporary file beside the target and renamed, so a kill at any moment leaves the previous
 * checkpoint or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';
import type { TrainerState } from '../train/trainer.js';
import type { BatchState } from './masked-batches.js';

const MAGIC = 'bort-distill-checkpoint/1';

export interface CheckpointHeader {
  /** What must match for a resume: student file, sizes, options that shape the batches. */
  run: Record<string, string | number>;
  step: number;
  batches: BatchState;
  /** Module replacing: the route generator's state. */
  routes?: number;
  params: number;
}

export function writeCheckpoint(file: string, header: Omit<CheckpointHeader, 'params'>, s: TrainerState): void {
  const head = Buffer.from(JSON.stringify({ magic: MAGIC, ...header, params: s.params.length }) + '\n', 'utf8');
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, head);
      for (const a of [s.params, s.m, s.v]) fs.writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
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

export function readCheckpoint(file: string): { header: CheckpointHeader; state: TrainerState } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new BortError(`cannot read the checkpoint ${quoteName(file)}: ${(e as Error).message}`, 'start without --resume, or give the checkpoint a run wrote');
  }
  const nl = buf.indexOf(10);
  let header: CheckpointHeader & { magic?: string };
  try {
    header = JSON.parse(buf.subarray(0, nl < 0 ? 0 : nl).toString('utf8'));
  } catch {
    header = {} as CheckpointHeader;
  }
  const n = header.params;
  if (header.magic !== MAGIC || !Number.isSafeInteger(n) || n < 0 || buf.length !== nl + 1 + 12 * n) {
    throw new BortError(`${quoteName(file)} is not a complete distillation checkpoint`, 'start without --resume (the checkpoint is damaged or from another tool)');
  }
  const floats = (i: number) => {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(buf.subarray(nl + 1 + 4 * n * i, nl + 1 + 4 * n * (i + 1)));
    return out;
  };
  return { header, state: { step: header.step, params: floats(0), m: floats(1), v: floats(2) } };
}

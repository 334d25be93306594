/**
 * A text task: how one input becomes an encoding, and how one row of the model's outputs becomes a
 * result. The pipeline (lib/tasks/pipeline.ts) batches, pads and runs; tasks only prepare and finish.
 */
import { BortError } from '../errors.js';
import type { Encoding, TextTokenizer } from '../text/tokenizer.js';
import type { Backend, PaddedBatch, RoleOutputs } from './backend.js';

export interface Prepared {
  enc: Encoding;
}

export interface Task<I, P extends Prepared, R> {
  readonly name: string;
  prepare(input: I, index: number): P;
  finish(out: RoleOutputs, row: number, batch: PaddedBatch, p: P): R;
}

export interface TaskContext {
  tokenizer: TextTokenizer;
  backend: Backend;
  /** Cut texts longer than the model allows instead of refusing them. */
  truncate: boolean;
}

/** A non-empty string, or a one-line error naming the input. */
export function textInput(x: unknown, index: number, what = 'text'): string {
  if (typeof x !== 'string') throw new TypeError(`input ${index + 1}: the ${what} must be a string, got ${x === null ? 'null' : typeof x}`);
  if (x.trim() === '') throw new BortError(`input ${index + 1} is empty`, `give a non-empty ${what} (remove empty lines)`);
  return x;
}

/** Encodes one text (or pair) to fit the model, naming the input when it does not. */
export function encodeFor(ctx: TaskContext, index: number, text: string, pair?: string, pairTruncation: 'longest_first' | 'only_second' = 'longest_first'): Encoding {
  try {
    return ctx.tokenizer.encode(text, pair, { maxLength: ctx.backend.maxPositions, truncation: ctx.truncate ? (pair === undefined ? 'longest_first' : pairTruncation) : 'error' });
  } catch (e) {
    if (e instanceof BortError) throw new BortError(`input ${index + 1}: ${e.message.slice(0, e.message.length - e.fix.length - 2)}`, e.fix);
    throw e;
  }
}

/** Refuses a model that lacks an output the task reads. */
export function needOutput(backend: Backend, role: keyof RoleOutputs, task: string, what: string): void {
  if (!backend.roles.has(role)) throw new BortError(`${task} needs ${what}, which this model does not output`, `give a model with ${what}`);
}

/**
 * Classification batches: each example tokenised once (the model's special tokens, pairs as the
 * tokenizer's post-processor lays them out, cut to `seq` tokens longest-text-first), shuffled per epoch
 * by a seeded generator, and padded to the longest sequence of each batch. The order of the current
 * epoch and the cursor in it are the batches' resumable state.
 */
import type { TextTokenizer } from '../text/tokenizer.js';
import { SeededRandom } from '../distill/masked-batches.js';
import type { Example } from './examples.js';

export interface EncodedExample {
  ids: Int32Array;
  types: Int32Array;
  /** Index into the label list. */
  label: number;
}

export interface ClassBatch {
  ids: Int32Array;
  types: Int32Array;
  mask: Int32Array;
  batch: number;
  seq: number;
  classes: Int32Array;
  /** Which examples (indices into the encoded list), in batch order. */
  rows: number[];
}

export function encodeExamples(tok: TextTokenizer, examples: Example[], labels: string[], seq: number): EncodedExample[] {
  const id = new Map(labels.map((l, i) => [l, i]));
  return examples.map((e) => {
    const enc = tok.encode(e.text, e.pair ?? null, { maxLength: seq, truncation: 'longest_first' });
    return { ids: Int32Array.from(enc.ids), types: Int32Array.from(enc.typeIds), label: id.get(e.label) ?? -1 };
  });
}

/** Rows `rows` of `data` as one batch padded (ids `padId`, mask 0, type 0) to its longest sequence. */
export function padBatch(data: EncodedExample[], rows: number[], padId: number): ClassBatch {
  const B = rows.length;
  let S = 1;
  for (const r of rows) S = Math.max(S, data[r].ids.length);
  const ids = new Int32Array(B * S).fill(padId), types = new Int32Array(B * S), mask = new Int32Array(B * S), classes = new Int32Array(B);
  rows.forEach((r, b) => {
    const e = data[r];
    ids.set(e.ids, b * S);
    types.set(e.types, b * S);
    mask.fill(1, b * S, b * S + e.ids.length);
    classes[b] = e.label;
  });
  return { ids, types, mask, batch: B, seq: S, classes, rows };
}

export interface EpochState {
  rng: number;
  epoch: number;
  cursor: number;
  order: number[];
}

/** Shuffled passes over n examples, `batch` at a time (the last batch of an epoch may be smaller). */
export class EpochBatches {
  private readonly rng: SeededRandom;
  private order: number[] = [];
  private epochNo = 0;
  private cursor = 0;

  constructor(private readonly n: number, private readonly batch: number, seed: number) {
    this.rng = new SeededRandom(seed);
    this.shuffle();
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.n / this.batch);
  }

  /** 0-based epoch of the next batch. */
  get epoch(): number {
    return this.epochNo;
  }

  /** The next batch's example indices; ends the epoch (and shuffles the next) when it is the last. */
  next(): { rows: number[]; lastOfEpoch: boolean } {
    const rows = this.order.slice(this.cursor, this.cursor + this.batch);
    this.cursor += rows.length;
    const lastOfEpoch = this.cursor >= this.n;
    if (lastOfEpoch) {
      this.epochNo++;
      this.cursor = 0;
      this.shuffle();
    }
    return { rows, lastOfEpoch };
  }

  get state(): EpochState {
    return { rng: this.rng.state, epoch: this.epochNo, cursor: this.cursor, order: [...this.order] };
  }

  restore(s: EpochState): void {
    this.rng.state = s.rng;
    this.epochNo = s.epoch;
    this.cursor = s.cursor;
    this.order = [...s.order];
  }

  private shuffle(): void {
    const o = Array.from({ length: this.n }, (_, i) => i);
    for (let i = o.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      [o[i], o[j]] = [o[j], o[i]];
    }
    this.order = o;
  }
}

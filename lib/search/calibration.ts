/**
 * Calibration text for data-driven scoring and the zero-shot error ê: the corpus is tokenized, its
 * tokens cut into sequences of one length ([CLS] … [SEP]), and ~15% of each sequence's inner positions
 * replaced by [MASK] (deterministic: the same corpus gives the same set). Models are compared by their
 * masked-LM distributions at those positions.
 */
import * as fs from 'node:fs';
import { BortError, quoteName } from '../errors.js';
import { TextTokenizer } from '../text/tokenizer.js';

export interface CalibrationSet {
  /** Tokens per sequence (special tokens included). */
  seq: number;
  /** Token ids with [MASK] at the masked positions, one Int32Array of `seq` per sequence. */
  inputs: Int32Array[];
  /** Masked positions of each sequence, ascending. */
  masked: number[][];
  /** The original token at each masked position (parallel to `masked`). */
  labels: number[][];
  maskId: number;
  /** Total masked positions. */
  positions: number;
}

export interface CalibrationOptions {
  /** Sequences to build (default 64). */
  sequences?: number;
  /** Tokens per sequence (default 64, at most the model's positions). */
  seqLength?: number;
  /** The model's vocabulary size: every token id must be below it. */
  vocab: number;
  /** The model's positions. */
  maxPositions: number;
}

/** Deterministic uniform numbers in [0, 1) (an LCG; enough to spread masks). */
function lcg(seed: number): () => number {
  let s = (seed * 2654435761 + 12345) >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function readCorpus(file: string): string[] {
  let text: string;
  try {
    if (!fs.statSync(file).isFile()) throw new BortError(`--corpus ${quoteName(file)} is not a file`, 'give a text file, one paragraph a line');
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof BortError) throw e;
    throw new BortError(`cannot read --corpus ${quoteName(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, 'give a text file, one paragraph a line');
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (!lines.length) throw new BortError(`--corpus ${quoteName(file)} has no text`, 'give a text file, one paragraph a line');
  return lines;
}

export function buildCalibration(lines: string[], tokenizer: TextTokenizer, opts: CalibrationOptions): CalibrationSet {
  const sequences = opts.sequences ?? 64;
  const seq = Math.min(opts.seqLength ?? 64, opts.maxPositions);
  if (seq < 3) throw new BortError(`calibration sequences of ${seq} tokens are too short`, 'use a model with at least 3 positions');
  const mask = tokenizer.mask;
  if (!mask) throw new BortError(`the tokenizer ${quoteName(tokenizer.source)} has no mask token`, 'pass --vocab with the masked-LM\'s own vocab.txt or tokenizer.json');
  const specials = tokenizer.encode('').ids;
  if (specials.length !== 2) throw new BortError(`the tokenizer ${quoteName(tokenizer.source)} does not wrap a text in two special tokens`, 'use a BERT-style tokenizer ([CLS] text [SEP])');
  const inner = seq - 2;
  const need = sequences * inner;
  // walk the corpus with a stride so that the calibration text comes from all of it
  const stride = Math.max(1, Math.floor(lines.length / Math.max(1, Math.ceil(need / 16))));
  const stream: number[] = [];
  for (let start = 0; start < stride && stream.length < need; start++) {
    for (let i = start; i < lines.length && stream.length < need; i += stride) {
      stream.push(...tokenizer.encode(lines[i], null, { addSpecialTokens: false }).ids);
    }
  }
  const count = Math.floor(Math.min(stream.length, need) / inner);
  if (count < 1) throw new BortError(`the corpus has ${stream.length} tokens, fewer than one sequence of ${inner}`, 'give more calibration text');
  for (const id of [...specials, mask.id, ...stream.slice(0, count * inner)]) {
    if (id >= opts.vocab) throw new BortError(`the tokenizer gives token id ${id} but the model has ${opts.vocab} words`, 'pass --vocab with the model\'s own vocabulary');
  }
  const inputs: Int32Array[] = [], masked: number[][] = [], labels: number[][] = [];
  let positions = 0;
  for (let r = 0; r < count; r++) {
    const ids = new Int32Array(seq);
    ids[0] = specials[0];
    ids[seq - 1] = specials[1];
    for (let t = 0; t < inner; t++) ids[t + 1] = stream[r * inner + t];
    const rand = lcg(r + 1);
    const want = Math.max(1, Math.round(inner * 0.15));
    const chosen = new Set<number>();
    while (chosen.size < want) chosen.add(1 + Math.floor(rand() * inner));
    const pos = [...chosen].sort((a, b) => a - b);
    labels.push(pos.map((p) => ids[p]));
    for (const p of pos) ids[p] = mask.id;
    inputs.push(ids);
    masked.push(pos);
    positions += pos.length;
  }
  return { seq, inputs, masked, labels, maskId: mask.id, positions };
}

/**
 * Masked-LM batches from raw text: paragraphs tokenised once, shuffled per epoch, joined by [SEP] into
 * one token stream that is cut into [CLS] … [SEP] rows of `seq` tokens (no padding), and 15% of the
 * text tokens chosen as loss positions with BERT's 80/10/10 rule ([MASK] / a random word / unchanged).
 * Everything random comes from one seeded generator whose state, with the stream cursor, is the
 * batches' resumable state.
 */
import { BortError } from '../errors.js';
import type { TextTokenizer } from '../text/tokenizer.js';

/** xorshift32: small, fast, and its whole state is one number (checkpoints store it). */
export class SeededRandom {
  private s: number;
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
  }
  get state(): number {
    return this.s;
  }
  set state(v: number) {
    this.s = (v >>> 0) || 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

export interface MaskedBatch {
  ids: Int32Array;
  types: Int32Array;
  mask: Int32Array;
  batch: number;
  seq: number;
  /** Token indices (b·seq + s) of the loss positions. */
  positions: Int32Array;
  /** The original token at each loss position. */
  labels: Int32Array;
}

export interface MaskedBatchOptions {
  batch: number;
  seq: number;
  /** Share of text tokens that become loss positions (default 0.15). */
  maskRate?: number;
  seed?: number;
}

export interface BatchState {
  rng: number;
  epoch: number;
  cursor: number;
}

export class MaskedLmBatches {
  private readonly paragraphs: Int32Array[];
  private readonly rng: SeededRandom;
  private stream: Int32Array = new Int32Array(0);
  private epoch = -1;
  private cursor = 0;
  private readonly cls: number;
  private readonly sep: number;
  private readonly maskId: number;
  private readonly special: Set<number>;
  /** Text tokens in the corpus (after tokenisation). */
  readonly tokens: number;

  constructor(
    private readonly tok: TextTokenizer,
    text: string,
    private readonly o: Required<MaskedBatchOptions>,
  ) {
    const cls = tok.tokenToId('[CLS]');
    const sep = tok.tokenToId('[SEP]');
    const mask = tok.mask?.id;
    if (cls === undefined || sep === undefined || mask === undefined) {
      throw new BortError('the vocabulary has no [CLS], [SEP] or [MASK] token', 'give the BERT vocabulary the teacher was trained with');
    }
    this.cls = cls;
    this.sep = sep;
    this.maskId = mask;
    this.special = new Set([cls, sep, mask, tok.padId]);
    this.paragraphs = [];
    let n = 0;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const ids = tok.encode(line, null, { addSpecialTokens: false }).ids;
      if (ids.length === 0) continue;
      this.paragraphs.push(Int32Array.from(ids));
      n += ids.length;
    }
    if (n === 0) throw new BortError('the corpus has no text', 'give a text file with one paragraph a line');
    this.tokens = n;
    this.rng = new SeededRandom(o.seed);
  }

  static create(tok: TextTokenizer, text: string, o: MaskedBatchOptions): MaskedLmBatches {
    return new MaskedLmBatches(tok, text, { maskRate: 0.15, seed: 1, ...o });
  }

  get state(): BatchState {
    return { rng: this.rng.state, epoch: this.epoch, cursor: this.cursor };
  }

  /** Continues exactly where a run with this state stopped (same corpus, vocabulary and options). */
  restore(s: BatchState): void {
    if (s.epoch >= 0) this.buildEpoch(s.epoch);
    this.epoch = s.epoch;
    this.cursor = s.cursor;
    this.rng.state = s.rng;
  }

  /** The epoch's stream: paragraphs in an order drawn from (seed, epoch), each followed by [SEP]. */
  private buildEpoch(e: number): void {
    const order = this.paragraphs.map((_, i) => i);
    const r = new SeededRandom((this.o.seed * 7919 + e * 104729 + 1) >>> 0);
    for (let i = order.length - 1; i > 0; i--) {
      const j = r.below(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const total = this.paragraphs.reduce((s, p) => s + p.length + 1, 0);
    const st = new Int32Array(total);
    let at = 0;
    for (const i of order) {
      st.set(this.paragraphs[i], at);
      at += this.paragraphs[i].length;
      st[at++] = this.sep;
    }
    this.stream = st;
  }

  private take(n: number, out: Int32Array, at: number): void {
    for (let i = 0; i < n; i++) {
      if (this.epoch < 0 || this.cursor >= this.stream.length) {
        this.epoch += 1;
        this.buildEpoch(this.epoch);
        this.cursor = 0;
      }
      out[at + i] = this.stream[this.cursor++];
    }
  }

  next(): MaskedBatch {
    const { batch: B, seq: S, maskRate } = this.o;
    const ids = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      ids[b * S] = this.cls;
      this.take(S - 2, ids, b * S + 1);
      ids[b * S + S - 1] = this.sep;
    }
    const positions: number[] = [];
    const labels: number[] = [];
    const vocab = this.tok.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      if (this.special.has(ids[i]) || this.rng.next() >= maskRate) continue;
      positions.push(i);
      labels.push(ids[i]);
      const r = this.rng.next();
      if (r < 0.8) ids[i] = this.maskId;
      else if (r < 0.9) {
        let w = this.rng.below(vocab);
        while (this.special.has(w)) w = this.rng.below(vocab);
        ids[i] = w;
      }
    }
    if (positions.length === 0) {
      // a batch always carries a loss: its first text token
      const i = ids.findIndex((v) => !this.special.has(v));
      positions.push(i);
      labels.push(ids[i]);
      ids[i] = this.maskId;
    }
    return {
      ids, types: new Int32Array(B * S), mask: new Int32Array(B * S).fill(1), batch: B, seq: S,
      positions: Int32Array.from(positions), labels: Int32Array.from(labels),
    };
  }
}

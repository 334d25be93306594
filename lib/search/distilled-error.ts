/**
 * The paper's ê with n > 0: each candidate is distilled from the maximum point T for n steps (the loss
 * `distill` defaults to at the masked positions: T²·KL(T_τ ‖ candidate_τ), τ = 2, no true-word term —
 * the Bort recipe's 0.1 · CE(true word) made students learn the corpus instead of the teacher,
 * BENCHMARKS.md — AdamW, warm-up 5% then linear decay, on the native training engine) before its error
 * against T is measured.
 *
 * T's logits for the training batches are computed once (`teacherBatches`) and reused by every
 * candidate, so every candidate sees the same data and T runs once per batch, not once per candidate.
 * They are kept in memory: positions × vocab × 4 bytes per batch; when n batches would exceed the
 * budget, the first that fit are cycled.
 */
import { loadModel, saveModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { DEFAULT_KL_WEIGHT, DEFAULT_MLM_WEIGHT } from '../distill/distill.js';
import { MaskedLmBatches, type MaskedBatch } from '../distill/masked-batches.js';
import type { Encoder } from '../runtime/encoder.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { Trainer } from '../train/trainer.js';

export interface TeacherBatch extends MaskedBatch {
  /** T's logits at `positions`, positions × vocab. */
  teacher: Float32Array;
}

export interface TeacherBatches {
  batches: TeacherBatch[];
  /** Bytes of T's logits held. */
  bytes: number;
}

export interface TrainSettings {
  /** Sequences per step (default 8) of `seq` tokens. */
  batch: number;
  seq: number;
  /** Peak learning rate (default 5e-4, as distill). */
  lr: number;
  /** Most bytes of T's logits kept in memory (default 1 GiB). */
  budgetBytes: number;
  seed: number;
}

export const DEFAULT_TRAIN: Omit<TrainSettings, 'seq'> = { batch: 8, lr: 5e-4, budgetBytes: 1 << 30, seed: 1 };

/** The distillation loss of ê's n steps: `distill`'s defaults (recorded in search.json's settings). */
export const SEARCH_LOSS = { mlmWeight: DEFAULT_MLM_WEIGHT, klWeight: DEFAULT_KL_WEIGHT, temperature: 2 } as const;

/** Masked-LM batches from `lines` and T's logits at their loss positions, for `steps` steps (cycled past the budget). */
export async function teacherBatches(t: Encoder, tokenizer: TextTokenizer, lines: string[], steps: number, s: TrainSettings): Promise<TeacherBatches> {
  const source = MaskedLmBatches.create(tokenizer, lines.join('\n'), { batch: s.batch, seq: s.seq, seed: s.seed });
  const V = t.info.vocab;
  const roles = t.inputRoles;
  const out: TeacherBatch[] = [];
  let bytes = 0;
  for (let i = 0; i < steps; i++) {
    const b = source.next();
    const need = b.positions.length * V * 4;
    if (out.length > 0 && bytes + need > s.budgetBytes) break;
    const dims = [b.batch, b.seq];
    const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [roles.ids]: { data: b.ids, dims } };
    if (roles.mask) inputs[roles.mask] = { data: b.mask, dims };
    if (roles.tokenTypes) inputs[roles.tokenTypes] = { data: b.types, dims };
    const res = await t.run(inputs);
    const logits = Object.values(res).find((x) => x.dims.length === 3 && x.dims[2] === V)!;
    const teacher = new Float32Array(b.positions.length * V);
    b.positions.forEach((p, k) => teacher.set(logits.data.subarray(p * V, (p + 1) * V), k * V));
    out.push({ ...b, teacher });
    bytes += need;
  }
  return { batches: out, bytes };
}

export interface DistilledCandidate {
  /** Loss of the first and the last step. */
  firstLoss: number;
  lastLoss: number;
}

/**
 * Trains the extracted candidate in `file` for `steps` steps on `tb` (batch i % tb.length at step i)
 * and writes the trained model to `output`. Undefined when `signal` stopped it (nothing written).
 */
export async function distillCandidate(file: string, output: string, tb: TeacherBatches, steps: number, s: TrainSettings, opts: { threads?: number; signal?: AbortSignal } = {}): Promise<DistilledCandidate | undefined> {
  const loaded = loadModel(file);
  const model = recognize(loaded.model);
  const trainer = Trainer.fromModel(model, { lr: s.lr, warmupSteps: Math.round(0.05 * steps), totalSteps: steps, threads: opts.threads });
  let firstLoss = NaN, lastLoss = NaN;
  try {
    for (let i = 0; i < steps; i++) {
      if (opts.signal?.aborted) return undefined;
      const b = tb.batches[i % tb.batches.length];
      const r = await trainer.step({ ...b, ...SEARCH_LOSS });
      if (i === 0) firstLoss = r.loss;
      lastLoss = r.loss;
    }
    trainer.writeInto();
  } finally {
    trainer.close();
  }
  saveModel(loaded.model, output, { protect: loaded.sources });
  return { firstLoss, lastLoss };
}

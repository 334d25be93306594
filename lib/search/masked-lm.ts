/**
 * Masked-LM distributions at the calibration set's masked positions, from a model on the native
 * engine, and how a candidate's compare with a reference's: cross-entropy H(p_ref, q) (the paper's ê),
 * KL(p_ref ‖ q) and top-1 agreement, in float64 with max-subtracted log-softmax.
 */
import { BortError } from '../errors.js';
import type { Encoder } from '../runtime/encoder.js';
import type { CalibrationSet } from './calibration.js';

/** Log-probabilities at every masked position, in calibration order. */
export type MaskedLogProbs = Float64Array[];

export interface Fidelity {
  /** Mean cross-entropy −Σ p_ref log q, nats. */
  crossEntropy: number;
  /** Mean KL(p_ref ‖ q), nats. */
  kl: number;
  /** Fraction of positions whose arg-max equals the reference's. */
  agreement: number;
}

/** Stable float64 log-softmax of one logits row. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

/** Index of the largest value; the first one on ties. */
export function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/** Name of the encoder's masked-LM output; a BortError when it has none. */
function mlmOutput(enc: Encoder, what: string): string {
  if (!enc.info.mlm) throw new BortError(`${what} has no masked-LM head`, 'search and --strategy data measure error by masked-word prediction: give a masked-LM model (output logits [batch, seq, vocab])');
  return enc.outputNames.find((n) => n === 'logits') ?? enc.outputNames[0];
}

/** Runs `enc` over the calibration set, `batch` sequences a run, and calls `onRow` for each masked position. */
export async function forEachMaskedRow(enc: Encoder, cal: CalibrationSet, what: string, onRow: (index: number, logits: Float32Array) => void, batch = 8): Promise<void> {
  const out = mlmOutput(enc, what);
  const idName = enc.inputRoles.ids;
  let index = 0;
  for (let s = 0; s < cal.inputs.length; s += batch) {
    const rows = cal.inputs.slice(s, s + batch);
    const ids = new Int32Array(rows.length * cal.seq);
    rows.forEach((r, i) => ids.set(r, i * cal.seq));
    const res = await enc.run({ [idName]: { data: ids, dims: [rows.length, cal.seq] } });
    const logits = res[out];
    const vocab = logits.dims[2];
    if (logits.dims.length !== 3 || vocab !== enc.info.vocab) throw new BortError(`${what}: output ${out} has shape [${logits.dims.join(', ')}], not [batch, seq, vocab]`, 'give a masked-LM model');
    rows.forEach((_, i) => {
      for (const p of cal.masked[s + i]) {
        const start = (i * cal.seq + p) * vocab;
        onRow(index++, logits.data.subarray(start, start + vocab));
      }
    });
  }
}

/** The reference distributions (the maximum point T, or the source). */
export async function referenceLogProbs(enc: Encoder, cal: CalibrationSet, what: string): Promise<MaskedLogProbs> {
  const out: MaskedLogProbs = [];
  await forEachMaskedRow(enc, cal, what, (i, row) => { out[i] = logSoftmax(row); });
  return out;
}

/** How `enc`'s distributions compare with the reference's. */
export async function fidelity(enc: Encoder, cal: CalibrationSet, ref: MaskedLogProbs, what: string): Promise<Fidelity> {
  let ce = 0, kl = 0, agree = 0, n = 0;
  await forEachMaskedRow(enc, cal, what, (i, row) => {
    const q = logSoftmax(row);
    const p = ref[i];
    let c = 0, h = 0;
    for (let v = 0; v < p.length; v++) {
      const pv = Math.exp(p[v]);
      if (pv > 0) { c -= pv * q[v]; h -= pv * p[v]; }
    }
    ce += c;
    kl += c - h;
    if (argmax(q) === argmax(p)) agree++;
    n++;
  });
  return { crossEntropy: ce / n, kl: kl / n, agreement: agree / n };
}

/**
 * Gradient (first-order Taylor, "head mask") importance of heads and FFN neurons, measured with the
 * training engine on the source model itself over calibration batches (Michel et al. 2019, "Are
 * Sixteen Heads Really Better than One?"; Molchanov et al. 2019 for neurons).
 *
 * A gate ξ_h = 1 on head h's context (the rows of W_O that read it) has ∂L/∂ξ_h = Σ W_O[rows of h] ⊙
 * ∂L/∂W_O[rows of h]; likewise a gate on FFN neuron n has ∂L/∂ξ_n = Σ W_out[row n] ⊙ ∂L/∂W_out[row n].
 * A part's score is Σ over batches of |∂L/∂ξ|: the first-order change of the loss when the part is
 * removed. The loss is the masked-LM cross-entropy at the calibration set's masked positions against
 * `labels`: 'true' (the words that were masked) or 'own' (the model's own arg-max, a pseudo-label; KL
 * to the model's own distribution is not offered: its gradient at the model itself is zero).
 */
import type { BertModel } from '../bert/model.js';
import { Trainer } from '../train/trainer.js';
import type { CalibrationSet } from '../search/calibration.js';

export interface GradientImportance {
  /** [layer][head] Σ_batches |∂L/∂ξ_head|. */
  heads: number[][];
  /** [layer][neuron] Σ_batches |∂L/∂ξ_neuron|. */
  neurons: number[][];
  /** Mean loss over the batches (nats). */
  loss: number;
  batches: number;
}

export interface GradientImportanceOptions {
  /** Labels of the loss: the masked words ('true', default) or the model's own arg-max ('own'). */
  labels?: 'true' | 'own';
  /** The model's own arg-max at every masked position, in calibration order (needed for 'own'). */
  ownArgmax?: Int32Array;
  /** Calibration sequences per gradient pass (default 8). */
  batch?: number;
  threads?: number;
}

/** Σ over contiguous row blocks of w ⊙ g: one sum per block of `rowLen · rowsPerBlock` values. */
function blockDots(w: Float32Array, g: Float32Array, blockLen: number): Float64Array {
  const n = w.length / blockLen;
  const out = new Float64Array(n);
  for (let b = 0; b < n; b++) {
    let s = 0;
    const o = b * blockLen;
    for (let i = 0; i < blockLen; i++) s += w[o + i] * g[o + i];
    out[b] = s;
  }
  return out;
}

/**
 * Taylor head and neuron importance of `model` (a recognised BERT with its masked-LM head) on `cal`.
 * The model's weights are not changed (gradients only, no update).
 */
export async function gradientImportance(model: BertModel, cal: CalibrationSet, opts: GradientImportanceOptions = {}): Promise<GradientImportance> {
  const mode = opts.labels ?? 'true';
  if (mode === 'own' && !opts.ownArgmax) throw new TypeError("gradientImportance: labels 'own' needs ownArgmax");
  const B = opts.batch ?? 8;
  const D = model.arch.layers, A = model.arch.heads, I = model.arch.intermediate, H = model.arch.hidden;
  const d = model.attentionWidth / A;
  const heads = Array.from({ length: D }, () => new Array<number>(A).fill(0));
  const neurons = Array.from({ length: D }, () => new Array<number>(I).fill(0));
  const trainer = Trainer.fromModel(model, { threads: opts.threads });
  let loss = 0, batches = 0, index = 0;
  try {
    for (let s = 0; s < cal.inputs.length; s += B) {
      const rows = cal.inputs.slice(s, s + B);
      const ids = new Int32Array(rows.length * cal.seq);
      rows.forEach((r, i) => ids.set(r, i * cal.seq));
      const positions: number[] = [], labels: number[] = [];
      rows.forEach((_, i) => {
        cal.masked[s + i].forEach((p, j) => {
          positions.push(i * cal.seq + p);
          labels.push(mode === 'own' ? opts.ownArgmax![index] : cal.labels[s + i][j]);
          index++;
        });
      });
      const r = await trainer.gradients({
        ids, mask: new Int32Array(ids.length).fill(1), types: new Int32Array(ids.length), batch: rows.length, seq: cal.seq,
        positions: Int32Array.from(positions), labels: Int32Array.from(labels), mlmWeight: 1, klWeight: 0,
      });
      loss += r.mlm;
      batches++;
      for (let l = 0; l < D; l++) {
        const hs = blockDots(trainer.weight(`o_w.${l}`), trainer.grad(`o_w.${l}`), d * H);
        for (let h = 0; h < A; h++) heads[l][h] += Math.abs(hs[h]);
        const ns = blockDots(trainer.weight(`ffn_out_w.${l}`), trainer.grad(`ffn_out_w.${l}`), H);
        for (let n = 0; n < I; n++) neurons[l][n] += Math.abs(ns[n]);
      }
    }
  } finally {
    trainer.close();
  }
  return { heads, neurons, loss: loss / Math.max(1, batches), batches };
}

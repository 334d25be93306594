/**
 * Intermediate-layer distillation terms: which teacher layer each student layer learns from, and the
 * teacher's per-layer arrays of a batch gathered in that order for the trainer (lib/train/trainer.ts,
 * TrainBatch.match). The terms themselves are computed natively (native/src/train/trainer.h):
 * - hidden states (TinyBERT): MSE between a student layer's output, through a learned projection when
 *   the hidden sizes differ, and its teacher layer's output;
 * - attention maps (in the manner of MiniLM, averaged over heads so head counts may differ):
 *   KL(teacher ‖ student) of each query row's attention distribution.
 */
import { BortError } from '../errors.js';

export interface IntermediateLoss {
  /** Weight of the hidden-state MSE (0 = off). */
  hiddenWeight: number;
  /** Weight of the attention-map KL (0 = off). */
  attentionWeight: number;
  /** teacherLayer[i]: the teacher layer (0-based) student layer i learns from. */
  teacherLayer: number[];
  /** The route positions the terms pair, 0 .. student layers − 1. */
  match: Int32Array;
}

/**
 * The uniform map of TinyBERT: student layer i (0-based, of S) learns from teacher layer
 * round((i + 1) · T / S) − 1, so the last student layer learns from the last teacher layer.
 */
export function pairLayers(teacherLayers: number, studentLayers: number): number[] {
  if (studentLayers > teacherLayers) {
    throw new BortError(`the student has ${studentLayers} layers and the teacher only ${teacherLayers}: each student layer learns from a distinct teacher layer`,
      'leave --hidden-weight and --attention-weight out, or distil a student with at most as many layers as the teacher');
  }
  return Array.from({ length: studentLayers }, (_, i) => Math.round(((i + 1) * teacherLayers) / studentLayers) - 1);
}

/** The intermediate terms of a run, checked (BortError), or undefined when both weights are 0. */
export function intermediateLoss(hiddenWeight: number | undefined, attentionWeight: number | undefined, teacherLayers: number, studentLayers: number): IntermediateLoss | undefined {
  const hw = hiddenWeight ?? 0, aw = attentionWeight ?? 0;
  for (const [v, flag] of [[hw, '--hidden-weight'], [aw, '--attention-weight']] as const) {
    if (!(Number.isFinite(v) && v >= 0 && v <= 1e6)) throw new BortError(`${flag} ${v} is not a loss weight`, `pass ${flag} w with w a finite number ≥ 0 (default 0: the term is off)`);
  }
  if (hw === 0 && aw === 0) return undefined;
  const teacherLayer = pairLayers(teacherLayers, studentLayers);
  return { hiddenWeight: hw, attentionWeight: aw, teacherLayer, match: Int32Array.from(teacherLayer, (_, i) => i) };
}

/**
 * Entries `layers` of an array [teacher layers, per] (per = the floats of one layer for the batch),
 * concatenated in that order.
 */
export function gatherLayers(all: Float32Array, per: number, layers: number[]): Float32Array {
  const out = new Float32Array(layers.length * per);
  layers.forEach((l, i) => {
    if ((l + 1) * per > all.length) throw new RangeError(`layer ${l} is outside the teacher's ${all.length / per} layers`);
    out.set(all.subarray(l * per, (l + 1) * per), i * per);
  });
  return out;
}

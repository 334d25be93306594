/**
 * BERT-of-Theseus module replacing (Xu et al. 2020): the teacher's D_t layers are cut into D_s groups
 * of consecutive layers (the predecessors), one per student layer (its successor). At each update of
 * the replacing phase every group runs as its successor with probability p(t), drawn independently per
 * group from a seeded generator (its state goes into checkpoints), and as its frozen teacher layers
 * otherwise; p rises on a schedule to 1 at the last replacing update, after which the student runs
 * alone. This file holds the grouping, the schedule and the route drawing; lib/distill/distill.ts runs them.
 */
import { BortError } from '../errors.js';
import { SeededRandom } from './masked-batches.js';

export type ReplaceSchedule = 'constant' | 'linear' | 'curriculum';
export const REPLACE_SCHEDULES: readonly ReplaceSchedule[] = ['constant', 'linear', 'curriculum'];

export interface ReplacementSchedule {
  schedule: ReplaceSchedule;
  /** p for `constant`; the starting rate b for `linear` and `curriculum`. In (0, 1]. */
  rate: number;
  /** Updates 1 … replacingSteps mix teacher and student layers; later ones run the student alone. */
  replacingSteps: number;
}

/**
 * The replacement probability of update t (1-based), with R = replacingSteps, b = rate:
 * - constant: b for t ≤ R;
 * - linear (the paper's curriculum replacement): min(1, b + k·t), k = (1 − b) / R, so p(R) = 1;
 * - curriculum (constant, then the curriculum): b for t ≤ C = ⌊R/2⌋, then min(1, b + k·(t − C)),
 *   k = (1 − b) / (R − C), so p(R) = 1;
 * and 1 for every t > R (the student alone).
 */
export function replaceRate(s: ReplacementSchedule, t: number): number {
  const R = s.replacingSteps, b = s.rate;
  if (t > R) return 1;
  if (s.schedule === 'constant') return b;
  if (s.schedule === 'linear') return Math.min(1, b + ((1 - b) / R) * t);
  const C = Math.floor(R / 2);
  return t <= C ? b : Math.min(1, b + ((1 - b) / (R - C)) * (t - C));
}

/** Teacher layer ranges [start, end) per student layer, as even as possible, the longer groups first. */
export function layerGroups(teacherLayers: number, studentLayers: number): [number, number][] {
  if (studentLayers > teacherLayers) {
    throw new BortError(`the student has ${studentLayers} layers and the teacher only ${teacherLayers}: each student layer replaces a group of teacher layers`,
      `extract a student with at most ${teacherLayers} layers, or distil with --method kd`);
  }
  const base = Math.floor(teacherLayers / studentLayers), extra = teacherLayers % studentLayers;
  const out: [number, number][] = [];
  let at = 0;
  for (let g = 0; g < studentLayers; g++) {
    const n = base + (g < extra ? 1 : 0);
    out.push([at, at + n]);
    at += n;
  }
  return out;
}

/**
 * Draws routes for the trainer's layer stack (student layers 0 … D_s−1, then teacher layer j at
 * D_s + j): one uniform draw per group per update, in group order, replaced when it falls below p.
 */
export class RouteSampler {
  private readonly rng: SeededRandom;

  constructor(private readonly groups: [number, number][], seed: number) {
    this.rng = new SeededRandom(seed);
  }

  get state(): number {
    return this.rng.state;
  }

  set state(v: number) {
    this.rng.state = v;
  }

  /** The route of one update at replacement probability p, and how many groups ran their successor. */
  next(p: number): { route: Int32Array; replaced: number } {
    const Ds = this.groups.length;
    const route: number[] = [];
    let replaced = 0;
    this.groups.forEach(([a, b], g) => {
      if (this.rng.next() < p) {
        route.push(g);
        replaced++;
      } else {
        for (let j = a; j < b; j++) route.push(Ds + j);
      }
    });
    return { route: Int32Array.from(route), replaced };
  }
}

/** N(0, std²) samples from a seeded generator (Box–Muller), for re-initialising successor layers. */
export function gaussian(rng: SeededRandom, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.next(), v = rng.next();
    const r = std * Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

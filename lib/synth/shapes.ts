/**
 * Shape arithmetic as PyTorch exports write it: a dimension read back from a tensor at run time, and
 * the head-split reshape ([B, S, A, d] from B and S read at run time, or one [0, 0, A, d] constant).
 */
import type { GraphBuilder } from './builder.js';

/** Dimension `axis` of `t` as a 1-element int64 tensor: Unsqueeze(Gather(Shape(t), axis)). */
export function dimOf(g: GraphBuilder, t: string, axis: number): string {
  return g.unsqueeze(g.node('Gather', [g.node('Shape', [t]), g.constInt([axis], true)], { axis: 0 }), [0]);
}

/** Reshape [B, S, ...] to [B, S, ...tail]. */
export function reshapeTo(g: GraphBuilder, t: string, tail: number[], form: 'concat' | 'constant'): string {
  if (form === 'constant') return g.node('Reshape', [t, g.constInt([0, 0, ...tail])]);
  return g.node('Reshape', [t, g.node('Concat', [dimOf(g, t, 0), dimOf(g, t, 1), ...tail.map((v) => g.constInt([v]))], { axis: 0 })]);
}

/**
 * Pareto dominance over (î, p̂, ê), all minimised: a point dominates another when it is no worse in
 * every objective and strictly better in at least one. The front is the set of points nothing
 * dominates.
 */
import type { Objectives } from './w-coefficient.js';

export function dominates(a: Objectives, b: Objectives): boolean {
  const noWorse = a.params <= b.params && a.latencyMs <= b.latencyMs && a.error <= b.error;
  const better = a.params < b.params || a.latencyMs < b.latencyMs || a.error < b.error;
  return noWorse && better;
}

/** For each point, whether it is on the front (O(n²), fine for thousands of candidates). */
export function paretoFlags(points: Objectives[]): boolean[] {
  return points.map((p, i) => !points.some((q, j) => j !== i && dominates(q, p)));
}

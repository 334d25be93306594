/**
 * The W-coefficient: one number per candidate that scalarises its three surrogates against the
 * maximum point T of the search space. Here W(ξ) = (p̂(T)/p̂(ξ)) · (î(T)/î(ξ)) · (ê(T)/ê(ξ)): the product
 * of how many times smaller, faster and more accurate than T the candidate is (T itself has W = 1,
 * larger is better). Every factor is strictly decreasing in its objective, so if ξ' dominates ξ then
 * W(ξ') > W(ξ), and the candidate with the largest W is always on the Pareto front (README: where
 * this departs from the papers).
 */
export interface Objectives {
  /** p̂: parameters. */
  params: number;
  /** î: latency in milliseconds. */
  latencyMs: number;
  /** ê: error (cross-entropy against T), > 0. */
  error: number;
}

export function wCoefficient(x: Objectives, t: Objectives): number {
  for (const [k, v] of Object.entries(x)) {
    if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`wCoefficient: ${k} must be a positive finite number, got ${v}`);
  }
  for (const [k, v] of Object.entries(t)) {
    if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`wCoefficient: the maximum point's ${k} must be a positive finite number, got ${v}`);
  }
  return (t.params / x.params) * (t.latencyMs / x.latencyMs) * (t.error / x.error);
}

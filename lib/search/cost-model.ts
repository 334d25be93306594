/**
 * A latency cost model: î ≈ a + b · FLOPs, fitted by least squares to measured candidates, with its
 * error on them (in-sample) and leave-one-out (each point predicted by a fit to the others), so a
 * report can say how far to trust the predictions for candidates that were not timed.
 */
export interface CostModel {
  /** Milliseconds of fixed cost. */
  interceptMs: number;
  /** Milliseconds per GFLOP. */
  msPerGflop: number;
  /** Points it was fitted to. */
  points: number;
  /** Mean and largest |predicted − measured| / measured on the fitted points. */
  meanRelError: number;
  maxRelError: number;
  /** The same, leave-one-out (NaN with fewer than 3 points). */
  looMeanRelError: number;
  looMaxRelError: number;
}

export interface LatencyPoint { gflop: number; ms: number }

function fit(points: LatencyPoint[]): { a: number; b: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.gflop, 0) / n;
  const my = points.reduce((s, p) => s + p.ms, 0) / n;
  let sxx = 0, sxy = 0;
  for (const p of points) {
    sxx += (p.gflop - mx) ** 2;
    sxy += (p.gflop - mx) * (p.ms - my);
  }
  const b = sxx > 0 ? sxy / sxx : 0;
  return { a: my - b * mx, b };
}

export function predictMs(m: Pick<CostModel, 'interceptMs' | 'msPerGflop'>, gflop: number): number {
  return m.interceptMs + m.msPerGflop * gflop;
}

export function fitCostModel(points: LatencyPoint[]): CostModel {
  if (points.length < 2) throw new RangeError(`a cost model needs at least 2 measured points, got ${points.length}`);
  const { a, b } = fit(points);
  const rel = points.map((p) => Math.abs(a + b * p.gflop - p.ms) / p.ms);
  const loo = points.length < 3 ? [NaN] : points.map((p, i) => {
    const f = fit(points.filter((_, j) => j !== i));
    return Math.abs(f.a + f.b * p.gflop - p.ms) / p.ms;
  });
  return {
    interceptMs: a, msPerGflop: b, points: points.length,
    meanRelError: rel.reduce((s, x) => s + x, 0) / rel.length, maxRelError: Math.max(...rel),
    looMeanRelError: loo.reduce((s, x) => s + x, 0) / loo.length, looMaxRelError: Math.max(...loo),
  };
}

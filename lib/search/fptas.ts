/**
 * The selection step of de Wynter's approximation algorithm, as this package implements it: with
 * p̂ and î known for every candidate (cheap), sort Ξ by p̂ (ties by î) and cut it into consecutive
 * intervals of ε candidates; only one candidate per interval — the fastest — pays for ê (extraction,
 * n steps of training, evaluation); the answer is the evaluated candidate with the largest
 * W-coefficient. ε = 1 evaluates every candidate (exact over Ξ); larger ε trades the guarantee for
 * |Ξ|/ε evaluations.
 */
export interface Sized {
  params: number;
  latencyMs: number;
}

/** Indices of the candidates to evaluate, one per interval of `epsilon`, in interval order. */
export function representatives(cands: Sized[], epsilon: number): number[] {
  if (!Number.isSafeInteger(epsilon) || epsilon < 1) throw new RangeError(`epsilon (the interval size) must be a whole number ≥ 1, got ${epsilon}`);
  const order = cands.map((_, i) => i).sort((a, b) => cands[a].params - cands[b].params || cands[a].latencyMs - cands[b].latencyMs || a - b);
  const out: number[] = [];
  for (let s = 0; s < order.length; s += epsilon) {
    const interval = order.slice(s, s + epsilon);
    let best = interval[0];
    for (const i of interval) if (cands[i].latencyMs < cands[best].latencyMs) best = i;
    out.push(best);
  }
  return out;
}

/** Index of the largest W among `scores` (undefined entries are skipped); ties to the lower index. */
export function argmaxW(scores: (number | undefined)[]): number | undefined {
  let best: number | undefined;
  scores.forEach((w, i) => {
    if (w === undefined) return;
    if (best === undefined || w > scores[best]!) best = i;
  });
  return best;
}

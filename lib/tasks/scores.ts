/** Softmax and top-k over a slice of logits. */

/** Probabilities of logits[from, from + n), computed in float64 from the largest logit. */
export function softmax(logits: Float32Array, from: number, n: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[from + i]);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += p[i] = Math.exp(logits[from + i] - max);
  for (let i = 0; i < n; i++) p[i] /= sum;
  return p;
}

/** Indices of the k largest values, largest first; ties keep the lower index first. */
export function topK(values: ArrayLike<number>, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (best.length === k) {
      if (!(v > values[best[k - 1]])) continue;
      best.pop();
    }
    let j = best.length;
    while (j > 0 && values[best[j - 1]] < v) j--;
    best.splice(j, 0, i);
  }
  return best;
}

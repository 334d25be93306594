/**
 * Position ids the runtime computes before calling the engine, for models whose graph computes them
 * from the token ids (RoBERTa: lib/bert/positions-from-ids.ts). A padding token reads row
 * paddingIdx; the k-th other token of its sequence (k from 1) reads row paddingIdx + k.
 */
export function positionsFromIds(ids: Int32Array, batch: number, seq: number, paddingIdx: number): Int32Array {
  const out = new Int32Array(ids.length);
  for (let b = 0; b < batch; b++) {
    let k = 0;
    for (let t = 0; t < seq; t++) {
      const i = b * seq + t;
      out[i] = ids[i] === paddingIdx ? paddingIdx : paddingIdx + ++k;
    }
  }
  return out;
}

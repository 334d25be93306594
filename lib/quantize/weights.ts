/**
 * Symmetric int8 weight quantization: W ≈ scale · q with q in [-127, 127] and zero point 0, one scale
 * per output column (per channel) or one for the whole matrix (per tensor). -128 is never used, so
 * -q always fits and the native kernels may negate weights freely.
 */

export interface QuantizedMatrix {
  /** int8 values, row-major [inDim, outDim]. */
  q: Int8Array;
  /** outDim scales (per channel) or one (per tensor); every scale > 0. */
  scales: Float32Array;
  inDim: number;
  outDim: number;
}

export const INT8_MAX = 127;

/** Rounds half away from zero (the same on every platform; no banker's rounding surprises). */
function roundAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Quantizes W given row-major as [inDim, outDim] (`transposed`: given as [outDim, inDim]), times
 * `factor` (Gemm's alpha). A column (or matrix) of zeros gets scale 1 and q = 0.
 */
export function quantizeMatrix(w: Float32Array, inDim: number, outDim: number, opts: { perChannel: boolean; transposed?: boolean; factor?: number }): QuantizedMatrix {
  const f = opts.factor ?? 1;
  const at = opts.transposed ? (i: number, o: number) => w[o * inDim + i] * f : (i: number, o: number) => w[i * outDim + o] * f;
  const maxAbs = new Float64Array(opts.perChannel ? outDim : 1);
  for (let i = 0; i < inDim; i++) {
    for (let o = 0; o < outDim; o++) {
      const a = Math.abs(at(i, o));
      if (!Number.isFinite(a)) throw new RangeError(`weight value ${at(i, o)} at [${i}, ${o}] is not finite`);
      const c = opts.perChannel ? o : 0;
      if (a > maxAbs[c]) maxAbs[c] = a;
    }
  }
  const scales = new Float32Array(maxAbs.length);
  for (let c = 0; c < scales.length; c++) {
    const s = Math.fround(maxAbs[c] / INT8_MAX);
    // a scale that underflows float32 (all |w| < ~1e-43) is as good as a zero column
    scales[c] = s > 0 ? s : 1;
  }
  const q = new Int8Array(inDim * outDim);
  for (let i = 0; i < inDim; i++) {
    for (let o = 0; o < outDim; o++) {
      const s = scales[opts.perChannel ? o : 0];
      const v = roundAway(at(i, o) / s);
      q[i * outDim + o] = v > INT8_MAX ? INT8_MAX : v < -INT8_MAX ? -INT8_MAX : v;
    }
  }
  return { q, scales, inDim, outDim };
}

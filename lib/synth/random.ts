/**
 * Deterministic random weights for `synth`. Every variant of a model draws the same numbers in the same
 * order for the same seed, so a fused or renamed variant holds exactly the weights of the stock model.
 */

/** Deterministic uniform noise in [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Weights of a Linear layer in the [in, out] layout a PyTorch export's MatMul reads. */
export interface LinearWeights {
  inDim: number;
  outDim: number;
  /** [inDim, outDim], row-major. */
  weight: Float32Array;
  bias: Float32Array;
}

export interface LayerNormWeights {
  gamma: Float32Array;
  beta: Float32Array;
}

const STD = 0.02;

export class WeightDraw {
  private readonly rand: () => number;

  constructor(seed: number) {
    this.rand = rng(seed);
  }

  /** n values, uniform with standard deviation `std` around `offset`. */
  uniform(n: number, std: number, offset = 0): Float32Array {
    const a = new Float32Array(n);
    const s = std * Math.sqrt(3) * 2;
    for (let i = 0; i < n; i++) a[i] = offset + (this.rand() - 0.5) * s;
    return a;
  }

  /** A [rows, cols] table (embeddings, Gemm weights), standard deviation 0.02. */
  table(rows: number, cols: number): Float32Array {
    return this.uniform(rows * cols, STD);
  }

  /** A bias vector, standard deviation 0.02. */
  vector(n: number): Float32Array {
    return this.uniform(n, STD);
  }

  /** A Linear layer: a per-layer scale, then the weight, then the bias. */
  linear(inDim: number, outDim: number): LinearWeights {
    const weight = this.uniform(inDim * outDim, STD * (1 + this.rand()));
    const bias = this.uniform(outDim, STD);
    return { inDim, outDim, weight, bias };
  }

  layerNorm(width: number): LayerNormWeights {
    const gamma = this.uniform(width, 0.1, 1);
    const beta = this.uniform(width, STD);
    return { gamma, beta };
  }
}

/** The [out, in] copy of a [in, out] matrix (nn.Linear's own layout). */
export function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

/** Linear layers side by side: [in, out1 + out2 + ...] weights and the biases joined (a fused QKV). */
export function concatLinear(parts: LinearWeights[]): LinearWeights {
  const inDim = parts[0].inDim;
  const outDim = parts.reduce((s, p) => s + p.outDim, 0);
  const weight = new Float32Array(inDim * outDim);
  const bias = new Float32Array(outDim);
  let col = 0;
  for (const p of parts) {
    for (let r = 0; r < inDim; r++) weight.set(p.weight.subarray(r * p.outDim, (r + 1) * p.outDim), r * outDim + col);
    bias.set(p.bias, col);
    col += p.outDim;
  }
  return { inDim, outDim, weight, bias };
}

/**
 * Importance scores: which layers, heads, attention channels, FFN neurons and hidden channels matter
 * most. A scorer is an object with one method per kind of part, so data-driven scorers can replace the
 * weight-based one. Higher is more important; the planner keeps the top k and preserves source order.
 */
import type { BertModel, Linear } from '../bert/model.js';
import { gram, initializerData, inOutMatrix as storedInOut, inputNorms2 as storedInputNorms2, matrixOf, outputNorms2 as storedOutputNorms2 } from '../bert/weights.js';

export interface ImportanceScorer {
  readonly name: string;
  /** One score per source layer. */
  layers(m: BertModel): number[];
  /** One score per head of source layer `layer`. */
  heads(m: BertModel, layer: number): number[];
  /** One score per attention channel (heads·headSize) of source layer `layer`. */
  attentionChannels(m: BertModel, layer: number): number[];
  /** One score per FFN neuron of source layer `layer`. */
  neurons(m: BertModel, layer: number): number[];
  /** One score per hidden (residual stream) channel. */
  hidden(m: BertModel): number[];
  /**
   * Optional: similarity of every pair of heads of a layer (symmetric, [heads][heads]), used to merge
   * heads that attend alike when new heads are larger than the source's.
   */
  headSimilarity?(m: BertModel, layer: number): number[][];
}

/** Keeps the first k of everything: the reproducible baseline (`--strategy first`). */
export const firstScorer: ImportanceScorer = {
  name: 'first',
  layers: (m) => m.layers.map((_, i) => -i),
  heads: (m) => Array.from({ length: m.arch.heads }, (_, i) => -i),
  attentionChannels: (m) => Array.from({ length: m.attentionWidth }, (_, i) => -i),
  neurons: (m) => Array.from({ length: m.arch.intermediate }, (_, i) => -i),
  hidden: (m) => Array.from({ length: m.arch.hidden }, (_, i) => -i),
};

// A linear computes alpha·(x·W) + beta·b (Gemm's factors; 1 for MatMul): every score below is taken
// from the effective weight alpha·W. Biases enter no score, so beta does not either.

function timesAll(a: Float64Array, f: number): Float64Array {
  if (f !== 1) for (let i = 0; i < a.length; i++) a[i] *= f;
  return a;
}

/** Squared norm of alpha·W's slice for each input index. */
function inputNorms2(m: BertModel, l: Linear): Float64Array {
  return timesAll(storedInputNorms2(m, l), l.alpha * l.alpha);
}

/** Squared norm of alpha·W's slice for each output index. */
function outputNorms2(m: BertModel, l: Linear): Float64Array {
  return timesAll(storedOutputNorms2(m, l), l.alpha * l.alpha);
}

/** alpha·W as [in, out] row-major. */
function inOutMatrix(m: BertModel, l: Linear): Float32Array {
  const w = storedInOut(m, l);
  return l.alpha === 1 ? w : w.map((v) => v * l.alpha);
}

/** Σ (alpha·w)² over all of a linear's weights. */
function sumSq2(m: BertModel, l: Linear): number {
  return sumSq(matrixOf(m, l.weight).data) * l.alpha * l.alpha;
}

function sqrtAll(a: Float64Array): number[] {
  return Array.from(a, Math.sqrt);
}

function normalized(a: ArrayLike<number>): number[] {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length || 1;
  return Array.from(a, (v) => v / mean);
}

/** Gram of head h's slice of a projection, on its output side (Q, K, V) or input side (O). */
function headGram(m: BertModel, l: Linear, h: number, d: number, side: 'out' | 'in'): Float64Array {
  const x = matrixOf(m, l.weight);
  // channels live in columns when (in_out, out side) or (out_in, in side)
  const inColumns = (l.layout === 'in_out') === (side === 'out');
  return timesAll(gram(x, h * d, d, !inColumns), l.alpha * l.alpha);
}

/** Deterministic standard-normal probes [rows, cols] (Box–Muller over a small LCG). */
function gaussianProbes(rows: number, cols: number, seed: number): Float32Array {
  const out = new Float32Array(rows * cols);
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 1) / 4294967297;
  };
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** X·W for probes X [r, in] and a linear's W, as [r, out]. */
function project(m: BertModel, l: Linear, x: Float32Array, r: number): Float32Array {
  const w = inOutMatrix(m, l);
  const out = new Float32Array(r * l.outDim);
  for (let i = 0; i < r; i++) {
    const o = out.subarray(i * l.outDim, (i + 1) * l.outDim);
    for (let k = 0; k < l.inDim; k++) {
      const xv = x[i * l.inDim + k];
      const row = k * l.outDim;
      for (let c = 0; c < l.outDim; c++) o[c] += xv * w[row + c];
    }
  }
  return out;
}

function frobeniusOfProduct(ga: Float64Array, gb: Float64Array): number {
  let s = 0;
  for (let i = 0; i < ga.length; i++) s += ga[i] * gb[i];
  return Math.sqrt(Math.max(s, 0));
}

function sumSq(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

/**
 * Scores from the weights alone:
 * - head h: ‖Q_h·K_hᵀ‖_F·|scale| (how sharply it can attend) plus ‖V_h·O_h‖_F (how much it writes),
 *   each normalised over the layer's heads;
 * - attention channel c: ‖q_c‖‖k_c‖ + ‖v_c‖‖o_c‖ (within-head ranking);
 * - neuron n: ‖W_in[:, n]‖·‖W_out[n, :]‖;
 * - layer: the relative size of what its two blocks add to the residual stream,
 *   Σ_h ‖V_h‖‖O_h‖/√H + ‖W_in‖‖W_out‖/H;
 * - hidden channel c: γ_c² of every LayerNorm times the weight that reads c from that stream, plus
 *   the weight that writes c, each term normalised to mean 1.
 */
export const weightScorer: ImportanceScorer = {
  name: 'importance',
  layers(m) {
    const H = m.arch.hidden;
    return m.layers.map((l) => {
      const a = l.attention;
      const v = outputNorms2(m, a.v);
      const o = inputNorms2(m, a.o);
      let att = 0;
      for (let h = 0; h < a.heads; h++) {
        let vs = 0, os = 0;
        for (let c = h * a.headSize; c < (h + 1) * a.headSize; c++) { vs += v[c]; os += o[c]; }
        att += Math.sqrt(vs * os);
      }
      const ffn = Math.sqrt(sumSq2(m, l.ffn.in) * sumSq2(m, l.ffn.out));
      return att / Math.sqrt(H) + ffn / H;
    });
  },
  heads(m, layer) {
    const a = m.layers[layer].attention;
    const qk: number[] = [], vo: number[] = [];
    for (let h = 0; h < a.heads; h++) {
      qk.push(frobeniusOfProduct(headGram(m, a.q, h, a.headSize, 'out'), headGram(m, a.k, h, a.headSize, 'out')) * Math.abs(a.scoreScale));
      vo.push(frobeniusOfProduct(headGram(m, a.v, h, a.headSize, 'out'), headGram(m, a.o, h, a.headSize, 'in')));
    }
    const nq = normalized(qk), nv = normalized(vo);
    return nq.map((x, i) => x + nv[i]);
  },
  headSimilarity(m, layer) {
    // cosine similarity of the heads' bilinear forms Q_h·K_hᵀ, estimated on Gaussian probes:
    // for x, y ~ N(0, I), E[(xᵀQ1K1ᵀy)(xᵀQ2K2ᵀy)] = <Q1K1ᵀ, Q2K2ᵀ>_F
    const a = m.layers[layer].attention;
    const d = a.headSize, r = 48;
    const x = gaussianProbes(r, m.arch.hidden, 1 + layer), y = gaussianProbes(r, m.arch.hidden, 1001 + layer);
    const pq = project(m, a.q, x, r), pk = project(m, a.k, y, r);
    const W = a.q.outDim;
    const logits = Array.from({ length: a.heads }, (_, h) => {
      const l = new Float64Array(r * r);
      for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
        let s = 0;
        for (let c = h * d; c < (h + 1) * d; c++) s += pq[i * W + c] * pk[j * W + c];
        l[i * r + j] = s;
      }
      return l;
    });
    const norms = logits.map((l) => Math.sqrt(l.reduce((acc, v) => acc + v * v, 0)) || 1);
    return logits.map((l1, h1) => logits.map((l2, h2) => {
      if (h1 === h2) return 1;
      let dot = 0;
      for (let i = 0; i < l1.length; i++) dot += l1[i] * l2[i];
      return dot / (norms[h1] * norms[h2]);
    }));
  },
  attentionChannels(m, layer) {
    const a = m.layers[layer].attention;
    const q = sqrtAll(outputNorms2(m, a.q)), k = sqrtAll(outputNorms2(m, a.k));
    const v = sqrtAll(outputNorms2(m, a.v)), o = sqrtAll(inputNorms2(m, a.o));
    const qk = normalized(q.map((x, i) => x * k[i])), vo = normalized(v.map((x, i) => x * o[i]));
    return qk.map((x, i) => x + vo[i]);
  },
  neurons(m, layer) {
    const f = m.layers[layer].ffn;
    const a = outputNorms2(m, f.in), b = inputNorms2(m, f.out);
    return Array.from(a, (x, i) => Math.sqrt(x * b[i]));
  },
  hidden(m) {
    const H = m.arch.hidden;
    const total = new Float64Array(H);
    const add = (terms: ArrayLike<number>) => {
      const n = normalized(terms);
      for (let c = 0; c < H; c++) total[c] += n[c];
    };
    const readers = (stream: string): Linear[] => {
      const out: Linear[] = [];
      for (const l of m.layers) {
        if (l.input === stream) out.push(l.attention.q, l.attention.k, l.attention.v);
        if (l.ln1.output === stream) out.push(l.ffn.in);
      }
      return out;
    };
    const lns = [m.embeddings.ln, ...m.layers.flatMap((l) => [l.ln1, l.ln2])];
    for (const ln of lns) {
      const g = initializerData(m, ln.gamma);
      const read = new Float64Array(H).fill(1);
      for (const r of readers(ln.output)) {
        const n = normalized(inputNorms2(m, r));
        for (let c = 0; c < H; c++) read[c] += n[c];
      }
      add(Array.from(g, (x, c) => x * x * read[c]));
    }
    for (const l of m.layers) {
      add(outputNorms2(m, l.attention.o));
      add(outputNorms2(m, l.ffn.out));
    }
    return Array.from(total);
  },
};

export function scorerFor(strategy: 'importance' | 'first'): ImportanceScorer {
  return strategy === 'first' ? firstScorer : weightScorer;
}

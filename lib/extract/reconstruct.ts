/**
 * Least-squares reconstruction after an extraction (`--strategy data`'s refit step; Kwon et al. 2022,
 * "A Fast Post-Training Pruning Framework for Transformers", layer-wise linear least squares). This
 * departs from pure scoring: it changes weights of the extracted model.
 *
 * For each layer of the student, in order, with the STUDENT's own inputs at that layer (calibration
 * text run through the already-refitted layers before it):
 * - attention (when heads were removed or merged): W_O and its bias are refitted over the kept/merged
 *   heads' context vectors so that the attention output matches the source layer's full attention
 *   (every head, from the source's weights) applied to the same input;
 * - FFN (when neurons were removed): W_out rows of the kept neurons and the bias are refitted so that
 *   the FFN output matches the source layer's full FFN applied to the same input;
 * - the last kept layer of a removed stretch of layers (the next kept layer's source is not the next
 *   source layer, or source layers follow the student's last one): its FFN output is aimed instead at
 *   the source's hidden state at the depth the layer now stands for (likewise the first layer when the
 *   source layers before it were removed: aimed at its source layer's output). Post-LN, the layer's output is
 *   LN(y + f), so the target of f is z* − y with z* = (t − β)/γ · σ + μ per token row, t the source's
 *   hidden state and μ, σ the row statistics of y + f before the refit.
 *
 * Each fit is ridge regression towards the extracted weights, min ‖X·W − Y‖² + λ‖W − W₀‖² with X the
 * features plus a column of ones (the bias), solved in float64 by Cholesky on the normal equations,
 * λ = `ridge` · mean diagonal of XᵀX. The source's hidden states come from `sourceHidden` (the native
 * engine's intermediates) or are computed here. Only the student's hidden size equal to the source's
 * (every hidden channel kept) is supported; the embeddings, attention Q/K/V, FFN input, LayerNorms and
 * the masked-LM head are left as extracted.
 */
import type { BertModel, Linear } from '../bert/model.js';
import { recognize } from '../bert/recognize.js';
import { BortError } from '../errors.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { Encoder } from '../runtime/encoder.js';
import { engineSpec, floatWeights, type EngineSpec } from '../runtime/spec.js';
import { WORKER_LIMITS, workerEntry } from '../worker/entry.js';
import { WorkerPool } from '../worker/pool.js';

/** Calibration sequences (of 64 tokens) the CLI and search refit on: 8,192 tokens, several times the widest fit. */
export const REFIT_SEQUENCES = 128;

export interface RefitOptions {
  /** Ridge strength relative to the mean diagonal of XᵀX (default 1e-3). */
  ridge?: number;
  /** Aim the last layer of a removed stretch at the source's hidden state at that depth (default true). */
  stretchTargets?: boolean;
  /**
   * Also aim the first layer's FFN at the source's hidden state after that layer's source layer when the
   * source layers before it were removed (its input is then the embeddings, not what its source layer
   * read). Default true (measured on the teacher at 3,4,256,512: BENCHMARKS.md).
   */
  leadingTarget?: boolean;
  /** Refit W_O (default true). */
  attention?: boolean;
  /** Refit W_out (default true). */
  ffn?: boolean;
  /**
   * The source's hidden state after each of its layers on the calibration tokens ([layer] → [tokens, H],
   * tokens in sequence order); computed in TypeScript when absent (slow on large models).
   */
  sourceHidden?: Float32Array[];
  onProgress?: (message: string) => void;
}

export interface RefitFit {
  /** Student layer and what was refitted. */
  layer: number;
  part: 'attention' | 'ffn' | 'ffn→depth';
  features: number;
  /** Mean squared error of the part's output against its target before and after the refit. */
  before: number;
  after: number;
}

export interface RefitReport {
  tokens: number;
  fits: RefitFit[];
}

/** The engine-layout weights of one layer and its shape constants. */
interface LayerWeights {
  qw: Float32Array; qb: Float32Array; kw: Float32Array; kb: Float32Array; vw: Float32Array; vb: Float32Array;
  ow: Float32Array; ob: Float32Array; ln1g: Float32Array; ln1b: Float32Array;
  fiw: Float32Array; fib: Float32Array; fow: Float32Array; fob: Float32Array; ln2g: Float32Array; ln2b: Float32Array;
  heads: number; headSize: number; W: number; I: number; eps1: number; eps2: number; scale: number;
}

function layerWeights(spec: EngineSpec, w: Record<string, Float32Array>, l: number): LayerWeights {
  const c = spec.config;
  const g = (k: string) => w[`${k}.${l}`];
  return {
    qw: g('q_w'), qb: g('q_b'), kw: g('k_w'), kb: g('k_b'), vw: g('v_w'), vb: g('v_b'), ow: g('o_w'), ob: g('o_b'),
    ln1g: g('ln1_g'), ln1b: g('ln1_b'), fiw: g('ffn_in_w'), fib: g('ffn_in_b'), fow: g('ffn_out_w'), fob: g('ffn_out_b'),
    ln2g: g('ln2_g'), ln2b: g('ln2_b'),
    heads: c.heads, headSize: c.headSize, W: c.heads * c.headSize, I: c.intermediate,
    eps1: c.lnEps[2 * l], eps2: c.lnEps[2 * l + 1], scale: c.scoreScale,
  };
}

/** X [T, K] · W [K, N] (+ b), float32 out (float64 accumulation, four rows of W at a time). */
export function matmul(x: Float32Array, T: number, K: number, w: Float32Array, N: number, b?: Float32Array): Float32Array {
  const out = new Float32Array(T * N);
  const acc = new Float64Array(N);
  const K4 = K - (K % 4);
  for (let t = 0; t < T; t++) {
    if (b) for (let n = 0; n < N; n++) acc[n] = b[n];
    else acc.fill(0);
    const xo = t * K;
    for (let k = 0; k < K4; k += 4) {
      const x0 = x[xo + k], x1 = x[xo + k + 1], x2 = x[xo + k + 2], x3 = x[xo + k + 3];
      const w0 = k * N, w1 = w0 + N, w2 = w1 + N, w3 = w2 + N;
      for (let n = 0; n < N; n++) acc[n] += x0 * w[w0 + n] + x1 * w[w1 + n] + x2 * w[w2 + n] + x3 * w[w3 + n];
    }
    for (let k = K4; k < K; k++) {
      const xv = x[xo + k];
      const wo = k * N;
      for (let n = 0; n < N; n++) acc[n] += xv * w[wo + n];
    }
    const oo = t * N;
    for (let n = 0; n < N; n++) out[oo + n] = acc[n];
  }
  return out;
}

/** Row-wise LayerNorm of [T, H] in place of a new array; also returns the row means and deviations. */
function layerNorm(x: Float32Array, T: number, H: number, g: Float32Array, b: Float32Array, eps: number): { y: Float32Array; mean: Float64Array; sd: Float64Array } {
  const y = new Float32Array(T * H), mean = new Float64Array(T), sd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const o = t * H;
    let s = 0;
    for (let h = 0; h < H; h++) s += x[o + h];
    const mu = s / H;
    let v = 0;
    for (let h = 0; h < H; h++) { const d = x[o + h] - mu; v += d * d; }
    const sigma = Math.sqrt(v / H + eps);
    mean[t] = mu; sd[t] = sigma;
    for (let h = 0; h < H; h++) y[o + h] = ((x[o + h] - mu) / sigma) * g[h] + b[h];
  }
  return { y, mean, sd };
}

/** erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26): far below float32 GELU's own rounding at the values that matter. */
function erf(x: number): number {
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax);
  return x < 0 ? -y : y;
}

function gelu(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i] * (1 + erf(x[i] / Math.SQRT2));
  return out;
}

/** The attention context [T, W] (before W_O) of layer weights `w` on input x [T, H], sequences of `seq` tokens. */
function attentionContext(w: LayerWeights, x: Float32Array, T: number, H: number, seq: number): Float32Array {
  const q = matmul(x, T, H, w.qw, w.W, w.qb), k = matmul(x, T, H, w.kw, w.W, w.kb), v = matmul(x, T, H, w.vw, w.W, w.vb);
  const ctx = new Float32Array(T * w.W);
  const d = w.headSize, W = w.W;
  const p = new Float64Array(seq);
  for (let s0 = 0; s0 < T; s0 += seq) {
    for (let h = 0; h < w.heads; h++) {
      const c0 = h * d;
      for (let i = 0; i < seq; i++) {
        const qo = (s0 + i) * W + c0;
        let max = -Infinity;
        for (let j = 0; j < seq; j++) {
          const ko = (s0 + j) * W + c0;
          let s = 0;
          for (let c = 0; c < d; c++) s += q[qo + c] * k[ko + c];
          s *= w.scale;
          p[j] = s;
          if (s > max) max = s;
        }
        let z = 0;
        for (let j = 0; j < seq; j++) { p[j] = Math.exp(p[j] - max); z += p[j]; }
        const oo = (s0 + i) * W + c0;
        for (let j = 0; j < seq; j++) {
          const pj = p[j] / z;
          const vo = (s0 + j) * W + c0;
          for (let c = 0; c < d; c++) ctx[oo + c] += pj * v[vo + c];
        }
      }
    }
  }
  return ctx;
}

/** The embedding output [T, H] of token sequences (token type 0, no padding). */
function embed(spec: EngineSpec, w: Record<string, Float32Array>, seqs: Int32Array[]): Float32Array {
  const H = spec.config.hidden, seq = seqs[0].length;
  const T = seqs.length * seq;
  const x = new Float32Array(T * H);
  const fromIds = spec.positions?.fromIds;
  seqs.forEach((ids, s) => {
    for (let t = 0; t < seq; t++) {
      const o = (s * seq + t) * H;
      const word = ids[t] * H;
      const pos = (fromIds ? fromIds.paddingIdx + 1 + t : t) * H;
      for (let h = 0; h < H; h++) x[o + h] = w.word_emb[word + h] + w.pos_emb[pos + h] + (w.type_emb ? w.type_emb[h] : 0);
    }
  });
  return layerNorm(x, T, H, w.emb_ln_g, w.emb_ln_b, spec.config.embLnEps).y;
}

function addInto(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; s += d * d; }
  return s / a.length;
}

/** The source layer's full forward on x: attention output, post-attention LN input/output, FFN output, layer output. */
function sourceLayer(w: LayerWeights, x: Float32Array, T: number, H: number, seq: number): Float32Array {
  const a = matmul(attentionContext(w, x, T, H, seq), T, w.W, w.ow, H, w.ob);
  const y = layerNorm(addInto(x, a), T, H, w.ln1g, w.ln1b, w.eps1).y;
  const f = matmul(gelu(matmul(y, T, H, w.fiw, w.I, w.fib)), T, w.I, w.fow, H, w.fob);
  return layerNorm(addInto(y, f), T, H, w.ln2g, w.ln2b, w.eps2).y;
}

/**
 * Solves min ‖[X 1]·[W; b] − Y‖² + λ‖[W; b] − [W₀; b₀]‖² in float64 (Cholesky), X [T, F], Y [T, N];
 * returns W [F, N] and b [N] as float32.
 */
export function ridgeSolve(x: Float32Array, T: number, F: number, y: Float32Array, N: number, w0: Float32Array, b0: Float32Array, ridge: number): { w: Float32Array; b: Float32Array } {
  const P = F + 1;
  // X transposed once (rows contiguous per feature) for cache-friendly dot products
  const xt = new Float64Array(P * T);
  for (let t = 0; t < T; t++) { for (let f = 0; f < F; f++) xt[f * T + t] = x[t * F + f]; xt[F * T + t] = 1; }
  const yt = new Float64Array(N * T);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) yt[n * T + t] = y[t * N + n];
  const g = new Float64Array(P * P);
  // Gram and right-hand side: dot products of rows of length T, four at a time against one
  const dots = (a: Float64Array, ao: number, bm: Float64Array, b0: number, count: number, put: (k: number, v: number) => void) => {
    let k = 0;
    for (; k + 4 <= count; k += 4) {
      const o0 = (b0 + k) * T, o1 = o0 + T, o2 = o1 + T, o3 = o2 + T;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let t = 0; t < T; t++) { const v = a[ao + t]; s0 += v * bm[o0 + t]; s1 += v * bm[o1 + t]; s2 += v * bm[o2 + t]; s3 += v * bm[o3 + t]; }
      put(k, s0); put(k + 1, s1); put(k + 2, s2); put(k + 3, s3);
    }
    for (; k < count; k++) {
      const o = (b0 + k) * T;
      let s = 0;
      for (let t = 0; t < T; t++) s += a[ao + t] * bm[o + t];
      put(k, s);
    }
  };
  for (let i = 0; i < P; i++) dots(xt, i * T, xt, i, P - i, (k, v) => { g[i * P + i + k] = v; g[(i + k) * P + i] = v; });
  let diag = 0;
  for (let i = 0; i < F; i++) diag += g[i * P + i];
  const lambda = ridge * (F ? diag / F : 1) + 1e-12;
  const rhs = new Float64Array(P * N);
  for (let i = 0; i < P; i++) dots(xt, i * T, yt, 0, N, (n, v) => { rhs[i * N + n] = v + lambda * (i < F ? w0[i * N + n] : b0[n]); });
  for (let i = 0; i < P; i++) g[i * P + i] += lambda;
  // Cholesky G = L·Lᵀ (lower, in place)
  for (let j = 0; j < P; j++) {
    let s = g[j * P + j];
    for (let k = 0; k < j; k++) s -= g[j * P + k] * g[j * P + k];
    if (!(s > 0)) throw new Error(`refit: the normal equations are not positive definite (pivot ${s} at ${j})`);
    const ljj = Math.sqrt(s);
    g[j * P + j] = ljj;
    for (let i = j + 1; i < P; i++) {
      let t = g[i * P + j];
      for (let k = 0; k < j; k++) t -= g[i * P + k] * g[j * P + k];
      g[i * P + j] = t / ljj;
    }
  }
  // forward then backward substitution, all N right-hand sides at once
  for (let i = 0; i < P; i++) {
    for (let k = 0; k < i; k++) { const l = g[i * P + k]; if (l !== 0) for (let n = 0; n < N; n++) rhs[i * N + n] -= l * rhs[k * N + n]; }
    const d = g[i * P + i];
    for (let n = 0; n < N; n++) rhs[i * N + n] /= d;
  }
  for (let i = P - 1; i >= 0; i--) {
    for (let k = i + 1; k < P; k++) { const l = g[k * P + i]; if (l !== 0) for (let n = 0; n < N; n++) rhs[i * N + n] -= l * rhs[k * N + n]; }
    const d = g[i * P + i];
    for (let n = 0; n < N; n++) rhs[i * N + n] /= d;
  }
  return { w: Float32Array.from(rhs.subarray(0, F * N)), b: Float32Array.from(rhs.subarray(F * N, P * N)) };
}

/** Writes an engine-layout [in, out] weight (alpha folded in) and bias (beta folded in) back into a linear's initializers. */
function writeLinear(m: BertModel, l: Linear, w: Float32Array, b: Float32Array): void {
  const set = (init: string, data: Float32Array) => {
    const t = m.index.weight(init)!.tensor;
    t.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    t.floatData = [];
    t.externalData = [];
    t.dataLocation = 0;
  };
  const stored = new Float32Array(w.length);
  if (l.layout === 'in_out') for (let i = 0; i < w.length; i++) stored[i] = w[i] / l.alpha;
  else for (let r = 0; r < l.inDim; r++) for (let c = 0; c < l.outDim; c++) stored[c * l.inDim + r] = w[r * l.outDim + c] / l.alpha;
  set(l.weight, stored);
  set(l.bias!, Float32Array.from(b, (v) => v / l.beta));
}

/**
 * For each student layer, the source depth its output is aimed at (0: none, local targets): the next
 * kept layer's source (or the source's layer count) when source layers follow it that were removed; with
 * `leading`, the first layer's own source depth + 1 when layers before it were removed.
 */
export function depthTargets(layers: number[], D: number, leading: boolean): number[] {
  return layers.map((s, j) => {
    const next = j + 1 < layers.length ? layers[j + 1] : D;
    if (next > s + 1) return next;
    if (leading && j === 0 && s > 0) return s + 1;
    return 0;
  });
}

/** Why `student` cannot be refitted from `source` (undefined when it can). */
export function refitProblem(source: BertModel, student: BertModel): string | undefined {
  if (student.arch.hidden !== source.arch.hidden) return `the hidden size changed (${source.arch.hidden} → ${student.arch.hidden}); the refit needs every hidden channel kept`;
  for (const m of [source, student]) {
    for (const l of m.layers) {
      for (const lin of [l.attention.o, l.ffn.out]) {
        if (lin.quant) return 'a projection is int8-quantized';
        if (!lin.bias) return `the linear ${lin.weight} has no bias`;
        if (!(lin.alpha !== 0 && Number.isFinite(lin.alpha) && lin.beta !== 0 && Number.isFinite(lin.beta))) return `the linear ${lin.weight} has a zero Gemm factor`;
        if (m === student && m.index.weight(lin.weight)?.tensor.dataType !== 1) return `the weight ${lin.weight} is not stored as float32`;
        if (m === student && m.index.weight(lin.bias)?.tensor.dataType !== 1) return `the bias ${lin.bias} is not stored as float32`;
      }
      if (l.ffn.activation !== 'gelu') return `layer ${l.index} uses ${l.ffn.activation}`;
    }
  }
  return undefined;
}

/**
 * Refits `student` (extracted from `source`; `layers[j]` is the source layer of its layer j, ascending)
 * in place on the token sequences `seqs` (all the same length, no padding). See the file comment.
 */
export function refitModel(source: BertModel, student: BertModel, layers: number[], seqs: Int32Array[], opts: RefitOptions = {}): RefitReport {
  const problem = refitProblem(source, student);
  if (problem) throw new BortError(`cannot refit the extracted model: ${problem}`, 'extract without the refit (--no-refit)');
  if (layers.length !== student.arch.layers) throw new TypeError(`refitModel: ${layers.length} source layers for a ${student.arch.layers}-layer student`);
  for (let j = 1; j < layers.length; j++) if (!(layers[j] > layers[j - 1])) throw new TypeError('refitModel: source layers must ascend');
  if (!seqs.length) throw new TypeError('refitModel: no calibration sequences');
  const ridge = opts.ridge ?? 1e-3;
  const say = opts.onProgress ?? (() => {});
  const sSpec = engineSpec(source), tSpec = engineSpec(student);
  const sw = floatWeights(sSpec), tw = floatWeights(tSpec);
  const H = sSpec.config.hidden, D = source.arch.layers;
  const seq = seqs[0].length;
  if (seqs.some((s) => s.length !== seq)) throw new TypeError('refitModel: calibration sequences differ in length');
  const T = seqs.length * seq;
  const stretch = opts.stretchTargets ?? true;
  // the source's own hidden states, needed at the depths stretch ends stand for
  let hidden = opts.sourceHidden;
  const targets = stretch ? depthTargets(layers, D, opts.leadingTarget ?? true) : layers.map(() => 0);
  if (targets.some((d) => d > 0) && !hidden) {
    say('refit: the source\'s hidden states on the calibration text');
    hidden = [];
    let x = embed(sSpec, sw, seqs);
    for (let l = 0; l < D; l++) { x = sourceLayer(layerWeights(sSpec, sw, l), x, T, H, seq); hidden.push(x); }
  }
  const fits: RefitFit[] = [];
  let x = embed(tSpec, tw, seqs);
  const t0 = Date.now();
  for (let j = 0; j < layers.length; j++) {
    if (j > 0) {
      const el = (Date.now() - t0) / 1000, eta = (el / j) * (layers.length - j);
      say(`refit: layer ${j + 1} of ${layers.length} (${el.toFixed(0)} s so far, ${(j / el * 60).toFixed(1)} layers/min, about ${eta.toFixed(0)} s left)`);
    }
    const src = layerWeights(sSpec, sw, layers[j]);
    const stu = layerWeights(tSpec, tw, j);
    const depth = targets[j];
    const stretchEnd = depth > 0;
    // attention
    const ctx = attentionContext(stu, x, T, H, seq);
    let a = matmul(ctx, T, stu.W, stu.ow, H, stu.ob);
    const sameAttention = stu.heads === src.heads && stu.headSize === src.headSize;
    if ((opts.attention ?? true) && !sameAttention) {
      const target = matmul(attentionContext(src, x, T, H, seq), T, src.W, src.ow, H, src.ob);
      const before = mse(a, target);
      const r = ridgeSolve(ctx, T, stu.W, target, H, stu.ow, stu.ob, ridge);
      stu.ow = r.w; stu.ob = r.b;
      a = matmul(ctx, T, stu.W, stu.ow, H, stu.ob);
      const after = mse(a, target);
      fits.push({ layer: j, part: 'attention', features: stu.W, before, after });
      say(`refit layer ${j} (source ${layers[j]}) attention over ${stu.W} context channels: MSE ${before.toExponential(3)} → ${after.toExponential(3)}`);
      writeLinear(student, student.layers[j].attention.o, stu.ow, stu.ob);
    }
    const y = layerNorm(addInto(x, a), T, H, stu.ln1g, stu.ln1b, stu.eps1).y;
    const act = gelu(matmul(y, T, H, stu.fiw, stu.I, stu.fib));
    let f = matmul(act, T, stu.I, stu.fow, H, stu.fob);
    if ((opts.ffn ?? true) && (stretchEnd || stu.I !== src.I)) {
      let target: Float32Array;
      if (stretchEnd) {
        const t = hidden![depth - 1];
        const { mean, sd } = layerNorm(addInto(y, f), T, H, stu.ln2g, stu.ln2b, stu.eps2);
        target = new Float32Array(T * H);
        for (let r = 0; r < T; r++) {
          for (let h = 0; h < H; h++) {
            const i = r * H + h;
            const gamma = Math.abs(stu.ln2g[h]) < 1e-6 ? (stu.ln2g[h] < 0 ? -1e-6 : 1e-6) : stu.ln2g[h];
            target[i] = ((t[i] - stu.ln2b[h]) / gamma) * sd[r] + mean[r] - y[i];
          }
        }
      } else {
        target = matmul(gelu(matmul(y, T, H, src.fiw, src.I, src.fib)), T, src.I, src.fow, H, src.fob);
      }
      const before = mse(f, target);
      const r = ridgeSolve(act, T, stu.I, target, H, stu.fow, stu.fob, ridge);
      stu.fow = r.w; stu.fob = r.b;
      f = matmul(act, T, stu.I, stu.fow, H, stu.fob);
      const after = mse(f, target);
      fits.push({ layer: j, part: stretchEnd ? 'ffn→depth' : 'ffn', features: stu.I, before, after });
      say(`refit layer ${j} (source ${layers[j]}) FFN over ${stu.I} neurons${stretchEnd ? `, aimed at the source's depth ${depth}` : ''}: MSE ${before.toExponential(3)} → ${after.toExponential(3)}`);
      writeLinear(student, student.layers[j].ffn.out, stu.fow, stu.fob);
    }
    x = layerNorm(addInto(y, f), T, H, stu.ln2g, stu.ln2b, stu.eps2).y;
  }
  return { tokens: T, fits };
}

/**
 * Refits the extracted model in the file `student` (its layers taken from `source`'s layers `layers`)
 * on calibration sequences, and writes it back to the same file. The source's hidden states come from
 * the native engine.
 */
export async function refitFile(source: string, student: string, layers: number[], seqs: Int32Array[], opts: Omit<RefitOptions, 'sourceHidden'> & { threads?: number; externalData?: boolean } = {}): Promise<RefitReport> {
  const src = recognize(loadModel(source).model);
  const loaded = loadModel(student);
  const stu = recognize(loaded.model);
  const problem = refitProblem(src, stu);
  if (problem) throw new BortError(`cannot refit the extracted model: ${problem}`, 'extract without the refit (--no-refit)');
  let sourceHidden: Float32Array[] | undefined;
  const D = src.arch.layers;
  // only the depths the fits aim at are kept (and travel to the worker)
  const needed = new Set((opts.stretchTargets ?? true) ? depthTargets(layers, D, opts.leadingTarget ?? true).filter((d) => d > 0) : []);
  if (needed.size) {
    opts.onProgress?.('refit: the source\'s hidden states on the calibration text (native engine)');
    const enc = await Encoder.load(source, { threads: opts.threads });
    try {
      const seq = seqs[0].length, H = src.arch.hidden;
      sourceHidden = Array.from({ length: D }, (_, l) => new Float32Array(needed.has(l + 1) ? seqs.length * seq * H : 0));
      const B = 16;
      for (let s0 = 0; s0 < seqs.length; s0 += B) {
        const part = seqs.slice(s0, s0 + B);
        const ids = new Int32Array(part.length * seq);
        part.forEach((r, i) => ids.set(r, i * seq));
        const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [enc.inputRoles.ids]: { data: ids, dims: [part.length, seq] } };
        if (enc.inputRoles.mask) inputs[enc.inputRoles.mask] = { data: new Int32Array(ids.length).fill(1), dims: [part.length, seq] };
        if (enc.inputRoles.tokenTypes) inputs[enc.inputRoles.tokenTypes] = { data: new Int32Array(ids.length), dims: [part.length, seq] };
        const r = await enc.intermediates(inputs);
        const per = part.length * seq * H;
        for (const d of needed) sourceHidden[d - 1].set(r.layers.data.subarray((d - 1) * per, d * per), s0 * seq * H);
      }
    } finally {
      enc.close();
    }
  }
  const { onProgress, threads: _threads, ...fit } = opts;
  const request: RefitRequest = { source, student, layers, seqs, sourceHidden, options: fit };
  const workers = refitPool();
  if (workers) return workers.request(request, onProgress);
  return refitInPlace(request, onProgress ?? (() => {}));
}

/** A refit for the worker thread (refit-worker.ts): the files, the layers, the calibration and options. */
export interface RefitRequest {
  source: string;
  student: string;
  layers: number[];
  seqs: Int32Array[];
  sourceHidden?: Float32Array[];
  options: Omit<RefitOptions, 'sourceHidden' | 'onProgress'> & { externalData?: boolean };
}

/** Runs a refit request on this thread: reads both models, refits the student, writes it back. */
export function refitInPlace(r: RefitRequest, progress: (message: string) => void): RefitReport {
  const src = recognize(loadModel(r.source).model);
  const loaded = loadModel(r.student);
  const stu = recognize(loaded.model);
  const { externalData, ...options } = r.options;
  const report = refitModel(src, stu, r.layers, r.seqs, { ...options, sourceHidden: r.sourceHidden, onProgress: progress });
  saveModel(loaded.model, r.student, { externalData, protect: [] });
  return report;
}

let pool: WorkerPool<RefitRequest, RefitReport> | undefined;

/** The worker that runs refits off the caller's JS thread (seconds to tens of minutes of float64 work). */
function refitPool(): WorkerPool<RefitRequest, RefitReport> | undefined {
  if (pool) return pool;
  const entry = workerEntry(__dirname, 'refit-worker');
  if (!entry) return undefined; // TypeScript sources without tsx: run on this thread
  pool = new WorkerPool<RefitRequest, RefitReport>({
    entry,
    resourceLimits: WORKER_LIMITS,
    maxWorkers: 1,
    idleMs: 5_000,
    failure: (why, { student }) => {
      if (why.kind === 'exit') return new Error(`the refit worker stopped (exit code ${why.code}) before it finished`);
      if (why.kind === 'out-of-memory') {
        return new BortError(`ran out of memory while refitting ${student}`, 'refit on fewer calibration sequences, or raise the memory with NODE_OPTIONS=--max-old-space-size=MB');
      }
      return why.error;
    },
  });
  return pool;
}

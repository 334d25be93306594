/**
 * `synth`: a randomly initialised BERT at any size, written in the node pattern of a stock PyTorch
 * export (the fixtures' pattern), for demos, tests and benchmarks. Variants reproduce what other
 * exporters write (transposed weights, a single [0,0,A,d] shape constant, the score scale applied as
 * a Mul or on Q and K, fused LayerNormalization, other input names, no token types).
 */
import { parseArch } from '../extract/arch.js';
import type { Arch } from '../bert/model.js';
import { saveModel, type SaveResult } from '../onnx/io.js';
import { BortError } from '../errors.js';
import { GraphBuilder, modelOf, tensorInfo, DataType } from './builder.js';
import type { ModelProto } from '../onnx/types.js';

export interface SynthOptions {
  arch: Arch | string;
  vocab?: number;
  head?: 'base' | 'mlm' | 'cls';
  output?: string;
  /** ONNX opset 11–17; 17 writes fused LayerNormalization unless `layerNorm` says otherwise. */
  opset?: number;
  maxPositions?: number;
  /** Token-type table size; 0 for a model without token_type_ids. */
  typeVocab?: number;
  labels?: number;
  seed?: number;
  inputNames?: { ids?: string; mask?: string; tokenTypes?: string };
  /** Exporter variants. */
  weights?: 'in_out' | 'transposed';
  headShape?: 'concat' | 'constant';
  scale?: 'div' | 'mul' | 'qk';
  layerNorm?: 'decomposed' | 'fused';
  externalData?: boolean;
}

/** Deterministic uniform noise (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildSynthModel(opts: SynthOptions): ModelProto {
  const arch = typeof opts.arch === 'string' ? parseArch(opts.arch) : opts.arch;
  const { layers: D, heads: A, hidden: H, intermediate: I } = arch;
  const V = opts.vocab ?? 30522;
  const P = opts.maxPositions ?? 512;
  const T = opts.typeVocab ?? 2;
  const opset = opts.opset ?? 14;
  if (opset < 11 || opset > 17) throw new BortError(`opset ${opset} is not supported by synth`, 'choose an opset from 11 to 17');
  if (V < 1 || P < 1) throw new BortError('vocabulary and positions must be at least 1', 'pass --vocab N');
  const d = H / A;
  const fusedLn = (opts.layerNorm ?? (opset >= 17 ? 'fused' : 'decomposed')) === 'fused';
  if (fusedLn && opset < 17) throw new BortError('LayerNormalization needs opset 17', 'use --opset 17');
  const names = { ids: opts.inputNames?.ids ?? 'input_ids', mask: opts.inputNames?.mask ?? 'attention_mask', tokenTypes: opts.inputNames?.tokenTypes ?? 'token_type_ids' };
  const rand = rng(opts.seed ?? 1234);
  const uniform = (n: number, scale: number, offset = 0) => {
    const a = new Float32Array(n);
    const s = scale * Math.sqrt(3) * 2;
    for (let i = 0; i < n; i++) a[i] = offset + (rand() - 0.5) * s;
    return a;
  };
  const g = new GraphBuilder(opset);
  const std = 0.02;

  const linear = (x: string, prefix: string, inDim: number, outDim: number, out?: string): string => {
    const w = uniform(inDim * outDim, std * (1 + rand()));
    const b = g.init(`${prefix}.bias`, [outDim], uniform(outDim, std));
    let y: string;
    if (opts.weights === 'transposed') {
      const wt = g.init(`${prefix}.weight`, [outDim, inDim], w);
      y = g.node('MatMul', [x, g.node('Transpose', [wt], { perm: [1, 0] })]);
    } else {
      y = g.node('MatMul', [x, g.init(`onnx::MatMul_${prefix}`, [inDim, outDim], w)]);
    }
    return g.node('Add', [b, y], {}, out);
  };
  const layerNorm = (x: string, prefix: string, out?: string): string => {
    const gamma = g.init(`${prefix}.weight`, [H], uniform(H, 0.1, 1));
    const beta = g.init(`${prefix}.bias`, [H], uniform(H, 0.02));
    if (fusedLn) return g.node('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: { float: 1e-12 } }, out);
    const rm = (t: string) => (opset >= 18 ? g.node('ReduceMean', [t, g.constInt([-1])]) : g.node('ReduceMean', [t], { axes: [-1] }));
    const mean = rm(x);
    const sub = g.node('Sub', [x, mean]);
    const variance = rm(g.node('Pow', [sub, g.constFloat(2)]));
    const std_ = g.node('Sqrt', [g.node('Add', [variance, g.constFloat(1e-12)])]);
    return g.node('Add', [g.node('Mul', [g.node('Div', [sub, std_]), gamma]), beta], {}, out);
  };
  const gelu = (x: string): string => {
    const erf = g.node('Erf', [g.node('Div', [x, g.constFloat(Math.SQRT2)])]);
    return g.node('Mul', [g.node('Mul', [x, g.node('Add', [erf, g.constFloat(1)])]), g.constFloat(0.5)]);
  };
  const dimOf = (t: string, axis: number) => g.unsqueeze(g.node('Gather', [g.node('Shape', [t]), g.constInt([axis], true)], { axis: 0 }), [0]);
  const reshapeTo = (t: string, tail: number[]): string => {
    if (opts.headShape === 'constant') return g.node('Reshape', [t, g.constInt([0, 0, ...tail])]);
    return g.node('Reshape', [t, g.node('Concat', [dimOf(t, 0), dimOf(t, 1), ...tail.map((v) => g.constInt([v]))], { axis: 0 })]);
  };

  // attention mask → additive mask
  const maskF = g.node('Cast', [g.unsqueeze(g.unsqueeze(names.mask, [1]), [2])], { to: DataType.FLOAT });
  const maskAdd = g.node('Mul', [g.node('Sub', [g.constFloat(1), maskF]), g.constFloat(-3.4028234663852886e38)]);

  // embeddings
  const word = g.init('bert.embeddings.word_embeddings.weight', [V, H], uniform(V * H, std));
  const seqLen = dimOf(names.ids, 1);
  const posIds = g.initInt64('bert.embeddings.position_ids', [1, P], Array.from({ length: P }, (_, i) => i));
  const positions = g.node('Slice', [posIds, g.constInt([0]), seqLen, g.constInt([1]), g.constInt([1])]);
  let sum = g.node('Gather', [word, names.ids]);
  if (T > 0) {
    const types = g.init('bert.embeddings.token_type_embeddings.weight', [T, H], uniform(T * H, std));
    sum = g.node('Add', [sum, g.node('Gather', [types, names.tokenTypes])]);
  }
  const pos = g.init('bert.embeddings.position_embeddings.weight', [P, H], uniform(P * H, std));
  sum = g.node('Add', [sum, g.node('Gather', [pos, positions])]);
  let x = layerNorm(sum, 'bert.embeddings.LayerNorm');

  const scale = 1 / Math.sqrt(d);
  const head = opts.head ?? 'base';
  for (let l = 0; l < D; l++) {
    const p = `bert.encoder.layer.${l}`;
    let q = linear(x, `${p}.attention.self.query`, H, H);
    let k = linear(x, `${p}.attention.self.key`, H, H);
    const v = linear(x, `${p}.attention.self.value`, H, H);
    if (opts.scale === 'qk') {
      const s = Math.sqrt(scale);
      q = g.node('Mul', [q, g.constFloat(s)]);
      k = g.node('Mul', [k, g.constFloat(s)]);
    }
    const qh = g.node('Transpose', [reshapeTo(q, [A, d])], { perm: [0, 2, 1, 3] });
    const kh = g.node('Transpose', [reshapeTo(k, [A, d])], { perm: [0, 2, 3, 1] });
    const vh = g.node('Transpose', [reshapeTo(v, [A, d])], { perm: [0, 2, 1, 3] });
    let scores = g.node('MatMul', [qh, kh]);
    if (opts.scale === 'mul') scores = g.node('Mul', [scores, g.constFloat(scale)]);
    else if (opts.scale !== 'qk') scores = g.node('Div', [scores, g.constFloat(Math.sqrt(d))]);
    const probs = g.node('Softmax', [g.node('Add', [scores, maskAdd])], { axis: -1 });
    const ctx = g.node('Transpose', [g.node('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
    const merged = reshapeTo(ctx, [H]);
    const attnOut = linear(merged, `${p}.attention.output.dense`, H, H);
    x = layerNorm(g.node('Add', [attnOut, x]), `${p}.attention.output.LayerNorm`);
    const inter = gelu(linear(x, `${p}.intermediate.dense`, H, I));
    const ffnOut = linear(inter, `${p}.output.dense`, I, H);
    x = layerNorm(g.node('Add', [ffnOut, x]), `${p}.output.LayerNorm`, l === D - 1 && head === 'base' ? 'last_hidden_state' : undefined);
  }

  const outputs = [];
  const pooler = (): string => {
    const first = g.node('Gather', [x, g.constInt([0], true)], { axis: 1 });
    const w = g.init('bert.pooler.dense.weight', [H, H], uniform(H * H, std));
    const b = g.init('bert.pooler.dense.bias', [H], uniform(H, std));
    return g.node('Tanh', [g.node('Gemm', [first, w, b], { transB: 1, alpha: { float: 1 }, beta: { float: 1 } })], {}, head === 'base' ? 'pooler_output' : undefined);
  };
  if (head === 'base') {
    pooler();
    outputs.push(tensorInfo('last_hidden_state', DataType.FLOAT, ['batch_size', 'sequence_length', H]));
    outputs.push(tensorInfo('pooler_output', DataType.FLOAT, ['batch_size', H]));
  } else if (head === 'mlm') {
    const t = layerNorm(gelu(linear(x, 'cls.transform_dense', H, H)), 'cls.transform_ln');
    // decoder tied to the word table, stored as a transposed copy as PyTorch exports it
    const wordData = g.initializers.find((i) => i.name === word)!.rawData!;
    const wf = new Float32Array(wordData.buffer, wordData.byteOffset, V * H);
    const dec = new Float32Array(H * V);
    for (let r = 0; r < V; r++) for (let c = 0; c < H; c++) dec[c * V + r] = wf[r * H + c];
    const y = g.node('MatMul', [t, g.init('onnx::MatMul_decoder', [H, V], dec)]);
    g.node('Add', [g.init('cls.decoder.bias', [V], uniform(V, std)), y], {}, 'logits');
    outputs.push(tensorInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V]));
  } else {
    const pooled = pooler();
    const L = opts.labels ?? 2;
    const w = g.init('classifier.weight', [L, H], uniform(L * H, std));
    const b = g.init('classifier.bias', [L], uniform(L, std));
    g.node('Gemm', [pooled, w, b], { transB: 1, alpha: { float: 1 }, beta: { float: 1 } }, 'logits');
    outputs.push(tensorInfo('logits', DataType.FLOAT, ['batch_size', L]));
  }
  const inputs = [tensorInfo(names.ids, DataType.INT64, ['batch_size', 'sequence_length']), tensorInfo(names.mask, DataType.INT64, ['batch_size', 'sequence_length'])];
  if (T > 0) inputs.push(tensorInfo(names.tokenTypes, DataType.INT64, ['batch_size', 'sequence_length']));
  return modelOf(g.graph('bort_synth', inputs, outputs), opset, 'bort-compress synth');
}

export interface SynthSummary {
  output: string;
  arch: Arch;
  vocab: number;
  head: string;
  opset: number;
  bytes: number;
  seconds: number;
}

export function synth(opts: SynthOptions & { output: string }): SynthSummary {
  const t0 = process.hrtime.bigint();
  const model = buildSynthModel(opts);
  const saved: SaveResult = saveModel(model, opts.output, { externalData: opts.externalData });
  return {
    output: saved.path,
    arch: typeof opts.arch === 'string' ? parseArch(opts.arch) : opts.arch,
    vocab: opts.vocab ?? 30522,
    head: opts.head ?? 'base',
    opset: opts.opset ?? 14,
    bytes: saved.bytes + (saved.dataBytes ?? 0),
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}

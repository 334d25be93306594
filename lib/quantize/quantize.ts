/**
 * `quantize`: int8 weights for every attention projection (Q, K, V, O) and feed-forward matrix of a
 * recognised BERT, activations quantized dynamically, written as the operators onnxruntime's own
 * dynamic quantization writes (so onnxruntime runs the result):
 *
 *   DynamicQuantizeLinear(x) → MatMulInteger(x_q, W_q, x_zp, W_zp) → Cast(float) → Mul(x_scale · W_scale) → Add(bias)
 *
 * One DynamicQuantizeLinear per float input tensor, shared by the layers reading it (Q, K and V share
 * one). Weights are symmetric int8 (zero point 0, values in [-127, 127]), per output column by default;
 * activations uint8 asymmetric per tensor (DynamicQuantizeLinear's definition). Embeddings,
 * LayerNorms, softmax and the heads stay float32; `all` also quantizes the linear heads (pooler,
 * masked-LM transform and decoder, classifiers); embeddings, LayerNorms and softmax stay float32 always.
 *
 * With `inputMax` (static activation scales from calibration, lib/quantize/calibrate.ts), each input
 * tensor x gets one constant scale s = max / 127 instead, and the int8 input is exactly what the native
 * kernels use (symmetric int8 in [-127, 127]):
 *
 *   Clip(x, -127·s, 127·s) → QuantizeLinear(s, int8 0) → MatMulInteger(x_q, W_q, 0, W_zp) → Cast(float) → Mul(s · W_scale) → Add(bias)
 *
 * (s · W_scale folded into one constant; the Clip keeps QuantizeLinear off -128).
 */
import * as path from 'node:path';
import { loadModel, saveModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { makeAttrInt, makeNode } from '../onnx/graph.js';
import { floatData, makeFloatTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import { removeDeadCode } from '../rewrite/prune.js';
import { BortError, quoteName } from '../errors.js';
import type { BertModel, Linear } from '../bert/model.js';
import { INT8_MAX, quantizeMatrix } from './weights.js';

export interface QuantizeOptions {
  /** Output path (default: IN.int8.onnx beside the input). */
  output?: string;
  /** One scale per weight matrix instead of one per output column. */
  perTensor?: boolean;
  /** Also quantize the linear heads (pooler, masked-LM, classifiers). */
  all?: boolean;
  /**
   * Static activation scales: for each float input tensor of a quantized linear (by its ONNX name), the
   * |x| that maps to 127 (from calibration: lib/quantize/calibrate.ts). Unset: dynamic
   * (DynamicQuantizeLinear). Every quantized linear's input must be listed.
   */
  inputMax?: Map<string, number>;
}

export interface QuantizeSummary {
  input: string;
  output: string;
  scheme: 'per-channel' | 'per-tensor';
  /** How activations are quantized: at run time (DynamicQuantizeLinear) or with static scales (QuantizeLinear). */
  activations: 'dynamic' | 'static';
  /** Linear layers made int8, by role ("layer 0 attention query", ...). */
  quantized: string[];
  /** float32 bytes of the weights made int8, and the int8 + scale bytes replacing them. */
  floatBytes: number;
  int8Bytes: number;
  fileBytes: number;
  seconds: number;
}

export function defaultQuantizeOutput(input: string): string {
  return input.replace(/(\.onnx)?$/i, '.int8.onnx');
}

/** The linears to quantize, with the role each plays. */
export function quantizableLinears(m: BertModel, all: boolean): { role: string; linear: Linear }[] {
  const out: { role: string; linear: Linear }[] = [];
  for (const l of m.layers) {
    const a = l.attention;
    out.push({ role: `layer ${l.index} attention query`, linear: a.q }, { role: `layer ${l.index} attention key`, linear: a.k },
      { role: `layer ${l.index} attention value`, linear: a.v }, { role: `layer ${l.index} attention output`, linear: a.o },
      { role: `layer ${l.index} feed-forward input`, linear: l.ffn.in }, { role: `layer ${l.index} feed-forward output`, linear: l.ffn.out });
  }
  if (all) {
    if (m.pooler) out.push({ role: 'pooler', linear: m.pooler.dense });
    if (m.mlm) out.push({ role: 'masked-LM transform', linear: m.mlm.transform }, { role: 'masked-LM decoder', linear: m.mlm.decoder });
    m.classifiers.forEach((c, i) => out.push({ role: `classifier ${i}`, linear: c.linear }));
  }
  return out;
}

function int8Tensor(name: string, dims: number[], data: Int8Array): TensorProto {
  return {
    name, dims, dataType: DataType.INT8, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [], stringData: [], externalData: [], metadataProps: [],
  };
}

/** Tensor and node names not yet used in the graph. */
class Names {
  private used = new Set<string>();
  constructor(model: ModelProto) {
    const g = model.graph!;
    for (const t of g.initializer) this.used.add(t.name ?? '');
    for (const i of g.input) this.used.add(i.name ?? '');
    for (const n of g.node) { for (const o of n.output) this.used.add(o); if (n.name) this.used.add(n.name); }
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** The static scale for an input whose calibrated max |x| is `max`: max / 127 in float32 (1 when that is 0). */
export function staticScale(max: number): number {
  const s = Math.fround(max / INT8_MAX);
  return s > 0 && Number.isFinite(s) ? s : 1;
}

function int8Scalar(name: string, v: number): TensorProto {
  return int8Tensor(name, [], Int8Array.of(v));
}

/**
 * Rewrites the model in place: the listed linears become int8. Returns the weight bytes before and
 * after. `inputMax` (static): each input is clipped to ±127·s and quantized by QuantizeLinear to int8
 * (zero point 0) with s = staticScale(max); the output Mul then multiplies by the folded constant
 * s · W_scale.
 */
export function quantizeModel(m: BertModel, targets: { role: string; linear: Linear }[], perChannel: boolean, inputMax?: Map<string, number>): { floatBytes: number; int8Bytes: number } {
  const model = m.model;
  const g = model.graph!;
  const opset = Number(model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0);
  if (opset < 11) throw new BortError(`the model uses opset ${opset}`, 'DynamicQuantizeLinear needs opset 11 or later; export the model with opset 11 or later');
  const names = new Names(model);
  const byNode = new Map<NodeProto, Linear>();
  const removed = new Set<NodeProto>();
  for (const { linear } of targets) {
    byNode.set(linear.node, linear);
    if (linear.biasNode) removed.add(linear.biasNode);
  }
  const quantizedInputs = new Map<string, { q: string; scale: string; zp: string; staticScale?: number }>();
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const replacedWeights = new Set<string>();
  let floatBytes = 0, int8Bytes = 0;
  for (const n of g.node) {
    if (removed.has(n)) continue;
    const l = byNode.get(n);
    if (!l) { nodes.push(n); continue; }
    const base = l.weight;
    let xq = quantizedInputs.get(l.input);
    if (!xq && inputMax) {
      const max = inputMax.get(l.input);
      if (max === undefined) throw new Error(`internal: no calibrated range for ${l.input}`);
      const sc = staticScale(max);
      xq = { q: names.fresh(`${l.input}_quantized`), scale: names.fresh(`${l.input}_scale`), zp: names.fresh(`${l.input}_zero_point`), staticScale: sc };
      const lo = names.fresh(`${l.input}_clip_min`), hi = names.fresh(`${l.input}_clip_max`), clipped = names.fresh(`${l.input}_clipped`);
      inits.push(makeFloatTensor(xq.scale, [], Float32Array.of(sc)), int8Scalar(xq.zp, 0),
        makeFloatTensor(lo, [], Float32Array.of(-INT8_MAX * sc)), makeFloatTensor(hi, [], Float32Array.of(INT8_MAX * sc)));
      quantizedInputs.set(l.input, xq);
      nodes.push(makeNode('Clip', [l.input, lo, hi], [clipped], names.fresh(`${l.input}_Clip`)));
      nodes.push(makeNode('QuantizeLinear', [clipped, xq.scale, xq.zp], [xq.q], names.fresh(`${l.input}_QuantizeLinear`)));
    }
    if (!xq) {
      xq = { q: names.fresh(`${l.input}_quantized`), scale: names.fresh(`${l.input}_scale`), zp: names.fresh(`${l.input}_zero_point`) };
      quantizedInputs.set(l.input, xq);
      nodes.push(makeNode('DynamicQuantizeLinear', [l.input], [xq.q, xq.scale, xq.zp], names.fresh(`${l.input}_DynamicQuantizeLinear`)));
    }
    const w = m.index.weight(l.weight)!;
    let qm;
    try {
      qm = quantizeMatrix(floatData(w.tensor), l.inDim, l.outDim, { perChannel, transposed: l.layout === 'out_in', factor: l.alpha });
    } catch (e) {
      if (e instanceof RangeError) throw new BortError(`the weight ${quoteName(l.weight)}: ${e.message}`, 'a weight that is infinite or NaN cannot be quantized; the file is damaged');
      throw e;
    }
    replacedWeights.add(l.weight);
    floatBytes += l.inDim * l.outDim * 4;
    int8Bytes += l.inDim * l.outDim + qm.scales.length * 4 + qm.scales.length;
    const wq = names.fresh(`${base}_quantized`), ws = names.fresh(`${base}_scale`), wz = names.fresh(`${base}_zero_point`);
    const scaleDims = perChannel ? [l.outDim] : [];
    const inScale = xq.staticScale;
    // static: one constant s · W_scale (folded here), what the cast int32 sums are multiplied by
    const scales = inScale === undefined ? qm.scales : qm.scales.map((v) => Math.fround(inScale * v));
    inits.push(int8Tensor(wq, [l.inDim, l.outDim], qm.q), makeFloatTensor(ws, scaleDims, scales), int8Tensor(wz, scaleDims, new Int8Array(qm.scales.length)));
    const mmOut = names.fresh(`${base}_MatMulInteger_output`);
    const castOut = names.fresh(`${base}_cast_output`);
    nodes.push(makeNode('MatMulInteger', [xq.q, wq, xq.zp, wz], [mmOut], names.fresh(`${base}_MatMulInteger`)));
    nodes.push(makeNode('Cast', [mmOut], [castOut], names.fresh(`${base}_Cast`), [makeAttrInt('to', DataType.FLOAT)]));
    let scalesOut = ws;
    if (inScale === undefined) {
      scalesOut = names.fresh(`${base}_scales`);
      nodes.push(makeNode('Mul', [xq.scale, ws], [scalesOut], names.fresh(`${base}_scales_Mul`)));
    }
    if (l.bias) {
      let bias = l.bias;
      if (l.beta !== 1) {
        bias = names.fresh(`${l.bias}_times_beta`);
        inits.push(makeFloatTensor(bias, [l.outDim], floatData(m.index.weight(l.bias)!.tensor).map((v) => v * l.beta)));
      }
      const deq = names.fresh(`${base}_dequantized`);
      nodes.push(makeNode('Mul', [castOut, scalesOut], [deq], names.fresh(`${base}_output_Mul`)));
      nodes.push(makeNode('Add', [deq, bias], [l.output], names.fresh(`${base}_bias_Add`)));
    } else {
      nodes.push(makeNode('Mul', [castOut, scalesOut], [l.output], names.fresh(`${base}_output_Mul`)));
    }
  }
  g.node = nodes;
  g.initializer.push(...inits);
  // initializers listed as graph inputs (IR < 4) keep themselves alive: drop the replaced ones nothing reads
  const read = new Set(nodes.flatMap((n) => n.input));
  g.input = g.input.filter((i) => !replacedWeights.has(i.name ?? '') || read.has(i.name ?? ''));
  removeDeadCode(g);
  return { floatBytes, int8Bytes };
}

export function quantize(input: string, opts: QuantizeOptions = {}): QuantizeSummary {
  const t0 = performance.now();
  const loaded = loadModel(input);
  const m = recognize(loaded.model);
  const targets = quantizableLinears(m, opts.all === true);
  const already = quantizableLinears(m, true).find((t) => t.linear.quant);
  if (already) {
    throw new BortError(`the model is already int8-quantized (${already.role} weight ${quoteName(already.linear.weight)})`, 'quantize the float32 model it was made from');
  }
  const perChannel = opts.perTensor !== true;
  const { floatBytes, int8Bytes } = quantizeModel(m, targets, perChannel, opts.inputMax);
  const output = opts.output ?? defaultQuantizeOutput(input);
  // the result must read back as the model it claims to be: recognised, with every target int8
  const check = recognize(loaded.model);
  const missing = quantizableLinears(check, opts.all === true).find((t) => !t.linear.quant);
  if (missing) throw new Error(`internal: ${missing.role} was not quantized`);
  const saved = saveModel(loaded.model, output, { protect: loaded.sources });
  return {
    input: loaded.path, output: path.resolve(saved.path), scheme: perChannel ? 'per-channel' : 'per-tensor',
    activations: opts.inputMax ? 'static' : 'dynamic',
    quantized: targets.map((t) => t.role), floatBytes, int8Bytes,
    fileBytes: saved.bytes + (saved.dataBytes ?? 0), seconds: (performance.now() - t0) / 1000,
  };
}

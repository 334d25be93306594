/**
 * Recognition of int8 linear layers, the normalising view that lets lib/bert read a quantized model:
 *
 *   x ─ DynamicQuantizeLinear ─┬ x_q ──────┐
 *                              ├ x_scale ─┐│
 *                              └ x_zp ────┼┴ MatMulInteger(x_q, W_q, x_zp, W_zp) ─ Cast(float) ─┐
 *                          W_scale ─ Mul(x_scale, W_scale) ─────────────────────────────────── Mul ─ [Add bias]
 *
 * (the operators onnxruntime's own dynamic quantization writes) is seen as a Linear whose weight is the
 * int8 [in, out] initializer W_q, with `quant` naming its scales. So is the static form `quantize
 * --calibration` writes, the input scale s a constant from calibration:
 *
 *   x ─ Clip(-127·s, 127·s) ─ QuantizeLinear(s, int8 0) ─ MatMulInteger(x_q, W_q, 0, W_zp) ─ Cast(float) ─ Mul(s · W_scale) ─ [Add bias]
 *
 * (s · W_scale one folded constant; the Clip keeps x_q in [-127, 127], the int8 kernels' range). The view is keyed on the final Mul,
 * the node whose output replaces the float MatMul's, so the residual-block walk finds it where it finds
 * a MatMul. Scales and zero points are checked here, once: every weight scale finite and > 0, one value
 * or one per output column; weight zero points int8 and all zero (symmetric, what `quantize` writes).
 */
import type { GraphIndex } from '../onnx/graph.js';
import { attrInt } from '../onnx/graph.js';
import { floatData, tensorDims, tensorNumel, typeName } from '../onnx/tensor.js';
import { DataType, type NodeProto, type TensorProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import type { Linear } from '../bert/model.js';

const damaged = 'the quantized model is damaged; quantize the float32 model again with bort-compress quantize';

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

/** Values of an int8 tensor (raw_data or int32_data). */
export function int8Values(t: TensorProto): Int8Array {
  const n = tensorNumel(t);
  const raw = t.rawData;
  if (raw && raw.byteLength > 0) {
    if (raw.byteLength !== n) throw new BortError(`int8 tensor ${quoteName(t.name)} holds ${raw.byteLength} bytes for ${n} values`, damaged);
    return new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  }
  const v = Int8Array.from(t.int32Data as ArrayLike<number>);
  if (v.length !== n) throw new BortError(`int8 tensor ${quoteName(t.name)} holds ${v.length} values, not ${n}`, damaged);
  return v;
}

/** The weight-scale constant: float32, one value or `outDim`, each finite and > 0. */
function checkScale(ix: GraphIndex, name: string, outDim: number, mm: NodeProto): boolean {
  const t = ix.initializers.get(name);
  if (!t) throw new BortError(`the weight scale of MatMulInteger ${nodeName(mm)} is computed, not an initializer`, damaged);
  const n = tensorNumel(t);
  if (t.dataType !== DataType.FLOAT || tensorDims(t).length > 1 || (n !== 1 && n !== outDim)) {
    throw new BortError(`the weight scale ${quoteName(name)} of MatMulInteger ${nodeName(mm)} is ${typeName(t.dataType)} [${tensorDims(t).join(', ')}], not float32 [1] or [${outDim}]`, damaged);
  }
  const v = floatData(t);
  for (let i = 0; i < v.length; i++) {
    if (!(Number.isFinite(v[i]) && v[i] > 0)) {
      throw new BortError(`the weight scale ${quoteName(name)} of MatMulInteger ${nodeName(mm)} has value ${v[i]} at ${i}`, `a scale must be a finite number above 0; ${damaged}`);
    }
  }
  return n !== 1 || outDim === 1;
}

/** The weight zero point: int8, one value or `outDim`, all zero. */
function checkZeroPoint(ix: GraphIndex, name: string, outDim: number, mm: NodeProto): void {
  const t = ix.initializers.get(name);
  if (!t) throw new BortError(`the weight zero point of MatMulInteger ${nodeName(mm)} is computed, not an initializer`, damaged);
  const n = tensorNumel(t);
  if (t.dataType !== DataType.INT8 || tensorDims(t).length > 1 || (n !== 1 && n !== outDim)) {
    throw new BortError(`the weight zero point ${quoteName(name)} of MatMulInteger ${nodeName(mm)} is ${typeName(t.dataType)} [${tensorDims(t).join(', ')}], not int8 [1] or [${outDim}]`, damaged);
  }
  const v = int8Values(t);
  const bad = v.findIndex((z) => z !== 0);
  if (bad >= 0) {
    throw new BortError(`the weight zero point ${quoteName(name)} of MatMulInteger ${nodeName(mm)} is ${v[bad]} at ${bad}`,
      'bort-compress reads symmetric int8 weights (zero point 0); quantize the float32 model with bort-compress quantize');
  }
}

/** The bias Add after `tensor`, if its one reader adds a float32 [outDim] initializer. */
function biasAfter(ix: GraphIndex, tensor: string, outDim: number): { bias: string; node: NodeProto } | undefined {
  const users = ix.consumersOf(tensor);
  if (users.length !== 1 || ix.outputs.has(tensor)) return undefined;
  const add = users[0];
  if (add.opType !== 'Add' || add.input.length !== 2) return undefined;
  const other = add.input[0] === tensor ? add.input[1] : add.input[0];
  const w = ix.weight(other);
  if (!w || w.dims.length !== 1 || w.dims[0] !== outDim) return undefined;
  return { bias: other, node: add };
}

/** A float32 scalar initializer's value (one value, any rank), or undefined. */
function floatScalar(ix: GraphIndex, name: string): number | undefined {
  const t = ix.initializers.get(name);
  if (!t || t.dataType !== DataType.FLOAT || tensorNumel(t) !== 1) return undefined;
  return floatData(t)[0];
}

const staticHint = 'bort-compress reads static int8 inputs as bort-compress quantize --calibration writes them (Clip to ±127·scale, QuantizeLinear to int8 with zero point 0); quantize the float32 model with it';

/**
 * The static input quantization in front of MatMulInteger `mm`: QuantizeLinear `q` (int8, zero point
 * 0, a constant scale s > 0) reading Clip(x, ≈-127·s, ≈127·s). Returns the input x and the scale's name.
 */
function staticInput(ix: GraphIndex, q: NodeProto, mm: NodeProto): { input: string; scale: string; clip: NodeProto } {
  const [xc, sName, zpName] = q.input;
  const s = sName ? floatScalar(ix, sName) : undefined;
  if (s === undefined || !(Number.isFinite(s) && s > 0)) {
    throw new BortError(`the QuantizeLinear ${nodeName(q)} before MatMulInteger ${nodeName(mm)} has no constant float32 scale above 0`, damaged);
  }
  const zp = zpName ? ix.initializers.get(zpName) : undefined;
  if (!zp || zp.dataType !== DataType.INT8 || tensorNumel(zp) !== 1 || int8Values(zp)[0] !== 0) {
    throw new BortError(`the QuantizeLinear ${nodeName(q)} before MatMulInteger ${nodeName(mm)} does not quantize to int8 with zero point 0`, staticHint);
  }
  if (mm.input[2] !== zpName) throw new BortError(`MatMulInteger ${nodeName(mm)} does not use the zero point of its input's QuantizeLinear`, damaged);
  const clip = ix.producer.get(xc);
  const lo = clip?.opType === 'Clip' && clip.input[1] ? floatScalar(ix, clip.input[1]) : undefined;
  const hi = clip?.opType === 'Clip' && clip.input[2] ? floatScalar(ix, clip.input[2]) : undefined;
  // the Clip must send what the kernels clamp to ±127 there too: its bounds round to ∓127 after / s
  if (!clip || lo === undefined || hi === undefined || !(Math.abs(lo / s + 127) < 0.5) || !(Math.abs(hi / s - 127) < 0.5)) {
    throw new BortError(`the input of QuantizeLinear ${nodeName(q)} is not clipped to [-127·scale, 127·scale]`, staticHint);
  }
  return { input: clip.input[0], scale: sName, clip };
}

/**
 * The int8 linear whose output Mul is `mul`, or undefined when `mul` is not one. Throws a BortError
 * when the pattern is there but its scales, zero points or weight are not what the math needs.
 */
export function quantizedLinearAt(ix: GraphIndex, mul: NodeProto): Linear | undefined {
  if (mul.opType !== 'Mul' || mul.input.length !== 2) return undefined;
  let cast: NodeProto | undefined, scaleMul: NodeProto | undefined;
  for (let i = 0; i < 2; i++) {
    const p = ix.producer.get(mul.input[i]);
    if (p?.opType === 'Cast') { cast = p; scaleMul = ix.producer.get(mul.input[1 - i]); break; }
  }
  const mm = cast && ix.producer.get(cast.input[0]);
  if (!cast || !mm || mm.opType !== 'MatMulInteger') return undefined;
  if (attrInt(cast, 'to', 0) !== DataType.FLOAT) throw new BortError(`Cast ${nodeName(cast)} after MatMulInteger ${nodeName(mm)} does not cast to float32`, damaged);
  const dql = ix.producer.get(mm.input[0]);
  if (dql?.opType === 'QuantizeLinear') return staticLinearAt(ix, mul, cast, mm, dql);
  if (!dql || dql.opType !== 'DynamicQuantizeLinear') {
    throw new BortError(`MatMulInteger ${nodeName(mm)} reads an input not quantized by DynamicQuantizeLinear`, 'bort-compress reads dynamically quantized models (as bort-compress quantize or onnxruntime quantize_dynamic write them)');
  }
  if (mm.input[2] !== dql.output[2]) throw new BortError(`MatMulInteger ${nodeName(mm)} does not use the zero point of its input's DynamicQuantizeLinear`, damaged);
  if (!scaleMul || scaleMul.opType !== 'Mul' || !scaleMul.input.includes(dql.output[1])) {
    throw new BortError(`MatMulInteger ${nodeName(mm)} is not rescaled by its input's scale times a weight scale`, damaged);
  }
  const scale = scaleMul.input[0] === dql.output[1] ? scaleMul.input[1] : scaleMul.input[0];
  const wname = mm.input[1];
  const [inDim, outDim] = int8WeightDims(ix, mm);
  const perChannel = checkScale(ix, scale, outDim, mm);
  const zeroPoint = mm.input[3] || undefined;
  if (zeroPoint) checkZeroPoint(ix, zeroPoint, outDim, mm);
  const bias = biasAfter(ix, mul.output[0], outDim);
  return {
    node: mm, weight: wname, layout: 'in_out', input: dql.input[0], inDim, outDim, alpha: 1, beta: 1,
    bias: bias?.bias, biasNode: bias?.node, output: bias ? bias.node.output[0] : mul.output[0],
    quant: { scale, perChannel, zeroPoint, quantizeInput: dql, nodes: [mm, cast, scaleMul, mul] },
  };
}

/** The int8 [in, out] weight of MatMulInteger `mm`, checked. */
function int8WeightDims(ix: GraphIndex, mm: NodeProto): [number, number] {
  const wname = mm.input[1];
  const w = ix.initializers.get(wname);
  if (!w) throw new BortError(`the weight of MatMulInteger ${nodeName(mm)} is computed, not an initializer`, damaged);
  const dims = tensorDims(w);
  if (w.dataType === DataType.UINT8) {
    throw new BortError(`the weight ${quoteName(wname)} of MatMulInteger ${nodeName(mm)} is uint8 (asymmetric weights with a zero point)`,
      'bort-compress reads symmetric int8 weights: quantize the float32 model with bort-compress quantize, or with onnxruntime quantize_dynamic(weight_type=QuantType.QInt8)');
  }
  if (w.dataType !== DataType.INT8 || dims.length !== 2 || dims[0] === 0 || dims[1] === 0) {
    throw new BortError(`the weight ${quoteName(wname)} of MatMulInteger ${nodeName(mm)} is ${typeName(w.dataType)} [${dims.join(', ')}], not an int8 matrix`, damaged);
  }
  return [dims[0], dims[1]];
}

/** The static form (module comment): the output Mul multiplies the cast by one constant, s · W_scale. */
function staticLinearAt(ix: GraphIndex, mul: NodeProto, cast: NodeProto, mm: NodeProto, q: NodeProto): Linear {
  const { input, scale: inputScale, clip } = staticInput(ix, q, mm);
  const [inDim, outDim] = int8WeightDims(ix, mm);
  const scale = mul.input[0] === cast.output[0] ? mul.input[1] : mul.input[0];
  const perChannel = checkScale(ix, scale, outDim, mm);
  const zeroPoint = mm.input[3] || undefined;
  if (zeroPoint) checkZeroPoint(ix, zeroPoint, outDim, mm);
  const bias = biasAfter(ix, mul.output[0], outDim);
  return {
    node: mm, weight: mm.input[1], layout: 'in_out', input, inDim, outDim, alpha: 1, beta: 1,
    bias: bias?.bias, biasNode: bias?.node, output: bias ? bias.node.output[0] : mul.output[0],
    quant: { scale, perChannel, zeroPoint, quantizeInput: q, inputScale, clip, nodes: [mm, cast, mul] },
  };
}

/**
 * The nodes reading tensor `t`, with a DynamicQuantizeLinear of `t` seen through: in its place, the
 * output Mul of each int8 linear it feeds (the node `quantizedLinearAt` is keyed on).
 */
export function readersOf(ix: GraphIndex, t: string): NodeProto[] {
  const out: NodeProto[] = [];
  for (const n of ix.consumersOf(t)) {
    // the nodes whose output the MatMulIntegers read: the DynamicQuantizeLinear, or the QuantizeLinears after a Clip (static)
    let quantizers: NodeProto[] | undefined;
    if (n.opType === 'DynamicQuantizeLinear' && n.input[0] === t) quantizers = [n];
    else if (n.opType === 'Clip' && n.input[0] === t) {
      const qs = ix.consumersOf(n.output[0]);
      if (qs.length > 0 && !ix.outputs.has(n.output[0]) && qs.every((q) => q.opType === 'QuantizeLinear' && q.input[0] === n.output[0])) quantizers = qs;
    }
    if (!quantizers) { out.push(n); continue; }
    for (const q of quantizers) {
      for (const mm of ix.consumersOf(q.output[0])) {
        if (mm.opType !== 'MatMulInteger') { if (!out.includes(n)) out.push(n); continue; }
        for (const cast of ix.consumersOf(mm.output[0])) {
          for (const mul of ix.consumersOf(cast.output[0])) if (!out.includes(mul)) out.push(mul);
        }
      }
    }
  }
  return out;
}

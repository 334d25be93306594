/**
 * Recognition of int8 linear layers, the normalising view that lets lib/bert read a quantized model:
 *
 *   x ─ DynamicQuantizeLinear ─┬ x_q ──────┐
 *                              ├ x_scale ─┐│
 *                              └ x_zp ────┼┴ MatMulInteger(x_q, W_q, x_zp, W_zp) ─ Cast(float) ─┐
 *                          W_scale ─ Mul(x_scale, W_scale) ─────────────────────────────────── Mul ─ [Add bias]
 *
 * (the operators onnxruntime's own dynamic quantization writes) is seen as a Linear whose weight is the
 * int8 [in, out] initializer W_q, with `quant` naming its scales. The view is keyed on the final Mul,
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
  if (!dql || dql.opType !== 'DynamicQuantizeLinear') {
    throw new BortError(`MatMulInteger ${nodeName(mm)} reads an input not quantized by DynamicQuantizeLinear`, 'bort-compress reads dynamically quantized models (as bort-compress quantize or onnxruntime quantize_dynamic write them)');
  }
  if (mm.input[2] !== dql.output[2]) throw new BortError(`MatMulInteger ${nodeName(mm)} does not use the zero point of its input's DynamicQuantizeLinear`, damaged);
  if (!scaleMul || scaleMul.opType !== 'Mul' || !scaleMul.input.includes(dql.output[1])) {
    throw new BortError(`MatMulInteger ${nodeName(mm)} is not rescaled by its input's scale times a weight scale`, damaged);
  }
  const scale = scaleMul.input[0] === dql.output[1] ? scaleMul.input[1] : scaleMul.input[0];
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
  const [inDim, outDim] = dims;
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

/**
 * The nodes reading tensor `t`, with a DynamicQuantizeLinear of `t` seen through: in its place, the
 * output Mul of each int8 linear it feeds (the node `quantizedLinearAt` is keyed on).
 */
export function readersOf(ix: GraphIndex, t: string): NodeProto[] {
  const out: NodeProto[] = [];
  for (const n of ix.consumersOf(t)) {
    if (n.opType !== 'DynamicQuantizeLinear' || n.input[0] !== t) { out.push(n); continue; }
    for (const mm of ix.consumersOf(n.output[0])) {
      if (mm.opType !== 'MatMulInteger') { out.push(n); continue; }
      for (const cast of ix.consumersOf(mm.output[0])) {
        for (const mul of ix.consumersOf(cast.output[0])) if (!out.includes(mul)) out.push(mul);
      }
    }
  }
  return out;
}

/**
 * Reading recognised weights: a linear's matrix in either storage layout, and the norms that
 * importance scores are made of.
 */
import { floatData } from '../onnx/tensor.js';
import { BortError, quoteName } from '../errors.js';
import type { BertModel, Linear } from './model.js';
import type { TensorProto } from '../onnx/types.js';

export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** The float32 initializer `name`; an int8-quantized weight is refused (only lib/quantize reads those). */
function floatWeight(m: BertModel, name: string): { tensor: TensorProto; dims: number[] } {
  const w = m.index.weight(name);
  if (!w) throw new BortError(`the weight ${quoteName(name)} is int8-quantized`, 'this step reads float32 weights; give it the float32 model the quantized one was made from');
  return w;
}

export function initializerData(m: BertModel, name: string): Float32Array {
  return floatData(floatWeight(m, name).tensor);
}

export function matrixOf(m: BertModel, name: string): Matrix {
  const w = floatWeight(m, name);
  return { data: floatData(w.tensor), rows: w.dims[0], cols: w.dims[1] };
}

function rowNorms2(x: Matrix): Float64Array {
  const out = new Float64Array(x.rows);
  for (let r = 0; r < x.rows; r++) {
    let s = 0;
    const base = r * x.cols;
    for (let c = 0; c < x.cols; c++) s += x.data[base + c] * x.data[base + c];
    out[r] = s;
  }
  return out;
}

function colNorms2(x: Matrix): Float64Array {
  const out = new Float64Array(x.cols);
  for (let r = 0; r < x.rows; r++) {
    const base = r * x.cols;
    for (let c = 0; c < x.cols; c++) out[c] += x.data[base + c] * x.data[base + c];
  }
  return out;
}

/** Squared norm of W's slice for each input index (the weights that read input i). */
export function inputNorms2(m: BertModel, l: Linear): Float64Array {
  const x = matrixOf(m, l.weight);
  return l.layout === 'in_out' ? rowNorms2(x) : colNorms2(x);
}

/** Squared norm of W's slice for each output index (the weights that write output j). */
export function outputNorms2(m: BertModel, l: Linear): Float64Array {
  const x = matrixOf(m, l.weight);
  return l.layout === 'in_out' ? colNorms2(x) : rowNorms2(x);
}

/** W as [in, out] row-major (a copy when stored [out, in]; the original view otherwise). */
export function inOutMatrix(m: BertModel, l: Linear): Float32Array {
  const x = matrixOf(m, l.weight);
  if (l.layout === 'in_out') return x.data;
  const out = new Float32Array(x.rows * x.cols);
  for (let r = 0; r < x.rows; r++) for (let c = 0; c < x.cols; c++) out[c * x.rows + r] = x.data[r * x.cols + c];
  return out;
}

/**
 * Gram matrix G = Aᵀ·A of the columns [c0, c0+d) of a [rows, cols] matrix (upper triangle filled,
 * then mirrored), or of rows [c0, c0+d) when `byRows`: G = A·Aᵀ.
 */
export function gram(x: Matrix, c0: number, d: number, byRows: boolean): Float64Array {
  const g = new Float64Array(d * d);
  if (!byRows) {
    const v = new Float64Array(d);
    for (let r = 0; r < x.rows; r++) {
      const base = r * x.cols + c0;
      for (let a = 0; a < d; a++) v[a] = x.data[base + a];
      for (let a = 0; a < d; a++) {
        const va = v[a];
        const ga = a * d;
        for (let b = a; b < d; b++) g[ga + b] += va * v[b];
      }
    }
  } else {
    for (let a = 0; a < d; a++) {
      const ra = (c0 + a) * x.cols;
      for (let b = a; b < d; b++) {
        const rb = (c0 + b) * x.cols;
        let s = 0;
        for (let c = 0; c < x.cols; c++) s += x.data[ra + c] * x.data[rb + c];
        g[a * d + b] = s;
      }
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) g[a * d + b] = g[b * d + a];
  return g;
}

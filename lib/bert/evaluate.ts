/**
 * Evaluates a small region of elementwise ops (and last-axis means) on test values, in float64, so
 * that recognition can check what an activation or a LayerNorm computes, constants included, rather
 * than trusting which ops it contains. A value is a grid of rows × cols (cols 1 broadcasts along the
 * channel axis); constants must be scalars or one value per channel.
 */
import { attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';
import { tensorDims, floatData } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { quoteName } from '../errors.js';

export interface Grid {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** erf(x) to about 1e-15: its Taylor series near 0, a continued fraction for erfc further out. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a, sum = a;
    for (let n = 1; n < 60; n++) {
      term *= -a * a / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (a > 6) return Math.sign(x);
  // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + 2/(a + …)))))
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + (k / 2) / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const UNARY: Record<string, (x: number) => number> = {
  Sqrt: Math.sqrt,
  Reciprocal: (x) => 1 / x,
  Erf: erf,
  Tanh: Math.tanh,
  Relu: (x) => (x > 0 ? x : 0),
  Sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  Neg: (x) => -x,
  Identity: (x) => x,
};

const BINARY: Record<string, (a: number, b: number) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b) => a / b,
  Pow: (a, b) => Math.pow(a, b),
};

function geluOf(node: NodeProto): (x: number) => number {
  const approx = node.attribute.find((a) => a.name === 'approximate');
  if (approx?.s && Buffer.from(approx.s).toString() === 'tanh') {
    return (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
  }
  return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
}

function map(g: Grid, f: (x: number) => number): Grid {
  const data = new Float64Array(g.data.length);
  for (let i = 0; i < data.length; i++) data[i] = f(g.data[i]);
  return { rows: g.rows, cols: g.cols, data };
}

function broadcast(a: Grid, b: Grid, f: (a: number, b: number) => number): Grid | undefined {
  const rows = Math.max(a.rows, b.rows), cols = Math.max(a.cols, b.cols);
  if ((a.rows !== rows && a.rows !== 1) || (b.rows !== rows && b.rows !== 1)) return undefined;
  if ((a.cols !== cols && a.cols !== 1) || (b.cols !== cols && b.cols !== 1)) return undefined;
  const data = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      data[r * cols + c] = f(a.data[(a.rows === 1 ? 0 : r) * a.cols + (a.cols === 1 ? 0 : c)], b.data[(b.rows === 1 ? 0 : r) * b.cols + (b.cols === 1 ? 0 : c)]);
    }
  }
  return { rows, cols, data };
}

/** A constant as a grid: a scalar (any rank, one value) or one value per channel (shape [..., 1, cols]). */
function constantGrid(ix: GraphIndex, name: string, cols: number, integerOk: boolean): Grid | string {
  const t = ix.constant(name)!;
  const dims = tensorDims(t);
  const n = dims.reduce((x, y) => x * y, 1);
  let values: number[];
  if (t.dataType === DataType.FLOAT) values = Array.from(floatData(t));
  else if (integerOk && (t.dataType === DataType.INT64 || t.dataType === DataType.INT32 || t.dataType === DataType.DOUBLE)) values = ix.constantValues(name)!;
  else return `the constant ${quoteName(name)} is not a float32`;
  if (n === 1) return { rows: 1, cols: 1, data: Float64Array.of(values[0]) };
  if (cols > 1 && n === cols && dims[dims.length - 1] === cols) return { rows: 1, cols, data: Float64Array.from(values) };
  return `the constant ${quoteName(name)} has shape [${dims.join(', ')}]`;
}

/** The axes a reduction reads (attribute, or the second input from opset 18), or undefined if computed. */
function reduceAxes(ix: GraphIndex, n: NodeProto): number[] | undefined {
  if (n.input[1]) return ix.constantValues(n.input[1]);
  return attrInts(n, 'axes') ?? [];
}

/**
 * Evaluates `nodes` (in any order) with `input` set to `x`, an input of `rank` dimensions whose last
 * axis is the grid's columns. Returns every tensor computed, or a sentence saying why it cannot.
 */
export function evaluateRegion(ix: GraphIndex, nodes: NodeProto[], input: string, x: Grid, rank: number): Map<string, Grid> | string {
  const values = new Map<string, Grid>([[input, x]]);
  const pending = [...nodes];
  while (pending.length) {
    const k = pending.findIndex((n) => n.input.every((i) => !i || values.has(i) || ix.isConstant(i)));
    if (k < 0) return `node ${quoteName(pending[0].name || pending[0].opType)} reads a tensor computed outside the region`;
    const n = pending.splice(k, 1)[0];
    const op = n.opType ?? '';
    const name = quoteName(n.name || n.output[0] || op);
    // Pow may take its exponent in another type; every other op needs float32 operands
    const arg = (i: number): Grid | string => values.get(n.input[i]) ?? constantGrid(ix, n.input[i], x.cols, op === 'Pow' && i === 1);
    let out: Grid | string | undefined;
    if (n.domain && n.domain !== 'ai.onnx' && !(n.domain === 'com.microsoft' && op === 'Gelu')) {
      out = `node ${name} is ${quoteName(op)} from the domain ${quoteName(n.domain)}`;
    } else if (op === 'Cast') {
      const to = attrInt(n, 'to', 0);
      out = to === DataType.FLOAT ? arg(0) : `node ${name} casts to type ${to}, not float32`;
    } else if (op === 'Dropout') {
      out = inferenceDropout(ix, n) ? arg(0) : `Dropout ${name} may be in training mode`;
    } else if (op === 'Gelu') {
      const a = arg(0);
      out = typeof a === 'string' ? a : map(a, geluOf(n));
    } else if (UNARY[op] && n.input.length === 1) {
      const a = arg(0);
      out = typeof a === 'string' ? a : map(a, UNARY[op]);
    } else if (BINARY[op] && n.input.length === 2) {
      const a = arg(0), b = arg(1);
      if (typeof a === 'string') out = a;
      else if (typeof b === 'string') out = b;
      else out = broadcast(a, b, BINARY[op]) ?? `node ${name} combines values of different shapes`;
    } else if (op === 'ReduceMean') {
      const axes = reduceAxes(ix, n);
      const a = arg(0);
      if (typeof a === 'string') out = a;
      else if (!axes || axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) out = `ReduceMean ${name} averages over axes [${axes?.join(', ') ?? 'computed'}], not the last axis`;
      else if (attrInt(n, 'keepdims', 1) !== 1) out = `ReduceMean ${name} drops the reduced axis (keepdims = 0)`;
      else if (a.cols !== x.cols) out = `ReduceMean ${name} averages a value that is already averaged`;
      else {
        const data = new Float64Array(a.rows);
        for (let r = 0; r < a.rows; r++) {
          let s = 0;
          for (let c = 0; c < a.cols; c++) s += a.data[r * a.cols + c];
          data[r] = s / a.cols;
        }
        out = { rows: a.rows, cols: 1, data };
      }
    } else {
      out = `node ${name} is a ${quoteName(op)}, which is not an elementwise op bort-compress evaluates`;
    }
    if (typeof out === 'string') return out;
    if (n.output.length !== 1 && op !== 'Dropout') return `node ${name} has ${n.output.length} outputs`;
    values.set(n.output[0], out);
  }
  return values;
}

/** A Dropout that passes its input through: no training_mode input, or a constant false one. */
export function inferenceDropout(ix: GraphIndex, n: NodeProto): boolean {
  const mode = n.input[2];
  if (!mode) return true;
  const t = ix.constant(mode);
  if (!t) return false;
  if (t.rawData && t.rawData.byteLength > 0) return t.rawData.every((b) => b === 0);
  return t.int32Data.length > 0 && Array.from(t.int32Data).every((v) => v === 0);
}

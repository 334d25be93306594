/**
 * Shape computations evaluated on sample shapes. TensorFlow exporters build reshape targets at run
 * time (Shape → Gather → ReduceProd → Concat, with Casts between int32 and int64); a pass that claims
 * such a target is [batch·seq, hidden] checks it by evaluating the computation for several concrete
 * shapes of the reshaped tensor, and finds which constant element carries a width it must keep equal
 * to a weight's (to be patched when the weight is sliced).
 */
import { attrInt, attrInts, type GraphIndex } from '../../onnx/graph.js';
import { tensorDims } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import { axesOf } from '../symbolic.js';

interface Value {
  values: number[];
  rank: 0 | 1;
}

const MAX_DEPTH = 32;
const MAX_LENGTH = 64;

/** Evaluates integer tensors of a graph, given the shapes of some tensors (`shapes`). */
export class ShapeValues {
  private readonly memo = new Map<string, Value | undefined>();

  constructor(private readonly ix: GraphIndex, private readonly shapes: (t: string) => number[] | undefined) {}

  /** The values of the 0-D or 1-D tensor `t`, or undefined when they cannot be computed here. */
  values(t: string): number[] | undefined {
    return this.eval(t, 0)?.values;
  }

  private eval(t: string, depth: number): Value | undefined {
    if (this.memo.has(t)) return this.memo.get(t);
    this.memo.set(t, undefined);
    const v = depth > MAX_DEPTH ? undefined : this.compute(t, depth + 1);
    this.memo.set(t, v && v.values.length <= MAX_LENGTH && v.values.every(Number.isFinite) ? v : undefined);
    return this.memo.get(t);
  }

  private compute(t: string, depth: number): Value | undefined {
    const ix = this.ix;
    const c = ix.constant(t);
    if (c) {
      const dims = tensorDims(c);
      const values = ix.constantValues(t);
      return values && dims.length <= 1 ? { values, rank: dims.length as 0 | 1 } : undefined;
    }
    const p = ix.producer.get(t);
    if (!p || (p.domain && p.domain !== 'ai.onnx') || p.output[0] !== t) return undefined;
    const arg = (i: number) => (p.input[i] ? this.eval(p.input[i], depth) : undefined);
    const vec = (values: number[]): Value => ({ values, rank: 1 });
    switch (p.opType) {
      case 'Shape': {
        const dims = this.shapes(p.input[0]);
        if (!dims) return undefined;
        const r = dims.length;
        const norm = (i: number) => Math.min(Math.max(i < 0 ? i + r : i, 0), r);
        return vec(dims.slice(norm(attrInt(p, 'start', 0)), norm(attrInt(p, 'end', r))));
      }
      case 'Cast': case 'Identity': return arg(0);
      case 'Unsqueeze': {
        const a = arg(0);
        const axes = axesOf(ix, p);
        return a && a.rank === 0 && axes && axes.length === 1 && (axes[0] === 0 || axes[0] === -1) ? vec(a.values) : undefined;
      }
      case 'Squeeze': {
        const a = arg(0);
        const axes = axesOf(ix, p);
        return a && a.rank === 1 && a.values.length === 1 && (!axes || axes.length === 0 || (axes.length === 1 && (axes[0] === 0 || axes[0] === -1))) ? { values: a.values, rank: 0 } : undefined;
      }
      case 'Concat': {
        const axis = attrInt(p, 'axis', 0);
        const parts = p.input.map((_, i) => arg(i));
        if ((axis !== 0 && axis !== -1) || !parts.every((x) => x && x.rank === 1)) return undefined;
        return vec(parts.flatMap((x) => x!.values));
      }
      case 'Gather': {
        const data = arg(0);
        const idx = arg(1);
        if (!data || !idx || data.rank !== 1 || attrInt(p, 'axis', 0) !== 0) return undefined;
        const out: number[] = [];
        for (const i of idx.values) {
          const j = i < 0 ? i + data.values.length : i;
          if (!Number.isInteger(j) || j < 0 || j >= data.values.length) return undefined;
          out.push(data.values[j]);
        }
        return { values: out, rank: idx.rank };
      }
      case 'Slice': {
        const data = arg(0);
        const fromInputs = p.input.length > 1;
        const starts = fromInputs ? arg(1)?.values : attrInts(p, 'starts');
        const ends = fromInputs ? arg(2)?.values : attrInts(p, 'ends');
        const axes = fromInputs ? (p.input[3] ? arg(3)?.values : [0]) : attrInts(p, 'axes') ?? [0];
        const steps = fromInputs && p.input[4] ? arg(4)?.values : [1];
        if (!data || data.rank !== 1 || !starts || !ends || !axes || !steps || starts.length !== 1 || ends.length !== 1 || (axes[0] !== 0 && axes[0] !== -1) || steps[0] !== 1) return undefined;
        const n = data.values.length;
        const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
        return vec(data.values.slice(clamp(starts[0]), clamp(ends[0])));
      }
      case 'ReduceProd': case 'ReduceSum': {
        const a = arg(0);
        const axes = p.input[1] ? arg(1)?.values : attrInts(p, 'axes');
        if (!a || a.rank !== 1 || (axes && !(axes.length === 0 || (axes.length === 1 && (axes[0] === 0 || axes[0] === -1))))) return undefined;
        const r = p.opType === 'ReduceProd' ? a.values.reduce((x, y) => x * y, 1) : a.values.reduce((x, y) => x + y, 0);
        return attrInt(p, 'keepdims', 1) ? vec([r]) : { values: [r], rank: 0 };
      }
      case 'Add': case 'Sub': case 'Mul': case 'Div': {
        const a = arg(0), b = arg(1);
        if (!a || !b) return undefined;
        const n = Math.max(a.values.length, b.values.length);
        if ((a.values.length !== n && a.values.length !== 1) || (b.values.length !== n && b.values.length !== 1)) return undefined;
        const f = { Add: (x: number, y: number) => x + y, Sub: (x: number, y: number) => x - y, Mul: (x: number, y: number) => x * y, Div: (x: number, y: number) => Math.trunc(x / y) }[p.opType];
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push(f(a.values[a.values.length === 1 ? 0 : i], b.values[b.values.length === 1 ? 0 : i]));
        return { values: out, rank: Math.max(a.rank, b.rank) as 0 | 1 };
      }
      default:
        return undefined;
    }
  }
}

/** The shape a Reshape of an input of shape `input` to `target` produces (0 copies, one -1 infers), or undefined. */
export function reshapeResult(input: number[], target: number[], allowZero: boolean): number[] | undefined {
  const total = input.reduce((a, b) => a * b, 1);
  const out = target.map((d, i) => (d === 0 && !allowZero ? input[i] : d));
  if (out.some((d) => d === undefined || d < -1) || out.filter((d) => d === -1).length > 1) return undefined;
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  if (out.includes(-1)) {
    if (known === 0 || total % known !== 0) return undefined;
    return out.map((d) => (d === -1 ? total / known : d));
  }
  return known === total ? out : undefined;
}

/** Where element `position` of the tensor read by `node` at `inputIndex` comes from: one element of a constant. */
export interface ConstantElement {
  node: NodeProto;
  inputIndex: number;
  constant: string;
  element: number;
}

/**
 * Follows element `position` of the integer vector `node.input[inputIndex]` back through Casts,
 * Identities, Concats and Unsqueezes of scalars to the constant element it is, or undefined when it is
 * computed. `sizes` gives the length of a Concat piece.
 */
export function traceElement(ix: GraphIndex, node: NodeProto, inputIndex: number, position: number, sizes: ShapeValues): ConstantElement | undefined {
  for (let step = 0; step < MAX_DEPTH; step++) {
    const t = node.input[inputIndex];
    if (ix.constant(t)) return { node, inputIndex, constant: t, element: position };
    const p = ix.producer.get(t);
    if (!p || (p.domain && p.domain !== 'ai.onnx')) return undefined;
    if (p.opType === 'Cast' || p.opType === 'Identity') {
      node = p;
      inputIndex = 0;
    } else if (p.opType === 'Unsqueeze' && position === 0) {
      node = p;
      inputIndex = 0;
    } else if (p.opType === 'Concat') {
      let offset = 0;
      let found = -1;
      for (let k = 0; k < p.input.length; k++) {
        const len = sizes.values(p.input[k])?.length;
        if (len === undefined) return undefined;
        if (position < offset + len) {
          found = k;
          break;
        }
        offset += len;
      }
      if (found < 0) return undefined;
      node = p;
      inputIndex = found;
      position -= offset;
    } else {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Small integer tensors (shapes, slice bounds) evaluated symbolically: each element an affine form
 * c + s·S + b·B in the sequence length S and the batch size B, read from Shape() of the model's
 * [batch, seq] inputs. Enough to tell that a Slice ends at `start + S`, or that an Expand target is
 * [B, S]; anything else is undefined (unknown).
 */
import { attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';

export interface Form {
  c: number;
  s: number;
  b: number;
}

export const formOf = (c: number, s = 0, b = 0): Form => ({ c, s, b });

export function sameForm(x: Form, y: Form): boolean {
  return x.c === y.c && x.s === y.s && x.b === y.b;
}

/** Bounds used to simplify Min/Max: 1 ≤ S ≤ maxSeq, B ≥ 1. */
function range(f: Form, maxSeq: number): [number, number] {
  const lo = f.c + Math.min(f.s, f.s * maxSeq) + (f.b >= 0 ? f.b : -Infinity);
  const hi = f.c + Math.max(f.s, f.s * maxSeq) + (f.b > 0 ? Infinity : f.b);
  return [lo, hi];
}

const MAX_DEPTH = 32;

export class ShapeEvaluator {
  private readonly memo = new Map<string, Form[] | undefined>();

  /** `seqInputs`: graph inputs of shape [batch, seq]; `maxSeq`: the longest sequence that matters. */
  constructor(private readonly ix: GraphIndex, private readonly seqInputs: Set<string>, private readonly maxSeq: number) {}

  value(t: string, depth = 0): Form[] | undefined {
    if (this.memo.has(t)) return this.memo.get(t);
    this.memo.set(t, undefined); // a cycle reads as unknown
    const v = depth > MAX_DEPTH ? undefined : this.compute(t, depth + 1);
    this.memo.set(t, v);
    return v;
  }

  private compute(t: string, depth: number): Form[] | undefined {
    const ix = this.ix;
    const c = ix.constantValues(t);
    if (c) return c.every(Number.isFinite) ? c.map((x) => formOf(x)) : undefined;
    const p = ix.producer.get(t);
    if (!p || (p.domain && p.domain !== 'ai.onnx')) return undefined;
    const arg = (i: number) => (p.input[i] ? this.value(p.input[i], depth) : undefined);
    switch (p.opType) {
      case 'Shape': {
        if (!this.seqInputs.has(p.input[0])) return undefined;
        const dims = [formOf(0, 0, 1), formOf(0, 1, 0)];
        const norm = (i: number) => Math.min(Math.max(i < 0 ? i + 2 : i, 0), 2);
        return dims.slice(norm(attrInt(p, 'start', 0)), norm(attrInt(p, 'end', 2)));
      }
      case 'Identity': case 'Cast': case 'Squeeze': case 'Unsqueeze': return arg(0);
      case 'Reshape': {
        const shape = ix.constantValues(p.input[1]);
        return shape && shape.length <= 1 ? arg(0) : undefined;
      }
      case 'Concat': {
        const parts = p.input.map((_, i) => arg(i));
        return parts.every((x) => x) ? parts.flatMap((x) => x!) : undefined;
      }
      case 'Gather': {
        const data = arg(0);
        const idx = ix.constantValues(p.input[1]);
        if (!data || !idx || attrInt(p, 'axis', 0) !== 0) return undefined;
        const out: Form[] = [];
        for (const i of idx) {
          const k = i < 0 ? i + data.length : i;
          if (!Number.isInteger(k) || k < 0 || k >= data.length) return undefined;
          out.push(data[k]);
        }
        return out;
      }
      case 'Slice': {
        const data = arg(0);
        const starts = ix.constantValues(p.input[1]);
        const ends = ix.constantValues(p.input[2]);
        const axes = p.input[3] ? ix.constantValues(p.input[3]) : [0];
        const steps = p.input[4] ? ix.constantValues(p.input[4]) : [1];
        if (!data || !starts || !ends || starts.length !== 1 || ends.length !== 1 || !axes || axes[0] % 1 !== 0 || (axes[0] !== 0 && axes[0] !== -1) || !steps || steps[0] !== 1) return undefined;
        const n = data.length;
        const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
        return data.slice(clamp(starts[0]), clamp(ends[0]));
      }
      case 'Add': case 'Sub': case 'Mul': {
        const a = arg(0), b = arg(1);
        if (!a || !b) return undefined;
        return this.elementwise(a, b, (x, y) => {
          if (p.opType === 'Add') return formOf(x.c + y.c, x.s + y.s, x.b + y.b);
          if (p.opType === 'Sub') return formOf(x.c - y.c, x.s - y.s, x.b - y.b);
          if (x.s === 0 && x.b === 0) return formOf(x.c * y.c, x.c * y.s, x.c * y.b);
          if (y.s === 0 && y.b === 0) return formOf(x.c * y.c, y.c * x.s, y.c * x.b);
          return undefined;
        });
      }
      case 'Min': case 'Max': {
        let acc = arg(0);
        for (let i = 1; i < p.input.length && acc; i++) {
          const b = arg(i);
          if (!b) return undefined;
          const min = p.opType === 'Min';
          acc = this.elementwise(acc, b, (x, y) => {
            const [xl, xh] = range(x, this.maxSeq);
            const [yl, yh] = range(y, this.maxSeq);
            if (xh <= yl) return min ? x : y;
            if (yh <= xl) return min ? y : x;
            return undefined;
          });
        }
        return acc;
      }
      default:
        return undefined;
    }
  }

  private elementwise(a: Form[], b: Form[], f: (x: Form, y: Form) => Form | undefined): Form[] | undefined {
    const n = Math.max(a.length, b.length);
    if ((a.length !== n && a.length !== 1) || (b.length !== n && b.length !== 1)) return undefined;
    const out: Form[] = [];
    for (let i = 0; i < n; i++) {
      const v = f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]);
      if (!v) return undefined;
      out.push(v);
    }
    return out;
  }
}

/** The axes of an Unsqueeze/Squeeze: attribute before opset 13, second input from 13 on. */
export function axesOf(ix: GraphIndex, n: { input: string[] } & Parameters<typeof attrInts>[0]): number[] | undefined {
  if (n.input[1]) return ix.constantValues(n.input[1]);
  return attrInts(n, 'axes');
}

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

/** A scalar (rank 0) or vector (rank 1) of forms; shape tensors are never of higher rank. */
interface Sym {
  forms: Form[];
  rank: 0 | 1;
}

export class ShapeEvaluator {
  private readonly memo = new Map<string, Sym | undefined>();

  /**
   * `seqInputs`: graph inputs of shape [batch, seq]; `maxSeq`: the longest sequence that matters;
   * `shapeOf`: the symbolic shapes of other tensors the caller knows.
   */
  constructor(private readonly ix: GraphIndex, private readonly seqInputs: Set<string>, private readonly maxSeq: number,
    private readonly shapeOf: (t: string) => Form[] | undefined = () => undefined) {}

  /** The elements of the 1-D tensor `t` (a scalar counts as one element), or undefined if unknown. */
  value(t: string): Form[] | undefined {
    return this.sym(t, 0)?.forms;
  }

  /** Like value(), for a tensor that must be 1-D (a shape, or Slice bounds). */
  vector(t: string): Form[] | undefined {
    const v = this.sym(t, 0);
    return v && v.rank === 1 ? v.forms : undefined;
  }

  /** The value of a scalar (rank-0) tensor, or undefined. */
  scalar(t: string): Form | undefined {
    const v = this.sym(t, 0);
    return v && v.rank === 0 ? v.forms[0] : undefined;
  }

  private sym(t: string, depth: number): Sym | undefined {
    if (this.memo.has(t)) return this.memo.get(t);
    this.memo.set(t, undefined); // a cycle reads as unknown
    const v = depth > MAX_DEPTH ? undefined : this.compute(t, depth + 1);
    this.memo.set(t, v);
    return v;
  }

  private compute(t: string, depth: number): Sym | undefined {
    const ix = this.ix;
    const k = ix.constant(t);
    if (k) {
      const dims = k.dims.length;
      const c = ix.constantValues(t)!;
      return dims <= 1 && c.every(Number.isFinite) ? { forms: c.map((x) => formOf(x)), rank: dims as 0 | 1 } : undefined;
    }
    const p = ix.producer.get(t);
    if (!p || (p.domain && p.domain !== 'ai.onnx')) return undefined;
    const arg = (i: number) => (p.input[i] ? this.sym(p.input[i], depth) : undefined);
    const vec = (forms: Form[] | undefined): Sym | undefined => (forms ? { forms, rank: 1 } : undefined);
    switch (p.opType) {
      case 'Shape': {
        const dims = this.seqInputs.has(p.input[0]) ? [formOf(0, 0, 1), formOf(0, 1, 0)] : this.shapeOf(p.input[0]);
        if (!dims) return undefined;
        const r = dims.length;
        const norm = (i: number) => Math.min(Math.max(i < 0 ? i + r : i, 0), r);
        return vec(dims.slice(norm(attrInt(p, 'start', 0)), norm(attrInt(p, 'end', r))));
      }
      case 'Identity': case 'Cast': return arg(0);
      case 'Unsqueeze': case 'Squeeze': {
        const a = arg(0);
        const axes = axesOf(ix, p);
        const unsq = p.opType === 'Unsqueeze';
        if (!a || a.rank !== (unsq ? 0 : 1) || a.forms.length !== 1) return undefined;
        if (unsq ? !(axes && axes.length === 1 && (axes[0] === 0 || axes[0] === -1)) : !(!axes || axes.length === 0 || (axes.length === 1 && (axes[0] === 0 || axes[0] === -1)))) return undefined;
        return { forms: a.forms, rank: unsq ? 1 : 0 };
      }
      case 'Reshape': {
        const a = arg(0);
        const shape = ix.constantValues(p.input[1]);
        if (!a || !shape || shape.length > 1) return undefined;
        if (shape.length === 0) return a.forms.length === 1 ? { forms: a.forms, rank: 0 } : undefined;
        return shape[0] === -1 || shape[0] === a.forms.length ? vec(a.forms) : undefined;
      }
      case 'Concat': {
        const axis = attrInt(p, 'axis', 0);
        if (axis !== 0 && axis !== -1) return undefined;
        const parts = p.input.map((_, i) => arg(i));
        return parts.every((x) => x && x.rank === 1) ? vec(parts.flatMap((x) => x!.forms)) : undefined;
      }
      case 'Gather': {
        const data = arg(0);
        const idxT = ix.constant(p.input[1]);
        const idx = ix.constantValues(p.input[1]);
        if (!data || data.rank !== 1 || !idxT || !idx || idxT.dims.length > 1 || attrInt(p, 'axis', 0) !== 0) return undefined;
        const out: Form[] = [];
        for (const i of idx) {
          const j = i < 0 ? i + data.forms.length : i;
          if (!Number.isInteger(j) || j < 0 || j >= data.forms.length) return undefined;
          out.push(data.forms[j]);
        }
        return { forms: out, rank: idxT.dims.length as 0 | 1 };
      }
      case 'Slice': {
        const data = arg(0);
        const starts = ix.constantValues(p.input[1]);
        const ends = ix.constantValues(p.input[2]);
        const axes = p.input[3] ? ix.constantValues(p.input[3]) : [0];
        const steps = p.input[4] ? ix.constantValues(p.input[4]) : [1];
        if (!data || data.rank !== 1 || !starts || !ends || starts.length !== 1 || ends.length !== 1 || !axes || (axes[0] !== 0 && axes[0] !== -1) || !steps || steps[0] !== 1) return undefined;
        const n = data.forms.length;
        const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
        return vec(data.forms.slice(clamp(starts[0]), clamp(ends[0])));
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

  private elementwise(a: Sym, b: Sym, f: (x: Form, y: Form) => Form | undefined): Sym | undefined {
    const n = Math.max(a.forms.length, b.forms.length);
    if ((a.forms.length !== n && a.forms.length !== 1) || (b.forms.length !== n && b.forms.length !== 1)) return undefined;
    const out: Form[] = [];
    for (let i = 0; i < n; i++) {
      const v = f(a.forms[a.forms.length === 1 ? 0 : i], b.forms[b.forms.length === 1 ? 0 : i]);
      if (!v) return undefined;
      out.push(v);
    }
    return { forms: out, rank: Math.max(a.rank, b.rank) as 0 | 1 };
  }
}

/** The axes of an Unsqueeze/Squeeze: attribute before opset 13, second input from 13 on. */
export function axesOf(ix: GraphIndex, n: { input: string[] } & Parameters<typeof attrInts>[0]): number[] | undefined {
  if (n.input[1]) return ix.constantValues(n.input[1]);
  return attrInts(n, 'axes');
}

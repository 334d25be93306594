/**
 * Token-type ids that are a constant. transformers exports a model called without `token_type_ids`
 * with the ids made inside the graph: `ConstantOfShape(Shape(input_ids))` (torch.zeros), or a
 * registered int64 buffer sliced to the sequence length and expanded to the batch
 * (`self.token_type_ids[:, :S].expand(B, S)`). Every token then reads one row of the token-type table.
 *
 * Checked, not assumed: the ids must come from one tensor whose every element is the same integer,
 * through ops that only copy elements (Slice, Expand, Unsqueeze, Squeeze, Cast to an integer type,
 * Identity), and their shape, evaluated symbolically, must broadcast into [batch, seq] without
 * enlarging it. Anything else is not this form (the caller then treats the lookup as computed ids).
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { intValues, tensorDims } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { ShapeEvaluator, axesOf, formOf, sameForm, type Form } from './symbolic.js';

export interface ConstantIds {
  /** The value of every id. */
  value: number;
  /** The longest sequence the ids cover (a buffer cut to the sequence length is only so long; else Infinity). */
  maxSeq: number;
}

const INTEGER = new Set<number>([DataType.INT64, DataType.INT32]);
const MAX_STEPS = 16;

interface Traced {
  shape: Form[];
  maxSeq: number;
}

const ONE = formOf(1);
const isOne = (f: Form) => sameForm(f, ONE);

/** Broadcast of two shapes of forms (equal dims, or one of them 1), or undefined. */
function broadcast(a: Form[], b: Form[]): Form[] | undefined {
  const n = Math.max(a.length, b.length);
  const out: Form[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? ONE;
    const y = b[b.length - n + i] ?? ONE;
    if (sameForm(x, y) || isOne(y)) out.push(x);
    else if (isOne(x)) out.push(y);
    else return undefined;
  }
  return out;
}

/**
 * The ids `t` if they are one integer everywhere, reached from a constant as the module comment says;
 * `seqInputs` are the model's [batch, seq] inputs.
 */
export function constantIds(ix: GraphIndex, t: string, seqInputs: Set<string>): ConstantIds | undefined {
  const maxSeq = Infinity;
  // Min/Max of shapes are not simplified (no bound on the sequence length is known here)
  const sym = new ShapeEvaluator(ix, seqInputs, 1e9);
  let value: number | undefined;
  const trace = (name: string, depth: number): Traced | undefined => {
    if (depth > MAX_STEPS) return undefined;
    const c = ix.constant(name);
    if (c) {
      if (!INTEGER.has(c.dataType ?? 0)) return undefined;
      const values = ix.constantValues(name)!;
      if (values.length === 0 || values.some((v) => v !== values[0])) return undefined;
      value = values[0];
      return { shape: tensorDims(c).map((d) => formOf(d)), maxSeq };
    }
    const p: NodeProto | undefined = ix.producer.get(name);
    if (!p || (p.domain && p.domain !== 'ai.onnx')) return undefined;
    switch (p.opType) {
      case 'ConstantOfShape': {
        const v = p.attribute.find((a) => a.name === 'value')?.t;
        if (!v || !INTEGER.has(v.dataType ?? 0)) return undefined; // the default value is float 0: no ids
        const values = intValues(v).map(Number);
        if (values.length !== 1 || !Number.isSafeInteger(values[0])) return undefined;
        value = values[0];
        const shape = sym.vector(p.input[0]);
        return shape ? { shape, maxSeq } : undefined;
      }
      case 'Identity':
        return trace(p.input[0], depth + 1);
      case 'Cast':
        return INTEGER.has(attrInt(p, 'to', 0)) ? trace(p.input[0], depth + 1) : undefined;
      case 'Unsqueeze': case 'Squeeze': {
        const x = trace(p.input[0], depth + 1);
        const axes = axesOf(ix, p);
        if (!x || !axes || axes.length !== 1) return undefined;
        const rank = x.shape.length + (p.opType === 'Unsqueeze' ? 1 : 0);
        const a = axes[0] < 0 ? axes[0] + rank : axes[0];
        if (a < 0 || a >= rank) return undefined;
        const shape = [...x.shape];
        if (p.opType === 'Unsqueeze') shape.splice(a, 0, ONE);
        else if (isOne(shape[a])) shape.splice(a, 1);
        else return undefined;
        return { shape, maxSeq: x.maxSeq };
      }
      case 'Expand': {
        const x = trace(p.input[0], depth + 1);
        const target = sym.vector(p.input[1]);
        const shape = x && target && broadcast(x.shape, target);
        return shape ? { shape, maxSeq: x!.maxSeq } : undefined;
      }
      case 'Slice': {
        const x = trace(p.input[0], depth + 1);
        if (!x) return undefined;
        const starts = ix.constantValues(p.input[1]);
        const ends = sym.vector(p.input[2]);
        const axes = p.input[3] ? ix.constantValues(p.input[3]) : starts?.map((_, i) => i);
        const steps = p.input[4] ? ix.constantValues(p.input[4]) : starts?.map(() => 1);
        if (!starts || !ends || !axes || !steps || ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) return undefined;
        const shape = [...x.shape];
        let limit = x.maxSeq;
        for (let i = 0; i < starts.length; i++) {
          const rank = shape.length;
          const axis = axes[i] < 0 ? axes[i] + rank : axes[i];
          const dim = shape[axis];
          if (steps[i] !== 1 || !dim || dim.s !== 0 || dim.b !== 0) return undefined; // only constant-length axes are cut
          const start = starts[i] < 0 ? Math.max(starts[i] + dim.c, 0) : Math.min(starts[i], dim.c);
          const e = ends[i];
          if (e.s === 0 && e.b === 0) {
            // a constant end: cuts to a constant length (INT64_MAX-style ends keep the rest)
            const end = e.c < 0 ? Math.max(e.c + dim.c, 0) : Math.min(e.c, dim.c);
            if (end <= start) return undefined;
            shape[axis] = formOf(end - start);
          } else if (sameForm(e, formOf(start, 1, 0))) {
            // cut to the sequence length: only as long as the axis holds
            if (start >= dim.c) return undefined;
            limit = Math.min(limit, dim.c - start);
            shape[axis] = formOf(0, 1, 0);
          } else {
            return undefined;
          }
        }
        return { shape, maxSeq: limit };
      }
      default:
        return undefined;
    }
  };
  const traced = trace(t, 0);
  if (!traced || value === undefined) return undefined;
  // the lookup's result must broadcast into the embedding sum [batch, seq, hidden] without enlarging it
  const want = [formOf(0, 0, 1), formOf(0, 1, 0)];
  const shape = traced.shape;
  if (shape.length > 2) return undefined;
  for (let i = 0; i < shape.length; i++) {
    const f = shape[i];
    const w = want[want.length - shape.length + i];
    if (!isOne(f) && !sameForm(f, w)) return undefined;
  }
  return { value, maxSeq: traced.maxSeq };
}

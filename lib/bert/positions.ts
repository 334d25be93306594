/**
 * Which rows of the position table a sequence reads. The engine adds row start + t to token t; this
 * is true of a Slice of the table starting at row `start` and ending at start + S, and of a Gather by
 * position ids that are a contiguous run of an arange constant (or a Range) cut to the sequence length
 * S and broadcast over the batch. Position ids computed from the token ids as RoBERTa does are
 * recognised in lib/bert/positions-from-ids.ts. Anything else is recorded as `other`, with the reason.
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { tensorDims } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { quoteName } from '../errors.js';
import type { BertModel, Embedding, PositionIds } from './model.js';
import { positionsFromIds } from './positions-from-ids.js';
import { ShapeEvaluator, axesOf, formOf, sameForm, type Form } from './symbolic.js';

const other = (problem: string): PositionIds => ({ kind: 'other', problem });

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

interface SliceBounds {
  /** Normalised start on each sliced axis. */
  start: Map<number, number>;
  end: Map<number, Form>;
}

/** A Slice's constant starts and steps (steps all 1) and its symbolic ends, by axis of a rank-`rank` input of `dims`. */
function sliceBounds(ix: GraphIndex, sym: ShapeEvaluator, n: NodeProto, dims: number[]): SliceBounds | string {
  const starts = ix.constantValues(n.input[1]);
  const ends = sym.vector(n.input[2]);
  const axes = n.input[3] ? ix.constantValues(n.input[3]) : starts?.map((_, i) => i);
  const steps = n.input[4] ? ix.constantValues(n.input[4]) : starts?.map(() => 1);
  if (!starts || !axes || !steps) return `Slice ${nodeName(n)} has computed starts, axes or steps`;
  if (!ends) return `Slice ${nodeName(n)} ends at a bound that is not the sequence length`;
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) return `Slice ${nodeName(n)} has starts, ends, axes and steps of different lengths`;
  const out: SliceBounds = { start: new Map(), end: new Map() };
  for (let i = 0; i < starts.length; i++) {
    const axis = axes[i] < 0 ? axes[i] + dims.length : axes[i];
    if (!Number.isInteger(axis) || axis < 0 || axis >= dims.length || out.start.has(axis)) return `Slice ${nodeName(n)} has the axes [${axes.join(', ')}]`;
    if (steps[i] !== 1) return `Slice ${nodeName(n)} steps by ${steps[i]}`;
    const d = dims[axis];
    const s = starts[i] < 0 ? Math.max(starts[i] + d, 0) : Math.min(starts[i], d);
    out.start.set(axis, s);
    out.end.set(axis, ends[i]);
  }
  return out;
}

/**
 * Position ids of a lookup in a table of `rows` rows. `seqInputs` are the model's [batch, seq] inputs,
 * `ids` the token ids.
 */
export function positionIdsOf(ix: GraphIndex, lookup: Embedding, seqInputs: Set<string>, ids: string): PositionIds {
  const rows = lookup.rows;
  const sym = new ShapeEvaluator(ix, seqInputs, rows);
  const seq = (start: number) => formOf(start, 1, 0);
  const n = lookup.gather;
  if (n.opType === 'Slice') {
    // rows [start, start + S) of the table itself
    const b = sliceBounds(ix, sym, n, ix.weight(lookup.table)!.dims);
    if (typeof b === 'string') return other(b);
    const start = b.start.get(0) ?? 0;
    if (!b.end.has(0) || !sameForm(b.end.get(0)!, seq(start))) return other(`Slice ${nodeName(n)} of the position table does not end at its start + the sequence length`);
    if (b.start.has(1) && (b.start.get(1) !== 0 || b.end.get(1)!.s !== 0 || b.end.get(1)!.b !== 0 || b.end.get(1)!.c < ix.weight(lookup.table)!.dims[1])) {
      return other(`Slice ${nodeName(n)} cuts the columns of the position table`);
    }
    return start < rows ? { kind: 'arange', start, maxSeq: rows - start } : other(`Slice ${nodeName(n)} starts past the position table`);
  }
  const fromIds = positionsFromIds(ix, ids, n.input[1]);
  if (fromIds) {
    if ('problem' in fromIds) return other(fromIds.problem);
    const maxSeq = rows - fromIds.paddingIdx - 1;
    if (maxSeq < 1) return other(`the position ids start after the padding id ${fromIds.paddingIdx}, past the table of ${rows} rows`);
    return { kind: 'from-ids', paddingIdx: fromIds.paddingIdx, maxSeq };
  }
  // Gather(table, ids): walk back from the ids to their source, then replay the chain forwards
  const chain: NodeProto[] = [];
  let t = n.input[1];
  let source: NodeProto | undefined;
  for (let step = 0; !source; step++) {
    if (step > 16) return other('the position ids pass through too many nodes');
    if (ix.inputs.has(t)) return other(`the position ids come from the graph input ${quoteName(t)}`);
    if (ix.isConstant(t)) return other(`the position ids are the constant ${quoteName(t)} of a fixed length`);
    const p = ix.producer.get(t);
    if (!p) return other(`the position ids ${quoteName(t)} have no source`);
    if (p.domain && p.domain !== 'ai.onnx') return other(`the position ids are computed by ${quoteName(p.opType)} from the domain ${quoteName(p.domain)}`);
    if (p.opType === 'Slice' || p.opType === 'Range') source = p;
    else if (['Cast', 'Identity', 'Expand', 'Unsqueeze'].includes(p.opType ?? '')) { chain.push(p); t = p.input[0]; }
    else return other(`the position ids are computed by ${p.opType} ${nodeName(p)}`);
  }
  // the source: a run of values v[0..S) and its rank
  let values: (number | undefined)[];
  let first: number;
  let rank: number;
  let limit: number;
  if (source.opType === 'Range') {
    const start = ix.scalar(source.input[0]);
    const end = sym.scalar(source.input[1]);
    const delta = ix.scalar(source.input[2]);
    if (start === undefined || delta !== 1 || !end || !sameForm(end, seq(start))) return other(`Range ${nodeName(source)} is not start, start + 1, … for the sequence length`);
    first = start; values = []; rank = 1; limit = Infinity;
  } else {
    const c = ix.constant(source.input[0]);
    if (!c) return other(`Slice ${nodeName(source)} cuts computed values`);
    if (c.dataType !== DataType.INT64 && c.dataType !== DataType.INT32) return other(`the position ids ${quoteName(source.input[0])} are not integers`);
    const dims = tensorDims(c);
    if (dims.length < 1 || dims.length > 2 || (dims.length === 2 && dims[0] !== 1)) return other(`the position ids ${quoteName(source.input[0])} have shape [${dims.join(', ')}]`);
    const b = sliceBounds(ix, sym, source, dims);
    if (typeof b === 'string') return other(b);
    const last = dims.length - 1;
    const start = b.start.get(last);
    if (start === undefined || !sameForm(b.end.get(last)!, seq(start))) {
      return other(`Slice ${nodeName(source)} does not cut the position ids to the sequence length`);
    }
    if (last === 1 && b.start.has(0)) {
      const e = b.end.get(0)!;
      if (b.start.get(0) !== 0 || e.s < 0 || e.b < 0 || e.c + e.s + e.b < 1) return other(`Slice ${nodeName(source)} empties the batch axis of the position ids`);
    }
    values = ix.constantValues(source.input[0])!.slice(start);
    first = values[0] ?? NaN;
    rank = dims.length;
    limit = values.length;
    if (!Number.isInteger(first)) return other(`Slice ${nodeName(source)} starts past the position ids`);
    // the run must be contiguous: v[t] = first + t for every t the engine may be asked for
    for (let k = 0; k < Math.min(values.length, rows - first); k++) {
      if (values[k] !== first + k) { limit = k; break; }
    }
  }
  // replay the chain forward: Unsqueeze to [1, S], Expand to [B, S] (or [1, S]), integer Casts
  for (const p of chain.reverse()) {
    if (p.opType === 'Cast') {
      const to = attrInt(p, 'to', 0);
      if (to !== DataType.INT64 && to !== DataType.INT32) return other(`Cast ${nodeName(p)} turns the position ids into type ${to}`);
    } else if (p.opType === 'Unsqueeze') {
      const axes = axesOf(ix, p);
      if (!axes || axes.length !== 1 || axes[0] !== 0 || rank !== 1) return other(`Unsqueeze ${nodeName(p)} gives the position ids an unexpected shape`);
      rank = 2;
    } else if (p.opType === 'Expand') {
      const shape = sym.vector(p.input[1]);
      const ok = shape && shape.length >= 1 && shape.length <= 2 && sameForm(shape[shape.length - 1], seq(0))
        && (shape.length === 1 || sameForm(shape[0], formOf(0, 0, 1)) || sameForm(shape[0], formOf(1)));
      if (!ok) return other(`Expand ${nodeName(p)} gives the position ids a shape other than [batch, sequence]`);
      rank = Math.max(rank, shape!.length);
    }
  }
  if (first < 0 || first >= rows) return other(`the position ids start at ${first}, outside the table of ${rows} rows`);
  const maxSeq = Math.min(limit, rows - first);
  if (maxSeq < 1) return other('the position ids are not consecutive');
  return { kind: 'arange', start: first, maxSeq };
}

/**
 * The longest sequence the model reads: the position rows its position ids can reach (RoBERTa's start
 * past the padding id), the rows of constant token types (an export without the input), and the length
 * its inputs declare when they declare one.
 */
export function longestSequence(m: BertModel): number {
  const e = m.embeddings;
  const ids = e.positionIds;
  let n = ids && ids.kind !== 'other' ? ids.maxSeq : m.maxPositions;
  if (e.tokenType?.maxSeq !== undefined) n = Math.min(n, e.tokenType.maxSeq);
  if (m.inputs.fixedLength !== undefined) n = Math.min(n, m.inputs.fixedLength);
  return n;
}

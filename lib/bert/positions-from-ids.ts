/**
 * RoBERTa's position ids, computed from the token ids in the graph (transformers'
 * create_position_ids_from_input_ids): mask = (ids != padding_idx); positions =
 * cumsum(mask, axis 1) · mask + padding_idx. A padding token reads row padding_idx; the k-th other
 * token of a sequence (k from 1) reads row padding_idx + k, wherever the padding sits.
 *
 * Recognised by what the nodes compute, not by their order: the nodes between the ids and the
 * position lookup (integer elementwise ops and a CumSum) are evaluated on test sequences that hold
 * the padding id at the start, the middle and the end, and must give the formula's ids exactly.
 * padding_idx is the constant the ids are compared with.
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { quoteName } from '../errors.js';

/** Rows × cols of integers (cols: the sequence axis); cols 1 and rows 1 broadcast. */
interface Ints {
  rows: number;
  cols: number;
  data: number[];
}

const MAX_NODES = 24;
const INTEGER_TYPES = new Set<number>([DataType.INT64, DataType.INT32, DataType.BOOL, DataType.INT8, DataType.INT16, DataType.UINT8]);

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

function broadcast(a: Ints, b: Ints, f: (x: number, y: number) => number): Ints | undefined {
  const rows = Math.max(a.rows, b.rows), cols = Math.max(a.cols, b.cols);
  if ((a.rows !== rows && a.rows !== 1) || (b.rows !== rows && b.rows !== 1) || (a.cols !== cols && a.cols !== 1) || (b.cols !== cols && b.cols !== 1)) return undefined;
  const data: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      data.push(f(a.data[(a.rows === 1 ? 0 : r) * a.cols + (a.cols === 1 ? 0 : c)], b.data[(b.rows === 1 ? 0 : r) * b.cols + (b.cols === 1 ? 0 : c)]));
    }
  }
  return { rows, cols, data };
}

const BINARY: Record<string, (x: number, y: number) => number> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Mul: (x, y) => x * y,
  Equal: (x, y) => (x === y ? 1 : 0),
  Greater: (x, y) => (x > y ? 1 : 0),
  Less: (x, y) => (x < y ? 1 : 0),
  And: (x, y) => (x && y ? 1 : 0),
  Or: (x, y) => (x || y ? 1 : 0),
};

/**
 * The nodes that compute `target` from `ids` alone (with constants), or a sentence saying why not.
 */
function regionBetween(ix: GraphIndex, ids: string, target: string): NodeProto[] | string {
  const nodes: NodeProto[] = [];
  const seen = new Set<string>();
  const stack = [target];
  while (stack.length) {
    const t = stack.pop()!;
    if (t === ids || seen.has(t) || ix.isConstant(t)) continue;
    seen.add(t);
    if (ix.inputs.has(t)) return `the position ids read the graph input ${quoteName(t)}`;
    const p = ix.producer.get(t);
    if (!p) return `the position ids ${quoteName(t)} have no source`;
    if (nodes.length >= MAX_NODES) return 'the position ids pass through too many nodes';
    nodes.push(p);
    for (const i of p.input) if (i) stack.push(i);
  }
  return nodes;
}

/** A constant scalar operand as a 1 × 1 grid, or undefined. */
function scalarOf(ix: GraphIndex, t: string): Ints | undefined {
  const c = ix.constant(t);
  if (!c || !INTEGER_TYPES.has(c.dataType ?? 0)) return undefined;
  const v = ix.constantValues(t);
  return v && v.length === 1 && Number.isSafeInteger(v[0]) ? { rows: 1, cols: 1, data: [v[0]] } : undefined;
}

/** Evaluates the region on `ids` (rows × cols); returns the target's values or why it cannot. */
function evaluate(ix: GraphIndex, region: NodeProto[], idsName: string, ids: Ints, target: string): Ints | string {
  const values = new Map<string, Ints>([[idsName, ids]]);
  const pending = [...region];
  while (pending.length) {
    const k = pending.findIndex((n) => n.input.every((i) => !i || values.has(i) || ix.isConstant(i)));
    if (k < 0) return 'the position ids are computed in a cycle';
    const n = pending.splice(k, 1)[0];
    const op = n.opType ?? '';
    if (n.domain && n.domain !== 'ai.onnx') return `the position ids are computed by ${quoteName(op)} from the domain ${quoteName(n.domain)}`;
    const arg = (i: number) => values.get(n.input[i]) ?? scalarOf(ix, n.input[i]);
    let out: Ints | undefined;
    if (op === 'Identity') out = arg(0);
    else if (op === 'Cast') {
      const to = attrInt(n, 'to', 0);
      const a = arg(0);
      if (!INTEGER_TYPES.has(to) || !a) return `Cast ${nodeName(n)} turns the position ids into type ${to}`;
      out = to === DataType.BOOL ? { ...a, data: a.data.map((x) => (x !== 0 ? 1 : 0)) } : a;
    } else if (op === 'Not') {
      const a = arg(0);
      out = a && { ...a, data: a.data.map((x) => (x ? 0 : 1)) };
    } else if (BINARY[op] && n.input.length === 2) {
      const a = arg(0), b = arg(1);
      out = a && b && broadcast(a, b, BINARY[op]);
    } else if (op === 'CumSum') {
      const a = arg(0);
      const axis = ix.scalar(n.input[1]);
      if (!a || (axis !== 1 && axis !== -1)) return `CumSum ${nodeName(n)} does not sum along the sequence`;
      const exclusive = attrInt(n, 'exclusive', 0) !== 0, reverse = attrInt(n, 'reverse', 0) !== 0;
      const data = new Array<number>(a.data.length);
      for (let r = 0; r < a.rows; r++) {
        let s = 0;
        for (let j = 0; j < a.cols; j++) {
          const c = reverse ? a.cols - 1 - j : j;
          const x = a.data[r * a.cols + c];
          if (!exclusive) s += x;
          data[r * a.cols + c] = s;
          if (exclusive) s += x;
        }
      }
      out = { ...a, data };
    } else {
      return `the position ids are computed by ${op} ${nodeName(n)}`;
    }
    if (!out) return `${op} ${nodeName(n)} combines values bort-compress does not follow`;
    if (n.output.length !== 1) return `${op} ${nodeName(n)} has ${n.output.length} outputs`;
    values.set(n.output[0], out);
  }
  return values.get(target) ?? 'the position ids are not computed from the token ids';
}

/** The formula's position ids for one sequence. */
function expected(ids: number[], pad: number): number[] {
  let k = 0;
  return ids.map((id) => (id === pad ? pad : pad + ++k));
}

/**
 * Whether `positions` (the ids the position table is gathered with) are RoBERTa's, computed from
 * the graph input `ids`: the padding id, or a sentence saying what differs; undefined when the
 * ids are not computed from `ids` at all.
 */
export function positionsFromIds(ix: GraphIndex, ids: string, positions: string): { paddingIdx: number } | { problem: string } | undefined {
  const region = regionBetween(ix, ids, positions);
  if (typeof region === 'string') return undefined;
  // only the values of the ids matter here (a Shape of them gives the arange forms of lib/bert/positions.ts)
  if (!region.some((n) => n.input.includes(ids) && n.opType !== 'Shape')) return undefined;
  const compared = region.filter((n) => n.opType === 'Equal' && n.input.includes(ids)).map((n) => ix.scalar(n.input[0] === ids ? n.input[1] : n.input[0]));
  const pads = [...new Set(compared.filter((v): v is number => v !== undefined))];
  if (pads.length !== 1 || !Number.isSafeInteger(pads[0]) || pads[0] < 0) {
    return { problem: 'the position ids are computed from the token ids without one comparison with a padding id' };
  }
  const pad = pads[0];
  // sequences with the padding id first, between tokens, doubled, last, and a sequence of padding only
  const other = [pad + 1, pad + 2, pad === 0 ? 3 : 0, pad + 7];
  const rows = [
    [pad, other[0], other[1], pad, other[2], other[3], pad, pad],
    [other[1], other[0], other[0], other[3], other[2], other[1], other[0], other[3]],
    [other[2], pad, pad, other[0], other[1], pad, other[3], pad],
    [pad, pad, pad, pad, pad, pad, pad, pad],
  ];
  const grid: Ints = { rows: rows.length, cols: rows[0].length, data: rows.flat() };
  const got = evaluate(ix, region, ids, grid, positions);
  if (typeof got === 'string') return { problem: got };
  if (got.rows !== grid.rows || got.cols !== grid.cols) return { problem: 'the position ids computed from the token ids do not have the shape [batch, sequence]' };
  const want = rows.flatMap((r) => expected(r, pad));
  if (want.some((v, i) => v !== got.data[i])) {
    return { problem: `the position ids computed from the token ids are not cumsum(ids != ${pad}) · (ids != ${pad}) + ${pad}` };
  }
  return { paddingIdx: pad };
}

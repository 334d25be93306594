/**
 * LayerNorm over the last axis, fused (`LayerNormalization`, opset 17) or decomposed into
 * ReduceMean / Sub / Pow / ReduceMean / Add(eps) / Sqrt / Div / Mul(gamma) / Add(beta), in any of the
 * orders exporters write. Found by data flow from the tensor being normalised; a decomposed one is
 * then evaluated on test rows and must compute (x - mean) / sqrt(var + eps) with the epsilon found,
 * so a changed axis, exponent or wiring, or a missing epsilon, is an error naming the tensor.
 */
import { attrFloat, attrInt, type GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import { evaluateRegion } from './evaluate.js';
import type { LayerNorm } from './model.js';

const DECOMPOSED_OPS = new Set(['ReduceMean', 'Sub', 'Pow', 'Mul', 'Div', 'Sqrt', 'Add', 'Reciprocal', 'Cast']);
/** Rank of the tensors normalised: the residual stream [batch, seq, hidden]. */
const STREAM_RANK = 3;

function vectorWeight(ix: GraphIndex, name: string, size: number): boolean {
  const w = ix.weight(name);
  return !!w && w.dims.length === 1 && w.dims[0] === size;
}

function refuse(s: string, what: string): BortError {
  return new BortError(`the LayerNorm of ${quoteName(s)} ${what}`, 'bort-compress reads LayerNorms over the last axis, (x - mean) / sqrt(variance + epsilon) · gamma + beta, as exporters write them');
}

function fusedLayerNorm(ix: GraphIndex, s: string, n: NodeProto, hidden: number): LayerNorm {
  const axis = attrInt(n, 'axis', -1);
  if (axis !== -1 && axis !== STREAM_RANK - 1) throw refuse(s, `(LayerNormalization ${quoteName(n.name || n.output[0])}) normalises from axis ${axis}, not over the last axis`);
  if (!vectorWeight(ix, n.input[1], hidden)) throw refuse(s, `has the scale ${quoteName(n.input[1])}, not a float32 initializer of ${hidden} values`);
  const beta = n.input[2] || undefined;
  if (beta && !vectorWeight(ix, beta, hidden)) throw refuse(s, `has the bias ${quoteName(beta)}, not a float32 initializer of ${hidden} values`);
  const epsilon = attrFloat(n, 'epsilon', 1e-5);
  if (!Number.isFinite(epsilon) || epsilon < 0) throw refuse(s, `has epsilon ${epsilon}`);
  return { kind: 'fused', input: s, output: n.output[0], gamma: n.input[1], beta, epsilon, nodes: [n] };
}

/** The LayerNorm that normalises tensor `s` (of `hidden` channels), or undefined if there is none. */
export function layerNormOf(ix: GraphIndex, s: string, hidden: number): LayerNorm | undefined {
  const users = ix.consumersOf(s);
  const fused = users.find((n) => n.opType === 'LayerNormalization' && n.input[0] === s);
  if (fused) return fusedLayerNorm(ix, s, fused, hidden);
  if (!users.some((n) => n.opType === 'ReduceMean')) return undefined;
  const inRegion = new Set([s]);
  const nodes: NodeProto[] = [];
  const queue = [...users];
  const seen = new Set<NodeProto>();
  for (let steps = 0; queue.length && nodes.length < 24 && steps < 1000; steps++) {
    const n = queue.shift()!;
    if (seen.has(n) || !DECOMPOSED_OPS.has(n.opType ?? '')) continue;
    const dynamicInputs = n.input.filter((i) => i && !ix.isConstant(i));
    if (!dynamicInputs.every((i) => inRegion.has(i))) continue;
    seen.add(n);
    if (n.opType === 'Mul') {
      const g = n.input.find((i) => vectorWeight(ix, i, hidden));
      if (g) {
        const normalised = n.input.find((i) => i !== g)!;
        const epsilon = epsilonOf(ix, nodes);
        if (epsilon === undefined) throw refuse(s, 'has no epsilon (a constant added to the mean of the squared deviations)');
        checkNormalisation(ix, s, nodes, normalised, epsilon, hidden);
        const done = [...nodes, n];
        const after = ix.consumersOf(n.output[0]);
        const addBeta = after.length === 1 && after[0].opType === 'Add' && !ix.outputs.has(n.output[0]) ? after[0] : undefined;
        const other = addBeta?.input.find((i) => i !== n.output[0]);
        if (addBeta && other && ix.isConstant(other) && !vectorWeight(ix, other, hidden)) {
          throw refuse(s, `adds ${quoteName(other)} after the scale, not a float32 initializer of ${hidden} values`);
        }
        const beta = other && vectorWeight(ix, other, hidden) ? other : undefined;
        if (beta) done.push(addBeta!);
        return { kind: 'decomposed', input: s, output: beta ? addBeta!.output[0] : n.output[0], gamma: g, beta, epsilon, nodes: done };
      }
    }
    nodes.push(n);
    for (const o of n.output) {
      inRegion.add(o);
      for (const c of ix.consumersOf(o)) queue.push(c);
    }
  }
  return undefined;
}

/** The constant added to the variance: Add(ReduceMean(...), eps). */
function epsilonOf(ix: GraphIndex, nodes: NodeProto[]): number | undefined {
  for (const n of nodes) {
    if (n.opType !== 'Add') continue;
    const [a, b] = n.input;
    const fromMean = (x: string) => ix.producer.get(x)?.opType === 'ReduceMean';
    if (fromMean(a) && ix.scalar(b) !== undefined) return ix.scalar(b)!;
    if (fromMean(b) && ix.scalar(a) !== undefined) return ix.scalar(a)!;
  }
  return undefined;
}

/** Deterministic test values in [-2, 2). */
function testRow(hidden: number, seed: number): Float64Array {
  const row = new Float64Array(hidden);
  let s = seed;
  for (let i = 0; i < hidden; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    row[i] = (s / 2147483648) * 4 - 2;
  }
  return row;
}

/**
 * Evaluates the nodes that compute `normalised` from `s` on test rows — plain, shifted, and scaled so
 * that the variance is about epsilon (where a misplaced epsilon shows) — against the definition.
 */
function checkNormalisation(ix: GraphIndex, s: string, region: NodeProto[], normalised: string, epsilon: number, hidden: number): void {
  if (!Number.isFinite(epsilon) || epsilon < 0) throw refuse(s, `has epsilon ${epsilon}`);
  // only the nodes the normalised tensor depends on
  const byOutput = new Map<string, NodeProto>();
  for (const n of region) for (const o of n.output) byOutput.set(o, n);
  const needed = new Set<NodeProto>();
  const stack = [normalised];
  while (stack.length) {
    const n = byOutput.get(stack.pop()!);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    stack.push(...n.input);
  }
  const base = testRow(hidden, 11);
  const rows = [base, base.map((v) => v * 1e-3 + 5)];
  if (epsilon > 0) rows.push(base.map((v) => v * Math.sqrt(epsilon)));
  const data = new Float64Array(rows.length * hidden);
  rows.forEach((r, i) => data.set(r, i * hidden));
  const values = evaluateRegion(ix, [...needed], s, { rows: rows.length, cols: hidden, data }, STREAM_RANK);
  if (typeof values === 'string') throw refuse(s, `is not one: ${values}`);
  const y = values.get(normalised);
  if (!y || y.rows !== rows.length || y.cols !== hidden) throw refuse(s, 'does not compute one value per channel');
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const mean = row.reduce((a, b) => a + b, 0) / hidden;
    const variance = row.reduce((a, b) => a + (b - mean) * (b - mean), 0) / hidden;
    const denom = Math.sqrt(variance + epsilon);
    for (let c = 0; c < hidden; c++) {
      const ref = (row[c] - mean) / denom;
      if (!(Math.abs(y.data[r * hidden + c] - ref) <= 1e-6 * (1 + Math.abs(ref)))) {
        throw refuse(s, `does not compute (x - mean) / sqrt(variance + ${+epsilon.toPrecision(6)}) over the last axis (an axis, exponent, epsilon or operand differs)`);
      }
    }
  }
}

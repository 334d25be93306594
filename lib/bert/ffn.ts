/**
 * The feed-forward block: a linear that reads the residual stream, an activation made of elementwise
 * ops, and a linear back to the stream. Which activation it is (erf GELU, tanh GELU, ReLU) is decided
 * by evaluating those ops, constants included, on test values: an altered constant is not GELU.
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import { erf, evaluateRegion } from './evaluate.js';
import type { Ffn, Linear } from './model.js';

const ACTIVATION_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Erf', 'Tanh', 'Pow', 'Relu', 'Gelu', 'Sigmoid', 'Cast', 'Identity', 'Sqrt', 'Dropout']);
const MAX_NODES = 32;

/** Nodes strictly between `from` and `to` when `to` is reached from `from` through activation ops only. */
export function activationBetween(ix: GraphIndex, from: string, to: string): NodeProto[] | undefined {
  if (from === to) return [];
  const { region, reachedAt } = activationRegion(ix, from, to);
  const k = reachedAt.get(to);
  return k === undefined ? undefined : region.slice(0, k + 1);
}

/** Tensors computed from `from` through activation ops only (at most 32 nodes), in the order reached. */
export function activationOutputs(ix: GraphIndex, from: string): string[] {
  return [...activationRegion(ix, from).reachedAt.keys()];
}

/**
 * Grows the region of activation ops whose inputs are `from`, constants or the region's own outputs,
 * breadth first, up to 32 nodes (stopping early when `stop` is computed). `reachedAt` maps each output
 * to the index of the node that computes it.
 */
function activationRegion(ix: GraphIndex, from: string, stop?: string): { region: NodeProto[]; reachedAt: Map<string, number> } {
  const region: NodeProto[] = [];
  const reachedAt = new Map<string, number>();
  const inRegion = new Set<NodeProto>();
  const reached = new Set([from]);
  const queue = [...ix.consumersOf(from)];
  for (let steps = 0; queue.length && region.length < MAX_NODES && steps < 64 * MAX_NODES; steps++) {
    const n = queue.shift()!;
    if (inRegion.has(n) || !ACTIVATION_OPS.has(n.opType ?? '')) continue;
    if (!n.input.every((i) => !i || reached.has(i) || ix.isConstant(i))) continue;
    region.push(n);
    inRegion.add(n);
    for (const o of n.output) {
      if (!o || reached.has(o)) continue;
      reached.add(o);
      reachedAt.set(o, region.length - 1);
      if (o === stop) return { region, reachedAt };
      queue.push(...ix.consumersOf(o));
    }
  }
  return { region, reachedAt };
}

const REFERENCES: [Ffn['activation'], (x: number) => number][] = [
  ['gelu', (x) => 0.5 * x * (1 + erf(x / Math.SQRT2))],
  ['gelu_tanh', (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))],
  ['relu', (x) => (x > 0 ? x : 0)],
];

/** Test points: -6 … 6 in steps of 0.125, where the GELU forms differ from each other by up to 1e-3. */
const POINTS = Float64Array.from({ length: 97 }, (_, i) => -6 + i * 0.125);

/**
 * How closely (relative) an activation must match its reference. Float16 models hold GELU's constants
 * rounded to half precision (√2 as 1.4140625), which moves GELU by up to 3·10⁻⁵; the erf and tanh forms
 * still differ by 4.7·10⁻⁴ there, so the wider tolerance keeps them apart.
 */
export const ACTIVATION_TOLERANCE = 1e-5;
export const HALF_PRECISION_ACTIVATION_TOLERANCE = 1e-4;

/** Which activation `nodes` compute from `from` to `to`, or a sentence saying why none. */
export function classifyActivation(ix: GraphIndex, nodes: NodeProto[], from: string, to: string, tolerance = ACTIVATION_TOLERANCE): { kind: Ffn['activation'] } | { problem: string } {
  const values = evaluateRegion(ix, nodes, from, { rows: POINTS.length, cols: 1, data: POINTS }, 3);
  if (typeof values === 'string') return { problem: values };
  const y = values.get(to)!;
  if (y.rows !== POINTS.length || y.cols !== 1) return { problem: 'it does not compute one value per input value' };
  for (const [kind, ref] of REFERENCES) {
    let ok = true;
    for (let i = 0; i < POINTS.length && ok; i++) {
      const r = ref(POINTS[i]);
      ok = Math.abs(y.data[i] - r) <= tolerance * (1 + Math.abs(r));
    }
    if (ok) return { kind };
  }
  const at1 = y.data[POINTS.indexOf(1)];
  return { problem: `it computes ${Number.isFinite(at1) ? at1.toPrecision(6) : at1} at x = 1, which matches neither GELU (erf or tanh form, 0.841345 or 0.841192) nor ReLU` };
}

/** The FFN whose second linear is `out`, among the linears `candidates` that read the stream. */
export function recognizeFfn(ix: GraphIndex, out: Linear, candidates: Linear[], layer: number, tolerance?: number): Ffn | undefined {
  for (const inner of candidates) {
    const act = activationBetween(ix, inner.output, out.input);
    if (!act) continue;
    const c = classifyActivation(ix, act, inner.output, out.input, tolerance);
    if ('problem' in c) {
      throw new BortError(`layer ${layer} feed-forward: the activation between ${quoteName(inner.output)} and ${quoteName(out.input)} is not recognised: ${c.problem}`,
        'bort-compress reads BERT feed-forward blocks with erf or tanh GELU or ReLU, constants as exported');
    }
    return { in: inner, out, activation: c.kind };
  }
  return undefined;
}

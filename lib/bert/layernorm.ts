/**
 * LayerNorm over the last axis, fused (`LayerNormalization`, opset 17) or decomposed into
 * ReduceMean / Sub / Pow / ReduceMean / Add(eps) / Sqrt / Div / Mul(gamma) / Add(beta), in any of the
 * orders exporters write. Found by data flow from the tensor being normalised.
 */
import { attrFloat, type GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import type { LayerNorm } from './model.js';

const DECOMPOSED_OPS = new Set(['ReduceMean', 'Sub', 'Pow', 'Mul', 'Div', 'Sqrt', 'Add', 'Reciprocal', 'Cast']);

function vectorWeight(ix: GraphIndex, name: string, size: number): boolean {
  const w = ix.weight(name);
  return !!w && w.dims.length === 1 && w.dims[0] === size;
}

/** The LayerNorm that normalises tensor `s` (of `hidden` channels), or undefined if there is none. */
export function layerNormOf(ix: GraphIndex, s: string, hidden: number): LayerNorm | undefined {
  const users = ix.consumersOf(s);
  const fused = users.find((n) => n.opType === 'LayerNormalization' && n.input[0] === s);
  if (fused) {
    if (!vectorWeight(ix, fused.input[1], hidden)) return undefined;
    const beta = fused.input[2] && vectorWeight(ix, fused.input[2], hidden) ? fused.input[2] : undefined;
    return { kind: 'fused', input: s, output: fused.output[0], gamma: fused.input[1], beta, epsilon: attrFloat(fused, 'epsilon', 1e-5), nodes: [fused] };
  }
  if (!users.some((n) => n.opType === 'ReduceMean')) return undefined;
  const inRegion = new Set([s]);
  const nodes: NodeProto[] = [];
  const queue = [...users];
  const seen = new Set<NodeProto>();
  while (queue.length && nodes.length < 24) {
    const n = queue.shift()!;
    if (seen.has(n) || !DECOMPOSED_OPS.has(n.opType ?? '')) continue;
    const dynamicInputs = n.input.filter((i) => i && !ix.isConstant(i));
    if (!dynamicInputs.every((i) => inRegion.has(i))) continue;
    seen.add(n);
    if (n.opType === 'Mul') {
      const g = n.input.find((i) => vectorWeight(ix, i, hidden));
      if (g) {
        nodes.push(n);
        const after = ix.consumersOf(n.output[0]);
        const addBeta = after.length === 1 && after[0].opType === 'Add' ? after[0] : undefined;
        const beta = addBeta?.input.find((i) => i !== n.output[0] && vectorWeight(ix, i, hidden));
        if (addBeta && beta) nodes.push(addBeta);
        return {
          kind: 'decomposed', input: s, output: beta ? addBeta!.output[0] : n.output[0], gamma: g, beta,
          epsilon: epsilonOf(ix, nodes), nodes,
        };
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
function epsilonOf(ix: GraphIndex, nodes: NodeProto[]): number {
  for (const n of nodes) {
    if (n.opType !== 'Add') continue;
    const [a, b] = n.input;
    const fromMean = (x: string) => ix.producer.get(x)?.opType === 'ReduceMean';
    if (fromMean(a) && ix.scalar(b) !== undefined) return ix.scalar(b)!;
    if (fromMean(b) && ix.scalar(a) !== undefined) return ix.scalar(a)!;
  }
  return 0;
}

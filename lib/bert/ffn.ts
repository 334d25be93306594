/**
 * The feed-forward block: a linear that reads the residual stream, an activation made of elementwise
 * ops (erf GELU as exported, tanh GELU, ReLU, or a fused Gelu), and a linear back to the stream.
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import type { Ffn, Linear } from './model.js';

const ACTIVATION_OPS = new Set(['Mul', 'Div', 'Add', 'Erf', 'Tanh', 'Pow', 'Relu', 'Gelu', 'Sigmoid', 'Cast', 'Identity', 'Sqrt']);

/** Nodes strictly between `from` and `to` when `to` is reached from `from` through activation ops only. */
export function activationBetween(ix: GraphIndex, from: string, to: string): NodeProto[] | undefined {
  const region: NodeProto[] = [];
  const reached = new Set([from]);
  const queue = [...ix.consumersOf(from)];
  while (queue.length && region.length < 32) {
    const n = queue.shift()!;
    if (region.includes(n) || !ACTIVATION_OPS.has(n.opType ?? '')) continue;
    if (!n.input.every((i) => !i || reached.has(i) || ix.isConstant(i))) continue;
    region.push(n);
    for (const o of n.output) {
      reached.add(o);
      if (o === to) return region;
      queue.push(...ix.consumersOf(o));
    }
  }
  return from === to ? [] : undefined;
}

export function activationKind(nodes: NodeProto[]): Ffn['activation'] | undefined {
  const ops = new Set(nodes.map((n) => n.opType));
  if (ops.has('Erf')) return 'gelu';
  if (ops.has('Gelu')) {
    const g = nodes.find((n) => n.opType === 'Gelu')!;
    const approx = g.attribute.find((a) => a.name === 'approximate');
    return approx?.s && Buffer.from(approx.s).toString() === 'tanh' ? 'gelu_tanh' : 'gelu';
  }
  if (ops.has('Tanh')) return 'gelu_tanh';
  if (ops.has('Relu')) return 'relu';
  return undefined;
}

/** The FFN whose second linear is `out`, among the linears `candidates` that read the stream. */
export function recognizeFfn(ix: GraphIndex, out: Linear, candidates: Linear[]): Ffn | undefined {
  for (const inner of candidates) {
    const act = activationBetween(ix, inner.output, out.input);
    if (!act) continue;
    const kind = activationKind(act);
    if (!kind) continue;
    return { in: inner, out, activation: kind };
  }
  return undefined;
}

/**
 * TensorFlow's LayerNorm (tf.nn.batch_normalization as keras2onnx writes it): r = Reciprocal(Sqrt(
 * variance + eps)), m = r · gamma, y = x · m + (beta − mean · m). Presented as the division the
 * recogniser reads, y = (x − mean) / Sqrt(variance + eps) · gamma + beta, the same value by algebra;
 * the recogniser then checks what mean, variance and eps are by evaluating them. gamma and beta stay
 * the file's tensors.
 */
import { makeNode, type GraphIndex } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

function single(ix: GraphIndex, t: string): NodeProto | undefined {
  const users = ix.consumersOf(t);
  return users.length === 1 && !ix.outputs.has(t) ? users[0] : undefined;
}

function isVector(ix: GraphIndex, t: string): boolean {
  const w = ix.weight(t);
  return !!w && w.dims.length === 1;
}

function other(n: NodeProto, t: string): string | undefined {
  if (n.input.length !== 2) return undefined;
  return n.input[0] === t ? n.input[1] : n.input[1] === t ? n.input[0] : undefined;
}

export function presentReciprocalLayerNorms(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const r of view.graph.node) {
    if (r.opType !== 'Reciprocal' || (r.domain && r.domain !== 'ai.onnx')) continue;
    const sqrt = ix.producer.get(r.input[0]);
    if (!sqrt || sqrt.opType !== 'Sqrt') continue;
    // m = r · gamma
    const m = single(ix, r.output[0]);
    const gamma = m && m.opType === 'Mul' ? other(m, r.output[0]) : undefined;
    if (!m || !gamma || !isVector(ix, gamma)) continue;
    // x · m and mean · m
    const uses = ix.consumersOf(m.output[0]);
    if (uses.length !== 2 || ix.outputs.has(m.output[0]) || !uses.every((u) => u.opType === 'Mul' && other(u, m.output[0]) !== undefined)) continue;
    // beta − mean · m, then the sum
    const sub = uses.map((u) => single(ix, u.output[0])).find((s) => s?.opType === 'Sub' && s.input[1] !== s.input[0] && isVector(ix, s.input[0]));
    if (!sub) continue;
    const meanTimes = uses.find((u) => u.output[0] === sub.input[1]);
    const xTimes = uses.find((u) => u !== meanTimes);
    if (!meanTimes || !xTimes) continue;
    const add = single(ix, xTimes.output[0]);
    if (!add || add.opType !== 'Add' || single(ix, sub.output[0]) !== add || other(add, xTimes.output[0]) !== sub.output[0]) continue;
    const x = other(xTimes, m.output[0])!;
    const mean = other(meanTimes, m.output[0])!;
    const beta = sub.input[0];
    const centred = view.fresh(`${x}_centred`);
    const normalised = view.fresh(`${x}_normalised`);
    const scaled = view.fresh(`${x}_scaled`);
    for (const n of [r, m, meanTimes, xTimes, sub]) replacements.set(n, []);
    replacements.set(add, [
      makeNode('Sub', [x, mean], [centred], ''),
      makeNode('Div', [centred, sqrt.output[0]], [normalised], ''),
      makeNode('Mul', [normalised, gamma], [scaled], ''),
      makeNode('Add', [scaled, beta], [add.output[0]], ''),
    ]);
  }
  view.replace(replacements);
}

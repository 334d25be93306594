/**
 * onnxruntime's SkipLayerNormalization (com.microsoft): LayerNorm(input + bias + skip) in one node,
 * the residual Add of a BERT block (the projection's bias folded in) and its LayerNorm. Presented as
 * the bias Add (so the MatMul before it is a linear with a bias), the residual Add and a
 * LayerNormalization with the node's epsilon (default 1e-12). Its fourth output, the sum, names the
 * residual Add's result; a node whose mean or inverse-deviation outputs are read is left unread.
 */
import { attrFloat, makeAttrFloat, makeAttrInt, makeNode } from '../../onnx/graph.js';
import { quoteName } from '../../errors.js';
import type { NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

export const SKIP_LAYER_NORM_EPSILON = 1e-12;

export function presentSkipLayerNorms(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'SkipLayerNormalization' || n.domain !== 'com.microsoft') continue;
    const [input, skip, gamma, beta, bias] = n.input;
    const read = (k: number) => !!n.output[k] && (ix.consumersOf(n.output[k]).length > 0 || ix.outputs.has(n.output[k]));
    if (read(1) || read(2)) {
      view.unread.push({ node: n, reason: `SkipLayerNormalization ${quoteName(n.name || n.output[0])} has its mean or inverse deviation read` });
      continue;
    }
    const nodes: NodeProto[] = [];
    let x = input;
    if (bias) {
      x = view.fresh(`${n.output[0]}_biased`);
      nodes.push(makeNode('Add', [input, bias], [x], ''));
    }
    const sum = read(3) ? n.output[3] : view.fresh(`${n.output[0]}_sum`);
    nodes.push(makeNode('Add', [x, skip], [sum], ''));
    const epsilon = attrFloat(n, 'epsilon', SKIP_LAYER_NORM_EPSILON);
    nodes.push(makeNode('LayerNormalization', beta ? [sum, gamma, beta] : [sum, gamma], [n.output[0]], '', [makeAttrInt('axis', -1), makeAttrFloat('epsilon', epsilon)]));
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

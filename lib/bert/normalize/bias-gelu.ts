/**
 * onnxruntime's GELU with the bias folded in: BiasGelu(x, b) = Gelu(x + b) (erf form) and
 * FastGelu(x, b) = tanh-approximated Gelu(x + b) (b optional). Presented as the bias Add, which makes
 * the MatMul before it a linear with a bias, and the activation: com.microsoft Gelu, or ONNX Gelu
 * with approximate = 'tanh'. The recogniser still decides which activation it is by evaluating it.
 */
import { makeNode } from '../../onnx/graph.js';
import { AttributeType, type NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

const TANH = { name: 'approximate', type: AttributeType.STRING, s: new TextEncoder().encode('tanh'), floats: [], ints: [], strings: [], tensors: [], graphs: [] };

export function presentBiasGelus(view: GraphView): void {
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if ((n.opType !== 'BiasGelu' && n.opType !== 'FastGelu') || n.domain !== 'com.microsoft' || n.output.length !== 1) continue;
    const nodes: NodeProto[] = [];
    let x = n.input[0];
    if (n.input[1]) {
      x = view.fresh(`${n.output[0]}_biased`);
      nodes.push(makeNode('Add', [n.input[0], n.input[1]], [x], ''));
    }
    const gelu = n.opType === 'BiasGelu' ? { ...makeNode('Gelu', [x], [n.output[0]], ''), domain: 'com.microsoft' } : makeNode('Gelu', [x], [n.output[0]], '', [TANH]);
    nodes.push(gelu);
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

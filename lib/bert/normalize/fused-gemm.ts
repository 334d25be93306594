/**
 * onnxruntime's FusedGemm (com.microsoft): a Gemm followed by an activation in one node, as its graph
 * optimizer writes the pooler (Gemm + Tanh). Presented as the Gemm (same inputs and alpha, beta,
 * transA, transB) and the activation op. Activations with parameters are left unread.
 */
import { makeNode } from '../../onnx/graph.js';
import { quoteName } from '../../errors.js';
import type { NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

const ACTIVATIONS = new Set(['Tanh', 'Relu', 'Sigmoid']);

export function presentFusedGemms(view: GraphView): void {
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'FusedGemm' || n.domain !== 'com.microsoft') continue;
    const act = n.attribute.find((a) => a.name === 'activation')?.s;
    const activation = act ? Buffer.from(act).toString() : '';
    if (!ACTIVATIONS.has(activation)) {
      view.unread.push({ node: n, reason: `FusedGemm ${quoteName(n.name || n.output[0])} applies the activation ${quoteName(activation)}` });
      continue;
    }
    const gemmAttributes = n.attribute.filter((a) => ['alpha', 'beta', 'transA', 'transB'].includes(a.name ?? ''));
    const product = view.fresh(`${n.output[0]}_gemm`);
    replacements.set(n, [makeNode('Gemm', [...n.input], [product], '', gemmAttributes), makeNode(activation, [product], [n.output[0]], '')]);
  }
  view.replace(replacements);
}

/**
 * onnxruntime's FusedMatMul (com.microsoft), which its graph optimizer writes for the attention
 * scores: alpha · A · op(B), where op transposes the last two axes when transB = 1. Presented as a
 * MatMul (of a Transpose of B when transB = 1) followed by a Mul by alpha: a scale site the recogniser
 * reads. The view's alpha constant stands for the node's `alpha` attribute, which the rewrite patches
 * when it changes the score scale. transA and the batch transposes are left unread.
 */
import { attrFloat, attrInt, makeAttrInts, makeNode } from '../../onnx/graph.js';
import { quoteName } from '../../errors.js';
import type { NodeProto } from '../../onnx/types.js';
import { lazyFloatTensor, type GraphView } from './view.js';

export function presentFusedMatMuls(view: GraphView): void {
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'FusedMatMul' || n.domain !== 'com.microsoft') continue;
    const name = quoteName(n.name || n.output[0]);
    const odd = ['transA', 'transBatchA', 'transBatchB'].find((a) => attrInt(n, a, 0) !== 0);
    if (odd) {
      view.unread.push({ node: n, reason: `FusedMatMul ${name} has ${odd} = 1` });
      continue;
    }
    const nodes: NodeProto[] = [];
    let b = n.input[1];
    if (attrInt(n, 'transB', 0)) {
      const t = view.fresh(`${b}_transposed`);
      // a weight matrix, or the key tensor of the attention scores [batch, heads, seq, size]
      const perm = view.index.weight(b)?.dims.length === 2 ? [1, 0] : [0, 1, 3, 2];
      nodes.push(makeNode('Transpose', [b], [t], '', [makeAttrInts('perm', perm)]));
      b = t;
    }
    const alpha = attrFloat(n, 'alpha', 1);
    if (alpha === 1 && !n.attribute.some((a) => a.name === 'alpha')) {
      nodes.push(makeNode('MatMul', [n.input[0], b], [n.output[0]], ''));
      replacements.set(n, nodes);
      continue;
    }
    const product = view.fresh(`${n.output[0]}_product`);
    const scale = view.fresh(`${n.name || n.output[0]}_alpha`);
    view.addInitializer(lazyFloatTensor(scale, [], () => Float32Array.of(alpha)));
    view.setConstantSource(scale, 0, { kind: 'attribute', node: view.fileNode(n) ?? n, name: 'alpha', type: 'float' });
    if (view.halfPrecision) view.halfConstants.add(scale);
    nodes.push(makeNode('MatMul', [n.input[0], b], [product], ''), makeNode('Mul', [product, scale], [n.output[0]], ''));
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

/**
 * Linear layers however they were exported: MatMul by a weight initializer (optionally through a
 * Transpose), followed by an Add of a bias initializer, or a Gemm with or without transB.
 */
import { attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import type { Linear } from './model.js';

function biasAfter(ix: GraphIndex, tensor: string, outDim: number): { bias: string; node: NodeProto } | undefined {
  const users = ix.consumersOf(tensor);
  if (users.length !== 1 || ix.outputs.has(tensor)) return undefined;
  const add = users[0];
  if (add.opType !== 'Add') return undefined;
  const other = add.input[0] === tensor ? add.input[1] : add.input[0];
  const w = ix.weight(other);
  if (!w || w.dims.length !== 1 || w.dims[0] !== outDim) return undefined;
  return { bias: other, node: add };
}

/** The linear layer whose MatMul/Gemm is `node`, or undefined when `node` is not one. */
export function linearAt(ix: GraphIndex, node: NodeProto): Linear | undefined {
  if (node.opType === 'MatMul') {
    const [a, b] = node.input;
    let weight = b;
    let layout: Linear['layout'] = 'in_out';
    let w = ix.weight(b);
    if (!w) {
      const t = ix.producer.get(b);
      if (!t || t.opType !== 'Transpose') return undefined;
      const perm = attrInts(t, 'perm');
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
      w = ix.weight(t.input[0]);
      if (!w) return undefined;
      weight = t.input[0];
      layout = 'out_in';
    }
    if (w.dims.length !== 2) return undefined;
    const [inDim, outDim] = layout === 'in_out' ? w.dims : [w.dims[1], w.dims[0]];
    const bias = biasAfter(ix, node.output[0], outDim);
    return {
      node, weight, layout, input: a, inDim, outDim,
      bias: bias?.bias, biasNode: bias?.node, output: bias ? bias.node.output[0] : node.output[0],
    };
  }
  if (node.opType === 'Gemm') {
    if (attrInt(node, 'transA', 0) !== 0) return undefined;
    const w = ix.weight(node.input[1]);
    if (!w || w.dims.length !== 2) return undefined;
    const layout: Linear['layout'] = attrInt(node, 'transB', 0) ? 'out_in' : 'in_out';
    const [inDim, outDim] = layout === 'in_out' ? w.dims : [w.dims[1], w.dims[0]];
    const c = node.input[2];
    let bias: string | undefined;
    if (c) {
      const bw = ix.weight(c);
      if (!bw || bw.dims.length !== 1 || bw.dims[0] !== outDim) return undefined;
      bias = c;
    }
    return { node, weight: node.input[1], layout, bias, input: node.input[0], output: node.output[0], inDim, outDim };
  }
  return undefined;
}

/** All linear layers of the graph, by the tensor they read. */
export function linearsByInput(ix: GraphIndex): Map<string, Linear[]> {
  const out = new Map<string, Linear[]>();
  for (const n of ix.graph.node) {
    const l = linearAt(ix, n);
    if (!l) continue;
    const list = out.get(l.input) ?? [];
    list.push(l);
    out.set(l.input, list);
  }
  return out;
}

/**
 * Linear layers however they were exported: MatMul by a weight initializer (optionally through a
 * Transpose), followed by an Add of a bias initializer, or a Gemm with or without transB (its alpha
 * and beta recorded). A MatMul or Gemm whose weight is an initializer of the wrong type or size, or
 * whose following constant Add is not a bias of the right length, is an error naming the tensor.
 */
import { attrFloat, attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';
import { tensorDims } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import type { Linear } from './model.js';
import { quantizedLinearAt } from '../quantize/linear-view.js';

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

/** The float32 [a, b] matrix initializer `name`, undefined when `name` is not an initializer; throws when it is one of the wrong kind. */
function weightMatrix(ix: GraphIndex, name: string, node: NodeProto): number[] | undefined {
  const t = ix.initializers.get(name);
  if (!t) return undefined;
  if (t.dataType !== DataType.FLOAT) {
    throw new BortError(`the weight ${quoteName(name)} of ${node.opType} ${nodeName(node)} has data type ${t.dataType}, not float32`, 'bort-compress reads float32 models; export the model in float32');
  }
  const dims = tensorDims(t);
  if (dims.length !== 2) return undefined;
  if (dims[0] === 0 || dims[1] === 0) throw new BortError(`the weight ${quoteName(name)} of ${node.opType} ${nodeName(node)} has shape [${dims.join(', ')}]`, 'a weight with no values is not a layer; the file is damaged');
  return dims;
}

function biasAfter(ix: GraphIndex, tensor: string, outDim: number, node: NodeProto): { bias: string; node: NodeProto } | undefined {
  const users = ix.consumersOf(tensor);
  if (users.length !== 1 || ix.outputs.has(tensor)) return undefined;
  const add = users[0];
  if (add.opType !== 'Add' || add.input.length !== 2) return undefined;
  const other = add.input[0] === tensor ? add.input[1] : add.input[0];
  if (other === tensor || !ix.isConstant(other)) return undefined;
  const w = ix.weight(other);
  if (!w || w.dims.length !== 1 || w.dims[0] !== outDim) {
    const c = ix.constant(other)!;
    throw new BortError(`the bias ${quoteName(other)} added after ${node.opType} ${nodeName(node)} has shape [${tensorDims(c).join(', ')}] and type ${c.dataType}, not float32 [${outDim}]`,
      'the bias of a layer must have one float32 value per output; the file is damaged or not a BERT model');
  }
  return { bias: other, node: add };
}

/** The linear layer whose MatMul/Gemm is `node`, or undefined when `node` is not one. */
export function linearAt(ix: GraphIndex, node: NodeProto): Linear | undefined {
  if (node.opType === 'Mul') return quantizedLinearAt(ix, node);
  if (node.opType === 'MatMul') {
    const [a, b] = node.input;
    let weight = b;
    let layout: Linear['layout'] = 'in_out';
    let dims = weightMatrix(ix, b, node);
    if (!dims) {
      const t = ix.producer.get(b);
      if (!t || t.opType !== 'Transpose') return undefined;
      const perm = attrInts(t, 'perm');
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
      dims = weightMatrix(ix, t.input[0], node);
      if (!dims) return undefined;
      weight = t.input[0];
      layout = 'out_in';
    }
    const [inDim, outDim] = layout === 'in_out' ? dims : [dims[1], dims[0]];
    const bias = biasAfter(ix, node.output[0], outDim, node);
    return {
      node, weight, layout, input: a, inDim, outDim, alpha: 1, beta: 1,
      bias: bias?.bias, biasNode: bias?.node, output: bias ? bias.node.output[0] : node.output[0],
    };
  }
  if (node.opType === 'Gemm') {
    const dims = weightMatrix(ix, node.input[1], node);
    if (!dims) return undefined;
    if (attrInt(node, 'transA', 0) !== 0) {
      throw new BortError(`Gemm ${nodeName(node)} transposes its input (transA = 1)`, 'bort-compress reads Gemm layers of the form x·W + b; export the model without transA');
    }
    const layout: Linear['layout'] = attrInt(node, 'transB', 0) ? 'out_in' : 'in_out';
    const [inDim, outDim] = layout === 'in_out' ? dims : [dims[1], dims[0]];
    const alpha = attrFloat(node, 'alpha', 1);
    const beta = attrFloat(node, 'beta', 1);
    if (!Number.isFinite(alpha) || !Number.isFinite(beta)) {
      throw new BortError(`Gemm ${nodeName(node)} has alpha ${alpha} and beta ${beta}`, 'a layer scaled by an infinite or NaN factor computes no usable numbers; the file is damaged');
    }
    const c = node.input[2];
    let bias: string | undefined;
    if (c) {
      const bw = ix.weight(c);
      if (!bw || bw.dims.length !== 1 || bw.dims[0] !== outDim) {
        const t = ix.constant(c);
        const shape = t ? `shape [${tensorDims(t).join(', ')}] and type ${t.dataType}` : 'computed values';
        throw new BortError(`the bias ${quoteName(c)} of Gemm ${nodeName(node)} has ${shape}, not float32 [${outDim}]`,
          'bort-compress reads Gemm layers whose bias has one float32 value per output');
      }
      bias = c;
    }
    return { node, weight: node.input[1], layout, bias, input: node.input[0], output: node.output[0], inDim, outDim, alpha, beta };
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

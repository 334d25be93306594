/**
 * A small ONNX graph builder: initializers, Constant nodes, nodes with generated output names, nodes of
 * other operator domains (com.microsoft) with the opset imports they need.
 */
import { makeAttrInt, makeAttrInts, makeAttrFloat, makeAttrTensor, makeNode } from '../onnx/graph.js';
import { makeFloatTensor, makeInt64Tensor } from '../onnx/tensor.js';
import { DataType, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type OperatorSetId, type TensorProto, type ValueInfoProto } from '../onnx/types.js';

/** onnxruntime's contrib operator domain. */
export const MS_DOMAIN = 'com.microsoft';

export type AttrValue = number | number[] | { float: number } | { tensor: TensorProto };

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counter = 0;
  private readonly domains = new Set<string>();

  constructor(readonly opset: number) {}

  init(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(makeFloatTensor(name, dims, data));
    return name;
  }

  initInt64(name: string, dims: number[], values: number[]): string {
    this.initializers.push(makeInt64Tensor(name, dims, values));
    return name;
  }

  /** A `Constant` node holding int64 values (dims [] for a scalar, [n] otherwise). */
  constInt(values: number[], scalar = false): string {
    const out = `/const_${this.counter++}`;
    this.nodes.push(makeNode('Constant', [], [out], out, [makeAttrTensor('value', makeInt64Tensor(out, scalar ? [] : [values.length], values))]));
    return out;
  }

  constFloat(value: number): string {
    const out = `/const_${this.counter++}`;
    this.nodes.push(makeNode('Constant', [], [out], out, [makeAttrTensor('value', makeFloatTensor(out, [], Float32Array.of(value)))]));
    return out;
  }

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string, domain?: string): string {
    const out = output ?? `/${op}_${this.counter++}`;
    this.push(op, inputs, [out], out.replace(/_output_0$/, ''), attrs, domain);
    return out;
  }

  /** A node with several outputs (Split, EmbedLayerNormalization); `outputs` names them or counts them. */
  nodeOutputs(op: string, inputs: string[], attrs: Record<string, AttrValue>, outputs: (string | undefined)[], domain?: string): string[] {
    const base = `/${op}_${this.counter++}`;
    const outs = outputs.map((o, i) => o ?? `${base}_output_${i}`);
    this.push(op, inputs, outs, base, attrs, domain);
    return outs;
  }

  /** A com.microsoft contrib node (onnxruntime's fused operators). */
  contrib(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.node(op, inputs, attrs, output, MS_DOMAIN);
  }

  /** Operator sets the graph's nodes use besides the default domain. */
  extraOpsets(): OperatorSetId[] {
    return [...this.domains].map((domain) => ({ domain, version: 1 }));
  }

  private push(op: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, AttrValue>, domain?: string): void {
    const attribute: AttributeProto[] = Object.entries(attrs).map(([k, v]) => {
      if (Array.isArray(v)) return makeAttrInts(k, v);
      if (typeof v === 'number') return makeAttrInt(k, v);
      if ('float' in v) return makeAttrFloat(k, v.float);
      return makeAttrTensor(k, v.tensor);
    });
    const node = makeNode(op, inputs, outputs, name, attribute);
    if (domain) {
      node.domain = domain;
      this.domains.add(domain);
    }
    this.nodes.push(node);
  }

  /** Unsqueeze along `axes`: attribute before opset 13, input from 13 on. */
  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.node('Unsqueeze', [x, this.constInt(axes)]) : this.node('Unsqueeze', [x], { axes });
  }

  /** Squeeze along `axes`: attribute before opset 13, input from 13 on. */
  squeeze(x: string, axes: number[], output?: string): string {
    return this.opset >= 13 ? this.node('Squeeze', [x, this.constInt(axes)], {}, output) : this.node('Squeeze', [x], { axes }, output);
  }

  /** Split along `axis` into pieces of `sizes`: `split` attribute before opset 13, input from 13 on. */
  split(x: string, sizes: number[], axis: number): string[] {
    const outs = sizes.map(() => undefined);
    return this.opset >= 13
      ? this.nodeOutputs('Split', [x, this.constInt(sizes)], { axis }, outs)
      : this.nodeOutputs('Split', [x], { axis, split: sizes }, outs);
  }

  /** ReduceSum along `axes`: attribute before opset 13, input from 13 on. */
  reduceSum(x: string, axes: number[], keepdims: number): string {
    return this.opset >= 13 ? this.node('ReduceSum', [x, this.constInt(axes)], { keepdims }) : this.node('ReduceSum', [x], { axes, keepdims });
  }

  graph(name: string, input: ValueInfoProto[], output: ValueInfoProto[]): GraphProto {
    return { name, node: this.nodes, initializer: this.initializers, input, output, valueInfo: [] };
  }
}

export function tensorInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

export function modelOf(graph: GraphProto, opset: number, producer: string, extraOpsets: OperatorSetId[] = []): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }, ...extraOpsets],
    producerName: producer,
    producerVersion: '0.1.0',
    graph,
    metadataProps: [],
  };
}

export { DataType };

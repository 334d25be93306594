/**
 * A small ONNX graph builder: initializers, Constant nodes, nodes with generated output names.
 */
import { makeAttrInt, makeAttrInts, makeAttrFloat, makeAttrTensor, makeNode } from '../onnx/graph.js';
import { makeFloatTensor, makeInt64Tensor } from '../onnx/tensor.js';
import { DataType, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../onnx/types.js';

export type AttrValue = number | number[] | { float: number } | { tensor: TensorProto };

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counter = 0;

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

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    const out = output ?? `/${op}_${this.counter++}`;
    const attribute: AttributeProto[] = Object.entries(attrs).map(([k, v]) => {
      if (Array.isArray(v)) return makeAttrInts(k, v);
      if (typeof v === 'number') return makeAttrInt(k, v);
      if ('float' in v) return makeAttrFloat(k, v.float);
      return makeAttrTensor(k, v.tensor);
    });
    this.nodes.push(makeNode(op, inputs, [out], out.replace(/_output_0$/, ''), attribute));
    return out;
  }

  /** Unsqueeze along `axes`: attribute before opset 13, input from 13 on. */
  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.node('Unsqueeze', [x, this.constInt(axes)]) : this.node('Unsqueeze', [x], { axes });
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

export function modelOf(graph: GraphProto, opset: number, producer: string): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: producer,
    producerVersion: '0.1.0',
    graph,
    metadataProps: [],
  };
}

export { DataType };

/**
 * A read index over an ONNX graph: who produces and who consumes each tensor, which tensors are
 * initializers or constants, and attribute access. Recognition walks the data flow with it.
 */
import { AttributeType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto } from './types.js';
import { intValues, floatData, makeFloatTensor, makeInt64Tensor, tensorDims } from './tensor.js';

export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly inputs = new Set<string>();
  readonly outputs = new Set<string>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer) this.initializers.set(t.name ?? '', t);
    for (const i of graph.input) if (!this.initializers.has(i.name ?? '')) this.inputs.add(i.name ?? '');
    for (const o of graph.output) this.outputs.add(o.name ?? '');
    for (const n of graph.node) {
      for (const o of n.output) if (o) this.producer.set(o, n);
      for (const i of n.input) {
        if (!i) continue;
        let list = this.consumers.get(i);
        if (!list) this.consumers.set(i, (list = []));
        if (!list.includes(n)) list.push(n);
      }
    }
  }

  consumersOf(tensor: string): NodeProto[] {
    return this.consumers.get(tensor) ?? [];
  }

  /** The constant tensor behind a name: an initializer or the output of a `Constant` node. */
  constant(name: string): TensorProto | undefined {
    const init = this.initializers.get(name);
    if (init) return init;
    const p = this.producer.get(name);
    if (p && p.opType === 'Constant') {
      const a = p.attribute.find((x) => x.name === 'value');
      if (a?.t) return a.t;
      const f = p.attribute.find((x) => x.name === 'value_float');
      if (f) return makeFloatTensor(name, [], Float32Array.of(f.f ?? 0));
      const i = p.attribute.find((x) => x.name === 'value_int');
      if (i) return makeInt64Tensor(name, [], [i.i ?? 0]);
      const is = p.attribute.find((x) => x.name === 'value_ints');
      if (is) return makeInt64Tensor(name, [is.ints.length], is.ints);
    }
    return undefined;
  }

  /** Numeric values of a constant (float or integer), or undefined when not constant. */
  constantValues(name: string): number[] | undefined {
    const t = this.constant(name);
    if (!t) return undefined;
    if (t.dataType === 1) return Array.from(floatData(t));
    return intValues(t).map(Number);
  }

  /** A constant scalar (any rank, one element). */
  scalar(name: string): number | undefined {
    const v = this.constantValues(name);
    return v && v.length === 1 ? v[0] : undefined;
  }

  /** Float initializer (not Constant node) with its dims. */
  weight(name: string): { tensor: TensorProto; dims: number[] } | undefined {
    const t = this.initializers.get(name);
    if (!t || t.dataType !== 1) return undefined;
    return { tensor: t, dims: tensorDims(t) };
  }

  isConstant(name: string): boolean {
    return this.constant(name) !== undefined;
  }
}

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, dflt: number): number {
  const a = attr(node, name);
  return a && a.i !== undefined ? Number(a.i) : dflt;
}

export function attrFloat(node: NodeProto, name: string, dflt: number): number {
  const a = attr(node, name);
  return a && a.f !== undefined ? a.f : dflt;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attr(node, name);
  return a ? a.ints.map(Number) : undefined;
}

export function makeAttrInt(name: string, v: number): AttributeProto {
  return { name, type: AttributeType.INT, i: v, floats: [], ints: [], strings: [], tensors: [], graphs: [] };
}

export function makeAttrInts(name: string, v: number[]): AttributeProto {
  return { name, type: AttributeType.INTS, floats: [], ints: v, strings: [], tensors: [], graphs: [] };
}

export function makeAttrFloat(name: string, v: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f: v, floats: [], ints: [], strings: [], tensors: [], graphs: [] };
}

export function makeAttrTensor(name: string, t: TensorProto): AttributeProto {
  return { name, type: AttributeType.TENSOR, t, floats: [], ints: [], strings: [], tensors: [], graphs: [] };
}

export function makeNode(opType: string, input: string[], output: string[], name: string, attribute: AttributeProto[] = []): NodeProto {
  return { opType, input, output, name, attribute };
}

/**
 * Element types of a graph's tensors, inferred forwards from the graph inputs, initializers and
 * Constant nodes: enough to tell a Cast of a float tensor from a Cast of an integer one. Ops whose
 * output type is not their input's (Cast, Shape, comparisons, …) have their rule; every other op
 * passes on the type of its first typed input. Unknown is 0.
 */
import { attrInt, type GraphIndex } from '../../onnx/graph.js';
import { DataType, type NodeProto } from '../../onnx/types.js';

const BOOLEAN_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

function outputTypes(n: NodeProto, typeOf: (t: string) => number, ix: GraphIndex): number[] {
  const first = n.input.map((i) => (i ? typeOf(i) : 0)).find((t) => t) ?? 0;
  const op = n.opType ?? '';
  if (op === 'Constant') return [ix.constant(n.output[0])?.dataType ?? 0];
  if (op === 'Cast') return [attrInt(n, 'to', 0)];
  if (INT64_OPS.has(op)) return [DataType.INT64];
  if (BOOLEAN_OPS.has(op)) return [DataType.BOOL];
  if (op === 'ConstantOfShape') return [n.attribute.find((a) => a.name === 'value')?.t?.dataType ?? DataType.FLOAT];
  if (op === 'Where') return [typeOf(n.input[1]) || typeOf(n.input[2])];
  if (op === 'Gather' || op === 'GatherElements' || op === 'GatherND') return [typeOf(n.input[0])];
  if (op === 'EmbedLayerNormalization') return [typeOf(n.input[2]), DataType.INT32, typeOf(n.input[2])];
  return n.output.map(() => first);
}

export function elementTypes(ix: GraphIndex): Map<string, number> {
  const types = new Map<string, number>();
  for (const i of ix.graph.input) types.set(i.name ?? '', i.type?.tensorType?.elemType ?? 0);
  for (const t of ix.graph.initializer) types.set(t.name ?? '', t.dataType ?? 0);
  const typeOf = (t: string) => types.get(t) ?? 0;
  // nodes in data-flow order (the graph is acyclic: recognition checked it)
  const pending = new Map<NodeProto, number>();
  const ready: NodeProto[] = [];
  for (const n of ix.graph.node) {
    const waits = new Set(n.input.filter((i) => i && ix.producer.has(i)).map((i) => ix.producer.get(i)!)).size;
    if (waits === 0) ready.push(n);
    else pending.set(n, waits);
  }
  while (ready.length) {
    const n = ready.pop()!;
    outputTypes(n, typeOf, ix).forEach((t, k) => { if (n.output[k]) types.set(n.output[k], t); });
    const readers = new Set(n.output.flatMap((o) => ix.consumersOf(o)));
    for (const r of readers) {
      const left = (pending.get(r) ?? 0) - 1;
      if (left === 0) {
        pending.delete(r);
        ready.push(r);
      } else pending.set(r, left);
    }
  }
  return types;
}

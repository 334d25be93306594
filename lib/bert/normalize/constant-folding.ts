/**
 * Constants computed in the graph: TensorFlow exporters write √2 in GELU and √d in the score scale as
 * Sqrt of a constant (and Reciprocal, Neg, Cast to float likewise). Such a node of a constant float
 * input is presented as the constant it computes (in float32, as onnxruntime computes it), so the
 * recogniser reads the value. The rewrite replaces the node's reader's input when it patches a scale;
 * the node itself is then unused and removed.
 */
import { attrInt, type GraphIndex } from '../../onnx/graph.js';
import { floatData, tensorDims } from '../../onnx/tensor.js';
import { DataType, type NodeProto } from '../../onnx/types.js';
import { lazyFloatTensor, type GraphView } from './view.js';

const UNARY: Record<string, (x: number) => number> = {
  Sqrt: Math.sqrt,
  Reciprocal: (x) => 1 / x,
  Neg: (x) => -x,
  Identity: (x) => x,
};

/** Values of a small float constant, or undefined. */
function floatConstant(ix: GraphIndex, t: string): { dims: number[]; values: Float32Array } | undefined {
  const c = ix.constant(t);
  if (!c || c.dataType !== DataType.FLOAT) return undefined;
  const dims = tensorDims(c);
  if (dims.reduce((a, b) => a * b, 1) > 4096) return undefined;
  return { dims, values: floatData(c) };
}

function foldable(ix: GraphIndex, n: NodeProto): { dims: number[]; values: Float32Array } | undefined {
  if ((n.domain && n.domain !== 'ai.onnx') || n.input.length !== 1 || n.output.length !== 1 || ix.outputs.has(n.output[0])) return undefined;
  const op = n.opType ?? '';
  if (op === 'Cast') {
    if (attrInt(n, 'to', 0) !== DataType.FLOAT) return undefined;
    const c = ix.constant(n.input[0]);
    const v = ix.constantValues(n.input[0]);
    if (!c || !v || v.length > 4096) return undefined;
    return { dims: tensorDims(c), values: Float32Array.from(v) };
  }
  if (!Object.hasOwn(UNARY, op)) return undefined;
  const f = UNARY[op];
  const x = floatConstant(ix, n.input[0]);
  if (!x) return undefined;
  return { dims: x.dims, values: x.values.map((v) => Math.fround(f(v))) };
}

export function foldConstants(view: GraphView): void {
  // a chain (Sqrt of a Cast of a constant) folds one node per round
  for (let round = 0; round < 4; round++) {
    const ix = view.index;
    const removed = new Map<NodeProto, NodeProto[]>();
    for (const n of view.graph.node) {
      const v = foldable(ix, n);
      if (!v) continue;
      view.addInitializer(lazyFloatTensor(n.output[0], v.dims, () => v.values));
      if (view.halfConstants.has(n.input[0])) view.halfConstants.add(n.output[0]);
      removed.set(n, []);
    }
    if (!removed.size) return;
    view.replace(removed);
  }
}

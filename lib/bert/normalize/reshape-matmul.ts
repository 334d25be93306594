/**
 * TensorFlow's Dense on 3-D tensors (tf.tensordot as keras2onnx and tf2onnx write it): Reshape x
 * [batch, seq, in] to [batch·seq, in], MatMul by W [in, out], Reshape back to [batch, seq, out], the
 * targets computed at run time from Shape(x). Presented as one MatMul(x, W), a 2-D projection of the
 * 3-D tensor. The targets are checked by evaluating them for several sample shapes of x; the constant
 * that carries `out` (and `in`, when it is a constant) is recorded as a dimension site, so the rewrite
 * patches it when it slices W.
 */
import { attrInt, makeNode } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import { ShapeValues, reshapeResult, traceElement } from './shape-values.js';
import type { DimensionSite, GraphView } from './view.js';

const SAMPLES: [number, number][] = [[2, 3], [5, 7], [3, 509]];

function only<T>(list: T[]): T | undefined {
  return list.length === 1 ? list[0] : undefined;
}

export function presentReshapedMatMuls(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const m of view.graph.node) {
    if (m.opType !== 'MatMul' || (m.domain && m.domain !== 'ai.onnx')) continue;
    const w = ix.weight(m.input[1]);
    const r1 = ix.producer.get(m.input[0]);
    if (!w || w.dims.length !== 2 || !r1 || r1.opType !== 'Reshape' || (r1.domain && r1.domain !== 'ai.onnx')) continue;
    const r2 = only(ix.consumersOf(m.output[0]));
    if (!r2 || r2.opType !== 'Reshape' || r2.input[0] !== m.output[0] || (r2.domain && r2.domain !== 'ai.onnx')) continue;
    if (ix.outputs.has(r1.output[0]) || ix.outputs.has(m.output[0])) continue;
    const x = r1.input[0];
    const [inDim, outDim] = w.dims;
    const targets = (b: number, s: number, h: number) => {
      const values = new ShapeValues(ix, (t) => (t === x ? [b, s, h] : undefined));
      const t1 = values.values(r1.input[1]);
      const flat = t1 && reshapeResult([b, s, h], t1, attrInt(r1, 'allowzero', 0) === 1);
      const t2 = values.values(r2.input[1]);
      const back = flat && t2 && reshapeResult([b * s, outDim], t2, attrInt(r2, 'allowzero', 0) === 1);
      return { flat, back, values };
    };
    const same = (a: number[] | undefined, b: number[]) => !!a && a.length === b.length && a.every((v, i) => v === b[i]);
    if (!SAMPLES.every(([b, s]) => {
      const t = targets(b, s, inDim);
      return same(t.flat, [b * s, inDim]) && same(t.back, [b, s, outDim]);
    })) continue;
    // the widths: `out` must be one constant element; `in` one too, or computed from x's shape
    const { values } = targets(2, 3, inDim);
    const sites: DimensionSite[] = [];
    const outAt = traceElement(ix, r2, 1, (values.values(r2.input[1])?.length ?? 0) - 1, values);
    if (!outAt || ix.constantValues(outAt.constant)?.[outAt.element] !== outDim) continue;
    sites.push({ at: { node: outAt.node, inputIndex: outAt.inputIndex, constant: outAt.constant }, element: outAt.element, weight: m.input[1], axis: 1 });
    const inAt = traceElement(ix, r1, 1, (values.values(r1.input[1])?.length ?? 0) - 1, values);
    if (inAt) {
      if (ix.constantValues(inAt.constant)?.[inAt.element] !== inDim) continue;
      sites.push({ at: { node: inAt.node, inputIndex: inAt.inputIndex, constant: inAt.constant }, element: inAt.element, weight: m.input[1], axis: 0 });
    } else if (!same(targets(2, 3, inDim + 1).flat, [6, inDim + 1])) {
      continue;
    }
    view.dimensions.push(...sites);
    // the flattening Reshape may serve several projections (onnxruntime merges equal ones); it and the
    // MatMul are dropped with the view's unused nodes once nothing reads them
    replacements.set(r2, [makeNode('MatMul', [x, m.input[1]], [r2.output[0]], '')]);
  }
  view.replace(replacements);
}

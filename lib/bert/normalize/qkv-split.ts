/**
 * Q, K and V as one projection: MatMul by a fused weight [H, 3W] (or a Transpose of [3W, H]), Add of a
 * fused bias [3W], then Split into three [.., W] parts on the last axis, as onnxruntime's transformer
 * optimizer writes it. Presented as three projections whose weights and biases are blocks of the fused
 * tensors, each writing its Split output. The Split sizes, when the file states them, are dimension
 * sites: the rewrite keeps them equal to the blocks' widths.
 */
import { attrInt, attrInts, makeAttrInts, makeNode, type GraphIndex } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { DimensionSite, GraphView } from './view.js';

function only(ix: GraphIndex, t: string): NodeProto | undefined {
  const users = ix.consumersOf(t);
  return users.length === 1 && !ix.outputs.has(t) ? users[0] : undefined;
}

export function presentQkvSplits(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const s of view.graph.node) {
    if (s.opType !== 'Split' || (s.domain && s.domain !== 'ai.onnx') || s.output.length !== 3) continue;
    const axis = attrInt(s, 'axis', 0);
    if (axis !== -1 && axis !== 2) continue;
    // the bias Add (either operand order), then the MatMul
    let y = s.input[0];
    let bias: string | undefined;
    const add = ix.producer.get(y);
    if (add && add.opType === 'Add' && only(ix, y) === s) {
      const b = add.input.find((i) => ix.weight(i)?.dims.length === 1);
      const other = add.input.find((i) => i !== b);
      if (b && other) {
        bias = b;
        y = other;
      }
    }
    const mm = ix.producer.get(y);
    if (!mm || mm.opType !== 'MatMul' || (mm.domain && mm.domain !== 'ai.onnx') || only(ix, y) !== (bias ? add : s)) continue;
    let weight = mm.input[1];
    let transpose: NodeProto | undefined;
    if (!ix.weight(weight)) {
      transpose = ix.producer.get(weight);
      const perm = transpose && attrInts(transpose, 'perm');
      if (!transpose || transpose.opType !== 'Transpose' || (perm && !(perm[0] === 1 && perm[1] === 0)) || only(ix, weight) !== mm) continue;
      weight = transpose.input[0];
    }
    const w = ix.weight(weight);
    if (!w || w.dims.length !== 2) continue;
    const outAxis = transpose ? 0 : 1;
    const total = w.dims[outAxis];
    if (total % 3 !== 0 || (bias && ix.weight(bias)!.dims[0] !== total)) continue;
    const width = total / 3;
    // the sizes: an input (opset 13+), an attribute, or equal parts
    const sizes = s.input[1] ? ix.constantValues(s.input[1]) : attrInts(s, 'split');
    if ((s.input[1] && !sizes) || (sizes && (sizes.length !== 3 || sizes.some((v) => v !== width)))) continue;
    const sites: DimensionSite[] = [];
    const nodes: NodeProto[] = [];
    ['q', 'k', 'v'].forEach((part, i) => {
      const wp = view.fresh(`${weight}.${part}`);
      view.addBlock(wp, weight, outAxis, i * width, width);
      let wIn = wp;
      if (transpose) {
        wIn = view.fresh(`${wp}_transposed`);
        nodes.push(makeNode('Transpose', [wp], [wIn], '', [makeAttrInts('perm', [1, 0])]));
      }
      const product = bias ? view.fresh(`${s.output[i]}_product`) : s.output[i];
      nodes.push(makeNode('MatMul', [mm.input[0], wIn], [product], ''));
      if (bias) {
        const bp = view.fresh(`${bias}.${part}`);
        view.addBlock(bp, bias, 0, i * width, width);
        nodes.push(makeNode('Add', [product, bp], [s.output[i]], ''));
      }
      if (s.input[1]) sites.push({ at: { node: s, inputIndex: 1, constant: s.input[1] }, element: i, weight: wp, axis: outAxis });
      else if (sizes) sites.push({ at: { node: s, attribute: 'split' }, element: i, weight: wp, axis: outAxis });
    });
    view.dimensions.push(...sites);
    if (transpose) replacements.set(transpose, []);
    replacements.set(mm, []);
    if (bias) replacements.set(add!, []);
    replacements.set(s, nodes);
  }
  view.replace(replacements);
}

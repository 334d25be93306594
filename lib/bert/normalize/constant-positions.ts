/**
 * Position embeddings folded into a constant: when the inputs declare a fixed sequence length L,
 * onnxruntime's optimizer (and some exporters) compute the position lookup once and add the result, a
 * constant [1, L, H] (or [L, H]), to the word embeddings. Such an Add in an embedding sum is presented
 * as the lookup of rows 0 … S−1 of a position table holding that constant's rows, which the model
 * reads only at S = L. The rewrite slices the file's constant as that table.
 */
import { makeAttrInt, makeNode, type GraphIndex } from '../../onnx/graph.js';
import { makeInt64Tensor } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import { declaredSequenceLength } from './fixed-sequence.js';
import type { GraphView } from './view.js';

/** Whether `t` is a table lookup by a graph input, or a sum that holds one. */
function holdsLookup(ix: GraphIndex, t: string, depth = 0): boolean {
  const p = ix.producer.get(t);
  if (!p || depth > 4) return false;
  if (p.opType === 'Gather') return ix.weight(p.input[0])?.dims.length === 2;
  if (p.opType === 'Add') return p.input.some((i) => !ix.isConstant(i) && holdsLookup(ix, i, depth + 1));
  return false;
}

export function presentConstantPositions(view: GraphView): void {
  const fixed = declaredSequenceLength(view.model);
  if (!fixed) return;
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'Add' || (n.domain && n.domain !== 'ai.onnx') || n.input.length !== 2) continue;
    const c = n.input.find((i) => {
      const w = ix.weight(i);
      return w && ((w.dims.length === 3 && w.dims[0] === 1 && w.dims[1] === fixed.length) || (w.dims.length === 2 && w.dims[0] === fixed.length));
    });
    const other = n.input.find((i) => i !== c);
    if (!c || !other || !holdsLookup(ix, other)) continue;
    const table = view.fresh(`${c}_rows`);
    view.addSqueezed(table, c);
    const zero = view.fresh('zero');
    view.addInitializer(makeInt64Tensor(zero, [1], [0]));
    const length = view.fresh(`${c}_length`);
    const rows = view.fresh(`${c}_positions`);
    replacements.set(n, [
      makeNode('Shape', [fixed.input], [length], '', [makeAttrInt('start', 1), makeAttrInt('end', 2)]),
      makeNode('Slice', [table, zero, length, zero], [rows], ''),
      makeNode('Add', [other, rows], [...n.output], ''),
    ]);
  }
  view.replace(replacements);
}

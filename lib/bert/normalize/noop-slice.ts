/**
 * Slices that keep everything: keras2onnx crops the attention mask and the position ids with
 * Slice(start 0, end INT64_MAX, step 1) on some axes. Such a Slice is presented as an Identity.
 */
import { attrInts, makeNode, type GraphIndex } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

/** At least this end keeps a whole axis of any tensor onnxruntime can hold. */
const WHOLE_AXIS = 2 ** 31 - 1;

function keepsAll(ix: GraphIndex, n: NodeProto): boolean {
  if (n.opType !== 'Slice' || (n.domain && n.domain !== 'ai.onnx') || n.output.length !== 1) return false;
  const fromInputs = n.input.length > 1;
  const starts = fromInputs ? ix.constantValues(n.input[1]) : attrInts(n, 'starts');
  const ends = fromInputs ? ix.constantValues(n.input[2]) : attrInts(n, 'ends');
  const steps = fromInputs && n.input[4] ? ix.constantValues(n.input[4]) : starts?.map(() => 1);
  if (!starts || !ends || !steps || ends.length !== starts.length || steps.length !== starts.length) return false;
  return starts.every((s, i) => s === 0 && steps[i] === 1 && ends[i] >= WHOLE_AXIS);
}

export function presentNoopSlices(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (keepsAll(ix, n)) replacements.set(n, [makeNode('Identity', [n.input[0]], [n.output[0]], '')]);
  }
  view.replace(replacements);
}

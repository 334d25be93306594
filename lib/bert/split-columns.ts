/**
 * A per-token classifier's logits split into one tensor per label, as transformers'
 * BertForQuestionAnswering exports them: `logits.split(1, dim=-1)` then `.squeeze(-1)` on each part,
 * i.e. Split on the last axis into pieces of 1 (sizes as an attribute before opset 13, an input from
 * 13, or absent for equal pieces) and a Squeeze of that axis on every piece. The result is the
 * tensors holding column 0, 1, … of the logits, each [batch, seq].
 */
import { attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';
import { axesOf } from './symbolic.js';

/** Rank of the per-token logits: [batch, seq, labels]. */
const RANK = 3;

const isLastAxis = (a: number | undefined) => a === -1 || a === RANK - 1;

/**
 * The column tensors of `logits` (a [batch, seq, labels] tensor), when it is read only by a Split
 * into `labels` pieces of one column each, each piece squeezed; undefined otherwise.
 */
export function splitColumns(ix: GraphIndex, logits: string, labels: number): string[] | undefined {
  if (ix.outputs.has(logits)) return undefined;
  const users = ix.consumersOf(logits);
  if (users.length !== 1) return undefined;
  const split = users[0];
  if (split.opType !== 'Split' || (split.domain && split.domain !== 'ai.onnx') || split.input[0] !== logits) return undefined;
  if (!isLastAxis(attrInt(split, 'axis', 0))) return undefined;
  const sizes = split.input[1] ? ix.constantValues(split.input[1]) : attrInts(split, 'split');
  if (split.output.length !== labels || (sizes && (sizes.length !== labels || sizes.some((s) => s !== 1)))) return undefined;
  if (split.input[1] && !sizes) return undefined; // computed sizes
  const columns: string[] = [];
  for (const piece of split.output) {
    const readers = ix.consumersOf(piece);
    if (!piece || readers.length !== 1 || ix.outputs.has(piece)) return undefined;
    const squeeze = readers[0];
    if (squeeze.opType !== 'Squeeze' || (squeeze.domain && squeeze.domain !== 'ai.onnx')) return undefined;
    const axes = axesOf(ix, squeeze);
    if (!axes || axes.length !== 1 || !isLastAxis(axes[0])) return undefined;
    columns.push(squeeze.output[0]);
  }
  return columns;
}

/**
 * The normalising passes, in order, that turn a model file into the view the recogniser reads
 * (lib/bert/normalize/view.ts says what the view records beside the graph). Each pass presents one
 * exporter's quirk in the form the recogniser already reads, and leaves everything else as it is; a
 * stock PyTorch export passes through unchanged. Half precision comes first (every later pass then
 * sees float32), fused attention before EmbedLayerNormalization (whose mask_index it reads).
 */
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { presentAttention } from './attention.js';
import { presentBiasGelus } from './bias-gelu.js';
import { foldConstants } from './constant-folding.js';
import { presentConstantPositions } from './constant-positions.js';
import { presentEmbedLayerNorms } from './embed-layernorm.js';
import { presentFixedSequence } from './fixed-sequence.js';
import { presentFusedGemms } from './fused-gemm.js';
import { presentFusedMatMuls } from './fused-matmul.js';
import { presentHalfPrecision } from './half-precision.js';
import { presentNoopSlices } from './noop-slice.js';
import { presentQkvSplits } from './qkv-split.js';
import { presentReciprocalLayerNorms } from './reciprocal-layernorm.js';
import { presentReshapedMatMuls } from './reshape-matmul.js';
import { presentSkipLayerNorms } from './skip-layernorm.js';
import { GraphView } from './view.js';

const PASSES: ((view: GraphView) => void)[] = [
  presentHalfPrecision,
  foldConstants,
  presentNoopSlices,
  presentFixedSequence,
  presentConstantPositions,
  presentReshapedMatMuls,
  presentReciprocalLayerNorms,
  presentFusedMatMuls,
  presentFusedGemms,
  presentBiasGelus,
  presentAttention,
  presentQkvSplits,
  presentSkipLayerNorms,
  presentEmbedLayerNorms,
];

/** Drops view nodes that no graph output depends on (shape computations of replaced nodes). */
function removeUnused(view: GraphView): void {
  const ix = view.index;
  const live = new Set(view.graph.output.map((o) => o.name ?? ''));
  const needed = new Set<NodeProto>();
  const stack = [...live];
  while (stack.length) {
    const p = ix.producer.get(stack.pop()!);
    if (!p || needed.has(p)) continue;
    needed.add(p);
    for (const i of p.input) if (i) stack.push(i);
  }
  view.replace(new Map(view.graph.node.filter((n) => !needed.has(n)).map((n) => [n, []])));
}

export function normalize(model: ModelProto): GraphView {
  const view = new GraphView(model);
  for (const pass of PASSES) pass(view);
  removeUnused(view);
  return view;
}

export { GraphView } from './view.js';
export type { WeightSource, ConstantSource, DimensionSite, MaskReading } from './view.js';

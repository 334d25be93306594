/**
 * onnxruntime's EmbedLayerNormalization (com.microsoft): the embedding lookups, their sum and the
 * LayerNorm in one node (inputs: ids, segment ids, word, position and segment tables, gamma, beta,
 * mask, position ids). Presented as the lookups the recogniser reads — Gathers of the word and segment
 * tables, and of the position table by the position ids, or without them the table's first rows
 * (a Slice to the sequence length, as onnxruntime reads it) — their sum and a LayerNormalization with
 * the node's epsilon (default 1e-12). Its mask_index output, the number of ones in each mask row, is a
 * ReduceSum; its embedding-sum output names the sum.
 */
import { attrFloat, makeAttrFloat, makeAttrInt, makeAttrInts, makeNode, type GraphIndex } from '../../onnx/graph.js';
import { makeInt64Tensor } from '../../onnx/tensor.js';
import { DataType, type NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

export const EMBED_LAYER_NORM_EPSILON = 1e-12;

/** The graph input behind `t` through Casts, or `t` itself. */
function sourceOf(ix: GraphIndex, t: string): string {
  let s = t;
  for (let i = 0; i < 8 && !ix.inputs.has(s); i++) {
    const p = ix.producer.get(s);
    if (!p || p.opType !== 'Cast') return t;
    s = p.input[0];
  }
  return ix.inputs.has(s) ? s : t;
}

export function presentEmbedLayerNorms(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'EmbedLayerNormalization' || n.domain !== 'com.microsoft') continue;
    const [ids, segments, word, position, segment, gamma, beta, mask, positionIds] = n.input;
    const out = n.output[0];
    const nodes: NodeProto[] = [];
    const t = (base: string) => view.fresh(`${out}_${base}`);
    let sum = t('word');
    nodes.push(makeNode('Gather', [word, ids], [sum], '', [makeAttrInt('axis', 0)]));
    if (segments && segment) {
      const looked = t('segment');
      const s = t('sum');
      nodes.push(makeNode('Gather', [segment, segments], [looked], '', [makeAttrInt('axis', 0)]), makeNode('Add', [sum, looked], [s], ''));
      sum = s;
    }
    const positions = t('position');
    if (positionIds) {
      nodes.push(makeNode('Gather', [position, positionIds], [positions], '', [makeAttrInt('axis', 0)]));
    } else {
      // rows 0 … S-1 of the position table
      const length = t('length');
      const zero = view.fresh('zero');
      view.addInitializer(makeInt64Tensor(zero, [1], [0]));
      nodes.push(
        makeNode('Shape', [sourceOf(ix, ids)], [length], '', [makeAttrInt('start', 1), makeAttrInt('end', 2)]),
        makeNode('Slice', [position, zero, length, zero], [positions], ''),
      );
    }
    const total = n.output[2] && (ix.consumersOf(n.output[2]).length || ix.outputs.has(n.output[2])) ? n.output[2] : t('total');
    nodes.push(makeNode('Add', [sum, positions], [total], ''));
    nodes.push(makeNode('LayerNormalization', beta ? [total, gamma, beta] : [total, gamma], [out], '', [makeAttrInt('axis', -1), makeAttrFloat('epsilon', attrFloat(n, 'epsilon', EMBED_LAYER_NORM_EPSILON))]));
    if (n.output[1] && mask && (ix.consumersOf(n.output[1]).length || ix.outputs.has(n.output[1]))) {
      const asInt = t('mask_int');
      nodes.push(
        makeNode('Cast', [mask], [asInt], '', [makeAttrInt('to', DataType.INT32)]),
        makeNode('ReduceSum', [asInt], [n.output[1]], '', [makeAttrInts('axes', [1]), makeAttrInt('keepdims', 0)]),
      );
    }
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

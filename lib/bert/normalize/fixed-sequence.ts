/**
 * A fixed sequence length in the declared inputs ([batch, 7] in keras2onnx's export): the exporter
 * folded the length into constants, so the position ids are Range(start, start + 7). onnxruntime runs
 * such a model only at that length, where the constant is the length; the Range is presented as
 * Range(start, start + sequence length), which the recogniser reads as positions. (The engine, like
 * onnxruntime, then accepts that length only: the recogniser records it from the declared inputs.)
 */
import { makeAttrInt, makeNode } from '../../onnx/graph.js';
import { makeInt64Tensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import type { GraphView } from './view.js';

/** The sequence length every [batch, seq] input declares, when they all declare the same number. */
export function declaredSequenceLength(model: ModelProto): { input: string; length: number } | undefined {
  const initializers = new Set(model.graph!.initializer.map((t) => t.name));
  let found: { input: string; length: number } | undefined;
  for (const i of model.graph!.input) {
    if (initializers.has(i.name)) continue;
    const dims = i.type?.tensorType?.shape?.dim;
    if (!dims || dims.length !== 2) continue;
    const d = dims[1].dimValue === undefined ? NaN : Number(dims[1].dimValue);
    if (!Number.isInteger(d) || d < 1) return undefined;
    if (found && found.length !== d) return undefined;
    found ??= { input: i.name ?? '', length: d };
  }
  return found;
}

export function presentFixedSequence(view: GraphView): void {
  const fixed = declaredSequenceLength(view.model);
  if (!fixed) return;
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of view.graph.node) {
    if (n.opType !== 'Range' || (n.domain && n.domain !== 'ai.onnx')) continue;
    const start = ix.scalar(n.input[0]);
    const limit = ix.scalar(n.input[1]);
    if (start === undefined || limit !== start + fixed.length || ix.scalar(n.input[2]) !== 1) continue;
    const shape = view.fresh(`${n.output[0]}_length_vector`);
    const length = view.fresh(`${n.output[0]}_length`);
    const nodes = [
      makeNode('Shape', [fixed.input], [shape], '', [makeAttrInt('start', 1), makeAttrInt('end', 2)]),
      makeNode('Squeeze', [shape], [length], ''),
    ];
    let end = length;
    if (start !== 0) {
      const offset = view.fresh('start');
      view.addInitializer(makeInt64Tensor(offset, [], [start]));
      end = view.fresh(`${n.output[0]}_end`);
      nodes.push(makeNode('Add', [length, offset], [end], ''));
    }
    nodes.push(makeNode('Range', [n.input[0], end, n.input[2]], [...n.output], ''));
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

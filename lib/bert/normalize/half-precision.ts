/**
 * Half precision: a model whose weights are FLOAT16 (exported in fp16, or converted by onnxruntime's
 * float16 converter, with Casts back to float32 at the outputs and around ops kept in float32) is
 * presented in float32. Every float16 initializer and Constant becomes its exact float32 value (read
 * on first use); a Cast between float16 and float32 is an identity in float32, so its readers read its
 * input instead (a Cast that writes a graph output becomes an Identity); a Cast of integers to float16
 * casts to float32. The rewrite still slices and writes the file's float16 tensors.
 */
import { attrInt, makeAttrInt, makeNode } from '../../onnx/graph.js';
import { DataType, type NodeProto } from '../../onnx/types.js';
import { BortError, quoteName } from '../../errors.js';
import { elementTypes } from './element-types.js';
import { decodedHalfTensor, type GraphView } from './view.js';

const isFloat = (t: number) => t === DataType.FLOAT || t === DataType.FLOAT16;

/** Ops whose float inputs must all have one type (the arithmetic of a BERT graph). */
const SAME_TYPE_OPS = new Set(['MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'LayerNormalization', 'Concat']);
const typeName = (t: number) => (t === DataType.FLOAT16 ? 'float16' : 'float32');

/** A node that combines float32 with float16 is not a model onnxruntime runs: name it. */
function checkMixed(n: NodeProto, types: Map<string, number>, initializers: Set<string>): void {
  if (!SAME_TYPE_OPS.has(n.opType ?? '') || (n.domain && n.domain !== 'ai.onnx')) return;
  const inputs = n.input.filter((i) => i && isFloat(types.get(i) ?? 0));
  const kinds = new Set(inputs.map((i) => types.get(i)));
  if (kinds.size < 2) return;
  // name the odd one out: the input whose type the fewest inputs share (a weight among computed tensors first)
  const odd = [...inputs].sort((a, b) => inputs.filter((i) => types.get(i) === types.get(a)).length - inputs.filter((i) => types.get(i) === types.get(b)).length
    || Number(initializers.has(b)) - Number(initializers.has(a)))[0];
  const other = inputs.find((i) => types.get(i) !== types.get(odd))!;
  throw new BortError(`the ${initializers.has(odd) ? 'weight' : 'tensor'} ${quoteName(odd)} of ${n.opType} ${quoteName(n.name || n.output[0])} has data type ${types.get(odd)}, not ${typeName(types.get(other)!)} like its other input`,
    'a node cannot combine float32 and float16 tensors; the file is damaged or was converted only in part');
}

export function presentHalfPrecision(view: GraphView): void {
  const g = view.graph;
  const halves = g.initializer.filter((t) => t.dataType === DataType.FLOAT16);
  const halfConstants = g.node.filter((n) => n.opType === 'Constant' && n.attribute.some((a) => a.name === 'value' && a.t?.dataType === DataType.FLOAT16));
  if (!halves.length && !halfConstants.length) return;
  view.halfPrecision = true;
  const types = elementTypes(view.index);
  const initializers = new Set(g.initializer.map((t) => t.name ?? ''));
  for (const n of g.node) checkMixed(n, types, initializers);
  for (const t of halves) {
    view.replaceInitializer(decodedHalfTensor(t));
    view.weights.set(t.name ?? '', { tensor: t.name ?? '', dataType: DataType.FLOAT16 });
    view.halfConstants.add(t.name ?? '');
  }
  const replacements = new Map<NodeProto, NodeProto[]>();
  for (const n of halfConstants) {
    const value = n.attribute.find((a) => a.name === 'value')!.t!;
    replacements.set(n, [makeNode('Constant', [], [...n.output], '', [{ ...n.attribute.find((a) => a.name === 'value')!, t: decodedHalfTensor(value) }])]);
    view.halfConstants.add(n.output[0]);
  }
  // Casts between float types: readers read the input; a graph output keeps its name through an Identity
  const alias = new Map<string, string>();
  const outputs = new Set(g.output.map((o) => o.name ?? ''));
  for (const n of g.node) {
    if (n.opType !== 'Cast' || (n.domain && n.domain !== 'ai.onnx')) continue;
    const to = attrInt(n, 'to', 0);
    if (!isFloat(to)) continue;
    const from = types.get(n.input[0]) ?? 0;
    if (isFloat(from)) {
      if (outputs.has(n.output[0])) replacements.set(n, [makeNode('Identity', [n.input[0]], [n.output[0]], '')]);
      else {
        alias.set(n.output[0], n.input[0]);
        replacements.set(n, []);
      }
    } else if (to === DataType.FLOAT16) {
      replacements.set(n, [view.copy(n, { attribute: [makeAttrInt('to', DataType.FLOAT)] })]);
    }
  }
  const resolve = (t: string) => {
    for (let i = 0; alias.has(t) && i < 64; i++) t = alias.get(t)!;
    return t;
  };
  for (const n of g.node) {
    if (replacements.has(n) && replacements.get(n)!.length === 0) continue;
    const current = replacements.get(n)?.[0] ?? n;
    if (!current.input.some((i) => alias.has(i))) continue;
    replacements.set(n, [view.copy(current, { input: current.input.map(resolve) })]);
  }
  view.replace(replacements);
}

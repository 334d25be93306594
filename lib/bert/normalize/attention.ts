/**
 * onnxruntime's Attention (com.microsoft): self-attention with Q, K and V held side by side in one
 * weight [H, 3W] and bias [3W], `num_heads` heads, scores scaled by `scale` (default 1/√head size) and
 * masked through `mask_index`. Presented as BERT self-attention as PyTorch exports it: three
 * projections whose weights are blocks of the fused tensors, head split and merge Reshapes whose head
 * count stands for `num_heads` (the head size and width follow from it), Q·Kᵀ scaled by a constant
 * that stands for `scale`, the additive mask (1 − mask) · mask_filter_value of the mask input, Softmax
 * and the context product. How the node reads its mask is recorded: a 2-D mask_index as it is (1
 * attends), a 1-D one as the number of attending keys (onnxruntime's optimizer writes it as the sum
 * of the mask). Forms the engine and the rewrite cannot follow (past state, causal masks, attention
 * biases, unequal Q, K, V widths, other mask forms) are left unread, with the reason.
 */
import { attrFloat, attrInt, makeAttrInt, makeAttrInts, makeNode, type GraphIndex } from '../../onnx/graph.js';
import { makeInt64Tensor, makeFloatTensor } from '../../onnx/tensor.js';
import { DataType, type NodeProto } from '../../onnx/types.js';
import { quoteName } from '../../errors.js';
import { axesOf } from '../symbolic.js';
import type { GraphView, MaskReading } from './view.js';

/** onnxruntime's default mask_filter_value. */
const MASK_FILTER_VALUE = -10000;

/** The graph input behind `t`, looking through Casts and Identities. */
function inputBehind(ix: GraphIndex, t: string): string | undefined {
  for (let i = 0; i < 8; i++) {
    if (ix.inputs.has(t)) return t;
    const p = ix.producer.get(t);
    if (!p || (p.opType !== 'Cast' && p.opType !== 'Identity') || (p.domain && p.domain !== 'ai.onnx')) return undefined;
    t = p.input[0];
  }
  return undefined;
}

/** What the mask_index tensor is: a [batch, seq] mask input read as it is, or its count of ones. */
function maskOf(ix: GraphIndex, t: string): { input: string; reading: MaskReading } | string {
  const raw = inputBehind(ix, t);
  if (raw) {
    const dims = ix.graph.input.find((i) => i.name === raw)?.type?.tensorType?.shape?.dim;
    return !dims || dims.length === 2 ? { input: raw, reading: 'raw' } : `the mask input ${quoteName(raw)} is not [batch, sequence]`;
  }
  const p = ix.producer.get(t);
  if (p && p.domain === 'com.microsoft' && p.opType === 'EmbedLayerNormalization' && p.output[1] === t && p.input[7]) {
    const input = inputBehind(ix, p.input[7]);
    if (input) return { input, reading: 'lengths' };
  }
  if (p && p.opType === 'ReduceSum' && (!p.domain || p.domain === 'ai.onnx') && attrInt(p, 'keepdims', 1) === 0) {
    const axes = p.input[1] ? ix.constantValues(p.input[1]) : axesOf(ix, p);
    const input = inputBehind(ix, p.input[0]);
    if (input && axes && axes.length === 1 && (axes[0] === 1 || axes[0] === -1)) return { input, reading: 'lengths' };
  }
  return `its mask_index ${quoteName(t)} is neither a mask input nor the number of ones in one`;
}

export function presentAttention(view: GraphView): void {
  const ix = view.index;
  const replacements = new Map<NodeProto, NodeProto[]>();
  const maskAdds = new Map<string, string>();
  for (const n of view.graph.node) {
    if (n.opType !== 'Attention' || n.domain !== 'com.microsoft') continue;
    const name = quoteName(n.name || n.output[0]);
    const unread = (why: string) => view.unread.push({ node: n, reason: `Attention ${name} ${why}` });
    const [x, weight, bias, maskIndex] = n.input;
    if (n.input.slice(4).some(Boolean)) { unread('reads past state or an attention bias'); continue; }
    if (n.output.slice(1).some((o) => o && (ix.consumersOf(o).length || ix.outputs.has(o)))) { unread('has its present state read'); continue; }
    if (attrInt(n, 'unidirectional', 0) !== 0) { unread('is causal (unidirectional = 1)'); continue; }
    if (n.attribute.some((a) => a.name === 'qkv_hidden_sizes')) { unread('has qkv_hidden_sizes'); continue; }
    if (attrInt(n, 'do_rotary', 0) !== 0) { unread('applies rotary embeddings'); continue; }
    const w = ix.weight(weight);
    const b = bias ? ix.weight(bias) : undefined;
    const heads = attrInt(n, 'num_heads', 0);
    if (!w || w.dims.length !== 2 || w.dims[1] % 3 !== 0) { unread(`has the weight ${quoteName(weight)}, not a float initializer [hidden, 3·width]`); continue; }
    const width = w.dims[1] / 3;
    if (!b || b.dims.length !== 1 || b.dims[0] !== 3 * width) { unread(`has the bias ${quoteName(bias ?? '')}, not a float initializer of ${3 * width} values`); continue; }
    if (!(heads > 0) || width % heads !== 0) { unread(`has num_heads ${heads}, which does not divide its width ${width}`); continue; }
    const headSize = width / heads;
    let mask: { input: string; reading: MaskReading } | undefined;
    if (maskIndex) {
      const m = maskOf(ix, maskIndex);
      if (typeof m === 'string') { unread(m); continue; }
      const before = view.maskReading.get(m.input);
      if (before && before !== m.reading) { unread(`reads the mask ${quoteName(m.input)} differently from another Attention`); continue; }
      mask = m;
    }
    const node = view.fileNode(n) ?? n;
    const out = n.output[0];
    const nodes: NodeProto[] = [];
    const t = (base: string) => view.fresh(`${out}_${base}`);
    const add = (op: string, input: string[], attrs: NodeProto['attribute'] = [], output = t(op)) => {
      nodes.push(makeNode(op, input, [output], '', attrs));
      return output;
    };
    // Q, K, V projections: blocks of the fused weight and bias
    const [q, k, v] = ['q', 'k', 'v'].map((part, i) => {
      const wp = view.fresh(`${weight}.${part}`);
      const bp = view.fresh(`${bias}.${part}`);
      view.addBlock(wp, weight, 1, i * width, width);
      view.addBlock(bp, bias, 0, i * width, width);
      return add('Add', [add('MatMul', [x, wp]), bp]);
    });
    // head split [0, 0, A, d] and merge [0, 0, W]: the head count stands for num_heads
    const split = view.fresh(`${out}_heads_shape`);
    view.addInitializer(makeInt64Tensor(split, [4], [0, 0, heads, headSize]));
    view.setConstantSource(split, 2, { kind: 'attribute', node, name: 'num_heads', type: 'int' });
    view.setConstantSource(split, 3, { kind: 'derived' });
    const merge = view.fresh(`${out}_merge_shape`);
    view.addInitializer(makeInt64Tensor(merge, [3], [0, 0, width]));
    view.setConstantSource(merge, 2, { kind: 'derived' });
    const perm = (p: number[]) => [makeAttrInts('perm', p)];
    const qh = add('Transpose', [add('Reshape', [q, split])], perm([0, 2, 1, 3]));
    const kh = add('Transpose', [add('Reshape', [k, split])], perm([0, 2, 3, 1]));
    const vh = add('Transpose', [add('Reshape', [v, split])], perm([0, 2, 1, 3]));
    // scores · scale (+ mask)
    const hasScale = n.attribute.some((a) => a.name === 'scale') && attrFloat(n, 'scale', 0) !== 0;
    const scaleValue = hasScale ? attrFloat(n, 'scale', 0) : Math.fround(1 / Math.fround(Math.sqrt(headSize)));
    const scale = view.fresh(`${out}_scale`);
    view.addInitializer(makeFloatTensor(scale, [], Float32Array.of(scaleValue)));
    view.setConstantSource(scale, 0, { kind: 'attribute', node, name: 'scale', type: 'float', impliedDefault: !hasScale });
    if (view.halfPrecision) view.halfConstants.add(scale);
    let scores = add('Mul', [add('MatMul', [qh, kh]), scale]);
    if (mask) {
      const value = attrFloat(n, 'mask_filter_value', MASK_FILTER_VALUE);
      const key = `${mask.input}\u0000${mask.reading}\u0000${value}`;
      let additive = maskAdds.get(key);
      if (!additive) {
        additive = view.fresh(`${mask.input}_additive`);
        const one = view.fresh('one');
        const fill = view.fresh('mask_filter_value');
        view.addInitializer(makeFloatTensor(one, [], Float32Array.of(1)));
        view.addInitializer(makeFloatTensor(fill, [], Float32Array.of(value)));
        const u1 = view.fresh(`${mask.input}_unsqueezed`);
        const u2 = view.fresh(`${mask.input}_unsqueezed`);
        const f = view.fresh(`${mask.input}_float`);
        const inverted = view.fresh(`${mask.input}_inverted`);
        nodes.push(
          makeNode('Unsqueeze', [mask.input], [u1], '', [makeAttrInts('axes', [1])]),
          makeNode('Unsqueeze', [u1], [u2], '', [makeAttrInts('axes', [2])]),
          makeNode('Cast', [u2], [f], '', [makeAttrInt('to', DataType.FLOAT)]),
          makeNode('Sub', [one, f], [inverted], ''),
          makeNode('Mul', [inverted, fill], [additive], ''),
        );
        maskAdds.set(key, additive);
        view.maskReading.set(mask.input, mask.reading);
      }
      scores = add('Add', [scores, additive]);
    }
    const probs = add('Softmax', [scores], [makeAttrInt('axis', -1)]);
    const context = add('Transpose', [add('MatMul', [probs, vh])], perm([0, 2, 1, 3]));
    add('Reshape', [context, merge], [], out);
    replacements.set(n, nodes);
  }
  view.replace(replacements);
}

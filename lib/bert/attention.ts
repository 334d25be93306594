/**
 * Self-attention found by data flow, not by op sequence: from the output projection back through the
 * head merge to the context MatMul, from there to the Softmax and the scores MatMul, and from its two
 * operands back to the Q and K projections (the context's other operand leads to V). Along those paths
 * we collect what the rewrite must patch: the Reshape constants that carry the head count, head size
 * and attention width, the scalar constants that scale the scores, and the additive mask.
 */
import { attrInt, attrInts, type GraphIndex } from '../onnx/graph.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import { inferenceDropout } from './evaluate.js';
import { recognizeMask } from './mask.js';
import { recognizeSelectMask } from './mask-select.js';
import { ShapeEvaluator, formOf, sameForm, type Form } from './symbolic.js';
import type { Attention, AttentionMask, Linear, ScaleSite, ShapeSite } from './model.js';

/** Ops an attention path may pass through between the projections and the MatMuls. */
const PATH_OPS = new Set(['Reshape', 'Transpose', 'Identity', 'Cast', 'Dropout', 'Mul', 'Div', 'Add', 'Where', 'Squeeze', 'Unsqueeze']);
const MAX_PATH = 24;

/**
 * Walks back from `tensor` through PATH_OPS until `isTarget` holds; returns the nodes passed (nearest
 * first) or undefined. Binary ops are tried on each dynamic input; tensors that lead nowhere are
 * remembered, so a graph of many branches costs one visit per tensor.
 */
function walkBack(ix: GraphIndex, tensor: string, isTarget: (t: string) => boolean, depth = 0, deadEnds = new Set<string>()): NodeProto[] | undefined {
  if (isTarget(tensor)) return [];
  if (depth > MAX_PATH || deadEnds.has(tensor)) return undefined;
  const p = ix.producer.get(tensor);
  if (p && PATH_OPS.has(p.opType ?? '') && (!p.domain || p.domain === 'ai.onnx')) {
    const candidates = p.opType === 'Reshape' || p.opType === 'Squeeze' || p.opType === 'Unsqueeze' ? [p.input[0]]
      : p.input.filter((i) => i && !ix.isConstant(i));
    for (const c of candidates) {
      const rest = walkBack(ix, c, isTarget, depth + 1, deadEnds);
      if (rest) return [p, ...rest];
    }
  }
  deadEnds.add(tensor);
  return undefined;
}

/** The tensor a walkBack path ends on: the input of its last node that satisfies `isTarget` (or `start`). */
function pathEnd(path: NodeProto[], start: string, isTarget: (t: string) => boolean): string {
  return path.length ? path[path.length - 1].input.find(isTarget) ?? start : start;
}

function producerOp(ix: GraphIndex, t: string, op: string): boolean {
  return ix.producer.get(t)?.opType === op;
}

/** Dynamic MatMul (both operands computed): the scores and context products. */
function isActivationMatMul(ix: GraphIndex, t: string): boolean {
  const p = ix.producer.get(t);
  return !!p && p.opType === 'MatMul' && !ix.isConstant(p.input[1]) && !ix.isConstant(p.input[0]);
}

/** The tensor a Reshape's shape is computed as, through Casts between integer types (TensorFlow exporters build shapes in int32). */
function shapeSource(ix: GraphIndex, shape: string): string {
  for (let i = 0; i < 4 && !ix.constant(shape); i++) {
    const p = ix.producer.get(shape);
    if (!p || !(p.opType === 'Identity' || (p.opType === 'Cast' && INTEGER_TYPES.has(attrInt(p, 'to', 0)))) || (p.domain && p.domain !== 'ai.onnx')) break;
    shape = p.input[0];
  }
  return shape;
}

const INTEGER_TYPES = new Set<number>([DataType.INT64, DataType.INT32]);

/** Element positions, counted from the end, of the constants that make up a Reshape's shape. */
function shapeSites(ix: GraphIndex, reshape: NodeProto, roles: ShapeSite['role'][]): ShapeSite[] {
  const shape = shapeSource(ix, reshape.input[1]);
  const sites: ShapeSite[] = [];
  const want = (fromEnd: number) => roles[roles.length - 1 - fromEnd];
  const direct = ix.constantValues(shape);
  if (direct) {
    const r = direct.length;
    const reader = shape === reshape.input[1] ? { node: reshape, inputIndex: 1 } : readerOf(ix, reshape.input[1], shape);
    if (!reader) return sites;
    for (let k = 0; k < roles.length && k < r; k++) {
      const role = want(k);
      const value = direct[r - 1 - k];
      if (value > 0) sites.push({ constant: shape, element: r - 1 - k, ...reader, role, value });
    }
    return sites;
  }
  const concat = ix.producer.get(shape);
  if (!concat || concat.opType !== 'Concat') return sites;
  let fromEnd = 0;
  for (let i = concat.input.length - 1; i >= 0 && fromEnd < roles.length; i--) {
    const name = concat.input[i];
    const vals = ix.constantValues(name);
    if (vals) {
      for (let e = vals.length - 1; e >= 0 && fromEnd < roles.length; e--, fromEnd++) {
        if (vals[e] > 0) sites.push({ constant: name, element: e, node: concat, inputIndex: i, role: want(fromEnd), value: vals[e] });
      }
      continue;
    }
    const u = ix.producer.get(name);
    if (u && u.opType === 'Unsqueeze') fromEnd += 1;
    else break;
  }
  return sites;
}

function scaleSitesOn(ix: GraphIndex, nodes: NodeProto[]): ScaleSite[] {
  const out: ScaleSite[] = [];
  for (const n of nodes) {
    if (n.opType !== 'Mul' && n.opType !== 'Div') continue;
    for (let i = 0; i < 2; i++) {
      const v = ix.scalar(n.input[i]);
      if (v === undefined) continue;
      out.push({ node: n, inputIndex: i, op: n.opType === 'Mul' ? 'mul' : 'div', value: v });
    }
  }
  return out;
}

type Labels = string[];

/** The node (Cast or Identity on the way from `shape` to the Reshape) that reads `source`, with the input index. */
function readerOf(ix: GraphIndex, shape: string, source: string): { node: NodeProto; inputIndex: number } | undefined {
  for (let t = shape, i = 0; i < 4; i++) {
    const p = ix.producer.get(t);
    if (!p) return undefined;
    if (p.input[0] === source) return { node: p, inputIndex: 0 };
    t = p.input[0];
  }
  return undefined;
}

/** The number of elements of a Reshape's target shape (a constant, or a Concat of one-element pieces). */
function targetRank(ix: GraphIndex, reshape: NodeProto): number | undefined {
  const shape = shapeSource(ix, reshape.input[1]);
  const direct = ix.constant(shape);
  if (direct) return INTEGER_TYPES.has(direct.dataType ?? 0) ? ix.constantValues(shape)!.length : undefined;
  const concat = ix.producer.get(shape);
  if (!concat || concat.opType !== 'Concat') return undefined;
  let rank = 0;
  for (const i of concat.input) {
    const c = ix.constant(i);
    if (c) {
      if (!INTEGER_TYPES.has(c.dataType ?? 0)) return undefined;
      rank += ix.constantValues(i)!.length;
    } else {
      rank += 1; // a computed dimension (Unsqueeze of a Gather of a Shape)
    }
  }
  return rank;
}

/** What followAxes knows: the axes of tensors met so far, and the size of each axis name. */
interface AxisContext {
  ix: GraphIndex;
  labelsOf: Map<string, Labels>;
  size: Record<string, Form>;
  seqInputs: Set<string>;
}

function showForm(f: Form): string {
  const terms = [f.b ? `${f.b === 1 ? '' : f.b}batch` : '', f.s ? `${f.s === 1 ? '' : f.s}seq` : '', f.c || (!f.b && !f.s) ? `${f.c}` : ''];
  return terms.filter(Boolean).join('+');
}

/**
 * The axes a Reshape produces from `labels`: the head split [B, X, W] → [B, X, A, d] or the head merge
 * [B, X, A, d] → [B, X, W], checked against its target shape evaluated symbolically (0 copies an input
 * axis, one -1 takes the rest).
 */
function reshapeAxes(ctx: AxisContext, n: NodeProto, labels: Labels, name: string): Labels | string {
  const { ix } = ctx;
  if (targetRank(ix, n) === undefined) return `Reshape ${name} has a shape that is not int64 values or a Concat of them`;
  const key = labels.join(',');
  const out = key === 'B,S,W' || key === 'B,K,W' ? [labels[0], labels[1], 'A', 'd']
    : key === 'B,S,A,d' || key === 'B,K,A,d' ? [labels[0], labels[1], 'W'] : undefined;
  if (!out) return `Reshape ${name} reshapes [${labels.join(', ')}]`;
  const shapeOf = (t: string) => ctx.labelsOf.get(t)?.map((l) => ctx.size[l]);
  const target = new ShapeEvaluator(ix, ctx.seqInputs, 1e9, shapeOf).vector(n.input[1]);
  if (!target) return `Reshape ${name} has a target shape computed in a way bort-compress cannot follow`;
  const want = out.map((l) => ctx.size[l]);
  const copyZero = attrInt(n, 'allowzero', 0) === 0;
  let inferred = 0;
  const shown = target.map(showForm).join(', ');
  if (target.length !== want.length) return `Reshape ${name} reshapes [${labels.join(', ')}] to [${shown}]`;
  for (let i = 0; i < target.length; i++) {
    let f = target[i];
    if (copyZero && sameForm(f, formOf(0))) {
      if (i >= labels.length) return `Reshape ${name} copies axis ${i} of a tensor of ${labels.length} axes`;
      f = ctx.size[labels[i]];
    }
    if (sameForm(f, formOf(-1))) inferred++;
    else if (!sameForm(f, want[i])) return `Reshape ${name} reshapes [${labels.join(', ')}] to [${shown}], not [${out.join(', ')}]`;
  }
  if (inferred > 1) return `Reshape ${name} has ${inferred} axes of size -1`;
  return out;
}

/**
 * Follows the axes of a tensor through a path (nodes in data-flow order): Transposes permute them,
 * the head split turns [B, X, W] into [B, X, A, d], the head merge turns [B, X, A, d] into [B, X, W],
 * and elementwise ops keep them. Records the axes of every tensor passed; returns the axes at the
 * end, or a sentence saying what breaks.
 */
function followAxes(ctx: AxisContext, from: string, nodes: NodeProto[], start: Labels): Labels | string {
  const { ix } = ctx;
  let labels = start;
  ctx.labelsOf.set(from, labels);
  for (const n of nodes) {
    const name = quoteName(n.name || n.output[0] || n.opType);
    switch (n.opType) {
      case 'Transpose': {
        const perm = attrInts(n, 'perm') ?? labels.map((_, i) => labels.length - 1 - i);
        if (perm.length !== labels.length || [...perm].sort().some((p, i) => p !== i)) return `Transpose ${name} has the permutation [${perm.join(', ')}]`;
        labels = perm.map((p) => labels[p]);
        break;
      }
      case 'Reshape': {
        const out = reshapeAxes(ctx, n, labels, name);
        if (typeof out === 'string') return out;
        labels = out;
        break;
      }
      case 'Identity': case 'Mul': case 'Div': case 'Add': case 'Where':
        break;
      case 'Dropout':
        if (!inferenceDropout(ix, n)) return `Dropout ${name} may be in training mode`;
        break;
      case 'Cast':
        if (attrInt(n, 'to', 0) !== DataType.FLOAT) return `Cast ${name} turns the values into type ${attrInt(n, 'to', 0)}`;
        break;
      default:
        return `${quoteName(n.opType)} ${name} is on the attention path`;
    }
    ctx.labelsOf.set(n.output[0], labels);
  }
  return labels;
}

/**
 * Recognises the attention block whose output projection is `o`, given the projections `candidates`
 * that read the block's input. `opset` is the model's ai.onnx opset (Softmax's default axis depends on
 * it). Throws a BortError naming what is missing or what computes something else.
 */
export function recognizeAttention(ix: GraphIndex, o: Linear, candidates: Linear[], layer: number, model: { opset: number; seqInputs: Set<string> }): Attention {
  const { opset } = model;
  const where = `layer ${layer} attention`;
  const missing = (what: string) => new BortError(`${where}: ${what} not found`, 'this graph does not look like a BERT encoder bort-compress can read; please report the exporter that wrote it');
  const differs = (what: string) => new BortError(`${where}: ${what}`, 'bort-compress reads BERT self-attention as exported: softmax(Q·Kᵀ · scale + mask) · V over the key axis, split into heads and merged back');
  const byOutput = new Map(candidates.map((l) => [l.output, l]));
  const isProjection = (t: string) => byOutput.has(t);

  // output projection ← head merge ← context MatMul
  const isMatMul = (t: string) => isActivationMatMul(ix, t);
  const isSoftmax = (t: string) => producerOp(ix, t, 'Softmax');
  const mergePath = walkBack(ix, o.input, isMatMul);
  if (!mergePath) throw missing('the context MatMul (softmax · V) before the output projection');
  const ctxTensor = pathEnd(mergePath, o.input, isMatMul);
  const ctx = ix.producer.get(ctxTensor)!;
  // context = probs · V
  const probsPath = walkBack(ix, ctx.input[0], isSoftmax);
  if (!probsPath) throw missing('the Softmax feeding the context MatMul');
  const probsTensor = pathEnd(probsPath, ctx.input[0], isSoftmax);
  const softmax = ix.producer.get(probsTensor)!;
  const vPath = walkBack(ix, ctx.input[1], isProjection);
  if (!vPath) throw missing('the V projection');
  const vOut = pathEnd(vPath, ctx.input[1], isProjection);
  // softmax ← (mask add, scale) ← scores MatMul
  const scoresPath = walkBack(ix, softmax.input[0], isMatMul);
  if (!scoresPath) throw missing('the Q·Kᵀ MatMul feeding the Softmax');
  const scoresTensor = pathEnd(scoresPath, softmax.input[0], isMatMul);
  const scores = ix.producer.get(scoresTensor)!;
  const qPath = walkBack(ix, scores.input[0], isProjection);
  const kPath = walkBack(ix, scores.input[1], isProjection);
  if (!qPath) throw missing('the Q projection');
  if (!kPath) throw missing('the K projection');
  const q = byOutput.get(pathEnd(qPath, scores.input[0], isProjection))!;
  const k = byOutput.get(pathEnd(kPath, scores.input[1], isProjection))!;
  const v = byOutput.get(vOut)!;
  if (q === k || q === v || k === v) throw missing('three distinct Q, K and V projections');

  // head split / merge constants
  const shapes: ShapeSite[] = [];
  for (const path of [qPath, kPath, vPath]) {
    for (const n of path) if (n.opType === 'Reshape') shapes.push(...shapeSites(ix, n, ['heads', 'headSize']));
  }
  for (const n of mergePath) if (n.opType === 'Reshape') shapes.push(...shapeSites(ix, n, ['width']));

  const width = q.outDim;
  if (k.outDim !== width || v.outDim !== width || o.inDim !== width) throw missing('Q, K, V and output projections of matching widths');
  const headCounts = new Set(shapes.filter((s) => s.role === 'heads').map((s) => s.value));
  const headSizes = new Set(shapes.filter((s) => s.role === 'headSize').map((s) => s.value));
  if (headCounts.size > 1 || headSizes.size > 1) throw missing('one consistent head count and head size');
  let heads = headCounts.size ? [...headCounts][0] : 0;
  let headSize = headSizes.size ? [...headSizes][0] : 0;
  if (!heads && headSize) heads = width / headSize;
  if (!headSize && heads) headSize = width / heads;
  if (!heads || !Number.isInteger(heads) || heads * headSize !== width) throw missing('the head count (a Reshape of Q, K, V into heads with a constant head count or head size)');
  for (const s of shapes) if (s.role === 'width' && s.value !== width) throw missing(`a head merge to width ${width}`);

  // the axes: Q [B,A,S,d] · Kᵀ [B,A,d,K] → scores [B,A,S,K]; probs · V [B,A,K,d] → [B,A,S,d] → [B,S,W]
  const forward = (path: NodeProto[]) => [...path].reverse();
  const size: Record<string, Form> = {
    B: formOf(0, 0, 1), S: formOf(0, 1, 0), K: formOf(0, 1, 0), A: formOf(heads), d: formOf(headSize), W: formOf(width), H: formOf(q.inDim),
  };
  const axes: AxisContext = { ix, labelsOf: new Map([[q.input, ['B', 'S', 'H']]]), size, seqInputs: model.seqInputs };
  const expectAxes = (what: string, start: string, path: NodeProto[], from: Labels, want: string) => {
    const got = followAxes(axes, start, forward(path), from);
    if (typeof got === 'string') throw differs(`${what}: ${got}`);
    if (got.join(',') !== want) throw differs(`${what} arrives with the axes [${got.join(', ')}], not [${want.split(',').join(', ')}]`);
  };
  expectAxes('Q', q.output, qPath, ['B', 'S', 'W'], 'B,A,S,d');
  expectAxes('K', k.output, kPath, ['B', 'K', 'W'], 'B,A,d,K');
  expectAxes('V', v.output, vPath, ['B', 'K', 'W'], 'B,A,K,d');
  expectAxes('the scores', scoresTensor, scoresPath, ['B', 'A', 'S', 'K'], 'B,A,S,K');
  expectAxes('the probabilities', probsTensor, probsPath, ['B', 'A', 'S', 'K'], 'B,A,S,K');
  expectAxes('the context', ctxTensor, mergePath, ['B', 'A', 'S', 'd'], 'B,S,W');

  // Softmax over the key axis (axis 3 of 4; before opset 13 the default axis 1 would flatten heads in)
  if (softmax.domain && softmax.domain !== 'ai.onnx') throw differs(`the Softmax is ${quoteName(softmax.domain)}'s`);
  const axis = attrInt(softmax, 'axis', opset >= 13 ? -1 : 1);
  if (axis !== -1 && axis !== 3) throw differs(`the Softmax normalises over axis ${axis}, not the key axis (3)`);

  // what the paths may compute: scalar scales on Q, K and the scores; one mask Add on the scores
  const scaleSites = scaleSitesOn(ix, [...qPath, ...kPath, ...scoresPath]);
  const onlyOn = (path: NodeProto[], what: string, allowScale: boolean) => {
    for (const n of path) {
      const name = quoteName(n.name || n.output[0] || n.opType);
      if (n.opType === 'Mul' || n.opType === 'Div') {
        if (!allowScale) throw differs(`${n.opType} ${name} scales ${what}`);
        const c = n.input.filter((i) => ix.isConstant(i));
        if (c.length !== 1 || ix.scalar(c[0]) === undefined) throw differs(`${n.opType} ${name} on ${what} is not a scale by one constant`);
        if (n.opType === 'Div' && n.input[0] === c[0]) throw differs(`Div ${name} divides a constant by ${what}`);
      }
      if (n.opType === 'Add' && path !== scoresPath) throw differs(`Add ${name} adds to ${what}`);
      if (n.opType === 'Where' && path !== scoresPath) throw differs(`Where ${name} selects in ${what}`);
    }
  };
  onlyOn(qPath, 'Q', true);
  onlyOn(kPath, 'K', true);
  onlyOn(vPath, 'V', false);
  onlyOn(scoresPath, 'the scores', true);
  onlyOn(probsPath, 'the attention probabilities', false);
  onlyOn(mergePath, 'the attention context', false);
  let scoreScale = 1;
  for (const s of scaleSites) scoreScale = s.op === 'mul' ? scoreScale * s.value : scoreScale / s.value;
  if (!Number.isFinite(scoreScale)) {
    const zero = scaleSites.find((s) => s.op === 'div' && s.value === 0);
    throw differs(zero ? `the scores are divided by 0 (${quoteName(zero.node.name || zero.node.output[0])})` : `the scores are scaled by ${scoreScale}`);
  }

  // the mask: an Add of a computed tensor to the scores (after every scale), or a Where that puts a
  // fill value in place of the scores of padding keys (lib/bert/mask-select.ts)
  let maskTensor: string | undefined;
  let mask: AttentionMask | undefined;
  const scoresForward = forward(scoresPath);
  const shapeOf = (t: string) => axes.labelsOf.get(t)?.map((l) => size[l]);
  scoresForward.forEach((n, i) => {
    const name = quoteName(n.name || n.output[0] || n.opType);
    const on = i === 0 ? scoresTensor : scoresForward[i - 1].output[0];
    const scaledLater = scoresForward.slice(i + 1).some((later) => later.opType === 'Mul' || later.opType === 'Div');
    if (n.opType === 'Where') {
      if (mask) throw differs(`the scores get two masks (Where ${name})`);
      mask = recognizeSelectMask(ix, n, on, shapeOf, model.seqInputs);
      if (scaledLater) mask = { ...mask, value: undefined, problem: 'the mask is applied before the scores are scaled' };
      return;
    }
    if (n.opType !== 'Add') return;
    const dyn = n.input.filter((x) => x && !ix.isConstant(x));
    if (dyn.length !== 2) throw differs(`Add ${name} adds a constant to the scores`);
    if (mask) throw differs(`the scores get two masks (Add ${name})`);
    maskTensor = n.input[0] === on ? n.input[1] : n.input[0];
    mask = recognizeMask(ix, maskTensor);
    if (scaledLater) mask = { ...mask, value: undefined, problem: 'the mask is added before the scores are scaled' };
  });
  return { q, k, v, o, heads, headSize, scoreScale, scaleSites, shapeSites: shapes, softmax, maskTensor, mask };
}

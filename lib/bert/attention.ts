/**
 * Self-attention found by data flow, not by op sequence: from the output projection back through the
 * head merge to the context MatMul, from there to the Softmax and the scores MatMul, and from its two
 * operands back to the Q and K projections (the context's other operand leads to V). Along those paths
 * we collect what the rewrite must patch: the Reshape constants that carry the head count, head size
 * and attention width, the scalar constants that scale the scores, and the additive mask.
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import { BortError } from '../errors.js';
import type { Attention, Linear, ScaleSite, ShapeSite } from './model.js';

/** Ops an attention path may pass through between the projections and the MatMuls. */
const PATH_OPS = new Set(['Reshape', 'Transpose', 'Identity', 'Cast', 'Dropout', 'Mul', 'Div', 'Add', 'Where', 'Squeeze', 'Unsqueeze', 'Contiguous']);

/**
 * Walks back from `tensor` through PATH_OPS until `isTarget` holds; returns the nodes passed (nearest
 * first) or undefined. Binary ops are tried on each dynamic input.
 */
function walkBack(ix: GraphIndex, tensor: string, isTarget: (t: string) => boolean, depth = 0): NodeProto[] | undefined {
  if (isTarget(tensor)) return [];
  if (depth > 24) return undefined;
  const p = ix.producer.get(tensor);
  if (!p || !PATH_OPS.has(p.opType ?? '')) return undefined;
  const candidates = p.opType === 'Reshape' || p.opType === 'Squeeze' || p.opType === 'Unsqueeze' ? [p.input[0]]
    : p.input.filter((i) => i && !ix.isConstant(i));
  for (const c of candidates) {
    const rest = walkBack(ix, c, isTarget, depth + 1);
    if (rest) return [p, ...rest];
  }
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

/** Element positions, counted from the end, of the constants that make up a Reshape's shape. */
function shapeSites(ix: GraphIndex, reshape: NodeProto, roles: ShapeSite['role'][]): ShapeSite[] {
  const shape = reshape.input[1];
  const sites: ShapeSite[] = [];
  const want = (fromEnd: number) => roles[roles.length - 1 - fromEnd];
  const direct = ix.constantValues(shape);
  if (direct) {
    const r = direct.length;
    for (let k = 0; k < roles.length && k < r; k++) {
      const role = want(k);
      const value = direct[r - 1 - k];
      if (value > 0) sites.push({ constant: shape, element: r - 1 - k, node: reshape, inputIndex: 1, role, value });
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
      if (n.opType === 'Div' && i === 0) continue; // c / x is not a scale
      out.push({ node: n, inputIndex: i, op: n.opType === 'Mul' ? 'mul' : 'div', value: v });
    }
  }
  return out;
}

/**
 * Recognises the attention block whose output projection is `o`, given the projections `candidates`
 * that read the block's input. Throws a BortError naming what is missing.
 */
export function recognizeAttention(ix: GraphIndex, o: Linear, candidates: Linear[], layer: number): Attention {
  const where = `layer ${layer} attention`;
  const missing = (what: string) => new BortError(`${where}: ${what} not found`, 'this graph does not look like a BERT encoder bort-compress can read; please report the exporter that wrote it');
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

  const scaleSites = scaleSitesOn(ix, [...qPath, ...kPath, ...scoresPath]);
  let scoreScale = 1;
  for (const s of scaleSites) scoreScale = s.op === 'mul' ? scoreScale * s.value : scoreScale / s.value;
  let maskTensor: string | undefined;
  for (const n of scoresPath) {
    if (n.opType !== 'Add' && n.opType !== 'Where') continue;
    const dyn = n.input.filter((i) => i && !ix.isConstant(i));
    if (n.opType === 'Add' && dyn.length === 2) {
      maskTensor = dyn.find((i) => !walkBack(ix, i, (t) => t === scoresTensor));
    }
  }
  return { q, k, v, o, heads, headSize, scoreScale, scaleSites, shapeSites: shapes, softmax, maskTensor };
}

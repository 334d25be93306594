/**
 * The attention mask applied by selection (DistilBERT): `Where(cond, fill, scores)` (or
 * `Where(cond, scores, fill)`), where `cond` is computed from the [batch, seq] mask input by
 * `Equal(mask, 0)` / `Not` / Casts, laid out as [batch, 1, 1, seq] by Reshape or Unsqueeze and
 * broadcast over the scores by Expand, and `fill` is one constant (finfo.min, or -inf).
 *
 * Checked, not assumed: the condition is evaluated for mask values 0 and 1 and must pick `fill`
 * for 0 (padding) and the scores for 1; every Reshape and Expand target is evaluated symbolically
 * (lib/bert/symbolic.ts) and must keep the mask's batch and key axes where the scores have them.
 * Anything else is recorded as a problem (the engine then refuses the model).
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { quoteName } from '../errors.js';
import type { AttentionMask } from './model.js';
import { ShapeEvaluator, axesOf, formOf, sameForm, type Form } from './symbolic.js';

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

/** An axis of the condition: the mask's batch or key axis, or one of size 1. */
type Axis = 'batch' | 'key' | '1';

/**
 * `where`: the Where node on the scores path; `scores`: its input that carries the scores;
 * `shapeOf`: symbolic shapes of tensors the attention recogniser knows (the layer input, the scores
 * [batch, heads, seq, key]); `seqInputs`: the model's [batch, seq] inputs.
 */
export function recognizeSelectMask(ix: GraphIndex, where: NodeProto, scores: string, shapeOf: (t: string) => Form[] | undefined, seqInputs: Set<string>): AttentionMask {
  const tensor = where.output[0];
  const problem = (what: string, input?: string): AttentionMask => ({ tensor, kind: 'select', input, problem: what });
  const [cond, a, b] = where.input;
  if (cond === scores || (a !== scores && b !== scores)) return problem(`Where ${nodeName(where)} does not select between the scores and a fill value`);
  const fillName = a === scores ? b : a;
  const fill = ix.scalar(fillName);
  if (fill === undefined || ix.constant(fillName)!.dataType !== DataType.FLOAT) return problem(`Where ${nodeName(where)} fills the scores with ${quoteName(fillName)}, not one float32 constant`);
  // true in the condition picks Where's second input
  const fillWhenTrue = a !== scores;

  // walk back along the one dynamic input of each node to the graph input
  const chain: NodeProto[] = [];
  let t = cond;
  for (let step = 0; !ix.inputs.has(t); step++) {
    if (step > 16) return problem('the mask passes through too many nodes');
    const p = ix.producer.get(t);
    if (!p) return problem(`the mask condition ${quoteName(t)} is a constant, not computed from a graph input`);
    if (p.domain && p.domain !== 'ai.onnx') return problem(`the mask is computed by ${quoteName(p.opType)} from the domain ${quoteName(p.domain)}`);
    chain.push(p);
    // Reshape and Expand read a shape beside the values: follow the values
    const next = p.opType === 'Reshape' || p.opType === 'Expand' ? [p.input[0]] : p.input.filter((i) => i && !ix.isConstant(i));
    if (next.length !== 1) return problem(`${p.opType} ${nodeName(p)} combines the mask with another computed tensor`);
    t = next[0];
  }
  const input = t;
  const fail = (what: string) => problem(what, input);
  if (!seqInputs.has(input)) return fail(`the mask comes from ${quoteName(input)}, not a [batch, sequence] input`);

  // replay forwards: the values for mask 0 and 1, and the axes
  const sym = new ShapeEvaluator(ix, seqInputs, 1e9, shapeOf);
  const size: Record<Axis, Form> = { batch: formOf(0, 0, 1), key: formOf(0, 1, 0), '1': formOf(1) };
  let axes: Axis[] = ['batch', 'key'];
  let values = [0, 1]; // what the tensor holds where the mask is 0, and where it is 1
  for (const p of chain.reverse()) {
    const op = p.opType;
    const name = nodeName(p);
    if (op === 'Identity') continue;
    if (op === 'Cast') {
      const to = attrInt(p, 'to', 0);
      if (to === DataType.BOOL) values = values.map((v) => (v !== 0 ? 1 : 0));
      else if (to !== DataType.INT64 && to !== DataType.INT32 && to !== DataType.FLOAT) return fail(`Cast ${name} turns the mask into type ${to}`);
    } else if (op === 'Equal') {
      const c = ix.scalar(p.input.find((i) => ix.isConstant(i)) ?? '');
      if (c === undefined) return fail(`Equal ${name} does not compare the mask with one constant`);
      values = values.map((v) => (v === c ? 1 : 0));
    } else if (op === 'Not') {
      values = values.map((v) => (v ? 0 : 1));
    } else if (op === 'Unsqueeze') {
      const at = axesOf(ix, p);
      if (!at) return fail(`Unsqueeze ${name} has computed axes`);
      const rank = axes.length + at.length;
      const sorted = at.map((x) => (x < 0 ? x + rank : x)).sort((x, y) => x - y);
      if (sorted.some((x, i) => x < 0 || x >= rank || sorted[i - 1] === x)) return fail(`Unsqueeze ${name} has the axes [${at.join(', ')}]`);
      axes = [...axes];
      for (const x of sorted) axes.splice(x, 0, '1');
    } else if (op === 'Reshape') {
      // only a reshape that inserts axes of size 1 keeps the values where they were
      const target = sym.vector(p.input[1]);
      if (!target) return fail(`Reshape ${name} has a target shape computed in a way bort-compress cannot follow`);
      const kept = axes.filter((x) => x !== '1');
      const out: Axis[] = [];
      let inferred = 0;
      for (let i = 0; i < target.length; i++) {
        let f = target[i];
        if (attrInt(p, 'allowzero', 0) === 0 && sameForm(f, formOf(0)) && i < axes.length) f = size[axes[i]];
        if (sameForm(f, formOf(-1))) { inferred++; out.push(kept[out.filter((x) => x !== '1').length] ?? '1'); continue; }
        const axis = (Object.keys(size) as Axis[]).find((k) => sameForm(size[k], f));
        if (!axis) return fail(`Reshape ${name} reshapes the mask to a shape that is not [batch, 1, 1, sequence]`);
        out.push(axis);
      }
      if (inferred > 1 || out.filter((x) => x !== '1').join(',') !== kept.join(',')) return fail(`Reshape ${name} reshapes the mask to a shape that is not [batch, 1, 1, sequence]`);
      axes = out;
    } else if (op === 'Expand') {
      // broadcasting to the scores' shape keeps every element where the scores read it
      const target = sym.vector(p.input[1]);
      if (!target) return fail(`Expand ${name} has a target shape computed in a way bort-compress cannot follow`);
      const n = Math.max(target.length, axes.length);
      const out: Axis[] = [];
      for (let i = 0; i < n; i++) {
        const x = axes[axes.length - n + i] ?? '1';
        const f = target[target.length - n + i] ?? formOf(1);
        if (sameForm(f, formOf(1)) || sameForm(f, size[x])) { out.push(x); continue; }
        if (x !== '1') return fail(`Expand ${name} broadcasts the mask's ${x} axis to another size`);
        out.push('1'); // a broadcast axis (heads or queries): every element there equals the mask's
      }
      axes = out;
    } else {
      return fail(`the mask is computed by ${op} ${name}`);
    }
  }
  if (values.some((v) => v !== 0 && v !== 1)) return fail('the mask condition is not a true/false value');
  const fillFor = values.map((v) => (v === 1) === fillWhenTrue);
  if (!fillFor[0] || fillFor[1]) return fail(`Where ${nodeName(where)} does not put ${fill} in place of the scores of padding keys only (mask 0)`);
  // the scores are [batch, heads, seq, key]: the condition must have the batch first and the key last
  const shown = axes.join(', ');
  const aligned = axes.length <= 4 && axes.every((x, i) => {
    const at = 4 - axes.length + i;
    return x === '1' || (x === 'batch' && at === 0) || (x === 'key' && at === 3);
  });
  if (!aligned || !axes.includes('key') || (axes.length === 4 && !axes.includes('batch'))) return fail(`the mask is broadcast as [${shown}], not [batch, 1, 1, sequence]`);
  if (!axes.includes('batch')) return fail(`the mask is broadcast as [${shown}], without its batch axis`);
  return { tensor, kind: 'select', input, value: fill };
}

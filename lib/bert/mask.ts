/**
 * The additive attention mask (the Where form is in lib/bert/mask-select.ts), checked in full: `(1 - Cast(Unsqueeze(Unsqueeze(mask)))) · value`,
 * where `mask` is a [batch, seq] graph input unsqueezed to [batch, 1, 1, seq], the Sub takes it from
 * exactly 1, and the Mul scales by one constant. Casts to integer types may come before the Sub, to
 * float32 anywhere. Anything else is recorded as a problem (the engine then refuses the model).
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { quoteName } from '../errors.js';
import type { AttentionMask } from './model.js';
import { axesOf } from './symbolic.js';

function nodeName(n: NodeProto): string {
  return quoteName(n.name || n.output[0] || n.opType);
}

export function recognizeMask(ix: GraphIndex, tensor: string): AttentionMask {
  const problem = (what: string): AttentionMask => ({ tensor, kind: 'add', problem: what });
  // walk back along the one dynamic input of each node to the graph input
  const chain: NodeProto[] = [];
  let t = tensor;
  for (let step = 0; !ix.inputs.has(t); step++) {
    if (step > 16) return problem('the mask passes through too many nodes');
    const p = ix.producer.get(t);
    if (!p) return problem(`the mask ${quoteName(t)} is a constant, not computed from a graph input`);
    if (p.domain && p.domain !== 'ai.onnx') return problem(`the mask is computed by ${quoteName(p.opType)} from the domain ${quoteName(p.domain)}`);
    const dynamic = p.input.filter((i) => i && !ix.isConstant(i));
    if (dynamic.length !== 1) return problem(`${p.opType} ${nodeName(p)} combines the mask with another computed tensor`);
    chain.push(p);
    t = dynamic[0];
  }
  const input = t;
  const fail = (what: string): AttentionMask => ({ tensor, kind: 'add', input, problem: what });
  // replay forwards: the rank of the value and where the 1 - x and the · value are
  let labels = ['batch', 'seq'];
  let sub: NodeProto | undefined;
  let value: number | undefined;
  let isFloat = false;
  for (const p of chain.reverse()) {
    const op = p.opType;
    if (op === 'Identity') continue;
    if (op === 'Cast') {
      const to = attrInt(p, 'to', 0);
      if (to === DataType.FLOAT) isFloat = true;
      else if ((to === DataType.INT64 || to === DataType.INT32) && !isFloat && !sub) continue;
      else return fail(`Cast ${nodeName(p)} turns the mask into type ${to}`);
    } else if (op === 'Unsqueeze') {
      const axes = axesOf(ix, p);
      if (!axes) return fail(`Unsqueeze ${nodeName(p)} has computed axes`);
      const rank = labels.length + axes.length;
      const at = axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
      if (at.some((a, i) => a < 0 || a >= rank || at[i - 1] === a)) return fail(`Unsqueeze ${nodeName(p)} has the axes [${axes.join(', ')}]`);
      for (const a of at) labels.splice(a, 0, '1');
    } else if (op === 'Sub') {
      if (sub || value !== undefined) return fail(`Sub ${nodeName(p)} is not the one 1 - mask`);
      const one = ix.scalar(p.input[0]);
      if (one !== 1 || ix.isConstant(p.input[1])) return fail(`Sub ${nodeName(p)} does not compute 1 - mask`);
      sub = p;
    } else if (op === 'Mul') {
      if (!sub || value !== undefined) return fail(`Mul ${nodeName(p)} does not scale 1 - mask`);
      const c = p.input.find((i) => ix.isConstant(i))!;
      const v = ix.scalar(c);
      if (v === undefined) return fail(`Mul ${nodeName(p)} scales the mask by ${quoteName(c)}, not by one value`);
      value = v;
    } else {
      return fail(`the mask is computed by ${op} ${nodeName(p)}`);
    }
  }
  if (!sub || value === undefined) return fail('the mask is not (1 - mask) · value');
  if (!isFloat && ix.constant(sub.input[0])!.dataType !== DataType.FLOAT) return fail('the mask is not turned into float32');
  if (labels.join(',') !== 'batch,1,1,seq') return fail(`the mask is broadcast as [${labels.join(', ')}], not [batch, 1, 1, seq]`);
  return { tensor, kind: 'add', input, value };
}

/**
 * Checking an extraction plan against the model it is applied to, before anything changes: a plan
 * written by hand (or made for another model) must not slice with indices the weights lack, repeat a
 * channel, reorder layers or hidden channels, or set a score scale that is not a finite non-zero
 * number. Each failure is a RangeError naming the field.
 */
import type { BertModel } from '../bert/model.js';
import type { ExtractionPlan } from '../extract/plan.js';

function checkIndices(what: string, list: unknown, count: number, limit: number, ascending: boolean): void {
  if (!Array.isArray(list)) throw new RangeError(`plan.${what} must be an array of indices`);
  if (list.length !== count) throw new RangeError(`plan.${what} has ${list.length} entries where the target needs ${count}`);
  const seen = new Set<number>();
  list.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= limit) throw new RangeError(`plan.${what}[${i}] = ${v} is not an index in [0, ${limit})`);
    if (seen.has(v)) throw new RangeError(`plan.${what} keeps index ${v} twice`);
    if (ascending && i > 0 && v < list[i - 1]) throw new RangeError(`plan.${what} must be in ascending (source) order`);
    seen.add(v);
  });
}

export function checkPlan(m: BertModel, plan: ExtractionPlan): void {
  if (!plan || typeof plan !== 'object') throw new TypeError('applyPlan needs an ExtractionPlan object');
  const t = plan.target;
  if (!t || ![t.layers, t.heads, t.hidden, t.intermediate].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new RangeError('plan.target must hold positive integer layers, heads, hidden and intermediate');
  }
  if (!Number.isInteger(plan.headSize) || plan.headSize < 1) throw new RangeError(`plan.headSize = ${plan.headSize} is not a positive integer`);
  if (plan.sourceHeadSize !== undefined && plan.sourceHeadSize !== m.headSize) {
    throw new RangeError(`the plan was made for head size ${plan.sourceHeadSize}, this model has ${m.headSize}`);
  }
  const src = plan.source;
  if (src && (src.layers !== m.arch.layers || src.heads !== m.arch.heads || src.hidden !== m.arch.hidden || src.intermediate !== m.arch.intermediate)) {
    throw new RangeError(`the plan was made for ${src.layers},${src.heads},${src.hidden},${src.intermediate}, this model is ${m.arch.layers},${m.arch.heads},${m.arch.hidden},${m.arch.intermediate}`);
  }
  checkIndices('hidden', plan.hidden, t.hidden, m.arch.hidden, true);
  if (!Array.isArray(plan.layers)) throw new RangeError('plan.layers must be an array');
  checkIndices('layers[].source', plan.layers.map((l) => l?.source), t.layers, m.arch.layers, true);
  plan.layers.forEach((l, i) => {
    checkIndices(`layers[${i}].attention`, l.attention, t.heads * plan.headSize, m.attentionWidth, false);
    checkIndices(`layers[${i}].neurons`, l.neurons, t.intermediate, m.arch.intermediate, false);
    if (typeof l.scoreScale !== 'number' || !Number.isFinite(l.scoreScale) || l.scoreScale === 0) {
      throw new RangeError(`plan.layers[${i}].scoreScale = ${l.scoreScale} is not a finite non-zero number`);
    }
  });
}

/**
 * The precision of each linear weight of a recognised model, as `inspect` reports it.
 */
import type { BertModel, Linear } from '../bert/model.js';
import { DataType } from '../onnx/types.js';
import { quantizableLinears } from './quantize.js';

export type WeightPrecision = 'float32' | 'float16' | 'int8 per-channel' | 'int8 per-tensor';

export interface WeightPrecisionEntry {
  role: string;
  weight: string;
  precision: WeightPrecision;
}

/** How the file stores linear `l`'s weight (a float16 weight is read as float32 in the model's view). */
export function precisionOf(m: BertModel, l: Linear): WeightPrecision {
  if (l.quant) return l.quant.perChannel ? 'int8 per-channel' : 'int8 per-tensor';
  return m.view.weightSource(l.weight).dataType === DataType.FLOAT16 ? 'float16' : 'float32';
}

/** Every linear weight (layers, then heads) with its precision. */
export function weightPrecisions(m: BertModel): WeightPrecisionEntry[] {
  return quantizableLinears(m, true).map(({ role, linear }) => ({ role, weight: linear.weight, precision: precisionOf(m, linear) }));
}

/** One line: how many linear weights have each precision, e.g. "int8 per-channel 24, float32 2". */
export function precisionSummary(entries: WeightPrecisionEntry[]): string {
  const counts = new Map<WeightPrecision, number>();
  for (const e of entries) counts.set(e.precision, (counts.get(e.precision) ?? 0) + 1);
  return [...counts].map(([p, n]) => `${p} ${n}`).join(', ');
}

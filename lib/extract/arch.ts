/**
 * Parsing and checking target architectures `D,A,H,I` against a source model.
 */
import { BortError, quoteName } from '../errors.js';
import type { Arch, BertModel } from '../bert/model.js';

/** Largest layer count, head count, hidden or intermediate size an architecture may name. */
export const MAX_SIZE = 1_048_576;

export function parseArch(text: string): Arch {
  const parts = String(text).split(',').map((s) => s.trim());
  const usage = 'write it as D,A,H,I (layers, heads, hidden, intermediate), e.g. --arch 4,8,1024,768';
  if (parts.length !== 4 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new BortError(`--arch ${quoteName(text)} is malformed`, usage);
  }
  const [layers, heads, hidden, intermediate] = parts.map(Number);
  if ([layers, heads, hidden, intermediate].some((v) => v < 1)) throw new BortError(`--arch ${quoteName(text)} has a zero size`, 'every size must be at least 1');
  if ([layers, heads, hidden, intermediate].some((v) => v > MAX_SIZE)) {
    throw new BortError(`--arch ${quoteName(text)} has a size above ${MAX_SIZE.toLocaleString('en-US')}`, 'choose sizes a BERT can have');
  }
  if (hidden % heads !== 0) {
    throw new BortError(`--arch ${quoteName(text)}: hidden size ${hidden} is not divisible by ${heads} heads`,
      `choose H divisible by A (head size = H/A), e.g. ${layers},${heads},${Math.max(heads, Math.round(hidden / heads) * heads)},${intermediate}`);
  }
  return { layers, heads, hidden, intermediate };
}

export function formatArch(a: Arch): string {
  return `${a.layers},${a.heads},${a.hidden},${a.intermediate}`;
}

/** Throws when `target` asks for more than `m` has. */
export function checkArchFits(m: BertModel, target: Arch): void {
  const src = m.arch;
  const over: string[] = [];
  if (target.layers > src.layers) over.push(`${target.layers} layers (source has ${src.layers})`);
  if (target.heads > src.heads) over.push(`${target.heads} heads (source has ${src.heads})`);
  if (target.hidden > src.hidden) over.push(`hidden ${target.hidden} (source has ${src.hidden})`);
  if (target.intermediate > src.intermediate) over.push(`intermediate ${target.intermediate} (source has ${src.intermediate})`);
  if (target.hidden > m.attentionWidth) over.push(`attention width ${target.hidden} (source has ${m.attentionWidth})`);
  if (over.length) {
    throw new BortError(`--arch ${formatArch(target)} asks for more than the source (${formatArch(src)}) has: ${over.join(', ')}`,
      'choose sizes no larger than the source model\'s');
  }
}

/**
 * The search space Ξ: the values of D (layers), A (heads), H (hidden) and I (intermediate) to try, as
 * text (`D=2..6,A=4|8,H=128..256/64,I=256..1024/256`) or JSON (`{"D":[2,3],"H":"128..256/64"}`), with
 * defaults from the source's size for any dimension left out. Candidates are every combination with H
 * divisible by A; none may ask for more than the source has.
 */
import { BortError, quoteName } from '../errors.js';
import type { Arch } from '../bert/model.js';

export type Dimension = 'D' | 'A' | 'H' | 'I';
export const DIMENSIONS: readonly Dimension[] = ['D', 'A', 'H', 'I'];
const NAMES: Record<Dimension, string> = { D: 'layers', A: 'heads', H: 'hidden size', I: 'intermediate size' };

export type SearchSpace = Record<Dimension, number[]>;

/** Most candidates a space may hold (each is extracted and measured). */
export const MAX_CANDIDATES = 4096;
/** Most values one dimension may list. */
const MAX_VALUES = 256;

const USAGE = "write the space as D=2..6,A=4|8,H=128..256/64,I=256..1024/256 (lists a|b, ranges lo..hi, steps lo..hi/step) or as JSON {\"D\":[2,4],\"H\":\"128..256/64\"}";

/** The values one dimension's text names: `4`, `4|8|12`, `2..6`, `128..512/128`. */
function parseValues(dim: Dimension, text: string, whole: string): number[] {
  const bad = (what: string) => new BortError(`--space ${quoteName(whole)}: ${dim} ${what}`, USAGE);
  const t = text.trim();
  let values: number[];
  const range = /^(\d+)\s*\.\.\s*(\d+)(?:\s*\/\s*(\d+))?$/.exec(t);
  if (range) {
    const lo = Number(range[1]), hi = Number(range[2]), step = range[3] === undefined ? 1 : Number(range[3]);
    if (step < 1) throw bad(`has step ${step}; a step must be at least 1`);
    if (lo > hi) throw bad(`range ${lo}..${hi} is empty (the start is above the end)`);
    if ((hi - lo) / step + 1 > MAX_VALUES) throw bad(`range ${t} has more than ${MAX_VALUES} values`);
    values = [];
    for (let v = lo; v <= hi; v += step) values.push(v);
  } else if (/^\d+(\s*\|\s*\d+)*$/.test(t)) {
    values = t.split('|').map((s) => Number(s.trim()));
  } else {
    throw bad(`${quoteName(t)} is neither a number, a list a|b|c nor a range lo..hi[/step]`);
  }
  return checkValues(dim, values, whole);
}

function checkValues(dim: Dimension, values: number[], whole: string): number[] {
  const bad = (what: string) => new BortError(`--space ${quoteName(whole)}: ${dim} ${what}`, USAGE);
  if (values.length === 0) throw bad('has no values');
  if (values.length > MAX_VALUES) throw bad(`lists more than ${MAX_VALUES} values`);
  for (const v of values) {
    if (!Number.isSafeInteger(v) || v < 1) throw bad(`value ${String(v)} is not a whole number ≥ 1`);
  }
  return [...new Set(values)].sort((a, b) => a - b);
}

function parseJson(text: string): Partial<SearchSpace> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BortError(`--space is not valid JSON (${(e as Error).message.split('\n')[0].slice(0, 100)})`, USAGE);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new BortError('--space JSON must be an object with keys D, A, H, I', USAGE);
  const out: Partial<SearchSpace> = {};
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    if (!DIMENSIONS.includes(k as Dimension)) throw new BortError(`--space has an unknown key ${quoteName(k)}`, 'use the keys D (layers), A (heads), H (hidden), I (intermediate)');
    const dim = k as Dimension;
    if (typeof v === 'number') out[dim] = checkValues(dim, [v], text);
    else if (typeof v === 'string') out[dim] = parseValues(dim, v, text);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'number')) out[dim] = checkValues(dim, v as number[], text);
    else throw new BortError(`--space ${dim} must be a number, an array of numbers or a string like "2..6"`, USAGE);
  }
  return out;
}

/** Parses a space given as text or JSON; dimensions not named are left out (see `completeSpace`). */
export function parseSpace(text: string): Partial<SearchSpace> {
  const t = String(text).trim();
  if (t.startsWith('{')) return parseJson(t);
  if (!t) throw new BortError('--space is empty', USAGE);
  const out: Partial<SearchSpace> = {};
  for (const part of t.split(',')) {
    const m = /^\s*([A-Za-z]+)\s*=(.*)$/.exec(part);
    if (!m) throw new BortError(`--space ${quoteName(t)}: ${quoteName(part.trim())} is not NAME=VALUES`, USAGE);
    const dim = m[1].toUpperCase() as Dimension;
    if (!DIMENSIONS.includes(dim)) throw new BortError(`--space ${quoteName(t)}: unknown dimension ${quoteName(m[1])}`, 'use D (layers), A (heads), H (hidden), I (intermediate)');
    if (out[dim]) throw new BortError(`--space ${quoteName(t)}: ${dim} is given twice`, 'give each dimension once');
    out[dim] = parseValues(dim, m[2], t);
  }
  return out;
}

/** Evenly spread whole numbers from lo to hi (at most `count`), each a multiple of `multiple`. */
function spread(lo: number, hi: number, count: number, multiple = 1): number[] {
  const out = new Set<number>();
  for (let i = 0; i < count; i++) {
    const v = count === 1 ? hi : lo + ((hi - lo) * i) / (count - 1);
    const r = Math.max(multiple, Math.round(v / multiple) * multiple);
    if (r <= hi) out.add(r);
  }
  out.add(hi);
  return [...out].sort((a, b) => a - b);
}

/**
 * The default space for a source: D from a third of the layers up to all (at most 4 values), A the
 * source's heads and half of them, H from half the hidden size up (3 values), I a quarter, half and
 * all of the source's.
 */
export function defaultSpace(src: Arch): SearchSpace {
  const A = [src.heads];
  if (src.heads % 2 === 0) A.unshift(src.heads / 2);
  const hMultiple = Math.max(...A);
  return {
    D: spread(Math.max(1, Math.ceil(src.layers / 3)), src.layers, 4),
    A,
    H: spread(Math.max(hMultiple, src.hidden / 2), src.hidden, 3, hMultiple),
    I: [...new Set([Math.max(1, Math.round(src.intermediate / 4)), Math.max(1, Math.round(src.intermediate / 2)), src.intermediate])],
  };
}

/** Fills dimensions not given from the default and checks that nothing exceeds the source. */
export function completeSpace(given: Partial<SearchSpace>, src: Arch, attentionWidth = src.hidden): SearchSpace {
  const dflt = defaultSpace(src);
  const space = { ...dflt, ...given } as SearchSpace;
  const limits: Record<Dimension, number> = { D: src.layers, A: src.heads, H: Math.min(src.hidden, attentionWidth), I: src.intermediate };
  for (const dim of DIMENSIONS) {
    const over = space[dim].filter((v) => v > limits[dim]);
    if (over.length) {
      throw new BortError(`--space ${dim} = ${over.join('|')} is larger than the source's ${NAMES[dim]} ${limits[dim]}`, `keep ${dim} at most ${limits[dim]}`);
    }
  }
  return space;
}

export function archKey(a: Arch): string {
  return `${a.layers},${a.heads},${a.hidden},${a.intermediate}`;
}

/** Every combination with H divisible by A, in D, A, H, I order; refuses an empty or oversized space. */
export function candidatesOf(space: SearchSpace): Arch[] {
  const total = space.D.length * space.A.length * space.H.length * space.I.length;
  if (total > MAX_CANDIDATES) {
    throw new BortError(`--space has ${total.toLocaleString('en-US')} combinations`, `narrow it to at most ${MAX_CANDIDATES.toLocaleString('en-US')} (each candidate is extracted and measured)`);
  }
  const out: Arch[] = [];
  for (const layers of space.D) for (const heads of space.A) for (const hidden of space.H) for (const intermediate of space.I) {
    if (hidden % heads === 0) out.push({ layers, heads, hidden, intermediate });
  }
  if (!out.length) {
    throw new BortError('--space has no candidate: no H in it is divisible by any A', 'include hidden sizes that are multiples of the head counts (head size = H/A)');
  }
  return out;
}

/**
 * The maximum point T of Ξ: the largest value of every dimension when that combination is valid,
 * else the candidate with the most parameters (`params` decides; ties to the later candidate).
 */
export function maximumPoint(space: SearchSpace, candidates: Arch[], params: (a: Arch) => number): Arch {
  const top = { layers: Math.max(...space.D), heads: Math.max(...space.A), hidden: Math.max(...space.H), intermediate: Math.max(...space.I) };
  if (candidates.some((c) => archKey(c) === archKey(top))) return top;
  let best = candidates[0];
  for (const c of candidates) if (params(c) >= params(best)) best = c;
  return best;
}

export function formatSpace(space: SearchSpace): string {
  return DIMENSIONS.map((d) => `${d}=${space[d].join('|')}`).join(',');
}

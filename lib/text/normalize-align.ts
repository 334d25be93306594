/**
 * Normalisation with a map back to the source: which source characters each character of the
 * normalised text came from. The normaliser is the tokenizer's own (a black box); the map comes from
 * normalising the text in small pieces and checking that the pieces put together equal the normalised
 * whole. Pieces, finest first: runs of printable ASCII, runs of whitespace, one character with its
 * combining marks; then whitespace-separated words; then the whole text. Inside a piece whose length is
 * unchanged the map is one to one; a piece that changes length is tried one code point at a time (an
 * accent dropped maps the letter to the letter); failing that, a shorter output maps to the piece's last
 * characters (collapsed spaces, as the Rust library aligns them) and a longer one to the whole piece.
 */

export interface Aligned {
  text: string;
  /** Source index of the first character normalised character `i` came from. */
  srcStart(i: number): number;
  /** Source index just past the last character normalised character `i` came from. */
  srcEnd(i: number): number;
}

const FINE = /[\x21-\x7e]+(?!\p{M})|\s+|\P{M}\p{M}*|\p{M}+/gsu;
const WORDS = /\s+|\S+/gsu;

function pieces(s: string, re: RegExp): [number, number][] {
  const out: [number, number][] = [];
  re.lastIndex = 0;
  for (const m of s.matchAll(re)) out.push([m.index!, m.index! + m[0].length]);
  return out;
}

/** Maps `out` (the normalised `piece`, which starts at `a` in the source) into start/end from `n`. */
function mapPiece(piece: string, a: number, out: string, fn: (s: string) => string, start: Int32Array, end: Int32Array, n: number): void {
  if (out.length === piece.length) {
    for (let i = 0; i < out.length; i++) {
      start[n + i] = a + i;
      end[n + i] = a + i + 1;
    }
    return;
  }
  // one code point at a time, when that gives the same text (a base letter and its dropped accents)
  const cps = [...piece];
  if (cps.length > 1) {
    const outs = cps.map((c) => fn(c));
    if (outs.join('') === out) {
      let src = a;
      for (let k = 0; k < cps.length; k++) {
        mapPiece(cps[k], src, outs[k], fn, start, end, n);
        n += outs[k].length;
        src += cps[k].length;
      }
      return;
    }
  }
  const b = a + piece.length;
  for (let i = 0; i < out.length; i++) {
    // shorter (a run of spaces collapsed): the last characters; longer (a ligature spelled out): the piece
    const j = out.length < piece.length ? a + piece.length - out.length + i : -1;
    start[n + i] = j >= 0 ? j : a;
    end[n + i] = j >= 0 ? j + 1 : b;
  }
}

function tryAlign(s: string, whole: string, parts: [number, number][], fn: (s: string) => string): Aligned | null {
  const start = new Int32Array(whole.length);
  const end = new Int32Array(whole.length);
  let n = 0;
  for (const [a, b] of parts) {
    const piece = s.slice(a, b);
    const out = fn(piece);
    if (n + out.length > whole.length || whole.slice(n, n + out.length) !== out) return null;
    mapPiece(piece, a, out, fn, start, end, n);
    n += out.length;
  }
  if (n !== whole.length) return null;
  return { text: whole, srcStart: (i) => (i < whole.length ? start[i] : s.length), srcEnd: (i) => (i < whole.length ? end[i] : s.length) };
}

export function alignedNormalize(s: string, fn: ((s: string) => string) | null): Aligned {
  if (!fn) return { text: s, srcStart: (i) => Math.min(i, s.length), srcEnd: (i) => Math.min(i + 1, s.length) };
  const whole = fn(s);
  return tryAlign(s, whole, pieces(s, FINE), fn)
    ?? tryAlign(s, whole, pieces(s, WORDS), fn)
    ?? { text: whole, srcStart: () => 0, srcEnd: () => s.length };
}

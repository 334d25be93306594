/**
 * Where each token of one pre-tokenized word lies in the normalised text. The word is found after the
 * previous one (pre-tokenizers keep the order and drop only separators); byte-level words are turned back
 * into text through GPT-2's byte table first, and Metaspace's ▁ back into spaces. Inside the word, tokens
 * take their own length once continuation prefixes (`##`) and end-of-word suffixes are removed; an
 * unknown token covers what lies between its neighbours (a whole word for WordPiece, a run of unknown
 * characters for Unigram), and tokens next to each other that cover no known text share that span.
 */

export interface WordSpanOptions {
  byteLevel: boolean;
  metaspace: string | null;
  unk: string | null;
  prefix: string;
  suffix: string;
}

let decoder: Map<string, number> | undefined;

/** GPT-2's printable character → byte table (the inverse of the byte-level alphabet). */
export function byteLevelDecoder(): Map<string, number> {
  if (decoder) return decoder;
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + extra++);
    }
  }
  decoder = new Map(bs.map((b, i) => [String.fromCharCode(cs[i]), b]));
  return decoder;
}

const utf8 = new TextDecoder('utf-8');

function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * Token spans [start, end) in the normalised text for the tokens of `word`, searched from `at`.
 * `next` is where the search for the following word starts.
 */
export function wordSpans(word: string, tokens: string[], norm: string, at: number, o: WordSpanOptions): { spans: [number, number][]; next: number } {
  // 1. the word's units (bytes for byte-level, UTF-16 code units otherwise) and where each lies in `norm`
  let units: string[];
  let surface: string;
  const bl = o.byteLevel ? byteLevelDecoder() : undefined;
  const byteLevel = !!bl && [...word].every((c) => bl.has(c));
  if (byteLevel) {
    units = [...word];
    surface = utf8.decode(Uint8Array.from(units, (c) => bl!.get(c)!));
  } else {
    units = word.split('');
    surface = o.metaspace ? word.split(o.metaspace).join(' ') : word;
  }
  let idx = norm.indexOf(surface, at);
  let prefixAdded = false;
  if (idx < 0 && surface.startsWith(' ')) {
    idx = norm.indexOf(surface.slice(1), at);
    prefixAdded = idx >= 0;
  }
  if (idx < 0) return { spans: tokens.map(() => [at, at]), next: at };
  const uStart = new Int32Array(units.length + 1);
  const uEnd = new Int32Array(units.length + 1);
  let u = 0;
  let pos = idx;
  if (prefixAdded) {
    // a space the pre-tokenizer added: Metaspace's ▁ maps to the first character, a byte-level Ġ to nothing
    const firstLen = norm.codePointAt(idx)! > 0xffff ? 2 : 1;
    uStart[0] = idx;
    uEnd[0] = byteLevel ? idx : idx + firstLen;
    u = 1;
  }
  const body = prefixAdded ? surface.slice(1) : surface;
  if (byteLevel) {
    for (const ch of body) {
      const n = utf8Length(ch.codePointAt(0)!);
      for (let k = 0; k < n; k++, u++) {
        uStart[u] = pos;
        uEnd[u] = pos + ch.length;
      }
      pos += ch.length;
    }
  } else {
    for (let j = 0; j < body.length; j++, u++, pos++) {
      uStart[u] = pos;
      uEnd[u] = pos + 1;
    }
  }
  const next = pos;
  uStart[units.length] = next;
  uEnd[units.length] = next;
  // 2. each token's text in units, unknown ones null
  const texts: (string | null)[] = tokens.map((t, i) => {
    if (o.unk !== null && t === o.unk) return null;
    let s = t;
    if (i > 0 && o.prefix && s.startsWith(o.prefix)) s = s.slice(o.prefix.length);
    if (i === tokens.length - 1 && o.suffix && s.endsWith(o.suffix)) s = s.slice(0, -o.suffix.length);
    return s;
  });
  // 3. walk the word (byte-level characters are all single code units, so positions in the joined
  // units are unit indices)
  const wordUnits = units.join('');
  const spans: [number, number][] = [];
  let c = 0;
  for (let i = 0; i < tokens.length;) {
    const t = texts[i];
    if (t !== null && t.length > 0 && wordUnits.startsWith(t, c)) {
      spans.push([c, c + t.length]);
      c += t.length;
      i++;
      continue;
    }
    // an unknown token (or one that does not match here) and the unknown ones right after it: up to
    // where the next known token is found
    let j = i + 1;
    while (j < tokens.length && texts[j] === null) j++;
    let end = wordUnits.length;
    if (j < tokens.length) {
      const k = wordUnits.indexOf(texts[j]!, c + 1);
      if (k >= 0) end = k;
    }
    for (let k = i; k < j; k++) spans.push([c, end]);
    c = end;
    i = j;
  }
  return {
    spans: spans.map(([a, b]) => (a === b ? [uStart[a], uStart[a]] : [uStart[a], uEnd[b - 1]])),
    next,
  };
}

/**
 * `TextTokenizer`: text → token ids, token types and character offsets, for one text or a pair.
 *
 * Reads a transformers `tokenizer.json` (WordPiece, byte-level BPE, Unigram, with their normalizers and
 * pre-tokenizers) or a bare BERT `vocab.txt`. The token ids come from @huggingface/tokenizers (pure
 * TypeScript): its normalizer, pre-tokenizer and model are called here step by step, so that every token
 * can be traced back to the characters it came from (the library itself reports no offsets). Special
 * tokens, pairs and truncation follow the tokenizer's post-processor (lib/text/post-process.ts).
 *
 * Offsets are [start, end) in JavaScript string indices (UTF-16 code units) of the text given, so
 * `text.slice(start, end)` is the token's source; special tokens get [0, 0].
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BortError, quoteName } from '../errors.js';
import { alignedNormalize, type Aligned } from './normalize-align.js';
import { addedCount, readPostProcessor, type LayoutPart, type PostProcess } from './post-process.js';
import { parseVocabTxt, wordPieceTokenizerJson, type VocabOptions } from './vocab.js';
import { wordSpans } from './word-spans.js';

export interface Encoding {
  ids: number[];
  /** Token type (segment) of each token: 0 for the first text, 1 for the second where the model uses it. */
  typeIds: number[];
  tokens: string[];
  /** [start, end) into the text the token came from (see `sequenceIds`); [0, 0] for special tokens. */
  offsets: [number, number][];
  /** 0 or 1: which text a token came from; null for special tokens. */
  sequenceIds: (0 | 1 | null)[];
}

/** What to do when the tokens do not fit. */
export type Truncation = 'error' | 'longest_first' | 'only_first' | 'only_second';

export interface EncodeOptions {
  /** At most this many tokens, special tokens included (a model's maximum positions). */
  maxLength?: number;
  /** 'error' (default): a text too long is refused; otherwise which text loses tokens from its end. */
  truncation?: Truncation;
  /** Add [CLS]/[SEP] (or the tokenizer's own) as its post-processor says; default true. */
  addSpecialTokens?: boolean;
}

/** Tokens of one text section: ids, token strings, and offsets into the original text. */
export interface TokenPieces {
  ids: number[];
  tokens: string[];
  offsets: [number, number][];
}

interface AddedToken {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
}

/** A parsed tokenizer.json (the transformers format). */
export type TokenizerJson = Record<string, any>;

/** The file types a tokenizer is read from. */
export const TOKENIZER_FILES = ['tokenizer.json', 'vocab.txt'];

export class TextTokenizer {
  private readonly hf: HfTokenizer;
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedSplit: RegExp | null;
  private readonly post: PostProcess;
  private readonly byteLevel: boolean;
  private readonly metaspace: string | null;
  private readonly unkToken: string | null;
  private readonly unkId: number | undefined;
  private readonly continuingPrefix: string;
  private readonly endSuffix: string;
  /** Where the tokenizer was read from. */
  readonly source: string;

  constructor(json: TokenizerJson, source = 'tokenizer.json') {
    this.source = source;
    if (!json || typeof json !== 'object' || !json.model || typeof json.model !== 'object') {
      throw new BortError(`${source} has no tokenizer model`, 'give a tokenizer.json written by transformers (save_pretrained) or a BERT vocab.txt');
    }
    try {
      this.hf = new HfTokenizer(json, {});
    } catch (e) {
      throw new BortError(`${source} cannot be read: ${String((e as Error).message ?? e).split('\n')[0].slice(0, 200)}`, 'give a tokenizer.json written by transformers (save_pretrained) or a BERT vocab.txt');
    }
    this.added = (Array.isArray(json.added_tokens) ? json.added_tokens : []).map((t: TokenizerJson) => ({
      id: Number(t.id), content: String(t.content), lstrip: !!t.lstrip, rstrip: !!t.rstrip,
    }));
    for (const t of this.added) this.addedById.set(t.id, t);
    const contents = this.added.map((t) => t.content).filter((c) => c.length > 0).sort((a, b) => b.length - a.length);
    this.addedSplit = contents.length ? new RegExp(contents.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g') : null;
    this.post = readPostProcessor(json.post_processor);
    const pre = JSON.stringify(json.pre_tokenizer ?? null);
    this.byteLevel = /"type":"ByteLevel"/.test(pre);
    const meta = /"type":"Metaspace"[^}]*"replacement":"([^"]+)"/.exec(pre) ?? /"replacement":"([^"]+)"[^}]*"type":"Metaspace"/.exec(pre);
    this.metaspace = meta ? meta[1] : null;
    const m = json.model;
    this.unkToken = (this.hf.model as any)?.unk_token ?? null;
    this.unkId = this.unkToken === null ? undefined : this.tokenToId(this.unkToken);
    this.continuingPrefix = m.type === 'WordPiece' ? String(m.continuing_subword_prefix ?? '##') : String(m.continuing_subword_prefix ?? '');
    this.endSuffix = String(m.end_of_word_suffix ?? '');
  }

  /** Reads a tokenizer.json, or a BERT vocab.txt (any other name: one token a line). */
  static fromFile(file: string, vocabOptions: VocabOptions = {}): TextTokenizer {
    let text: string;
    try {
      if (fs.statSync(file).isDirectory()) return TextTokenizer.fromFile(TextTokenizer.find(file, file), vocabOptions);
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if (e instanceof BortError) throw e;
      throw new BortError(`cannot read the tokenizer ${quoteName(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
        'pass --vocab with the vocab.txt or tokenizer.json that belongs to the model');
    }
    if (/\.json$/i.test(file)) {
      let json: TokenizerJson;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new BortError(`${quoteName(file)} is not valid JSON (${(e as Error).message.split('\n')[0].slice(0, 120)})`, 'give a tokenizer.json written by transformers, or a vocab.txt');
      }
      return new TextTokenizer(json, path.basename(file));
    }
    const tokens = parseVocabTxt(text, quoteName(path.basename(file)));
    return new TextTokenizer(wordPieceTokenizerJson(tokens, { ...vocabOptions, source: quoteName(path.basename(file)) }), path.basename(file));
  }

  /** The tokenizer file beside a model: tokenizer.json first, then vocab.txt, in the model's folder. */
  static find(modelOrDir: string, what = modelOrDir): string {
    const dir = fs.existsSync(modelOrDir) && fs.statSync(modelOrDir).isDirectory() ? modelOrDir : path.dirname(modelOrDir);
    for (const f of TOKENIZER_FILES) {
      const p = path.join(dir, f);
      if (fs.existsSync(p)) return p;
    }
    throw new BortError(`no tokenizer.json or vocab.txt beside ${quoteName(what)}`, 'pass --vocab with the vocab.txt or tokenizer.json that belongs to the model');
  }

  /** Vocabulary size, added tokens included. */
  get vocabSize(): number {
    let n = 0;
    for (const id of this.hf.get_vocab(true).values()) n = Math.max(n, id + 1);
    return n;
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.hf.id_to_token(id);
  }

  /** The id of the first of these tokens the vocabulary has. */
  firstId(tokens: string[]): number | undefined {
    for (const t of tokens) {
      const id = this.tokenToId(t);
      if (id !== undefined) return id;
    }
    return undefined;
  }

  /** The mask token ([MASK], <mask>) and its id, if the vocabulary has one. */
  get mask(): { token: string; id: number } | undefined {
    for (const token of ['[MASK]', '<mask>']) {
      const id = this.tokenToId(token);
      if (id !== undefined) return { token, id };
    }
    return undefined;
  }

  /** The padding id: [PAD] or <pad>, else 0. */
  get padId(): number {
    return this.firstId(['[PAD]', '<pad>']) ?? 0;
  }

  /** Special tokens added around one text, or a pair. */
  specialTokenCount(pair = false): number {
    return addedCount(pair ? this.post.pair : this.post.single);
  }

  /** Token strings as the tokenizer's decoder joins them back into text. */
  decode(ids: number[]): string {
    return this.hf.decode(ids, { skip_special_tokens: true });
  }

  encode(text: string, pair?: string | null, opts: EncodeOptions = {}): Encoding {
    if (typeof text !== 'string') throw new TypeError(`encode() takes a string, got ${typeof text}`);
    if (pair !== undefined && pair !== null && typeof pair !== 'string') throw new TypeError(`encode()'s pair must be a string, got ${typeof pair}`);
    const addSpecial = opts.addSpecialTokens ?? true;
    const isPair = typeof pair === 'string';
    const layout: LayoutPart[] = addSpecial ? (isPair ? this.post.pair : this.post.single) : isPair ? [{ kind: 'text', which: 0, type: 0 }, { kind: 'text', which: 1, type: 1 }] : [{ kind: 'text', which: 0, type: 0 }];
    const pieces: TokenPieces[] = [this.tokenize(text)];
    if (isPair) pieces.push(this.tokenize(pair));
    if (opts.maxLength !== undefined) this.truncate(pieces, opts.maxLength - addedCount(layout), opts.maxLength, opts.truncation ?? 'error');
    const enc: Encoding = { ids: [], typeIds: [], tokens: [], offsets: [], sequenceIds: [] };
    for (const part of layout) {
      if (part.kind === 'special') {
        for (let i = 0; i < part.ids.length; i++) {
          enc.ids.push(part.ids[i]);
          enc.tokens.push(part.tokens[i]);
          enc.typeIds.push(part.type);
          enc.offsets.push([0, 0]);
          enc.sequenceIds.push(null);
        }
      } else {
        const p = pieces[part.which];
        for (let i = 0; i < p.ids.length; i++) {
          enc.ids.push(p.ids[i]);
          enc.tokens.push(p.tokens[i]);
          enc.typeIds.push(part.type);
          enc.offsets.push(p.offsets[i]);
          enc.sequenceIds.push(part.which);
        }
      }
    }
    return enc;
  }

  private truncate(pieces: TokenPieces[], budget: number, maxLength: number, how: Truncation): void {
    const total = pieces.reduce((n, p) => n + p.ids.length, 0);
    if (total <= budget) return;
    const what = pieces.length > 1 ? 'the texts have' : 'the text has';
    if (how === 'error') {
      throw new BortError(`${what} ${total + maxLength - budget} tokens but the model takes at most ${maxLength}`, 'shorten the text or pass --truncate (truncation: \'longest_first\') to cut it');
    }
    const cut = (p: TokenPieces, n: number) => {
      p.ids.length = n;
      p.tokens.length = n;
      p.offsets.length = n;
    };
    if (budget < 0) throw new BortError(`the model takes at most ${maxLength} tokens, fewer than its special tokens`, 'check the model\'s position count');
    if (pieces.length === 1) {
      cut(pieces[0], budget);
      return;
    }
    if (how === 'longest_first') {
      // as the Rust library does: the shorter text keeps what it can up to half, the longer the rest
      let n1 = pieces[0].ids.length, n2 = pieces[1].ids.length;
      const swap = n1 > n2;
      if (swap) [n1, n2] = [n2, n1];
      n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
      if (n1 + n2 > budget) {
        n1 = Math.floor(budget / 2);
        n2 = n1 + (budget % 2);
      }
      if (swap) [n1, n2] = [n2, n1];
      cut(pieces[0], Math.min(n1, pieces[0].ids.length));
      cut(pieces[1], Math.min(n2, pieces[1].ids.length));
      return;
    }
    const i = how === 'only_first' ? 0 : 1;
    const keep = budget - pieces[1 - i].ids.length;
    if (keep < 0) {
      throw new BortError(`the ${i === 1 ? 'first' : 'second'} text alone needs ${pieces[1 - i].ids.length + maxLength - budget} tokens with the special tokens, more than the model's ${maxLength} positions`, `shorten the ${i === 1 ? 'first text (the question)' : 'second text'}`);
    }
    cut(pieces[i], keep);
  }

  /** One text without special tokens: ids, token strings, offsets. */
  tokenize(text: string): TokenPieces {
    const out: TokenPieces = { ids: [], tokens: [], offsets: [] };
    let cursor = 0;
    let sectionIndex = 0;
    const pushAdded = (t: AddedToken, start: number, end: number) => {
      out.ids.push(t.id);
      out.tokens.push(t.content);
      out.offsets.push([start, end]);
    };
    const matches: { t: AddedToken; start: number; end: number }[] = [];
    if (this.addedSplit) {
      this.addedSplit.lastIndex = 0;
      for (const m of text.matchAll(this.addedSplit)) {
        const t = this.added.find((a) => a.content === m[0])!;
        let start = m.index!, end = start + m[0].length;
        if (t.lstrip) while (start > cursor && /\s/.test(text[start - 1])) start--;
        if (t.rstrip) while (end < text.length && /\s/.test(text[end])) end++;
        matches.push({ t, start, end });
        cursor = end;
      }
      cursor = 0;
    }
    for (const m of matches) {
      if (m.start > cursor) this.tokenizeSection(text, cursor, m.start, sectionIndex++, out);
      pushAdded(m.t, m.start, m.end);
      cursor = m.end;
    }
    if (cursor < text.length) this.tokenizeSection(text, cursor, text.length, sectionIndex, out);
    if (this.post.trimOffsets) {
      for (const o of out.offsets) {
        // spaces only (Ġ), as the Rust library trims
        while (o[0] < o[1] && text[o[0]] === ' ') o[0]++;
        while (o[1] > o[0] && text[o[1] - 1] === ' ') o[1]--;
      }
    }
    return out;
  }

  private tokenizeSection(text: string, from: number, to: number, sectionIndex: number, out: TokenPieces): void {
    const section = text.slice(from, to);
    const norm: Aligned = alignedNormalize(section, this.hf.normalizer ? (s) => (this.hf.normalizer as any)(s) as string : null);
    if (norm.text.length === 0) return;
    const words: string[] = this.hf.pre_tokenizer ? (this.hf.pre_tokenizer as any)(norm.text, { section_index: sectionIndex }) : [norm.text];
    let at = 0;
    for (const word of words) {
      if (!word) continue;
      const tokens: string[] = (this.hf.model as any)([word]);
      const spans = wordSpans(word, tokens, norm.text, at, {
        byteLevel: this.byteLevel, metaspace: this.metaspace, unk: this.unkToken, prefix: this.continuingPrefix, suffix: this.endSuffix,
      });
      at = spans.next;
      for (let i = 0; i < tokens.length; i++) {
        const id = this.tokenToId(tokens[i]) ?? this.unkId;
        if (id === undefined) throw new BortError(`${this.source} produced the token ${quoteName(tokens[i])}, which its vocabulary lacks`, 'check that the tokenizer file is complete');
        const [a, b] = spans.spans[i];
        out.ids.push(id);
        out.tokens.push(tokens[i]);
        out.offsets.push(a === b ? [from + norm.srcStart(a), from + norm.srcStart(a)] : [from + norm.srcStart(a), from + norm.srcEnd(b - 1)]);
      }
    }
  }
}


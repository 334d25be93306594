/**
 * The post-processor of a tokenizer.json as a layout: where the special tokens go around one text or a
 * pair, and the token type each part gets. Read from BertProcessing, RobertaProcessing,
 * TemplateProcessing, ByteLevel (offset trimming only) and Sequence of these, with the token types the
 * reference (Rust) tokenizers library produces: BERT pairs 0 then 1, RoBERTa pairs all 0.
 */
import { BortError } from '../errors.js';

export type LayoutPart =
  | { kind: 'special'; ids: number[]; tokens: string[]; type: number }
  | { kind: 'text'; which: 0 | 1; type: number };

export interface PostProcess {
  single: LayoutPart[];
  pair: LayoutPart[];
  /** Trim whitespace off token offsets (byte-level tokenizers). */
  trimOffsets: boolean;
}

type Json = Record<string, any>;

function bad(what: string): BortError {
  return new BortError(`the tokenizer's post-processor is not understood: ${what}`, 'use a tokenizer.json written by transformers or the tokenizers library');
}

function pairOf(v: unknown, name: string): [string, number] {
  if (!Array.isArray(v) || typeof v[0] !== 'string' || !Number.isInteger(v[1])) throw bad(`${name} is not [token, id]`);
  return [v[0], v[1]];
}

const sp = ([token, id]: [string, number], type = 0): LayoutPart => ({ kind: 'special', ids: [id], tokens: [token], type });
const text = (which: 0 | 1, type: number): LayoutPart => ({ kind: 'text', which, type });

function template(parts: unknown, specials: Json, name: string): LayoutPart[] {
  if (!Array.isArray(parts)) throw bad(`TemplateProcessing.${name} is not a list`);
  return parts.map((p: Json) => {
    if (p?.Sequence) {
      const id = p.Sequence.id;
      if (id !== 'A' && id !== 'B') throw bad(`sequence '${String(id).slice(0, 20)}' in the template`);
      return text(id === 'A' ? 0 : 1, Number(p.Sequence.type_id ?? 0));
    }
    if (p?.SpecialToken) {
      const s = specials?.[p.SpecialToken.id];
      if (!s || !Array.isArray(s.ids) || !Array.isArray(s.tokens) || s.ids.length !== s.tokens.length) throw bad(`special token '${String(p.SpecialToken.id).slice(0, 20)}' has no ids`);
      return { kind: 'special', ids: s.ids.map(Number), tokens: s.tokens.map(String), type: Number(p.SpecialToken.type_id ?? 0) } as LayoutPart;
    }
    throw bad('a template part is neither Sequence nor SpecialToken');
  });
}

export function readPostProcessor(cfg: Json | null | undefined): PostProcess {
  const plain: PostProcess = { single: [text(0, 0)], pair: [text(0, 0), text(1, 1)], trimOffsets: false };
  if (!cfg) return plain;
  switch (cfg.type) {
    case 'BertProcessing': {
      const cls = pairOf(cfg.cls, 'cls'), sep = pairOf(cfg.sep, 'sep');
      return { single: [sp(cls), text(0, 0), sp(sep)], pair: [sp(cls), text(0, 0), sp(sep), text(1, 1), sp(sep, 1)], trimOffsets: false };
    }
    case 'RobertaProcessing': {
      const cls = pairOf(cfg.cls, 'cls'), sep = pairOf(cfg.sep, 'sep');
      return { single: [sp(cls), text(0, 0), sp(sep)], pair: [sp(cls), text(0, 0), sp(sep), sp(sep), text(1, 0), sp(sep)], trimOffsets: cfg.trim_offsets !== false };
    }
    case 'TemplateProcessing':
      return { single: template(cfg.single, cfg.special_tokens, 'single'), pair: template(cfg.pair, cfg.special_tokens, 'pair'), trimOffsets: false };
    case 'ByteLevel':
      return { ...plain, trimOffsets: cfg.trim_offsets !== false };
    case 'Sequence': {
      if (!Array.isArray(cfg.processors)) throw bad('Sequence without processors');
      const parts = cfg.processors.map((p: Json) => readPostProcessor(p));
      const adding = parts.filter((p: PostProcess) => p.single.length > 1 || p.pair.length > 2 || p.single[0].kind !== 'text');
      if (adding.length > 1) throw bad('a Sequence with more than one processor adding special tokens');
      const base = adding[0] ?? plain;
      return { ...base, trimOffsets: parts.some((p: PostProcess) => p.trimOffsets) };
    }
    default:
      throw bad(`type '${String(cfg.type).slice(0, 40)}'`);
  }
}

/** How many special tokens the layout adds. */
export function addedCount(layout: LayoutPart[]): number {
  return layout.reduce((n, p) => n + (p.kind === 'special' ? p.ids.length : 0), 0);
}

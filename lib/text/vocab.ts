/**
 * A bare BERT `vocab.txt` (one token a line, id = line number) as the `tokenizer.json` that
 * transformers' BertTokenizerFast would write for it: BertNormalizer, BertPreTokenizer, WordPiece with
 * `##` continuations and 100-character words, [CLS] A [SEP] (B [SEP]) post-processing. Lower-casing
 * (and with it accent stripping) follows the vocabulary: on when no ordinary token has an upper-case
 * letter, off otherwise, unless the caller says.
 */
import { BortError } from '../errors.js';

export interface VocabOptions {
  /** Lower-case and strip accents; default: inferred from the vocabulary. */
  lowercase?: boolean;
  /** Where the vocabulary came from, for messages. */
  source?: string;
}

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/** True when no token (besides [BRACKETED] specials) has a letter that lower-casing changes. */
export function vocabIsUncased(tokens: string[]): boolean {
  for (const t of tokens) {
    if (t.startsWith('[') && t.endsWith(']')) continue;
    if (t.toLowerCase() !== t) return false;
  }
  return true;
}

export function parseVocabTxt(text: string, source = 'vocab.txt'): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new BortError(`${source} is empty`, 'give a BERT vocab.txt (one token a line) or a tokenizer.json');
  return lines;
}

/** The tokenizer.json object for a WordPiece vocabulary. */
export function wordPieceTokenizerJson(tokens: string[], opts: VocabOptions = {}): Record<string, unknown> {
  const source = opts.source ?? 'vocab.txt';
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  for (const need of ['[UNK]', '[CLS]', '[SEP]']) {
    if (!(need in vocab)) throw new BortError(`${source} has no ${need} token`, 'give the vocab.txt the model was trained with (BERT vocabularies list [PAD] [UNK] [CLS] [SEP] [MASK])');
  }
  const lowercase = opts.lowercase ?? vocabIsUncased(tokens);
  const added = SPECIALS.filter((s) => s in vocab).map((s) => ({
    id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', vocab['[SEP]']], cls: ['[CLS]', vocab['[CLS]']] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

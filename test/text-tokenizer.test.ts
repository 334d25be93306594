// Tokenizer output against reference numbers from the Rust tokenizers library (test/fixtures/text/
// reference.json, written by make-reference.mjs there; never by lib/text).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { vocabIsUncased, parseVocabTxt } from '../lib/text/vocab.js';
import { BortError } from '../lib/errors.js';
import { FIXTURES, tmpDir } from './helpers.js';

const TEXT = path.join(FIXTURES, 'text');
const reference = JSON.parse(fs.readFileSync(path.join(TEXT, 'reference.json'), 'utf8'));

interface RefCase { text: string; pair?: string | null; maxLength?: number; ids: number[]; typeIds: number[]; tokens: string[]; offsets: [number, number][] }

function check(tok: TextTokenizer, cases: RefCase[]) {
  expect(cases.length).toBeGreaterThan(2);
  for (const c of cases) {
    const e = tok.encode(c.text, c.pair ?? undefined, c.maxLength ? { maxLength: c.maxLength, truncation: 'longest_first' } : {});
    const what = JSON.stringify([c.text, c.pair]);
    expect(e.ids, what).toEqual(c.ids);
    // the Rust library names an added token with the spaces its lstrip took (' <mask>')
    expect(e.tokens, what).toEqual(c.tokens.map((t) => t.trim()));
    expect(e.typeIds, what).toEqual(c.typeIds);
    expect(e.offsets, what).toEqual(c.offsets);
  }
}

describe('tokenizers against the reference implementation', () => {
  it('WordPiece from an uncased vocab.txt: lower-casing, accents, Chinese characters, punctuation, [UNK] for long words, pairs, truncation', () => {
    check(TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-uncased-vocab.txt')), reference['wordpiece-uncased']);
  });
  it('WordPiece from a cased vocab.txt', () => {
    check(TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-cased-vocab.txt')), reference['wordpiece-cased']);
  });
  it('WordPiece with the teacher-style word vocabulary', () => {
    check(TextTokenizer.fromFile(path.join(TEXT, 'teacher-vocab.txt')), reference.teacher);
  });
  it('RoBERTa-style byte-level BPE tokenizer.json', () => {
    check(TextTokenizer.fromFile(path.join(TEXT, 'bpe-tokenizer.json')), reference.bpe);
  });
  it('XLM-R-style Unigram tokenizer.json (NFKC, Metaspace)', () => {
    check(TextTokenizer.fromFile(path.join(TEXT, 'unigram-tokenizer.json')), reference.unigram);
  });
});

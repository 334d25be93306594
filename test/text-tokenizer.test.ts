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

describe('tokenizer files and options', () => {
  it('lower-casing follows the vocabulary: uncased when no token has a capital letter', () => {
    expect(vocabIsUncased(parseVocabTxt(fs.readFileSync(path.join(TEXT, 'wordpiece-uncased-vocab.txt'), 'utf8')))).toBe(true);
    expect(vocabIsUncased(parseVocabTxt(fs.readFileSync(path.join(TEXT, 'wordpiece-cased-vocab.txt'), 'utf8')))).toBe(false);
    expect(vocabIsUncased(parseVocabTxt(fs.readFileSync(path.join(TEXT, 'teacher-vocab.txt'), 'utf8')))).toBe(true);
    // the cased vocabulary keeps "Hello" apart from "hello" (ids are line numbers: Hello 26, hello 27)
    expect(TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-cased-vocab.txt')).encode('Hello hello', null, { addSpecialTokens: false }).ids).toEqual([26, 27]);
    expect(TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-cased-vocab.txt'), { lowercase: true }).encode('Hello', null, { addSpecialTokens: false }).ids).toEqual([27]);
  });

  it('a folder is searched for tokenizer.json, then vocab.txt', () => {
    const d = tmpDir();
    fs.copyFileSync(path.join(TEXT, 'wordpiece-uncased-vocab.txt'), path.join(d, 'vocab.txt'));
    expect(TextTokenizer.find(path.join(d, 'model.onnx'))).toBe(path.join(d, 'vocab.txt'));
    fs.copyFileSync(path.join(TEXT, 'bpe-tokenizer.json'), path.join(d, 'tokenizer.json'));
    expect(TextTokenizer.find(path.join(d, 'model.onnx'))).toBe(path.join(d, 'tokenizer.json'));
    expect(TextTokenizer.fromFile(d).source).toBe('tokenizer.json');
  });

  it('bad tokenizer files get one-line errors', () => {
    const d = tmpDir();
    const write = (name: string, text: string) => {
      fs.writeFileSync(path.join(d, name), text);
      return path.join(d, name);
    };
    const fails = (f: () => unknown, re: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BortError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toMatch(/\n/);
    };
    fails(() => TextTokenizer.fromFile(path.join(d, 'missing.txt')), /cannot read the tokenizer '.*missing\.txt': no such file/);
    fails(() => TextTokenizer.fromFile(write('empty.txt', '')), /'empty\.txt' is empty/);
    fails(() => TextTokenizer.fromFile(write('nounk.txt', '[PAD]\n[CLS]\n[SEP]\nthe\n')), /has no \[UNK\] token/);
    fails(() => TextTokenizer.fromFile(write('bad.json', '{"model": ')), /'.*bad\.json' is not valid JSON/);
    fails(() => TextTokenizer.fromFile(write('nomodel.json', '{"version": "1.0"}')), /has no tokenizer model/);
    fails(() => TextTokenizer.find(path.join(d, 'model.onnx')), /no tokenizer\.json or vocab\.txt beside/);
  });

  it('truncation: refused by default, longest_first / only_second on request', () => {
    const tok = TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-uncased-vocab.txt'));
    expect(() => tok.encode('the quick brown fox', null, { maxLength: 5 })).toThrow(/the text has 6 tokens but the model takes at most 5/);
    expect(tok.encode('the quick brown fox', null, { maxLength: 5, truncation: 'longest_first' }).tokens).toEqual(['[CLS]', 'the', 'quick', 'brown', '[SEP]']);
    const q = tok.encode('where is paris ?', 'paris is a city in france .', { maxLength: 10, truncation: 'only_second' });
    expect(q.tokens).toEqual(['[CLS]', 'where', 'is', 'paris', '?', '[SEP]', 'paris', 'is', 'a', '[SEP]']);
    expect(() => tok.encode('where is paris ? the quick brown fox', 'paris', { maxLength: 8, truncation: 'only_second' })).toThrow(/the first text alone needs 11 tokens with the special tokens, more than the model's 8 positions/);
  });

  it('offsets slice the source text, special tokens get [0, 0]', () => {
    const tok = TextTokenizer.fromFile(path.join(TEXT, 'wordpiece-uncased-vocab.txt'));
    const text = 'Héllo,  WORLD!';
    const e = tok.encode(text);
    expect(e.offsets.map(([a, b]) => text.slice(a, b))).toEqual(['', 'Héllo', ',', 'WORLD', '!', '']);
  });
});

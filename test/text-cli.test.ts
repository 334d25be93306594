// The text commands from the command line: inputs from arguments, --file and stdin; plain and --json
// output in input order; vector files; one-line errors with exit 1 and no output file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildSynthModel } from '../lib/synth/bert.js';
import { saveModel } from '../lib/onnx/io.js';
import { GraphBuilder, modelOf, tensorInfo, DataType } from '../lib/synth/builder.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const VOCAB = path.join(FIXTURES, 'text', 'wordpiece-uncased-vocab.txt');
let dir = '';
let mlm = '';
let base = '';

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectFailure(r: ReturnType<typeof cli>, message: RegExp, where = dir, before?: string[]) {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bort-compress: error: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (before) expect(fs.readdirSync(where).sort()).toEqual(before);
}

beforeAll(() => {
  dir = tmpDir('bort-text-cli-');
  mlm = path.join(dir, 'mlm', 'model.onnx');
  base = path.join(dir, 'base.onnx');
  fs.mkdirSync(path.dirname(mlm));
  // vocab.txt beside the masked-LM: found without --vocab
  fs.copyFileSync(VOCAB, path.join(dir, 'mlm', 'vocab.txt'));
  expect(cli(['synth', '--arch', '2,2,32,64', '--vocab', '48', '--head', 'mlm', '--positions', '24', '--seed', '7', '-o', mlm]).code).toBe(0);
  expect(cli(['synth', '--arch', '2,2,32,64', '--vocab', '48', '--positions', '24', '-o', base]).code).toBe(0);
});

describe('text commands', () => {
  it('fill-mask --json: one object per input, in order, top-k predictions', () => {
    const r = cli(['fill-mask', mlm, '--json', '--top-k', '2', 'the [MASK] fox', 'hello [MASK]', 'where is [MASK] ?']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.text)).toEqual(['the [MASK] fox', 'hello [MASK]', 'where is [MASK] ?']);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['text', 'predictions']);
      expect(l.predictions).toHaveLength(2);
      for (const p of l.predictions) expect(Object.keys(p)).toEqual(['token', 'id', 'score']);
      expect(l.predictions[0].score).toBeGreaterThanOrEqual(l.predictions[1].score);
    }
  });

  it('inputs from --file and from stdin give the same plain output as arguments', () => {
    const texts = ['the [MASK] fox', 'hello [MASK] world'];
    const file = path.join(dir, 'in.txt');
    fs.writeFileSync(file, texts.join('\n') + '\n');
    const a = cli(['fill-mask', mlm, '--vocab', VOCAB, ...texts]);
    const f = cli(['fill-mask', mlm, '--vocab', VOCAB, '--file', file]);
    const s = cli(['fill-mask', mlm, '--vocab', VOCAB], texts.join('\n'));
    expect(a.code).toBe(0);
    expect(a.stdout.trim().split('\n')).toHaveLength(2);
    expect(a.stdout).toMatch(/^the \[MASK\] fox\t\S+ \d\.\d{4}/);
    expect(f.stdout).toBe(a.stdout);
    expect(s.stdout).toBe(a.stdout);
  });

  it('a 10,000-line file streams through, every line answered in order', () => {
    const file = path.join(dir, 'many.txt');
    fs.writeFileSync(file, Array.from({ length: 10_000 }, (_, i) => `the [MASK] fox ${'a '.repeat(i % 9)}${i}`).join('\n'));
    const r = cli(['fill-mask', mlm, '--file', file, '--batch', '32', '--top-k', '1']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(10_000);
    expect(lines[0].startsWith('the [MASK] fox 0\t')).toBe(true);
    expect(lines[9999].startsWith(`the [MASK] fox ${'a '.repeat(9999 % 9)}9999\t`)).toBe(true);
  }, 120_000);

  it('embed -o writes a .npy whose rows equal the --json vectors; .f32 holds raw rows', () => {
    const texts = ['hello world', 'the quick brown fox'];
    const npy = path.join(dir, 'v.npy');
    const f32 = path.join(dir, 'v.f32');
    const j = cli(['embed', base, '--vocab', VOCAB, '--pooling', 'mean', '--normalize', '--json', ...texts]);
    expect(j.code).toBe(0);
    const vecs = j.stdout.trim().split('\n').map((l) => JSON.parse(l).embedding as number[]);
    expect(vecs[0]).toHaveLength(32);
    expect(cli(['embed', base, '--vocab', VOCAB, '--pooling', 'mean', '--normalize', '-o', npy, ...texts]).stdout).toMatch(/wrote 2 vectors of 32/);
    expect(cli(['embed', base, '--vocab', VOCAB, '--pooling', 'mean', '--normalize', '-o', f32, ...texts]).code).toBe(0);
    const b = fs.readFileSync(npy);
    expect(b.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
    const hlen = b.readUInt16LE(8);
    expect(b.subarray(10, 10 + hlen).toString('latin1')).toMatch(/'descr': '<f4', 'fortran_order': False, 'shape': \(2, 32\)/);
    expect((10 + hlen) % 64).toBe(0);
    const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hlen, b.byteOffset + b.length));
    expect(Array.from(data)).toEqual(vecs.flat().map(Math.fround));
    const raw = fs.readFileSync(f32);
    expect(Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)))).toEqual(Array.from(data));
  });

  it('classify: labels from the model\'s metadata (id2label), else --labels', () => {
    const model = buildSynthModel({ arch: '2,2,32,64', vocab: 48, head: 'cls', labels: 2, seed: 3 });
    model.metadataProps = [{ key: 'id2label', value: JSON.stringify({ 0: 'negative', 1: 'positive' }) }];
    const file = path.join(dir, 'cls.onnx');
    saveModel(model, file);
    const r = cli(['classify', file, '--vocab', VOCAB, '--json', 'hello world']);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.scores.map((s: { label: string }) => s.label).sort()).toEqual(['negative', 'positive']);
    expect(['negative', 'positive']).toContain(o.label);
    const l = cli(['classify', file, '--vocab', VOCAB, '--labels', 'no,yes', 'hello world']);
    expect(l.stdout).toMatch(/^hello world\t(no|yes) \d\.\d{4}\n$/);
  });

  it('answer: a QA model the native engine refuses runs on --engine onnxruntime; the span comes out of the context', () => {
    // a stand-in QA head: start logit 5 on "paris" (id 33), end logit 5 on "france" (id 38), 0 elsewhere
    const g = new GraphBuilder(14);
    const start = new Float32Array(48), end = new Float32Array(48);
    start[33] = 5;
    end[38] = 5;
    g.node('Gather', [g.init('start_table', [48], start), 'input_ids'], { axis: 0 }, 'start_logits');
    g.node('Gather', [g.init('end_table', [48], end), 'input_ids'], { axis: 0 }, 'end_logits');
    const file = path.join(dir, 'qa.onnx');
    saveModel(modelOf(g.graph('qa', [tensorInfo('input_ids', DataType.INT64, ['batch', 'seq'])],
      [tensorInfo('start_logits', DataType.FLOAT, ['batch', 'seq']), tensorInfo('end_logits', DataType.FLOAT, ['batch', 'seq'])]), 14, 'test'), file);
    const args = ['answer', file, '--vocab', VOCAB, '--question', 'Where is Paris?', '--context', 'Oh, Paris is a city in France.'];
    const refused = cli(args);
    expectFailure(refused, /not|cannot|recognise/);
    const r = cli([...args, '--engine', 'onnxruntime', '--json']);
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ question: 'Where is Paris?', answer: 'Paris is a city in France', start: 4, end: 29 });
    expect(o.score).toBeGreaterThan(0.5);
    // JSON lines from stdin
    const s = cli(['answer', file, '--vocab', VOCAB, '--engine', 'onnxruntime'], '{"question": "where?", "context": "to paris from france"}\n');
    expect(s.stdout).toMatch(/^paris from france\t\d\.\d{4}\n$/);
  });

  it('answer: a BERT QA head (start_logits, end_logits) runs on the native engine and gives onnxruntime\'s span', () => {
    const file = path.join(dir, 'bert-qa.onnx');
    saveModel(buildSynthModel({ arch: '2,2,32,64', vocab: 48, head: 'qa', seed: 5 }), file);
    const args = ['answer', file, '--vocab', VOCAB, '--json', '--question', 'Where is Paris?', '--context', 'Oh, Paris is a city in France.'];
    const native = cli(args);
    expect(native.stderr).toBe('');
    expect(native.code).toBe(0);
    const ours = JSON.parse(native.stdout);
    const ort = JSON.parse(cli([...args, '--engine', 'onnxruntime']).stdout);
    expect([ours.start, ours.end, ours.answer]).toEqual([ort.start, ort.end, ort.answer]);
    expect(ours.score).toBeCloseTo(ort.score, 4);
    expect('Oh, Paris is a city in France.'.slice(ours.start, ours.end)).toBe(ours.answer);
  });

  it('--help for each text command', () => {
    for (const c of ['fill-mask', 'embed', 'classify', 'answer']) expect(cli([c, '--help']).stdout).toMatch(new RegExp(`bort-compress ${c} MODEL`));
    expect(cli(['--help']).stdout).toMatch(/bort-compress fill-mask MODEL/);
  });
});

describe('text commands: bad input gets one line, exit 1, no output file', () => {
  it('no vocabulary beside the model, or a --vocab that does not exist', () => {
    expectFailure(cli(['fill-mask', base, 'the [MASK]']), /no tokenizer\.json or vocab\.txt beside '.*base\.onnx'.*--vocab/);
    expectFailure(cli(['fill-mask', mlm, '--vocab', path.join(dir, 'nope.txt'), 'the [MASK]']), /cannot read the tokenizer '.*nope\.txt': no such file/);
  });

  it('an empty text, a text too long without --truncate, no [MASK]', () => {
    expectFailure(cli(['fill-mask', mlm, 'the [MASK]', '']), /input 2 is empty/);
    const long = `the [MASK] ${'fox '.repeat(40)}`;
    expectFailure(cli(['fill-mask', mlm, long]), /input 1: the text has 44 tokens but the model takes at most 24: .*--truncate/);
    expect(cli(['fill-mask', mlm, '--truncate', long]).code).toBe(0);
    expectFailure(cli(['fill-mask', mlm, 'no mask here']), /input 1 has no \[MASK\]/);
  });

  it('embed -o: an error part-way leaves no file', () => {
    const before = fs.readdirSync(dir).sort();
    const r = cli(['embed', base, '--vocab', VOCAB, '-o', path.join(dir, 'bad.npy'), '--batch', '1', 'hello', 'world', '']);
    expectFailure(r, /input 3 is empty/, dir, before);
  });

  it('answer on a model without a QA head; bad options', () => {
    expectFailure(cli(['answer', base, '--vocab', VOCAB, '--question', 'where?', '--context', 'paris']), /answer needs a question-answering head/);
    expectFailure(cli(['answer', base, '--vocab', VOCAB, '--question', 'where?']), /--context is missing/);
    expectFailure(cli(['fill-mask', mlm, '--top-k', '0', 'the [MASK]']), /--top-k '0' is not a positive whole number/);
    expectFailure(cli(['embed', base, '--vocab', VOCAB, '--pooling', 'max', 'x']), /--pooling 'max' is unknown/);
    // typed values reach the one-line message escaped: no terminal escape, no second line
    const r = cli(['embed', base, '--vocab', VOCAB, '--pooling', 'max\u001b[2J\nEVIL', 'x']);
    expectFailure(r, /--pooling 'max\\x1b\[2J\\x0aEVIL' is unknown/);
    expect(r.stderr).not.toContain('\u001b');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expectFailure(cli(['fill-mask', mlm, '--bogus']), /Unknown option '--bogus'/);
  });
});

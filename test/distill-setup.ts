/**
 * The distillation tests' shared setup (test/distill.test.ts, test/distill-intermediate.test.ts,
 * test/theseus.test.ts): a tiny masked-LM teacher with the 8,000-word teacher vocabulary, a student cut
 * from it with `first`, and a few lines of corpus, in a fresh temporary folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compress } from '../lib/compress.js';
import type { DistillOptions } from '../lib/distill/distill.js';
import { synth } from '../lib/synth/bert.js';
import { FIXTURES, tmpDir } from './helpers.js';

export const TEACHER_VOCAB = path.join(FIXTURES, 'text', 'teacher-vocab.txt');

export const CORPUS_LINES = [
  'the cat sat on the mat and looked at the dog .',
  'a man walks into a bar , and the bar is closed .',
  'never trust a computer you cannot throw out of a window .',
  'the quick brown fox jumps over the lazy dog again and again .',
  'if at first you do not succeed , try , try again .',
  'all that glitters is not gold , but it is shiny .',
];

export interface DistillSetup {
  /** Folder name prefix in the temporary directory. */
  prefix: string;
  teacherArch: string;
  teacherSeed: number;
  studentArch: string;
  /** The corpus (default: every line of CORPUS_LINES). */
  lines?: string[];
  /** The run's options besides teacher, student, corpus and vocab. */
  run: Omit<DistillOptions, 'output' | 'teacher' | 'student' | 'corpus' | 'vocab'>;
}

/** Writes the teacher, the student and the corpus; returns the folder and the options that name them. */
export async function distillSetup(s: DistillSetup): Promise<{ dir: string; base: Omit<DistillOptions, 'output'> }> {
  const dir = tmpDir(s.prefix);
  const teacher = path.join(dir, 'teacher.onnx');
  synth({ arch: s.teacherArch, vocab: 8000, maxPositions: 32, head: 'mlm', seed: s.teacherSeed, output: teacher });
  const student = path.join(dir, 'student.onnx');
  await compress(teacher, { arch: s.studentArch, strategy: 'first', output: student });
  const corpus = path.join(dir, 'corpus.txt');
  fs.writeFileSync(corpus, (s.lines ?? CORPUS_LINES).join('\n') + '\n');
  return { dir, base: { teacher, student, corpus, vocab: TEACHER_VOCAB, ...s.run } };
}

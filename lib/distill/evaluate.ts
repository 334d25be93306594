/**
 * Held-out masked-word evaluation during distillation: the cases of an mlm-eval.json (input_ids with
 * [CLS]/[SEP], masked_index, label), the masked token replaced by [MASK], attention mask all ones,
 * token types all zero; a hit when the arg-max at the masked position equals the label, agreement
 * when it equals the teacher's arg-max.
 */
import * as fs from 'node:fs';
import { BortError, quoteName } from '../errors.js';

export interface EvalCase {
  input_ids: number[];
  masked_index: number;
  label: number;
}

export interface EvalScore {
  step: number;
  cases: number;
  /** Share of cases where the student's top word is the teacher's. */
  agreement: number;
  /** Share of cases where the student's top word is the label. */
  accuracy: number;
}

/** Runs [batch, seq] ids (mask all ones, types zero) and returns logits [batch, seq, vocab]. */
export type MlmRunner = (ids: Int32Array, batch: number, seq: number) => Promise<Float32Array>;

export function readEvalCases(file: string, vocab: number): EvalCase[] {
  let cases: unknown;
  try {
    cases = JSON.parse(fs.readFileSync(file, 'utf8')).cases;
  } catch (e) {
    throw new BortError(`cannot read the evaluation cases ${quoteName(file)}: ${(e as Error).message.split('\n')[0].slice(0, 160)}`, 'give an mlm-eval.json: { "cases": [{ "input_ids", "masked_index", "label" }] }');
  }
  if (!Array.isArray(cases) || cases.length === 0) throw new BortError(`${quoteName(file)} has no "cases" array`, 'give an mlm-eval.json: { "cases": [{ "input_ids", "masked_index", "label" }] }');
  const id = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocab;
  cases.forEach((c: EvalCase, i) => {
    const ok = c && Array.isArray(c.input_ids) && c.input_ids.length > 0 && c.input_ids.every(id) && id(c.label) &&
      Number.isInteger(c.masked_index) && c.masked_index >= 0 && c.masked_index < c.input_ids.length;
    if (!ok) throw new BortError(`evaluation case ${i} of ${quoteName(file)} is malformed (ids within the vocabulary of ${vocab}, masked_index inside them)`, 'give an mlm-eval.json written for this vocabulary');
  });
  return cases as EvalCase[];
}

/** The arg-max word at each case's masked position; equal-length cases run together, 16 at a time. */
export async function topWords(run: MlmRunner, cases: EvalCase[], maskId: number, vocab: number): Promise<Int32Array> {
  const out = new Int32Array(cases.length);
  const byLen = new Map<number, number[]>();
  cases.forEach((c, i) => byLen.set(c.input_ids.length, [...(byLen.get(c.input_ids.length) ?? []), i]));
  for (const [S, idx] of byLen) {
    for (let s = 0; s < idx.length; s += 16) {
      const group = idx.slice(s, s + 16);
      const ids = new Int32Array(group.length * S);
      group.forEach((ci, b) => {
        ids.set(cases[ci].input_ids, b * S);
        ids[b * S + cases[ci].masked_index] = maskId;
      });
      const logits = await run(ids, group.length, S);
      group.forEach((ci, b) => {
        const at = (b * S + cases[ci].masked_index) * vocab;
        let best = 0;
        for (let j = 1; j < vocab; j++) if (logits[at + j] > logits[at + best]) best = j;
        out[ci] = best;
      });
    }
  }
  return out;
}

export function score(step: number, student: Int32Array, teacher: Int32Array, cases: EvalCase[]): EvalScore {
  let agree = 0, hits = 0;
  cases.forEach((c, i) => {
    if (student[i] === teacher[i]) agree++;
    if (student[i] === c.label) hits++;
  });
  return { step, cases: cases.length, agreement: agree / cases.length, accuracy: hits / cases.length };
}

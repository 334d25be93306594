/**
 * Labelled examples for fine-tuning, read from JSON lines: one object a line, `{"text": "…", "label": "…"}`
 * or, for text pairs, `{"text": "…", "text_pair": "…", "label": "…"}`. Blank lines are skipped. A bad line
 * (not JSON, not an object, a missing or non-string field, a label the training set does not have) is
 * refused with a BortError that names the file and the line.
 */
import * as fs from 'node:fs';
import { BortError, quoteName } from '../errors.js';

export interface Example {
  text: string;
  pair?: string;
  label: string;
  /** 1-based line number in the file (for messages). */
  line: number;
}

const FORMAT = 'write one JSON object a line: {"text": "...", "label": "..."} (pairs: {"text": "...", "text_pair": "...", "label": "..."})';

/** Every example of a JSON-lines file; `what` names the file's role in messages ('training', 'dev'). */
export function readExamples(file: string, what: string): Example[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BortError(`cannot read the ${what} file ${quoteName(file)}: ${(e as Error).message}`, 'give a JSON-lines file, ' + FORMAT);
  }
  const out: Example[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const at = `${quoteName(file)} line ${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new BortError(`${at} is not valid JSON (${(e as Error).message})`, FORMAT);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BortError(`${at} is not a JSON object`, FORMAT);
    const o = v as Record<string, unknown>;
    for (const key of ['text', 'label']) {
      if (!(key in o)) throw new BortError(`${at} has no "${key}" field`, FORMAT);
      if (typeof o[key] !== 'string') throw new BortError(`${at}: "${key}" is a ${o[key] === null ? 'null' : typeof o[key]}, not a string`, `write the ${key} as a JSON string; ${FORMAT}`);
    }
    if ('text_pair' in o && typeof o.text_pair !== 'string') {
      throw new BortError(`${at}: "text_pair" is a ${o.text_pair === null ? 'null' : typeof o.text_pair}, not a string`, `write the second text as a JSON string or leave the field out; ${FORMAT}`);
    }
    if ((o.label as string) === '') throw new BortError(`${at}: "label" is empty`, 'give every example a label name');
    out.push({ text: o.text as string, pair: o.text_pair as string | undefined, label: o.label as string, line: i + 1 });
  }
  if (!out.length) throw new BortError(`the ${what} file ${quoteName(file)} has no examples`, FORMAT);
  return out;
}

/**
 * The label set of the training examples, in a fixed order: sorted by name (JavaScript string order,
 * i.e. by UTF-16 code units), so the same data gives the same label ids whatever the line order.
 */
export function labelSet(train: Example[], file: string): string[] {
  const labels = [...new Set(train.map((e) => e.label))].sort();
  if (labels.length < 2) {
    throw new BortError(`the training file ${quoteName(file)} has only one label (${quoteName(labels[0])})`, 'a classifier needs examples of at least 2 labels');
  }
  return labels;
}

/** Refuses the first example whose label is not in `labels` (a dev label the training never saw). */
export function checkLabels(examples: Example[], labels: string[], file: string, trainFile: string): void {
  const known = new Set(labels);
  for (const e of examples) {
    if (!known.has(e.label)) {
      throw new BortError(`${quoteName(file)} line ${e.line}: label ${quoteName(e.label)} is not among the training labels (${labels.map(quoteName).join(', ')})`,
        `fix the label, or add examples of it to the training file ${quoteName(trainFile)}`);
    }
  }
}

/**
 * classify: a sequence classifier's label probabilities (softmax of its logits). Label names come from
 * the caller, else the model's metadata (`id2label`, `labels`), else LABEL_0, LABEL_1, …
 */
import { BortError } from '../errors.js';
import { softmax } from './scores.js';
import { encodeFor, needOutput, textInput, type Prepared, type Task, type TaskContext } from './task.js';

export interface ClassifyResult {
  text: string;
  label: string;
  score: number;
  scores: { label: string; score: number }[];
}

export function classifyTask(ctx: TaskContext, labels?: string[]): Task<string, Prepared & { text: string }, ClassifyResult> {
  needOutput(ctx.backend, 'classifier', 'classify', 'a sequence-classification head');
  const n = ctx.backend.labels!;
  const names = labels ?? Array.from({ length: n }, (_, i) => `LABEL_${i}`);
  if (names.length !== n) throw new BortError(`${names.length} label names given but the classifier has ${n} labels`, `give ${n} names, e.g. --labels ${Array.from({ length: n }, (_, i) => `l${i}`).join(',')}`);
  return {
    name: 'classify',
    prepare(input, index) {
      const text = textInput(input, index);
      return { text, enc: encodeFor(ctx, index, text) };
    },
    finish(out, row, _b, p) {
      const probs = softmax(out.classifier!, row * n, n);
      const scores = names.map((label, i) => ({ label, score: probs[i] })).sort((a, b) => b.score - a.score);
      return { text: p.text, label: scores[0].label, score: scores[0].score, scores };
    },
  };
}

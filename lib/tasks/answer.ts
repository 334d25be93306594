/**
 * answer: extractive question answering with a QA head (start and end logits per token). The answer is
 * the context span (start token i ≤ end token j, at most `maxAnswerTokens` long, both in the context)
 * with the largest start[i] + end[j]; its score is p_start(i) · p_end(j), the softmaxes taken over the
 * context tokens. The span is cut from the context by the tokens' character offsets.
 */
import { BortError } from '../errors.js';
import { encodeFor, needOutput, textInput, type Prepared, type Task, type TaskContext } from './task.js';

export interface AnswerInput {
  question: string;
  context: string;
}

export interface AnswerResult {
  question: string;
  answer: string;
  score: number;
  /** [start, end) of the answer in the context (JavaScript string indices). */
  start: number;
  end: number;
}

export interface Span {
  start: number;
  end: number;
  score: number;
}

/**
 * The best span over the tokens for which `allowed(i)` holds, from start/end logits at
 * logits[from + i]; null when no token is allowed.
 */
export function bestSpan(start: ArrayLike<number>, end: ArrayLike<number>, from: number, n: number, allowed: (i: number) => boolean, maxAnswerTokens = 30): Span | null {
  let smax = -Infinity, emax = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!allowed(i)) continue;
    smax = Math.max(smax, start[from + i]);
    emax = Math.max(emax, end[from + i]);
  }
  if (smax === -Infinity) return null;
  let ssum = 0, esum = 0;
  for (let i = 0; i < n; i++) {
    if (!allowed(i)) continue;
    ssum += Math.exp(start[from + i] - smax);
    esum += Math.exp(end[from + i] - emax);
  }
  let best: Span | null = null;
  let bestLogit = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!allowed(i)) continue;
    for (let j = i; j < n && j < i + maxAnswerTokens; j++) {
      if (!allowed(j)) continue;
      const l = start[from + i] + end[from + j];
      if (l > bestLogit) {
        bestLogit = l;
        best = { start: i, end: j, score: (Math.exp(start[from + i] - smax) / ssum) * (Math.exp(end[from + j] - emax) / esum) };
      }
    }
  }
  return best;
}

interface AnswerPrepared extends Prepared {
  question: string;
  context: string;
}

export function answerTask(ctx: TaskContext, maxAnswerTokens = 30): Task<AnswerInput, AnswerPrepared, AnswerResult> {
  needOutput(ctx.backend, 'start', 'answer', 'a question-answering head (start and end logits)');
  return {
    name: 'answer',
    prepare(input, index) {
      if (!input || typeof input !== 'object') throw new TypeError(`input ${index + 1}: answer takes { question, context }`);
      const question = textInput(input.question, index, 'question');
      const context = textInput(input.context, index, 'context');
      return { question, context, enc: encodeFor(ctx, index, question, context, 'only_second') };
    },
    finish(out, row, b, p) {
      const seq = p.enc.sequenceIds;
      const span = bestSpan(out.start!, out.end!, row * b.seq, p.enc.ids.length, (i) => seq[i] === 1, maxAnswerTokens);
      if (!span) throw new BortError('the context has no tokens left after truncation', 'shorten the question');
      const s = p.enc.offsets[span.start][0], e = p.enc.offsets[span.end][1];
      return { question: p.question, answer: p.context.slice(s, e), score: span.score, start: s, end: e };
    },
  };
}

/**
 * fill-mask: the k most likely tokens at each [MASK] of a text, with their probabilities (softmax of the
 * masked-LM logits at that position).
 */
import { BortError } from '../errors.js';
import { softmax, topK } from './scores.js';
import { encodeFor, needOutput, textInput, type Prepared, type Task, type TaskContext } from './task.js';

export interface FillMaskPrediction {
  token: string;
  id: number;
  score: number;
}

export interface FillMaskResult {
  text: string;
  /** The predictions at the (first) mask. */
  predictions: FillMaskPrediction[];
  /** With more than one mask: the predictions at each, in order. */
  masks?: FillMaskPrediction[][];
}

interface FillMaskPrepared extends Prepared {
  text: string;
  positions: number[];
}

export function fillMaskTask(ctx: TaskContext, topk = 5): Task<string, FillMaskPrepared, FillMaskResult> {
  needOutput(ctx.backend, 'mlm', 'fill-mask', 'a masked-LM head (logits over the vocabulary)');
  const mask = ctx.tokenizer.mask;
  if (!mask) throw new BortError(`the tokenizer ${ctx.tokenizer.source} has no [MASK] or <mask> token`, 'give the vocabulary the masked-LM was trained with');
  if (!Number.isInteger(topk) || topk < 1) throw new RangeError(`top-k must be a positive integer, got ${topk}`);
  const vocab = ctx.backend.vocab;
  return {
    name: 'fill-mask',
    prepare(input, index) {
      const text = textInput(input, index);
      const enc = encodeFor(ctx, index, text);
      const positions: number[] = [];
      enc.ids.forEach((id, i) => {
        if (id === mask.id && enc.sequenceIds[i] !== null) positions.push(i);
      });
      if (positions.length === 0) {
        const cut = ctx.truncate && text.includes(mask.token) ? ' (it was cut off by --truncate)' : '';
        throw new BortError(`input ${index + 1} has no ${mask.token}${cut}`, `put ${mask.token} where a word should be predicted`);
      }
      return { enc, text, positions };
    },
    finish(out, row, b, p) {
      const logits = out.mlm!;
      const at = (pos: number) => {
        const probs = softmax(logits, (row * b.seq + pos) * vocab, vocab);
        return topK(probs, Math.min(topk, vocab)).map((id) => ({ token: ctx.tokenizer.idToToken(id) ?? String(id), id, score: probs[id] }));
      };
      const all = p.positions.map(at);
      return all.length > 1 ? { text: p.text, predictions: all[0], masks: all } : { text: p.text, predictions: all[0] };
    },
  };
}

/**
 * embed: one vector per text from the final hidden states: the first token's ([CLS]) or the mean over the
 * text's tokens (attention mask 1, special tokens included, as sentence-transformers does), optionally
 * scaled to unit length.
 */
import { encodeFor, needOutput, textInput, type Prepared, type Task, type TaskContext } from './task.js';

export type Pooling = 'cls' | 'mean';

export interface EmbedResult {
  text: string;
  embedding: Float32Array;
}

export function embedTask(ctx: TaskContext, pooling: Pooling = 'cls', normalize = false): Task<string, Prepared & { text: string }, EmbedResult> {
  if (pooling !== 'cls' && pooling !== 'mean') throw new RangeError(`pooling must be 'cls' or 'mean', got ${String(pooling)}`);
  needOutput(ctx.backend, 'hidden', 'embed', 'hidden states (last_hidden_state)');
  const h = ctx.backend.hidden;
  return {
    name: 'embed',
    prepare(input, index) {
      const text = textInput(input, index);
      return { text, enc: encodeFor(ctx, index, text) };
    },
    finish(out, row, b, p) {
      const hs = out.hidden!;
      const v = new Float64Array(h);
      const n = pooling === 'cls' ? 1 : p.enc.ids.length;
      for (let t = 0; t < n; t++) {
        const base = (row * b.seq + t) * h;
        for (let j = 0; j < h; j++) v[j] += hs[base + j];
      }
      let scale = 1 / n;
      if (normalize) {
        let ss = 0;
        for (let j = 0; j < h; j++) ss += v[j] * v[j];
        scale = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      }
      return { text: p.text, embedding: Float32Array.from(v, (x) => x * scale) };
    },
  };
}

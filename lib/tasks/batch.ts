/**
 * A batch of encodings of different lengths as one padded [batch, seq] block: ids padded with the
 * tokenizer's pad id, attention_mask 1 on real tokens and 0 on padding, token types 0 on padding.
 * `length`: pad every row to exactly this many tokens (a model whose inputs declare a fixed length).
 */
import type { Encoding } from '../text/tokenizer.js';
import type { PaddedBatch } from './backend.js';

export function padBatch(encodings: Encoding[], padId: number, typeVocab: number, length?: number): PaddedBatch {
  const batch = encodings.length;
  const longest = Math.max(1, ...encodings.map((e) => e.ids.length));
  if (length !== undefined && longest > length) throw new RangeError(`a sequence of ${longest} tokens does not fit the model's fixed length ${length}`);
  const seq = length ?? longest;
  const ids = new Int32Array(batch * seq).fill(padId);
  const mask = new Int32Array(batch * seq);
  const types = new Int32Array(batch * seq);
  encodings.forEach((e, b) => {
    const row = b * seq;
    for (let i = 0; i < e.ids.length; i++) {
      ids[row + i] = e.ids[i];
      mask[row + i] = 1;
      // a model with one token type embeds every token as type 0
      types[row + i] = typeVocab > 1 ? e.typeIds[i] : 0;
    }
  });
  return { ids, mask, types, batch, seq };
}

/**
 * A batch of encodings of different lengths as one padded [batch, seq] block: ids padded with the
 * tokenizer's pad id, attention_mask 1 on real tokens and 0 on padding, token types 0 on padding.
 */
import type { Encoding } from '../text/tokenizer.js';
import type { PaddedBatch } from './backend.js';

export function padBatch(encodings: Encoding[], padId: number, typeVocab: number): PaddedBatch {
  const batch = encodings.length;
  const seq = Math.max(1, ...encodings.map((e) => e.ids.length));
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

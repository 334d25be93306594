/**
 * How large a model `synth` may be asked for: every weight must fit one typed array and one protobuf
 * field (at most 2²⁸ float32 values, 1 GiB) and the whole model 2³⁰ parameters (4 GiB of float32),
 * so that a mistyped size is refused before anything is allocated.
 */
import type { Arch } from '../bert/model.js';
import { archParameters } from '../bert/params.js';
import { formatArch } from '../extract/arch.js';
import { BortError } from '../errors.js';

export const MAX_TENSOR_VALUES = 2 ** 28;
export const MAX_PARAMETERS = 2 ** 30;

export function checkSynthSize(arch: Arch, s: { vocab: number; maxPositions: number; typeVocab: number; labels: number }, head: string): void {
  const H = arch.hidden;
  const tensors: [string, number][] = [
    ['word embeddings (vocab × hidden)', s.vocab * H],
    ['position embeddings (positions × hidden)', s.maxPositions * H],
    ['token-type embeddings (type-vocab × hidden)', s.typeVocab * H],
    ['the attention projections (hidden × hidden)', H * H],
    ['the FFN weights (hidden × intermediate)', H * arch.intermediate],
    ['the classifier (hidden × labels)', head === 'cls' || head === 'token-cls' ? H * s.labels : 0],
  ];
  const fix = 'choose smaller sizes';
  for (const [what, n] of tensors) {
    if (n > MAX_TENSOR_VALUES) throw new BortError(`${what} would hold ${n.toLocaleString('en-US')} values, more than ${MAX_TENSOR_VALUES.toLocaleString('en-US')}`, fix);
  }
  const total = archParameters(arch, {
    vocab: s.vocab, positions: s.maxPositions, typeVocab: s.typeVocab, pooler: head !== 'mlm', mlm: head === 'mlm',
    classifiers: head === 'cls' ? [s.labels] : [],
  }) + (head === 'mlm' ? s.vocab * H : 0);
  if (total > MAX_PARAMETERS) {
    throw new BortError(`a ${formatArch(arch)} model would have ${total.toLocaleString('en-US')} parameters, more than ${MAX_PARAMETERS.toLocaleString('en-US')}`, fix);
  }
}

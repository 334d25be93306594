/** `bort-compress fill-mask MODEL [TEXT…]`: the most likely tokens at [MASK]. */
import { COMMON_HELP, openPipeline, parse, positiveInt, score, type Out } from './text-command.js';
import { inputLines } from './text-input.js';

export const FILL_MASK_HELP = `bort-compress fill-mask MODEL.onnx [--vocab V] [--top-k K] ["text with [MASK]" …]

Predicts the K most likely tokens (default 5) at each [MASK] of each text with a masked-LM model, with
their probabilities. Plain output: the text, a tab, then "token score" pairs; --json:
{"text", "predictions": [{"token", "id", "score"}, …]} (with several masks, also "masks": one list each).

${COMMON_HELP}
  --top-k K          predictions per mask (default 5)`;

export async function fillMaskCommand(args: string[], out: Out): Promise<void> {
  const { values: o, positionals } = parse(args, { 'top-k': { type: 'string' } }, 'fill-mask');
  if (o.help) return out(FILL_MASK_HELP);
  const p = await openPipeline('fill-mask', positionals[0], o, { topK: positiveInt(o['top-k'], 'top-k', 5) });
  try {
    for await (const r of p.stream(inputLines(positionals.slice(1), o.file, 'fill-mask'))) {
      if (o.json) out(JSON.stringify(r));
      else out(`${r.text}\t${(r.masks ?? [r.predictions]).map((m) => m.map((q) => `${q.token} ${score(q.score)}`).join('  ')).join('\t')}`);
    }
  } finally {
    await p.close();
  }
}

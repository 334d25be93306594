/** `bort-compress classify MODEL [TEXT…]`: a sequence classifier's label for each text. */
import { BortError, escapeControls, quoteName } from '../errors.js';
import { COMMON_HELP, openPipeline, parse, score, type Out } from './text-command.js';
import { inputLines } from './text-input.js';

export const CLASSIFY_HELP = `bort-compress classify MODEL.onnx [--labels a,b,c] [TEXT …]

Runs a sequence-classification model on each text. Plain output: the text, a tab, the best label and its
probability; --json: {"text", "label", "score", "scores": [{"label", "score"}, …]} (most likely first).
Label names: --labels, else the model's metadata_props (id2label or labels), else LABEL_0, LABEL_1, …

${COMMON_HELP}
  --labels a,b,c     label names in the classifier's order`;

export async function classifyCommand(args: string[], out: Out): Promise<void> {
  const { values: o, positionals } = parse(args, { labels: { type: 'string' } }, 'classify');
  if (o.help) return out(CLASSIFY_HELP);
  const labels = o.labels === undefined ? undefined : o.labels.split(',').map((s) => s.trim());
  if (labels && labels.some((l) => !l)) throw new BortError(`--labels ${quoteName(o.labels)} has an empty name`, 'give names separated by commas, e.g. --labels negative,positive');
  const p = await openPipeline('classify', positionals[0], o, { labels });
  try {
    for await (const r of p.stream(inputLines(positionals.slice(1), o.file, 'classify'))) {
      out(o.json ? JSON.stringify(r) : `${r.text}\t${escapeControls(r.label)} ${score(r.score)}`); // labels may come from the model's metadata
    }
  } finally {
    await p.close();
  }
}

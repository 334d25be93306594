/** `bort-compress embed MODEL [TEXT…]`: one vector per text. */
import { BortError, quoteName } from '../errors.js';
import { COMMON_HELP, openPipeline, parse, type Out } from './text-command.js';
import { inputLines } from './text-input.js';
import { VectorFile } from './vector-file.js';

export const EMBED_HELP = `bort-compress embed MODEL.onnx [--vocab V] [--pooling cls|mean] [--normalize] [-o OUT.npy|OUT.f32] [TEXT …]

One vector per text from the model's final hidden states. Plain output: the vector's numbers on one line;
--json: {"text", "embedding": [...]}; -o writes all vectors to a .npy ([count, hidden] float32) or .f32
(raw little-endian float32 rows) file instead, complete or not at all.

${COMMON_HELP}
  --pooling P        cls (default): the first token's state; mean: the mean over the text's tokens
  --normalize        scale each vector to unit length
  -o, --output F     write the vectors to F (.npy or .f32)`;

export async function embedCommand(args: string[], out: Out): Promise<void> {
  const { values: o, positionals } = parse(args, { pooling: { type: 'string' }, normalize: { type: 'boolean' }, output: { type: 'string', short: 'o' } }, 'embed');
  if (o.help) return out(EMBED_HELP);
  const pooling = o.pooling ?? 'cls';
  if (pooling !== 'cls' && pooling !== 'mean') throw new BortError(`--pooling ${quoteName(pooling)} is unknown`, 'use --pooling cls or --pooling mean');
  if (o.output && o.json) throw new BortError('both -o and --json given', 'write vectors to a file (-o) or as JSON lines (--json), not both');
  const p = await openPipeline('embed', positionals[0], o, { pooling, normalize: !!o.normalize });
  const file = o.output ? new VectorFile(o.output, p.backend.hidden) : undefined;
  try {
    for await (const r of p.stream(inputLines(positionals.slice(1), o.file, 'embed'))) {
      if (file) file.append(r.embedding);
      else if (o.json) out(JSON.stringify({ text: r.text, embedding: Array.from(r.embedding) }));
      else out(Array.from(r.embedding, (x) => x.toPrecision(6)).join(' '));
    }
    if (file) {
      file.finish();
      out(`bort-compress embed: wrote ${file.count} vectors of ${file.dims} (${pooling} pooling${o.normalize ? ', normalised' : ''}) to ${file.file}`);
    }
  } catch (e) {
    file?.abort();
    throw e;
  } finally {
    await p.close();
  }
}

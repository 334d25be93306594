/**
 * What the text commands (fill-mask, embed, classify, answer) share: their common options, loading the
 * pipeline, and writing one result a line (plain or --json) as results are ready, in input order.
 */
import { parseArgs } from 'node:util';
import { BortError, quoteName } from '../errors.js';
import { pipeline, type PipelineOptions, type TaskName, type TaskTypes } from '../tasks/pipeline.js';

export type Out = (line: string) => void;

export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  vocab: { type: 'string' },
  tokenizer: { type: 'string' },
  file: { type: 'string', short: 'f' },
  batch: { type: 'string' },
  threads: { type: 'string' },
  truncate: { type: 'boolean' },
  engine: { type: 'string' },
} as const;

export const COMMON_HELP = `Inputs: texts as arguments, else --file F, else standard input; one text a line.
Output: one line per input, in input order, as results are ready; --json: one JSON object a line.

Common options:
  --vocab V          vocab.txt or tokenizer.json (default: tokenizer.json, else vocab.txt, beside MODEL)
  --batch N          inputs per model run (default 8); a batch is padded to its longest text
  --truncate         cut texts longer than the model's positions (default: refuse them)
  --threads T        engine threads (default: all cores)
  --engine E         native (default) or onnxruntime (needs onnxruntime-node installed)
  --json             JSON lines`;

export function parse<O extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(args: string[], options: O, cmd: string) {
  try {
    return parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, ...options } });
  } catch (e) {
    throw new BortError((e as Error).message.split('\n')[0].replace(/\.$/, ''), `see bort-compress ${cmd} --help`);
  }
}

export function positiveInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new BortError(`--${name} ${quoteName(v)} is not a positive whole number`, `pass --${name} N with N ≥ 1`);
  return Number(v);
}

export async function openPipeline<T extends TaskName>(task: T, model: string | undefined, o: Record<string, unknown>, extra: PipelineOptions) {
  if (!model) throw new BortError('missing the model path', `see bort-compress ${task} --help`);
  const engine = (o.engine as string | undefined) ?? 'native';
  if (engine !== 'native' && engine !== 'onnxruntime') throw new BortError(`--engine ${quoteName(engine)} is unknown`, 'use --engine native or --engine onnxruntime');
  if (o.vocab && o.tokenizer) throw new BortError('both --vocab and --tokenizer given', 'give one tokenizer file');
  return pipeline(task, model, {
    tokenizer: (o.vocab ?? o.tokenizer) as string | undefined,
    engine,
    batch: positiveInt(o.batch as string | undefined, 'batch', 8),
    threads: o.threads === undefined ? undefined : positiveInt(o.threads as string, 'threads', 1),
    truncate: !!o.truncate,
    ...extra,
  }) as Promise<import('../tasks/pipeline.js').TextPipeline<TaskTypes[T]['input'], TaskTypes[T]['result']>>;
}

/** Four significant digits, as plain text shows scores. */
export function score(x: number): string {
  return x >= 0.001 ? x.toFixed(4) : x.toExponential(2);
}

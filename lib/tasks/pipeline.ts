/**
 * `pipeline(task, model, options)`: text in, results out, on the native engine (onnxruntime-node only
 * when asked with `engine: 'onnxruntime'`).
 *
 * ```ts
 * const fill = await pipeline('fill-mask', 'model.onnx');          // tokenizer.json / vocab.txt beside it
 * const [r] = await fill.run(['the capital of france is [MASK] .']);
 * r.predictions[0]; // { token, id, score }
 * for await (const r of fill.stream(readLines())) ...               // bounded memory, input order
 * await fill.close();
 * ```
 * Inputs are processed in batches of `batch` (default 8), each padded to its longest text with
 * attention_mask 0. `stream()` holds at most one batch of inputs and yields results in input order.
 */
import * as fs from 'node:fs';
import { BortError, quoteName } from '../errors.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { nativeBackend, type Backend } from './backend.js';
import { ortBackend } from './ort-backend.js';
import { padBatch } from './batch.js';
import { fillMaskTask, type FillMaskResult } from './fill-mask.js';
import { embedTask, type EmbedResult, type Pooling } from './embed.js';
import { classifyTask, type ClassifyResult } from './classify.js';
import { answerTask, type AnswerInput, type AnswerResult } from './answer.js';
import { labelsFromMetadata, readMetadataProps } from './metadata.js';
import type { Prepared, Task } from './task.js';

export interface PipelineOptions {
  /** A tokenizer.json or vocab.txt path, or a loaded tokenizer; default: the one beside the model. */
  tokenizer?: string | TextTokenizer;
  /** 'native' (default) or 'onnxruntime' (needs onnxruntime-node installed). */
  engine?: 'native' | 'onnxruntime';
  threads?: number;
  /** Inputs per model run (default 8). */
  batch?: number;
  /** Cut texts longer than the model's positions instead of refusing them. */
  truncate?: boolean;
  /** fill-mask: predictions per mask (default 5). */
  topK?: number;
  /** embed: 'cls' (default) or 'mean'. */
  pooling?: Pooling;
  /** embed: scale vectors to unit length. */
  normalize?: boolean;
  /** classify: label names (default: the model's metadata, else LABEL_i). */
  labels?: string[];
  /** answer: longest answer in tokens (default 30). */
  maxAnswerTokens?: number;
}

export interface TaskTypes {
  'fill-mask': { input: string; result: FillMaskResult };
  embed: { input: string; result: EmbedResult };
  classify: { input: string; result: ClassifyResult };
  answer: { input: AnswerInput; result: AnswerResult };
}

export type TaskName = keyof TaskTypes;
export const TASKS: TaskName[] = ['fill-mask', 'embed', 'classify', 'answer'];

export class TextPipeline<I, R> {
  /** The most inputs held at once by stream() so far (at most `batch`). */
  maxHeld = 0;

  constructor(
    readonly task: Task<I, Prepared, R>,
    readonly tokenizer: TextTokenizer,
    readonly backend: Backend,
    readonly batch: number,
  ) {}

  /** Results for all inputs, in order. */
  async run(inputs: I[]): Promise<R[]> {
    if (!Array.isArray(inputs)) throw new TypeError('run() takes an array of inputs');
    const out: R[] = [];
    for await (const r of this.stream(inputs)) out.push(r);
    return out;
  }

  /** Results one by one, in input order, reading inputs as they are needed. */
  async *stream(inputs: Iterable<I> | AsyncIterable<I>): AsyncGenerator<R> {
    let pending: Prepared[] = [];
    let index = 0;
    for await (const x of inputs) {
      pending.push(this.task.prepare(x, index++));
      this.maxHeld = Math.max(this.maxHeld, pending.length);
      if (pending.length === this.batch) {
        yield* await this.runBatch(pending);
        pending = [];
      }
    }
    if (pending.length) yield* await this.runBatch(pending);
  }

  private async runBatch(items: Prepared[]): Promise<R[]> {
    const b = padBatch(items.map((p) => p.enc), this.tokenizer.padId, this.backend.typeVocab, this.backend.fixedLength);
    let out;
    try {
      out = await this.backend.run(b);
    } catch (e) {
      if (e instanceof RangeError) throw new BortError(`the model refused the tokens: ${e.message}`, 'check that the tokenizer belongs to the model');
      throw e;
    }
    return items.map((p, row) => this.task.finish(out, row, b, p));
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}

export async function pipeline<T extends TaskName>(task: T, model: string, opts: PipelineOptions = {}): Promise<TextPipeline<TaskTypes[T]['input'], TaskTypes[T]['result']>> {
  if (!TASKS.includes(task)) throw new TypeError(`unknown task '${String(task)}': use one of ${TASKS.join(', ')}`);
  if (typeof model !== 'string') throw new TypeError('pipeline() takes the model path as a string');
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  if (!fs.existsSync(model)) throw new BortError(`the model ${quoteName(model)} does not exist`, 'give the path of an .onnx model');
  const tokenizer = opts.tokenizer instanceof TextTokenizer ? opts.tokenizer : TextTokenizer.fromFile(opts.tokenizer ?? TextTokenizer.find(model));
  const backend = opts.engine === 'onnxruntime' ? await ortBackend(model, { threads: opts.threads }) : await nativeBackend(model, opts.threads);
  try {
    if (backend.vocab && tokenizer.vocabSize > backend.vocab) {
      throw new BortError(`the tokenizer ${tokenizer.source} has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${backend.vocab}`, 'give the tokenizer that belongs to the model');
    }
    const ctx = { tokenizer, backend, truncate: !!opts.truncate };
    let t: Task<any, Prepared, any>;
    if (task === 'fill-mask') t = fillMaskTask(ctx, opts.topK ?? 5);
    else if (task === 'embed') t = embedTask(ctx, opts.pooling ?? 'cls', !!opts.normalize);
    else if (task === 'classify') t = classifyTask(ctx, opts.labels ?? labelsFromMetadata(readMetadataProps(model)));
    else t = answerTask(ctx, opts.maxAnswerTokens ?? 30);
    return new TextPipeline(t, tokenizer, backend, batch);
  } catch (e) {
    await backend.close();
    throw e;
  }
}

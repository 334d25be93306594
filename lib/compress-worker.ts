/**
 * The worker thread that runs compress jobs (compress-job.ts) off the caller's JS thread, one at a
 * time: it receives { input, options }, posts progress steps, then the summary or the error, and waits
 * for the next job (compress.ts keeps an idle worker for a while, so repeated calls skip the start-up).
 */
import { parentPort } from 'node:worker_threads';
import { runCompress, type CompressJobOptions, type CompressSummary } from './compress-job.js';
import { BortError } from './errors.js';

/** A job for the worker. */
export interface WorkerJob {
  input: string;
  options: CompressJobOptions;
}

/** Messages from the worker to compress.ts. */
export type WorkerMessage =
  | { type: 'progress'; step: string }
  | { type: 'done'; summary: CompressSummary }
  | { type: 'error'; bort: boolean; name: string; message: string; fix?: string; stack?: string };

const port = parentPort!;
port.on('message', ({ input, options }: WorkerJob) => {
  let reply: WorkerMessage;
  try {
    const summary = runCompress(input, options, (step) => port.postMessage({ type: 'progress', step } satisfies WorkerMessage));
    reply = { type: 'done', summary };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply = {
      type: 'error', bort: err instanceof BortError, name: err.name, message: err.message,
      fix: err instanceof BortError ? err.fix : undefined, stack: err.stack,
    };
  }
  port.postMessage(reply);
});

/**
 * The main job as a library call: load a BERT ONNX model, plan an extraction to a target
 * architecture, rewrite the graph and save it. Returns the summary the CLI prints.
 *
 * The job (compress-job.ts) reads, recognises, rewrites and writes synchronously, seconds of work on a
 * large model, so `compress()` runs it on a worker thread and the caller's event loop keeps turning.
 * A BortError in the worker arrives as a BortError with the same message and `fix`; progress steps
 * arrive through `onProgress`. A custom `ImportanceScorer` object (functions cannot be sent to another
 * thread) makes the job run on the calling thread instead.
 */
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { runCompress, type CompressJobOptions, type CompressSummary } from './compress-job.js';
import type { WorkerJob, WorkerMessage } from './compress-worker.js';
import type { ImportanceScorer } from './extract/scorer.js';
import type { Arch } from './bert/model.js';
import { BortError } from './errors.js';

export { defaultOutput, type CompressSummary } from './compress-job.js';

export interface CompressOptions {
  /** Target architecture: an object or 'D,A,H,I'. */
  arch: Arch | string;
  /** 'importance' (default) or 'first'; or a custom scorer (which runs the job on the calling thread). */
  strategy?: 'importance' | 'first' | ImportanceScorer;
  /**
   * Output path; defaults to IN with `.bort-D-A-H-I.onnx`. Must name a file: a path ending in a slash
   * is refused, as are the input model, its external data file, anything that is not a regular file
   * (a directory, /dev/null) and read-only files.
   */
  output?: string;
  /** Write weights to an external data file `OUTPUT.data` (always when the model passes 2 GB). */
  externalData?: boolean;
  /** Attention-score scale when the head size changes: keep the source's (default) or 1/sqrt(d). */
  attentionScale?: 'keep' | 'rescale' | 'mean';
  /** Progress callback: the name of each step as it starts. */
  onProgress?: (step: string) => void;
}

/** How to start the worker: the compiled file from dist/, or the TypeScript source through tsx (tests). */
function workerEntry(): { file: string; eval: boolean } | undefined {
  if (!__filename.endsWith('.ts')) return { file: path.join(__dirname, 'compress-worker.js'), eval: false };
  let tsx: string;
  try {
    tsx = createRequire(__filename).resolve('tsx/cjs/api');
  } catch {
    return undefined; // TypeScript source without tsx: run on this thread
  }
  const source = path.join(__dirname, 'compress-worker.ts');
  return { file: `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(source)});`, eval: true };
}

function revive(m: Extract<WorkerMessage, { type: 'error' }>): Error {
  if (m.bort && m.fix !== undefined) {
    const suffix = `: ${m.fix}`;
    const problem = m.message.endsWith(suffix) ? m.message.slice(0, -suffix.length) : m.message;
    return new BortError(problem, m.fix);
  }
  const e = new Error(m.message);
  e.name = m.name;
  if (m.stack) e.stack = m.stack;
  return e;
}

/** How long a finished worker waits for another job before it is stopped. */
const IDLE_MS = 5_000;
let idle: { worker: Worker; timer: NodeJS.Timeout } | undefined;

function takeWorker(entry: { file: string; eval: boolean }): Worker {
  if (idle) {
    const { worker, timer } = idle;
    idle = undefined;
    clearTimeout(timer);
    worker.ref();
    return worker;
  }
  const worker = new Worker(entry.file, { eval: entry.eval });
  // errors and exits while a job runs are reported by runInWorker; while idle they only drop the worker
  worker.on('error', () => {});
  worker.on('exit', () => {
    if (idle?.worker === worker) {
      clearTimeout(idle.timer);
      idle = undefined;
    }
  });
  return worker;
}

/** Keeps a worker whose job ended cleanly for the next call; it does not keep the process alive. */
function parkWorker(worker: Worker): void {
  if (idle) {
    void worker.terminate();
    return;
  }
  worker.unref();
  const timer = setTimeout(() => {
    if (idle?.worker === worker) idle = undefined;
    void worker.terminate();
  }, IDLE_MS);
  timer.unref();
  idle = { worker, timer };
}

function runInWorker(input: string, options: CompressJobOptions, progress: (step: string) => void, entry: { file: string; eval: boolean }): Promise<CompressSummary> {
  return new Promise((resolve, reject) => {
    const worker = takeWorker(entry);
    let settled = false;
    const finish = (reuse: boolean, fn: () => void) => {
      if (settled) return;
      settled = true;
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (reuse) parkWorker(worker);
      else void worker.terminate();
      fn();
    };
    const onMessage = (m: WorkerMessage) => {
      if (m.type === 'progress') {
        try {
          progress(m.step);
        } catch (e) {
          finish(false, () => reject(e));
        }
      } else if (m.type === 'done') {
        finish(true, () => resolve(m.summary));
      } else {
        finish(true, () => reject(revive(m)));
      }
    };
    const onError = (e: Error & { code?: string }) => {
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        finish(false, () => reject(new BortError(`ran out of memory while compressing ${input}`,
          'the model needs more memory than Node allows here (raise it with NODE_OPTIONS=--max-old-space-size=MB), or the file is damaged')));
      } else {
        finish(false, () => reject(e));
      }
    };
    const onExit = (code: number) => {
      finish(false, () => reject(new Error(`the compress worker stopped (exit code ${code}) before it finished`)));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage({ input, options } satisfies WorkerJob);
  });
}

export async function compress(input: string, options: CompressOptions): Promise<CompressSummary> {
  const { onProgress, ...job } = options;
  const progress = onProgress ?? (() => {});
  const entry = typeof job.strategy === 'object' ? undefined : workerEntry();
  if (!entry) return runCompress(input, job, progress);
  return runInWorker(input, job, progress, entry);
}

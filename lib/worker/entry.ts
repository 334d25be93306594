/**
 * How a worker thread is started: from the compiled module in dist/, or — when the package runs from
 * its TypeScript sources (tests, development) — from the `.ts` module through tsx (a devDependency).
 */
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** A worker's entry: a file to run, or (TypeScript sources) a script to evaluate. */
export interface WorkerEntry {
  file: string;
  eval: boolean;
}

/**
 * The entry for the worker module `name` (without extension) in the folder `dir` (the caller's
 * `__dirname`), or undefined when running TypeScript sources without tsx installed.
 */
export function workerEntry(dir: string, name: string): WorkerEntry | undefined {
  if (path.extname(__filename) !== '.ts') return { file: path.join(dir, `${name}.js`), eval: false };
  let tsx: string;
  try {
    tsx = createRequire(__filename).resolve('tsx/cjs/api');
  } catch {
    return undefined;
  }
  const source = path.join(dir, `${name}.ts`);
  return { file: `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(source)});`, eval: true };
}

/**
 * Limits every model-reading worker gets. The JIT code range: V8's default reservation (128 MiB) cannot
 * be made under a tight address-space limit (`ulimit -v` 1.5 GB), which aborts the whole process;
 * reading, recognising or rewriting a model needs far less.
 */
export const WORKER_LIMITS: ResourceLimits = { codeRangeSizeMb: 64 };

export function startWorker(entry: WorkerEntry, resourceLimits?: ResourceLimits): Worker {
  return new Worker(entry.file, { eval: entry.eval, ...(resourceLimits ? { resourceLimits } : {}) });
}

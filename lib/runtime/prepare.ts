/**
 * `prepareModel(file)`: the heavy, synchronous part of `Encoder.load` — reading the file, recognising
 * the BERT and laying its weights out for the engine — done in a worker thread, so the caller's event
 * loop keeps running. The weights come back transferred, not copied. An error thrown there arrives
 * here as the same class (BortError with its fix, TypeError, RangeError, else Error) and message.
 *
 * One worker serves every load of the process, one request at a time; it is started by the first
 * load, keeps the process alive only while a request is pending, and is replaced after it dies (a
 * model that exhausts its heap, say).
 */
import * as path from 'node:path';
import { BortError } from '../errors.js';
import { WORKER_LIMITS, workerEntry } from '../worker/entry.js';
import { WorkerPool } from '../worker/pool.js';
import type { Arch } from '../bert/model.js';
import type { EngineSpec } from './spec.js';

export interface PreparedModel {
  spec: EngineSpec;
  arch: Arch;
}

let pool: WorkerPool<string, PreparedModel> | undefined;

/**
 * An idle reading thread is stopped after this long: its heap and isolate (~20 MB resident, more than
 * an int8 Bort's layers) are not kept for the life of the process; a later load starts a new one.
 */
const IDLE_MS = 1000;

function preparePool(): WorkerPool<string, PreparedModel> {
  if (pool) return pool;
  const entry = workerEntry(__dirname, 'prepare-worker');
  if (!entry) throw new Error('running from TypeScript sources needs tsx (a devDependency) to start the model-reading thread');
  pool = new WorkerPool<string, PreparedModel>({
    entry,
    resourceLimits: WORKER_LIMITS,
    maxWorkers: 1,
    idleMs: IDLE_MS,
    failure: (why, file) => {
      switch (why.kind) {
        case 'start':
          return new Error(`cannot start the thread that reads ${JSON.stringify(file)}: ${why.error.message}; raise the memory / process limits`);
        case 'out-of-memory':
          return new BortError(`reading ${JSON.stringify(file)} ran out of memory (${why.error.message})`, 'check that the file is an ONNX BERT model; a model larger than the memory available cannot be loaded');
        case 'error':
          return new Error(`reading ${JSON.stringify(file)} failed in its worker thread: ${why.error.message}`);
        case 'exit':
          return new Error(`the thread reading ${JSON.stringify(file)} exited (code ${why.code}) before answering`);
      }
    },
  });
  return pool;
}

export async function prepareModel(file: string): Promise<PreparedModel> {
  return preparePool().request(path.resolve(file));
}

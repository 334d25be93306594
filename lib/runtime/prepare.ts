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
import { Worker } from 'node:worker_threads';
import { BortError } from '../errors.js';
import type { Arch } from '../bert/model.js';
import type { EngineSpec } from './spec.js';

export interface PreparedModel {
  spec: EngineSpec;
  arch: Arch;
}

interface Answer {
  id: number;
  ok?: PreparedModel;
  error?: { name: string; message: string; fix?: string };
}

interface Pending {
  file: string;
  resolve(p: PreparedModel): void;
  reject(e: Error): void;
}

/** The error the worker described, rebuilt as its own class with the same message. */
export function rebuildError(e: { name?: unknown; message?: unknown; fix?: unknown }): Error {
  const message = typeof e.message === 'string' ? e.message : String(e.message);
  if (e.name === 'BortError' && typeof e.fix === 'string') {
    const suffix = `: ${e.fix}`;
    const problem = message.endsWith(suffix) ? message.slice(0, -suffix.length) : message;
    const err = new BortError(problem, e.fix);
    if (err.message !== message) err.message = message;
    return err;
  }
  if (e.name === 'TypeError') return new TypeError(message);
  if (e.name === 'RangeError') return new RangeError(message);
  return new Error(message);
}

let worker: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 1;

/**
 * The worker's JIT code range: V8's default reservation (128 MiB) cannot be made under a tight
 * address-space limit (`ulimit -v` 1.5 GB), which aborts the whole process; reading a model needs far less.
 */
const LIMITS = { codeRangeSizeMb: 64 };

/** Starts the worker: the compiled entry beside this file, or (running from TypeScript sources) through tsx. */
function startWorker(): Worker {
  if (path.extname(__filename) === '.ts') {
    // tests and development run lib/*.ts directly: the worker needs tsx (a devDependency) to load TypeScript
    const tsx = require.resolve('tsx/cjs');
    const entry = path.join(__dirname, 'prepare-worker.ts');
    return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(entry)});`, { eval: true, resourceLimits: LIMITS });
  }
  return new Worker(path.join(__dirname, 'prepare-worker.js'), { resourceLimits: LIMITS });
}

function theWorker(): Worker {
  if (worker) return worker;
  const w = startWorker();
  worker = w;
  // a dead worker fails what it was doing; the next load starts a new one
  const fail = (why: (p: Pending) => Error) => {
    if (worker === w) worker = undefined;
    const all = [...pending.values()];
    pending.clear();
    for (const p of all) p.reject(why(p));
  };
  w.on('message', (m: Answer) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.ok) p.resolve(m.ok);
    else p.reject(rebuildError(m.error ?? { message: 'the model-reading thread gave no answer' }));
  });
  w.on('error', (e: Error & { code?: string }) => {
    fail((p) =>
      e.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new BortError(`reading ${JSON.stringify(p.file)} ran out of memory (${e.message})`, 'check that the file is an ONNX BERT model; a model larger than the memory available cannot be loaded')
        : new Error(`reading ${JSON.stringify(p.file)} failed in its worker thread: ${e.message}`),
    );
  });
  w.on('exit', (code) => fail((p) => new Error(`the thread reading ${JSON.stringify(p.file)} exited (code ${code}) before answering`)));
  return w;
}

export function prepareModel(file: string): Promise<PreparedModel> {
  return new Promise<PreparedModel>((resolve, reject) => {
    const id = nextId++;
    const abs = path.resolve(file);
    let w: Worker;
    try {
      w = theWorker();
    } catch (e) {
      reject(new Error(`cannot start the thread that reads ${JSON.stringify(file)}: ${(e as Error).message}; raise the memory / process limits`));
      return;
    }
    pending.set(id, { file, resolve, reject });
    w.ref();
    w.postMessage({ id, file: abs });
  });
}

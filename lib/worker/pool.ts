/**
 * The calling side of work done on worker threads: `request()` sends a request to a worker started
 * from `entry` (serve.ts answers it there) and resolves with its result, reporting progress steps on
 * the way; an error thrown in the worker rejects with the same class and message (wire-error.ts).
 *
 * A request goes to an idle worker, else to a new one while fewer than `maxWorkers` run, else to the
 * least busy one (which handles its requests in order). Workers keep the process alive only while they
 * have requests; at most one idle worker is kept, for `idleMs` (forever when undefined). A worker that
 * dies (out of memory, an uncaught error, an exit) fails the requests it had — with the error
 * `failure()` makes for each — and the next request starts a new one.
 */
import type { ResourceLimits, Worker } from 'node:worker_threads';
import { startWorker, type WorkerEntry } from './entry.js';
import type { Reply, Request } from './messages.js';
import { rebuildError } from './wire-error.js';

/** Why a request's worker could not answer. */
export type WorkerFailure =
  | { kind: 'start'; error: Error }
  | { kind: 'out-of-memory'; error: Error }
  | { kind: 'error'; error: Error }
  | { kind: 'exit'; code: number };

export interface WorkerPoolOptions<Req> {
  entry: WorkerEntry;
  resourceLimits?: ResourceLimits;
  maxWorkers: number;
  idleMs?: number;
  failure(why: WorkerFailure, request: Req): Error;
}

interface Pending<Req, Res> {
  request: Req;
  progress?: (step: string) => void;
  resolve(r: Res): void;
  reject(e: Error): void;
}

interface Slot<Req, Res> {
  worker: Worker;
  pending: Map<number, Pending<Req, Res>>;
  idleTimer?: NodeJS.Timeout;
}

export class WorkerPool<Req, Res> {
  private readonly slots: Slot<Req, Res>[] = [];
  private nextId = 1;

  constructor(private readonly options: WorkerPoolOptions<Req>) {}

  request(request: Req, progress?: (step: string) => void): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      let slot: Slot<Req, Res>;
      try {
        slot = this.pick();
      } catch (e) {
        reject(this.options.failure({ kind: 'start', error: e instanceof Error ? e : new Error(String(e)) }, request));
        return;
      }
      const id = this.nextId++;
      clearTimeout(slot.idleTimer);
      slot.idleTimer = undefined;
      slot.pending.set(id, { request, progress, resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, request } satisfies Request<Req>);
    });
  }

  private pick(): Slot<Req, Res> {
    const idle = this.slots.find((s) => s.pending.size === 0);
    if (idle) return idle;
    if (this.slots.length < this.options.maxWorkers) return this.start();
    return this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private start(): Slot<Req, Res> {
    const worker = startWorker(this.options.entry, this.options.resourceLimits);
    const slot: Slot<Req, Res> = { worker, pending: new Map() };
    this.slots.push(slot);
    worker.on('message', (m: Reply<Res>) => this.onReply(slot, m));
    worker.on('error', (e: Error & { code?: string }) =>
      this.fail(slot, { kind: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out-of-memory' : 'error', error: e }),
    );
    worker.on('exit', (code) => this.fail(slot, { kind: 'exit', code }));
    return slot;
  }

  private onReply(slot: Slot<Req, Res>, m: Reply<Res>): void {
    const p = slot.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') {
      try {
        p.progress?.(m.step);
      } catch (e) {
        // the caller gave up: stop the work (the worker's other requests fail as it exits)
        slot.pending.delete(m.id);
        p.reject(e instanceof Error ? e : new Error(String(e)));
        this.retire(slot);
      }
      return;
    }
    slot.pending.delete(m.id);
    if (slot.pending.size === 0) this.rest(slot);
    if (m.type === 'done') p.resolve(m.result);
    else p.reject(rebuildError(m.error));
  }

  /** A worker with nothing to do: kept (once, for idleMs) without keeping the process alive. */
  private rest(slot: Slot<Req, Res>): void {
    if (this.slots.some((s) => s !== slot && s.pending.size === 0)) {
      this.retire(slot);
      return;
    }
    slot.worker.unref();
    const { idleMs } = this.options;
    if (idleMs !== undefined) {
      slot.idleTimer = setTimeout(() => this.retire(slot), idleMs);
      slot.idleTimer.unref();
    }
  }

  private retire(slot: Slot<Req, Res>): void {
    this.drop(slot);
    void slot.worker.terminate();
  }

  private drop(slot: Slot<Req, Res>): void {
    clearTimeout(slot.idleTimer);
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  private fail(slot: Slot<Req, Res>, why: WorkerFailure): void {
    this.drop(slot);
    const all = [...slot.pending.values()];
    slot.pending.clear();
    for (const p of all) p.reject(this.options.failure(why, p.request));
  }
}

/** The messages between a WorkerPool (pool.ts) and the worker that serves its requests (serve.ts). */
import type { WireError } from './wire-error.js';

export interface Request<Req> {
  id: number;
  request: Req;
}

export type Reply<Res> =
  | { id: number; type: 'progress'; step: string }
  | { id: number; type: 'done'; result: Res }
  | { id: number; type: 'error'; error: WireError };

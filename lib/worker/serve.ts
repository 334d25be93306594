/**
 * The worker side of a WorkerPool: answers each request with the handler's result (buffers listed by
 * `transferOf` are transferred, not copied) or its error, posting progress steps on the way.
 * Requests are handled one at a time, in order.
 */
import { parentPort } from 'node:worker_threads';
import type { Reply, Request } from './messages.js';
import { serializeError } from './wire-error.js';

export function serveRequests<Req, Res>(
  handle: (request: Req, progress: (step: string) => void) => Res,
  transferOf: (result: Res) => ArrayBuffer[] = () => [],
): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests() runs only in a worker thread');
  const post = (m: Reply<Res>, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  port.on('message', ({ id, request }: Request<Req>) => {
    let result: Res;
    try {
      result = handle(request, (step) => post({ id, type: 'progress', step }));
    } catch (e) {
      post({ id, type: 'error', error: serializeError(e) });
      return;
    }
    const transfer = [...new Set(transferOf(result))];
    try {
      post({ id, type: 'done', result }, transfer);
    } catch {
      // a buffer that cannot be transferred (a pooled Buffer's memory): copy instead
      post({ id, type: 'done', result });
    }
  });
}

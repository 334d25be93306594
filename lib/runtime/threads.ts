/**
 * How many threads an encoder may use: an integer in [1, MAX_THREADS]. The bound is fixed (the
 * native engine's `kMaxThreads`, native/src/pool.h), not derived from this machine's cores, so a
 * setting that works on one machine is accepted on another; more threads than cores only makes runs
 * slower. The default is the number of cores, capped at the bound.
 */
import * as os from 'node:os';

export const MAX_THREADS = 256;

/** The default thread count: this machine's cores, within [1, MAX_THREADS]. */
export function defaultThreads(): number {
  const n = os.availableParallelism?.() ?? os.cpus().length;
  return Math.min(MAX_THREADS, Math.max(1, n || 1));
}

/** `n` when it is an integer in [1, MAX_THREADS]; else a TypeError (not a number) or RangeError naming `what`. */
export function checkThreads(n: unknown, what: string): number {
  const text = typeof n === 'bigint' ? `${n}n` : typeof n === 'string' ? JSON.stringify(n) : String(n);
  if (typeof n !== 'number') throw new TypeError(`${what} must be an integer in [1, ${MAX_THREADS}], got ${text}`);
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) throw new RangeError(`${what} must be an integer in [1, ${MAX_THREADS}], got ${text}`);
  return n;
}

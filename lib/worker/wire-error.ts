/**
 * Errors across a thread boundary: an error thrown in a worker is described as plain data
 * (`serializeError`) and rebuilt on the calling side (`rebuildError`) as the same class — BortError
 * with its fix, TypeError, RangeError, else Error — with the same message (and the worker's stack).
 */
import { BortError } from '../errors.js';

/** What crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  fix?: string;
  stack?: string;
}

export function serializeError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const fix = (e as { fix?: unknown }).fix;
  return { name: e.name, message: e.message, ...(typeof fix === 'string' ? { fix } : {}), ...(e.stack ? { stack: e.stack } : {}) };
}

export function rebuildError(w: Partial<Record<keyof WireError, unknown>>): Error {
  const message = typeof w.message === 'string' ? w.message : String(w.message);
  let err: Error;
  if (w.name === 'BortError' && typeof w.fix === 'string') {
    const suffix = `: ${w.fix}`;
    err = new BortError(message.endsWith(suffix) ? message.slice(0, -suffix.length) : message, w.fix);
    if (err.message !== message) err.message = message;
  } else if (w.name === 'TypeError') {
    err = new TypeError(message);
  } else if (w.name === 'RangeError') {
    err = new RangeError(message);
  } else {
    err = new Error(message);
    if (typeof w.name === 'string' && w.name !== '') err.name = w.name;
  }
  if (typeof w.stack === 'string') err.stack = w.stack;
  return err;
}

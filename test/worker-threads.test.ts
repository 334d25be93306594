/**
 * The shared worker-thread plumbing (lib/worker/): errors cross the thread boundary as the same class,
 * message and fix; a progress callback that throws rejects its request and the next request works.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BortError } from '../lib/errors.js';
import { rebuildError, serializeError } from '../lib/worker/wire-error.js';
import { compress } from '../lib/compress.js';
import { FIXTURES, tmpDir } from './helpers.js';

const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');

/** Through structured clone, as postMessage sends it. */
const across = (e: unknown) => rebuildError(structuredClone(serializeError(e)));

describe('errors across threads', () => {
  it('a BortError keeps its class, message and fix', () => {
    const e = across(new BortError("tensor 'x' is odd", 'use another model'));
    expect(e).toBeInstanceOf(BortError);
    expect(e.message).toBe("tensor 'x' is odd: use another model");
    expect((e as BortError).fix).toBe('use another model');
  });
  it('TypeError and RangeError keep their class; other errors become Error with the name and stack', () => {
    expect(across(new TypeError('t'))).toBeInstanceOf(TypeError);
    expect(across(new RangeError('r')).constructor.name).toBe('RangeError');
    const src = new SyntaxError('s');
    const e = across(src);
    expect(e.constructor.name).toBe('Error');
    expect(e.name).toBe('SyntaxError');
    expect(e.message).toBe('s');
    expect(e.stack).toBe(src.stack);
    expect(across('a string').message).toBe('a string');
  });
});

describe('WorkerPool through compress()', () => {
  it('a progress callback that throws rejects with its error; the next call works', async () => {
    const dir = tmpDir();
    const boom = new Error('caller gave up');
    const r = await compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'a.onnx'), onProgress: () => { throw boom; } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(r).toBe(boom);
    const ok = await compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'b.onnx') });
    expect(ok.target.arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
  });
});

/**
 * Hostile inputs to the runtime: Encoder.load options, run() inputs, the encoder's life cycle (close,
 * GC), memory limits, the addon's failure paths, and bench options. Each case checks the error's class
 * and message (or, where the input is legal, the result against onnxruntime), and that the process
 * lives on. Cases that need a process of their own run test/runtime-limits-child.cjs (compiled dist/).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BortError, Encoder, synth, loadModel, recognize } from '../lib/index.js';
import { benchmark, BENCH_MAX_TOKENS } from '../lib/runtime/bench.js';
import { native, type NativeEncoder } from '../lib/runtime/native.js';
import { prepareModel } from '../lib/runtime/prepare.js';
import { MAX_THREADS } from '../lib/runtime/threads.js';
import { FIXTURES, ROOT, runOrt, tmpDir } from './helpers.js';

const MODEL = path.join(FIXTURES, 'bert-tiny-op14.onnx'); // vocab 1000, 512 positions, 2 token types, hidden 64
const MLM = path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx'); // vocab 1000, output 'logits'
const CHILD = path.join(ROOT, 'test', 'runtime-limits-child.cjs');
const dir = tmpDir('bort-hostile-runtime-');

type ErrorClass = typeof Error | typeof TypeError | typeof RangeError | typeof BortError;

/** The promise rejects with exactly this class, and a message matching `message`. */
async function refused(p: Promise<unknown>, cls: ErrorClass, message: RegExp): Promise<Error> {
  const e = await p.then(
    (v) => ({ resolved: v }),
    (x: unknown) => x,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(Error);
  expect((e as Error).constructor.name).toBe(cls.name);
  expect((e as Error).message).toMatch(message);
  return e as Error;
}

/** fn throws exactly this class, with a message matching `message`. */
function throws(fn: () => unknown, cls: ErrorClass, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an exception').toBeInstanceOf(Error);
  expect((caught as Error).constructor.name).toBe(cls.name);
  expect((caught as Error).message).toMatch(message);
}

const big = (xs: (number | bigint)[]) => BigInt64Array.from(xs, (x) => BigInt(x));
const T = (data: unknown, dims: unknown) => ({ data, dims }) as never;

let enc: Encoder;
beforeAll(async () => {
  enc = await Encoder.load(MODEL, { threads: 1 });
});
afterAll(() => enc?.close());

describe('Encoder.load: options', () => {
  for (const threads of [0, -1, 1.5, 400, 1e12, NaN, Infinity, -Infinity, MAX_THREADS + 1]) {
    it(`threads ${threads} is a RangeError naming [1, ${MAX_THREADS}]`, async () => {
      await refused(Encoder.load(MODEL, { threads }), RangeError, new RegExp(`^threads must be an integer in \\[1, 256\\], got ${String(threads).replace('+', '\\+')}$`));
    });
  }
  for (const [label, threads] of [['a string', '2'], ['a BigInt', 2n], ['null', null]] as const) {
    it(`threads as ${label} is a TypeError`, async () => {
      await refused(Encoder.load(MODEL, { threads: threads as never }), TypeError, /^threads must be an integer in \[1, 256\], got /);
    });
  }
  it('a path that is not a string, and options that are not an object, are TypeErrors', async () => {
    await refused(Encoder.load(42 as never), TypeError, /path must be a non-empty string, got number/);
    await refused(Encoder.load(MODEL, null as never), TypeError, /options must be an object, got null/);
  });
  it('the addon enforces the same bound itself (a caller bypassing Encoder)', async () => {
    expect(native().maxThreads).toBe(MAX_THREADS);
    const { spec } = await prepareModel(MODEL);
    await refused(native().createEncoderAsync({ ...spec.config, threads: 400 }, spec.weights), RangeError, /^config\.threads must be an integer in \[1, 256\], got 400$/);
    await refused(native().createEncoderAsync({ ...spec.config, threads: 1e300 }, spec.weights), RangeError, /config\.threads must be an integer in \[1, 256\], got 1e\+300/);
    // numbers checked for range before any conversion (NaN, ±Infinity, 1e300 used to be cast to int64 first)
    for (const v of [NaN, 1e300, -Infinity, 2.5]) {
      throws(() => native().createEncoder({ ...spec.config, layers: v }, spec.weights), TypeError, new RegExp(`^config\\.layers must be an integer >= 1, got ${String(v).replace('+', '\\+')}$`));
    }
    // constants the math uses: finite and within the float range (no NaN / Infinity, no double-to-float overflow)
    for (const [key, v, shown] of [['maskValue', NaN, 'NaN'], ['maskValue', -Infinity, '-Infinity'], ['scoreScale', 1e300, '1e\\+300'], ['embLnEps', 3.5e38, '3\\.5e\\+38']] as const) {
      await refused(native().createEncoderAsync({ ...spec.config, [key]: v }, spec.weights), TypeError, new RegExp(`^config\\.${key} must be a finite number within the float range, got ${shown}$`));
    }
    await refused(native().createEncoderAsync({ ...spec.config, lnEps: [NaN, ...spec.config.lnEps.slice(1)] }, spec.weights), TypeError, /^config\.lnEps\[0\] must be a finite number within the float range, got NaN$/);
    await refused(native().createEncoderAsync({ ...spec.config, vocab: 999 }, spec.weights), TypeError, /weight 'word_emb' has 64000 values, expected 63936/);
    await refused(native().createEncoderAsync(spec.config, { ...spec.weights, word_emb: new Float64Array(4) as never }), TypeError, /weight 'word_emb' must be a Float32Array/);
  });
});

describe('Encoder.setThreads', () => {
  for (const n of [0, -1, 1.5, 400, 1e12, NaN]) {
    it(`setThreads(${n}) is a RangeError and changes nothing`, () => {
      throws(() => enc.setThreads(n), RangeError, new RegExp(`^setThreads\\(n\\): n must be an integer in \\[1, 256\\], got ${n}$`));
      expect(enc.threads).toBe(1);
    });
  }
  it('setThreads(3) applies from the next run, and the handle refuses 400 too', async () => {
    const e = await Encoder.load(MODEL, { threads: 1 });
    e.setThreads(3);
    expect(e.threads).toBe(3);
    const a = await e.run({ input_ids: T(big([5, 17, 99, 3]), [1, 4]) });
    const b = await enc.run({ input_ids: T(big([5, 17, 99, 3]), [1, 4]) });
    expect(Array.from(a.pooler_output.data)).toEqual(Array.from(b.pooler_output.data)); // 3 threads = 1 thread, bit for bit
    const handle = (e as unknown as { handle: NativeEncoder }).handle;
    throws(() => handle.setThreads(400), RangeError, /^setThreads\(n\): n must be an integer in \[1, 256\], got 400$/);
    e.close();
    throws(() => e.setThreads(2), Error, /this Encoder is closed/);
  });
});

describe('Encoder.run: hostile inputs', () => {
  const cases: [string, Record<string, unknown>, ErrorClass, RegExp][] = [
    ['a negative id', { input_ids: T(big([1, -1, 3]), [1, 3]) }, RangeError, /^'input_ids'\[1\] = -1 is outside the vocabulary \[0, 1000\)$/],
    ['an id equal to the vocabulary (Int32Array)', { input_ids: T(Int32Array.from([1, 1000]), [1, 2]) }, RangeError, /^'input_ids'\[1\] = 1000 is outside the vocabulary \[0, 1000\)$/],
    ['an id above 2^31 in a BigInt64Array', { input_ids: T(big([3, 2n ** 31n + 5n]), [1, 2]) }, RangeError, /^'input_ids'\[1\] = 2147483653 is outside the vocabulary/],
    ['an id of 2^32 (0 when cut to 32 bits)', { input_ids: T(big([2n ** 32n]), [1, 1]) }, RangeError, /^'input_ids'\[0\] = 4294967296 is outside the vocabulary/],
    ['an id of -2^63', { input_ids: T(big([-(2n ** 63n)]), [1, 1]) }, RangeError, /^'input_ids'\[0\] = -9223372036854775808 is outside the vocabulary/],
    ['dims that do not match the data', { input_ids: T(big([1, 2, 3, 4]), [2, 4]) }, TypeError, /^input 'input_ids' has dims \[2, 4\] but 4 values$/],
    ['a sequence of 0 tokens', { input_ids: T(new BigInt64Array(0), [1, 0]) }, TypeError, /batch >= 0 and seq >= 1, got \[1,0\]/],
    ['Float32Array data', { input_ids: T(new Float32Array(2), [1, 2]) }, TypeError, /must be \{ data: BigInt64Array \| Int32Array, dims: \[batch, seq\] \}, got data of type Float32Array/],
    ['a plain array', { input_ids: T([1, 2], [1, 2]) }, TypeError, /got data of type Array/],
    ['Uint8Array data', { input_ids: T(new Uint8Array(2), [1, 2]) }, TypeError, /got data of type Uint8Array/],
    ['BigUint64Array data', { input_ids: T(new BigUint64Array(2), [1, 2]) }, TypeError, /got data of type BigUint64Array/],
    ['undefined data', { input_ids: T(undefined, [1, 2]) }, TypeError, /got data of type undefined/],
    ['a null input', { input_ids: null }, TypeError, /got null/],
    ['a number as input', { input_ids: 7 }, TypeError, /got number/],
    ['fractional dims', { input_ids: T(big([1, 2]), [1, 2.5]) }, TypeError, /got \[1,2\.5\]/],
    ['negative dims', { input_ids: T(big([1, 2]), [-1, -2]) }, TypeError, /got \[-1,-2\]/],
    ['NaN dims', { input_ids: T(big([1, 2]), [NaN, 2]) }, TypeError, /got \[null,2\]/],
    ['Infinity dims', { input_ids: T(big([1, 2]), [1, Infinity]) }, TypeError, /got \[1,null\]/],
    ['dims beyond 2^53', { input_ids: T(big([1, 2]), [2 ** 60, 2]) }, TypeError, /got \[1152921504606847000,2\]/],
    ['huge dims whose product is not the length', { input_ids: T(big([1, 2]), [2 ** 26, 2 ** 26]) }, TypeError, /has dims \[67108864, 67108864\] but 2 values/],
    ['three dims', { input_ids: T(big([1, 2]), [1, 1, 2]) }, TypeError, /got \[1,1,2\]/],
    ['dims as a string', { input_ids: T(big([1, 2]), '1x2') }, TypeError, /got "1x2"/],
    ['BigInt dims', { input_ids: T(big([1, 2]), [1n, 2n]) }, TypeError, /got \["1n","2n"\]/],
    ['an attention-mask value of 2', { input_ids: T(big([1, 2, 3]), [1, 3]), attention_mask: T(big([1, 2, 1]), [1, 3]) }, RangeError, /^'attention_mask'\[1\] = 2: attention-mask values must be 0 \(padding\) or 1 \(token\)$/],
    ['an attention-mask value of -1 (Int32Array)', { input_ids: T(big([1, 2]), [1, 2]), attention_mask: T(Int32Array.from([1, -1]), [1, 2]) }, RangeError, /^'attention_mask'\[1\] = -1: attention-mask values/],
    ['a token type of 2', { input_ids: T(big([1, 2]), [1, 2]), token_type_ids: T(big([0, 2]), [1, 2]) }, RangeError, /^'token_type_ids'\[1\] = 2 is outside the token types \[0, 2\)$/],
    ['a token type of 2^40', { input_ids: T(big([1, 2]), [1, 2]), token_type_ids: T(big([2n ** 40n, 0]), [1, 2]) }, RangeError, /^'token_type_ids'\[0\] = 1099511627776 is outside the token types/],
    ['a sequence longer than the positions', { input_ids: T(new BigInt64Array(513), [1, 513]) }, RangeError, /^sequence length 513 exceeds the model's 512 positions$/],
    ['a mask of another shape', { input_ids: T(big([1, 2, 3, 4]), [1, 4]), attention_mask: T(big([1, 1]), [1, 2]) }, TypeError, /^input 'attention_mask' has dims \[1, 2\] but 'input_ids' has \[1, 4\]$/],
    ['an unknown input', { input_ids: T(big([1]), [1, 1]), segment_ids: T(big([1]), [1, 1]) }, TypeError, /^unknown input 'segment_ids': this model takes 'input_ids', 'attention_mask', 'token_type_ids'$/],
    ['no ids', { attention_mask: T(big([1]), [1, 1]) }, TypeError, /^input 'input_ids' is required$/],
  ];
  for (const [what, inputs, cls, message] of cases) {
    it(`${what}: ${cls.name}`, async () => {
      await refused(enc.run(inputs as never), cls, message);
    });
  }
  it('inputs that are not an object: TypeError', async () => {
    await refused(enc.run(undefined as never), TypeError, /^run\(\) takes an object of inputs keyed by 'input_ids', 'attention_mask', 'token_type_ids'$/);
    await refused(enc.run('ids' as never), TypeError, /^run\(\) takes an object of inputs/);
  });
  it('a batch of 0 sequences gives empty outputs, as onnxruntime does', async () => {
    const ort = await runOrt(MODEL, { input_ids: { shape: [0, 4], data: [] }, attention_mask: { shape: [0, 4], data: [] }, token_type_ids: { shape: [0, 4], data: [] } });
    const ours = await enc.run({ input_ids: T(new BigInt64Array(0), [0, 4]) });
    for (const name of ['last_hidden_state', 'pooler_output']) {
      expect(ours[name].dims).toEqual([...ort[name].dims]);
      expect(ours[name].data.length).toBe(0);
    }
    expect(ours.last_hidden_state.dims).toEqual([0, 4, 64]);
  });
  it('the encoder still answers correctly after all of the above', async () => {
    const inputs = { input_ids: { shape: [1, 5], data: [5, 17, 99, 3, 250] }, attention_mask: { shape: [1, 5], data: [1, 1, 1, 1, 0] }, token_type_ids: { shape: [1, 5], data: [0, 0, 1, 1, 1] } };
    const ort = await runOrt(MODEL, inputs);
    const ours = await enc.run({
      input_ids: T(big(inputs.input_ids.data), [1, 5]), attention_mask: T(big(inputs.attention_mask.data), [1, 5]), token_type_ids: T(big(inputs.token_type_ids.data), [1, 5]),
    });
    let m = 0;
    for (let i = 0; i < ort.pooler_output.data.length; i++) m = Math.max(m, Math.abs(ort.pooler_output.data[i] - ours.pooler_output.data[i]));
    expect(m).toBeLessThanOrEqual(1e-4);
  });
});

describe('Encoder life cycle', () => {
  it('run after close rejects; close twice is harmless', async () => {
    const e = await Encoder.load(MODEL, { threads: 2 });
    e.close();
    e.close();
    expect(e.threads).toBe(2);
    await refused(e.run({ input_ids: T(big([1]), [1, 1]) }), Error, /^this Encoder is closed$/);
  });

  it('close during runs: the run in flight settles, the queued one rejects, nothing crashes', async () => {
    const file = path.join(dir, 'close-during-run.onnx');
    synth({ arch: '2,4,128,512', vocab: 2000, output: file, seed: 3 });
    const e = await Encoder.load(file, { threads: 2 });
    const x = { input_ids: T(Int32Array.from({ length: 8 * 128 }, (_, i) => i % 2000), [8, 128]) };
    const first = e.run(x), second = e.run(x);
    e.close();
    const [a, b] = await Promise.allSettled([first, second]);
    if (a.status === 'fulfilled') expect(a.value.last_hidden_state.dims).toEqual([8, 128, 128]);
    else expect((a.reason as Error).message).toMatch(/this encoder is closed/);
    expect(b.status).toBe('rejected');
    expect(((b as PromiseRejectedResult).reason as Error).message).toBe('this encoder is closed');
    await refused(e.run(x), Error, /this Encoder is closed/);
  });

  it.runIf(process.platform === 'linux')('encoders dropped without close() during runs are collected; every run settles', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', CHILD, 'gc', MODEL], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ settled: 40, finite: true });
  });
});

describe('memory limits: errors, not hangs or aborts', () => {
  // an address space of 2 GB with 8 MiB thread stacks: far fewer than 256 threads fit
  const limitedTo = (kb: number, ...args: string[]) => {
    const cmd = `ulimit -v ${kb} && ulimit -s 8192 && exec "$0" "$@"`;
    const r = spawnSync('bash', ['-c', cmd, process.execPath, CHILD, ...args], { encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, `child killed: ${r.stderr}`).toBe(null);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  const limited = (...args: string[]) => limitedTo(2_000_000, ...args);
  it.runIf(process.platform === 'linux')('Encoder.load with 256 threads: an Error naming the count; the process loads again with 2', () => {
    const r = limited('threads', MODEL);
    expect(r.first.name).toBe('Error');
    expect(r.first.message).toMatch(/^cannot start 256 threads \(started \d+\): .*; use fewer threads or raise the memory \/ process limits$/);
    expect(r.after).toEqual({ threads: 2, finite: true });
  });
  it.runIf(process.platform === 'linux')('setThreads(256): the next run rejects naming the count, the encoder keeps 2 threads and runs', () => {
    const r = limited('set-threads', MODEL);
    expect(r.first.name).toBe('Error');
    expect(r.first.message).toMatch(/^cannot start 256 threads .*\(the encoder keeps 2\)$/);
    expect(r.after).toEqual({ threads: 2, finite: true });
  });
  it.runIf(process.platform === 'linux')('a masked-LM output that cannot be allocated: a RangeError, the next run works', () => {
    const r = limited('mlm-output', MLM);
    expect(r.first).toEqual({ name: 'RangeError', message: "output 'mlm' of 4194304000 bytes cannot be allocated (out of memory); run a smaller batch or shorter sequences" });
    expect(r.after).toEqual({ finite: true });
  });
  it.runIf(process.platform === 'linux')('compress() under a 1.5 GB address space: its worker thread starts (no 128 MiB JIT reservation) and writes the model', () => {
    // without the worker's code-range limit V8 aborts the whole process here
    const out = path.join(tmpDir(), 'small.onnx');
    const r = limitedTo(1_500_000, 'compress', MODEL, out);
    expect(r.arch).toEqual({ layers: 1, heads: 2, hidden: 64, intermediate: 32 });
    expect(fs.statSync(out).size).toBeGreaterThan(0);
  });
  it('a masked-LM output larger than a Float32Array can be: a RangeError before anything is allocated', async () => {
    const e = await Encoder.load(MLM, { threads: 1 });
    const n = 8389 * 512; // × 1000 words > 2^32 values
    await refused(e.run({ input_ids: T(new Int32Array(n), [8389, 512]) }), RangeError, /^output 'mlm' of 8389 x 512 x 1000 floats is larger than a Float32Array can be \(4294967295 values\); run a smaller batch or shorter sequences$/);
    const ok = await e.run({ input_ids: T(new Int32Array(4), [1, 4]) });
    expect(ok.logits.dims).toEqual([1, 4, 1000]);
    e.close();
  });
});

describe('addon failure paths (injected faults)', () => {
  const x = (k: number) => ({ input_ids: T(Int32Array.from({ length: 12 }, (_, i) => (i * 13 + k) % 1000), [2, 6]) });
  afterAll(() => native()._testFault('none'));

  it('outputs are allocated when a run starts, not when it is queued: a failure then rejects that run only', async () => {
    const runs = [enc.run(x(1)), enc.run(x(2)), enc.run(x(3))]; // the first has started, two wait
    native()._testFault('alloc'); // hits the next allocation: the second run's, when it starts
    const [a, b, c] = await Promise.allSettled(runs);
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    const err = (b as PromiseRejectedResult).reason as Error;
    expect(err.constructor.name).toBe('RangeError');
    expect(err.message).toBe("output 'hidden' of 3072 bytes cannot be allocated (out of memory); run a smaller batch or shorter sequences");
    expect(c.status).toBe('fulfilled');
  });

  it('an exception while resolving a run rejects it and still lets the next run through', async () => {
    native()._testFault('resolve');
    const [a, b] = await Promise.allSettled([enc.run(x(4)), enc.run(x(5))]);
    expect(a.status).toBe('rejected');
    expect(((a as PromiseRejectedResult).reason as Error).message).toBe('injected fault while resolving a run');
    expect(b.status).toBe('fulfilled');
    expect((await enc.run(x(6))).last_hidden_state.dims).toEqual([2, 6, 64]);
  });
});

describe('Encoder.load off the event loop', () => {
  it('timers keep firing while a 44 MB model is read, recognised and packed', async () => {
    const file = path.join(dir, 'big.onnx');
    synth({ arch: '2,8,512,2048', vocab: 8000, output: file, seed: 5 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const e = await Encoder.load(file, { threads: 2 });
    clearInterval(timer);
    expect(ticks).toBeGreaterThanOrEqual(5); // a load on the JS thread allows none
    expect((await e.run({ input_ids: T(big([1, 2, 3]), [1, 3]) })).last_hidden_state.dims).toEqual([1, 3, 512]);
    e.close();
    // packing alone (createEncoderAsync) yields to the event loop before it settles
    const { spec } = await prepareModel(file);
    let settled = false, turns = 0;
    const spin = () => {
      if (settled) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const handle = await native().createEncoderAsync({ ...spec.config, threads: 2 }, spec.weights);
    settled = true;
    expect(turns).toBeGreaterThanOrEqual(1);
    handle.close();
  });

  it('errors from the reading thread arrive as the same class, message and fix', async () => {
    const junk = path.join(dir, 'junk.onnx');
    fs.writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff)));
    for (const file of [junk, path.join(dir, 'missing.onnx')]) {
      let direct: unknown;
      try {
        recognize(loadModel(file).model);
      } catch (e) {
        direct = e;
      }
      expect(direct).toBeInstanceOf(BortError);
      const e = await refused(Encoder.load(file), BortError, /./);
      expect(e).toBeInstanceOf(BortError);
      expect(e.message).toBe((direct as BortError).message);
      expect((e as BortError).fix).toBe((direct as BortError).fix);
    }
  });
});

describe('benchmark(): options are checked with BortError before loading', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['seq 0', { seq: 0 }, /^bench seq 0 is not an integer in \[1, 1048576\]: use a seq between 1 and 1048576$/],
    ['threads 99999999999', { threads: 99999999999 }, /^bench threads 99999999999 is not an integer in \[1, 256\]: use a threads between 1 and 256$/],
    ['threads 0', { threads: 0 }, /^bench threads 0 is not an integer in \[1, 256\]/],
    ['batch -1', { batch: -1 }, /^bench batch -1 is not an integer in \[1, 1048576\]/],
    ['batch 1.5', { batch: 1.5 }, /^bench batch 1\.5 is not an integer/],
    ['batch NaN', { batch: NaN }, /^bench batch NaN is not an integer/],
    ['seq as a string', { seq: '128' }, /^bench seq "128" is not an integer/],
    ['runs 0', { runs: 0 }, /^bench runs 0 is not an integer in \[1, 10000\]/],
    ['warmup -1', { warmup: -1 }, /^bench warmup -1 is not an integer in \[0, 10000\]/],
    ['pauseMs NaN', { pauseMs: NaN }, /^bench pauseMs NaN is not a number of milliseconds/],
    ['batch × seq over the bound', { batch: 4096, seq: 512 }, new RegExp(`^bench batch 4096 × seq 512 = 2097152 tokens is more than one run may have \\(${BENCH_MAX_TOKENS}\\): use a smaller batch or seq$`)],
  ];
  for (const [what, opts, message] of cases) {
    it(what, async () => {
      await refused(benchmark(MODEL, opts as never), BortError, message);
    });
  }
  it('seq longer than the model\'s positions (checked once loaded)', async () => {
    await refused(benchmark(MODEL, { seq: 600, runs: 1, warmup: 0, compareOrt: false, pauseMs: 0 }), BortError, /^bench seq 600 is longer than the model's 512 positions: use a seq between 1 and 512$/);
  });
});

/**
 * Loads the native engine (the `bort_native` N-API addon) through node-gyp-build: a prebuilt binary
 * from prebuilds/ when one matches this platform, else the one `npm install` built from source.
 * A missing or broken addon becomes an error that says what to do.
 */
import * as path from 'node:path';
import { BortError } from '../errors.js';

export interface NativeEncoder {
  run(inputs: { ids: Int32Array; mask: Int32Array | null; types: Int32Array | null; positions?: Int32Array | null; batch: number; seq: number; intermediates?: boolean }): Promise<{
    hidden: Float32Array;
    /** intermediates: every layer's output [layers, batch, seq, hidden]. */
    layers?: Float32Array;
    /** intermediates: each layer's attention probabilities averaged over its heads [layers, batch, seq, seq]. */
    attention?: Float32Array;
    pooled?: Float32Array;
    mlm?: Float32Array;
    cls?: Float32Array;
    tok?: Float32Array;
    /** Whether the run packed the real tokens (padding skipped) rather than computing every position. */
    skippedPadding: boolean;
  }>;
  close(): void;
  /** From the next run on; an integer in [1, maxThreads] (RangeError otherwise). */
  setThreads(n: number): void;
  readonly threads: number;
  readonly isa: string;
  readonly packedBytes: number;
  /** Calibration: while on, each run records every linear's input row maxima max|x| (call between runs). */
  recordInputMaxima(on: boolean): void;
  /** The row maxima recorded since the last take, one array per engine slot (encoder.h); clears them. */
  takeInputMaxima(): Float32Array[];
}

export interface NativeAddon {
  /** Packs on the calling thread. */
  createEncoder(config: Record<string, unknown>, weights: Record<string, Float32Array | Int8Array>): NativeEncoder;
  /** Packs on a libuv thread; the weights must stay untouched until the promise settles. */
  createEncoderAsync(config: Record<string, unknown>, weights: Record<string, Float32Array | Int8Array>): Promise<NativeEncoder>;
  isa(): string;
  isas(): string[];
  /** The largest thread count an encoder accepts (256). */
  readonly maxThreads: number;
  /** Tests only: the next run fails when allocating its outputs ('alloc') or when resolving ('resolve'). */
  _testFault(kind: 'alloc' | 'resolve' | 'none'): void;
  /** Tests and benches: the slabs run outputs are carved from (native/src/output_pool.h). */
  _outputPool(): { slabsMapped: number; slabsReused: number; spare: number; live: number };
}

let addon: NativeAddon | undefined;

/** The package root (two levels above dist/runtime or lib/runtime). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export function native(): NativeAddon {
  if (addon) return addon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(PACKAGE_ROOT);
    return addon;
  } catch (e) {
    const detail = (e as Error).message.split('\n')[0];
    throw new BortError(
      `the native engine is not available for ${process.platform}-${process.arch} (Node ${process.versions.node}, N-API ${process.versions.napi}): ${detail}`,
      'reinstall with a C++ toolchain (g++ or clang, make, python3) so `npm install` can build it from source, or use a platform that has a prebuilt binary (linux-x64, linux-arm64)',
    );
  }
}

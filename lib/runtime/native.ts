/**
 * Loads the native engine (the `bort_native` N-API addon) through node-gyp-build: a prebuilt binary
 * from prebuilds/ when one matches this platform, else the one `npm install` built from source.
 * A missing or broken addon becomes an error that says what to do.
 */
import * as path from 'node:path';
import { BortError } from '../errors.js';

export interface NativeEncoder {
  run(inputs: { ids: Int32Array; mask: Int32Array | null; types: Int32Array | null; batch: number; seq: number }): Promise<{
    hidden: Float32Array;
    pooled?: Float32Array;
    mlm?: Float32Array;
    cls?: Float32Array;
  }>;
  close(): void;
}

export interface NativeAddon {
  createEncoder(config: Record<string, unknown>, weights: Record<string, Float32Array>): NativeEncoder;
  isa(): string;
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

/**
 * A float32 copy of a float16 model, written here independently of the library's float16 code: every
 * FLOAT16 initializer and Constant decoded to FLOAT, every Cast to FLOAT16 made a Cast to FLOAT. It
 * computes in float32 what the file's float16 values say, so onnxruntime running it is the oracle for
 * an engine that computes in float32 from float16 weights.
 */
import * as path from 'node:path';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import type { TensorProto } from '../lib/onnx/types.js';
import { tmpDir } from './helpers.js';

const FLOAT = 1;
const FLOAT16 = 10;

/** binary16 bits → number. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** The binary16 bits a FLOAT16 tensor holds. */
export function halfBits(t: TensorProto): number[] {
  const raw = t.rawData!;
  const out: number[] = [];
  for (let i = 0; i < raw.byteLength; i += 2) out.push(raw[i] | (raw[i + 1] << 8));
  return out;
}

function toFloat(t: TensorProto): void {
  if (t.dataType !== FLOAT16) return;
  const values = Float32Array.from(halfBits(t), halfToNumber);
  t.dataType = FLOAT;
  t.rawData = new Uint8Array(values.buffer);
}

/** Writes the float32 copy of `file` into a fresh folder; returns its path. */
export function float32Copy(file: string): string {
  const m = loadModel(file).model;
  m.graph!.initializer.forEach(toFloat);
  for (const n of m.graph!.node) {
    for (const a of n.attribute) {
      if (a.t) toFloat(a.t);
      if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === FLOAT16) a.i = FLOAT;
    }
  }
  const out = path.join(tmpDir('bort-f32copy-'), path.basename(file));
  saveModel(m, out);
  return out;
}

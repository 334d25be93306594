/**
 * Exact or refuse, over many random alterations: a seeded generator rewires inputs, swaps ops,
 * changes attributes, constants, weights and shapes, deletes nodes and renames outputs in synthetic
 * BERT graphs of several exporter variants. For every altered model, recognition succeeds or throws a
 * one-line BortError; when the engine loads it, it matches onnxruntime within 1e-4 where onnxruntime
 * runs it, and does not run it where onnxruntime cannot.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Encoder, inspect, type SynthOptions } from '../lib/index.js';
import { BortError } from '../lib/errors.js';
import { saveModel } from '../lib/onnx/io.js';
import { makeFloatTensor } from '../lib/onnx/tensor.js';
import type { ModelProto } from '../lib/onnx/types.js';
import { base } from './graph-edits.js';
import { maxAbsDiffAtTokens, tmpDir } from './helpers.js';

const VARIANTS: Partial<SynthOptions>[] = [{}, { opset: 17 }, { head: 'cls' }, { head: 'mlm' }, { opset: 11 }, { weights: 'transposed' }, { scale: 'qk' }, { headShape: 'constant' }];
const B = 2, S = 10;
const FEEDS: Record<string, BigInt64Array> = {
  input_ids: BigInt64Array.from({ length: B * S }, (_, k) => BigInt((k * 7) % 50)),
  attention_mask: BigInt64Array.from({ length: B * S }, (_, k) => (k >= S + 7 ? 0n : 1n)),
  token_type_ids: BigInt64Array.from({ length: B * S }, (_, k) => (k % S >= 5 ? 1n : 0n)),
};

/** Deterministic random choices (a linear congruential generator). */
class Random {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s * 1103515245 + 12345) % 2147483648;
    return this.s / 2147483648;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
}

function floats(t: { rawData?: Uint8Array }): Float32Array {
  return new Float32Array(t.rawData!.slice().buffer);
}

/** One random alteration of `m`, described. */
function mutate(m: ModelProto, r: Random): string {
  const g = m.graph!;
  const n = r.pick(g.node);
  const tensors = [...g.node.flatMap((x) => x.output), ...g.initializer.map((t) => t.name!), ...g.input.map((i) => i.name!)];
  switch (r.int(8)) {
    case 0: {
      if (!n.input.length) return 'nothing';
      const i = r.int(n.input.length);
      n.input[i] = r.pick(tensors);
      return `${n.name} input ${i} ← ${n.input[i]}`;
    }
    case 1: {
      const old = n.opType;
      n.opType = r.pick(['Add', 'Sub', 'Mul', 'Div', 'Identity', 'Relu', 'Tanh', 'Erf', 'Sqrt', 'Neg']);
      return `${n.name} ${old} → ${n.opType}`;
    }
    case 2: {
      if (!n.attribute.length) return 'nothing';
      const a = r.pick(n.attribute);
      if (a.ints.length) a.ints = a.ints.map((v) => (r.next() < 0.5 ? v : r.int(5) - 2));
      else if (a.f !== undefined) a.f = r.pick([0, 2, -1, NaN, 1e-3]);
      else if (a.i !== undefined) a.i = r.int(5) - 2;
      return `${n.name} attribute ${a.name}`;
    }
    case 3: {
      const c = r.pick(g.node.filter((x) => x.opType === 'Constant'));
      const t = c.attribute[0].t!;
      if (t.dataType === 1) {
        const v = floats(t);
        v[r.int(v.length)] = r.pick([0, 1, 2, -1, 0.5, 3, NaN, 1e-5]);
        t.rawData = new Uint8Array(v.buffer);
      } else {
        const v = new BigInt64Array(t.rawData!.slice().buffer);
        if (!v.length) return 'nothing';
        v[r.int(v.length)] = BigInt(r.pick([0, 1, 2, -1, 3, 4, 16]));
        t.rawData = new Uint8Array(v.buffer);
      }
      return `constant ${c.name}`;
    }
    case 4:
      g.node.splice(g.node.indexOf(n), 1);
      return `deleted ${n.name}`;
    case 5: {
      const t = r.pick(g.initializer);
      if (t.dataType !== 1) return 'nothing';
      const v = floats(t);
      v[r.int(v.length)] = r.pick([NaN, Infinity, 0, 100]);
      t.rawData = new Uint8Array(v.buffer);
      return `weight ${t.name}`;
    }
    case 6: {
      const t = r.pick(g.initializer);
      const dims = t.dims.map(Number);
      if (!dims.length || t.dataType !== 1) return 'nothing';
      const k = r.int(dims.length);
      dims[k] = Math.max(0, dims[k] + r.pick([-1, 1, -dims[k]]));
      g.initializer[g.initializer.indexOf(t)] = makeFloatTensor(t.name!, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01));
      return `shape of ${t.name} → [${dims}]`;
    }
    default: {
      n.output[0] = r.pick(tensors);
      return `${n.name} writes ${n.output[0]}`;
    }
  }
}

async function ortOutputs(file: string): Promise<Record<string, Float32Array> | undefined> {
  try {
    const s = await ort.InferenceSession.create(file, { logSeverityLevel: 4 });
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of s.inputNames) feeds[name] = new ort.Tensor('int64', FEEDS[name] ?? FEEDS.input_ids, [B, S]);
    const r = await s.run(feeds);
    const out: Record<string, Float32Array> = {};
    for (const k of s.outputNames) out[k] = r[k].data as Float32Array;
    await s.release();
    return out;
  } catch {
    return undefined;
  }
}

describe('randomly altered graphs: recognised exactly or refused', () => {
  for (const seed of [11, 12, 13, 14]) {
    it(`seed ${seed}: 80 altered models`, async () => {
      const r = new Random(seed);
      const dir = tmpDir('bort-mutated-');
      const tally = { refusedByRecognition: 0, refusedByEngine: 0, matched: 0 };
      for (let i = 0; i < 80; i++) {
        const m = base(r.pick(VARIANTS));
        const what = [mutate(m, r), r.next() < 0.3 ? mutate(m, r) : ''].filter(Boolean).join('; ');
        const file = path.join(dir, `m${i}.onnx`);
        saveModel(m, file);
        const label = `case ${i} (${what})`;
        try {
          inspect(file);
        } catch (e) {
          expect(e, label).toBeInstanceOf(BortError);
          expect((e as Error).message, label).not.toMatch(/\n/);
          tally.refusedByRecognition++;
          continue;
        }
        let enc: Encoder;
        try {
          enc = await Encoder.load(file, { threads: 1 });
        } catch (e) {
          expect(e, label).toBeInstanceOf(BortError);
          tally.refusedByEngine++;
          continue;
        }
        try {
          const ref = await ortOutputs(file);
          const inputs: Record<string, { data: BigInt64Array; dims: number[] }> = {};
          for (const name of enc.inputNames) inputs[name] = { data: FEEDS[name] ?? FEEDS.input_ids, dims: [B, S] };
          if (!ref) {
            await expect(enc.run(inputs), `${label}: onnxruntime cannot run it, the engine must not either`).rejects.toThrow();
            continue;
          }
          const out = await enc.run(inputs);
          // real positions; the engine returns 0 at padded ones (it skips padding)
          const mask = enc.inputRoles.mask ? inputs[enc.inputRoles.mask].data : undefined;
          for (const k of Object.keys(ref)) expect(maxAbsDiffAtTokens(out[k]?.data ?? [], ref[k], out[k]?.dims ?? [], mask), `${label}: ${k}`).toBeLessThanOrEqual(1e-4);
          tally.matched++;
        } finally {
          enc.close();
        }
      }
      // the generator must exercise both outcomes
      expect(tally.refusedByRecognition).toBeGreaterThan(10);
      expect(tally.matched).toBeGreaterThan(5);
    });
  }
});

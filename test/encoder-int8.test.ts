// Encoder.load(fp32, { int8: true }): the native engine quantizes the layer projections and the
// masked-LM decoder at load (the same per-column rule as `quantize`) and runs them on its int8 kernels;
// the word-embedding table is int8 per row, dequantized on gather. Compared with onnxruntime
// running the int8 ONNX that `quantize` writes for the same model: both are within the quantization
// error of float32, so of each other. Activations differ by design (ours: symmetric int8 per row;
// onnxruntime's DynamicQuantizeLinear: uint8 per tensor), so the two are not bit-identical.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Encoder, quantize } from '../lib/index.js';
import { FIXTURES, fixture, maxAbsDiffAtTokens, runOrt, tmpDir } from './helpers.js';

function relDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / m;
}

// Measured on these fixtures before the embeddings and decoder were int8: ours int8 vs float32 0.4e-3
// to 1.0e-3 of the largest output, ours vs onnxruntime int8 0.5e-3 to 0.7e-3 (onnxruntime int8 vs
// float32: 0.6e-3 to 0.8e-3), inside the 3e-3 test/quantize.test.ts derives for one int8 model. The
// int8 word table adds up to 1/254 of each row's largest value to every embedding (measured: hidden
// states 3.9e-3 from onnxruntime int8, which keeps float32 embeddings): bound 6e-3. Masked-LM logits
// (int8 decoder on int8 LayerNorm outputs, 1,000 logits): measured 1.0e-2; pooled output and
// classifier (int8 pooler, tanh after): 1.3e-2. Heads' bound 2.5e-2, the one test/quantize.test.ts
// gives `quantize --all`'s int8 heads against float32. int8 attention (the default with int8: true)
// moved none of these by more than 1e-4 of the largest output (measured, 5 Dec 2026).
const BOUND = 6e-3;
const HEAD_BOUND = 2.5e-2;

describe('Encoder int8: close to onnxruntime running the same model quantized by `quantize`', () => {
  for (const name of ['bert-tiny-op14', 'bert-tiny-mlm-op14', 'bert-tiny-cls-op14']) {
    it(`${name}: every output within ${BOUND} (heads ${HEAD_BOUND}) of onnxruntime int8 and of float32, and not float32 itself`, async () => {
      const input = path.join(FIXTURES, `${name}.onnx`);
      const q = path.join(tmpDir(), 'q.onnx');
      quantize(input, { output: q });
      const inputs = fixture(name).inputs;
      const [ortFp32, ortInt8] = [await runOrt(input, inputs), await runOrt(q, inputs)];
      const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { data: BigInt64Array.from(v.data, (x) => BigInt(x)), dims: v.shape }]));
      const enc = await Encoder.load(input, { threads: 2, int8: true });
      const floatAttention = await Encoder.load(input, { threads: 2, int8: true, int8Attention: false });
      const fileAttention = await Encoder.load(q, { threads: 2, int8Attention: true });
      const fp = await Encoder.load(input, { threads: 2 });
      try {
        const ours = await enc.run(feeds);
        const oursFloatAttention = await floatAttention.run(feeds);
        const oursFile = await fileAttention.run(feeds);
        const oursFp32 = await fp.run(feeds);
        const names = Object.keys(ortFp32);
        expect(Object.keys(ours).sort()).toEqual([...names].sort());
        const mask = inputs.attention_mask.data;
        for (const k of names) {
          // per-token outputs: zeros at padded positions (README), compared at the real ones
          if (ours[k].dims.length === 3) {
            const width = ours[k].dims[2];
            for (const o of [ortInt8[k].data, ortFp32[k].data]) for (let i = 0; i < o.length; i++) if (mask[Math.floor(i / width)] === 0) o[i] = 0;
            expect(maxAbsDiffAtTokens(ours[k].data, ortFp32[k].data, ours[k].dims, mask)).toBeLessThan(Infinity);
          }
          const bound = enc.outputRoles.find((o) => o.name === k)!.from === 'hidden' ? BOUND : HEAD_BOUND;
          expect(relDiff(ortInt8[k].data, ours[k].data)).toBeLessThan(bound);
          expect(relDiff(ortFp32[k].data, ours[k].data)).toBeLessThan(bound);
          expect(relDiff(oursFp32[k].data, ours[k].data)).toBeGreaterThan(1e-5); // the int8 path really ran
          // int8 attention (on by default with int8: true) against float32 attention: both in bound,
          // and not the same numbers (the default really runs it)
          expect(relDiff(ortInt8[k].data, oursFloatAttention[k].data)).toBeLessThan(bound);
          expect(relDiff(ortFp32[k].data, oursFloatAttention[k].data)).toBeLessThan(bound);
          expect(relDiff(oursFloatAttention[k].data, ours[k].data)).toBeGreaterThan(1e-7);
          // the quantized file with int8 attention (measured 6.0e-4 to 1.0e-3 from onnxruntime int8)
          expect(relDiff(ortInt8[k].data, oursFile[k].data)).toBeLessThan(BOUND);
        }
      } finally {
        enc.close();
        floatAttention.close();
        fileAttention.close();
        fp.close();
      }
    });
  }

  it('int8 must be a boolean', async () => {
    await expect(Encoder.load(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { int8: 'yes' as never })).rejects.toThrow(/options.int8 must be a boolean, got string/);
  });

  it('int8Attention must be a boolean', async () => {
    await expect(Encoder.load(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { int8: true, int8Attention: 1 as never })).rejects.toThrow(/options.int8Attention must be a boolean, got number/);
  });

  it('int8Attention on a float32 model without int8: true is refused', async () => {
    await expect(Encoder.load(path.join(FIXTURES, 'bert-tiny-op14.onnx'), { int8Attention: true })).rejects.toThrow(/options.int8Attention needs int8 layers: load with \{ int8: true \}/);
  });
});

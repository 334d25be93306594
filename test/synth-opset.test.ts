/**
 * synth writes only opsets it can write and that load and onnxruntime accept: 11 to 17. Anything
 * else given to the library is a BortError before a file is written (the CLI's range is checked in
 * cli-surface.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { synth } from '../lib/synth/bert.js';
import { SYNTH_OPSETS } from '../lib/synth/options.js';
import { loadModel } from '../lib/onnx/io.js';
import { AI_ONNX_OPSETS } from '../lib/onnx/validate.js';
import { BortError } from '../lib/errors.js';
import { errorOf } from './graph-edits.js';
import { runOrt, tmpDir } from './helpers.js';

describe('synth opsets', () => {
  for (const opset of [10, 18, 26, 0, -1, NaN, 14.5, Infinity, '14' as unknown as number]) {
    it(`opset ${String(opset)} (${typeof opset}) is refused, nothing written`, async () => {
      const dir = tmpDir();
      const e = await errorOf(() => synth({ arch: '1,1,8,8', vocab: 10, maxPositions: 8, opset, output: path.join(dir, 'm.onnx') }));
      expect(e).toBeInstanceOf(BortError);
      expect(e.message).toMatch(/^opset .* is not supported by synth: choose an opset from 11 to 17$/);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  }

  it('every opset synth writes (11 to 17) is one load and onnxruntime accept', async () => {
    const dir = tmpDir();
    expect(SYNTH_OPSETS).toEqual({ min: 11, max: 17 });
    for (let opset = SYNTH_OPSETS.min; opset <= SYNTH_OPSETS.max; opset++) {
      expect(opset).toBeGreaterThanOrEqual(AI_ONNX_OPSETS.min);
      expect(opset).toBeLessThanOrEqual(AI_ONNX_OPSETS.max);
      const file = path.join(dir, `m${opset}.onnx`);
      synth({ arch: '1,1,8,8', vocab: 10, maxPositions: 8, opset, output: file });
      const m = loadModel(file).model;
      expect(Number(m.opsetImport.find((o) => !o.domain)!.version)).toBe(opset);
      const out = await runOrt(file, { input_ids: { shape: [1, 3], data: [1, 2, 3] }, attention_mask: { shape: [1, 3], data: [1, 1, 1] }, token_type_ids: { shape: [1, 3], data: [0, 0, 0] } });
      expect(out.last_hidden_state.dims).toEqual([1, 3, 8]);
    }
  });
});

/**
 * compress() refuses what it cannot do exactly: an unknown strategy or attention scale (never read as
 * the default), a model with NaN or infinite weights (named); a custom scorer's BortError comes out as
 * itself. Importance is taken from the effective weight alpha·W of a Gemm.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compress } from '../lib/compress.js';
import { BortError } from '../lib/errors.js';
import { firstScorer, weightScorer, type ImportanceScorer } from '../lib/extract/scorer.js';
import { recognize } from '../lib/bert/recognize.js';
import type { BertModel } from '../lib/bert/model.js';
import { base, errorOf, save } from './graph-edits.js';
import { editWeight, linears, weightOf } from './model-edits.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

async function refusedWithNothingWritten(options: Record<string, unknown>, message: RegExp, input = OP14): Promise<BortError> {
  const dir = tmpDir();
  const e = await errorOf(() => compress(input, { arch: '1,2,32,64', output: path.join(dir, 'out.onnx'), ...options } as never));
  expect(e).toBeInstanceOf(BortError);
  expect(e.message).toMatch(message);
  expect(e.message).not.toMatch(/\n/);
  expect(fs.readdirSync(dir)).toEqual([]);
  return e as BortError;
}

describe('compress(): options it does not know are refused', () => {
  for (const [strategy, shown] of [['imortance', "'imortance'"], ['', "''"], ['Importance', "'Importance'"], [42, 'number'], [null, 'null'], [true, 'boolean']] as const) {
    it(`strategy ${JSON.stringify(strategy)}`, async () => {
      const e = await refusedWithNothingWritten({ strategy }, new RegExp(`^strategy ${shown.replace(/[()]/g, '\\$&')} is unknown: use 'importance', 'first' or an ImportanceScorer object$`));
      expect(e.fix).toMatch(/ImportanceScorer/);
    });
  }
  for (const attentionScale of ['avg', 'Mean', 1]) {
    it(`attentionScale ${JSON.stringify(attentionScale)}`, async () => {
      await refusedWithNothingWritten({ arch: '1,1,32,64', attentionScale }, /^attentionScale .* is unknown: use 'mean', 'keep' or 'rescale'/);
    });
  }
});

describe('compress(): a custom scorer that throws', () => {
  it('a BortError from the scorer rejects the call as that same BortError', async () => {
    const mine = new BortError('my scorer needs calibration data', 'pass --calibration');
    const scorer: ImportanceScorer = { ...firstScorer, name: 'mine', neurons: () => { throw mine; } };
    const dir = tmpDir();
    const e = await errorOf(() => compress(OP14, { arch: '1,2,32,64', output: path.join(dir, 'o.onnx'), strategy: scorer }));
    expect(e).toBe(mine);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('compress(): NaN or infinite weights are refused, naming the tensor', () => {
  const cases: [string, string, number][] = [
    ['NaN in an FFN weight', weightOf(linears(0).ffnIn), NaN],
    ['+Infinity in a query bias', `${linears(1).q}.bias`, Infinity],
    ['-Infinity in a LayerNorm gamma', 'bert.embeddings.LayerNorm.weight', -Infinity],
  ];
  for (const [what, tensor, value] of cases) {
    it(what, async () => {
      const m = base();
      editWeight(m, tensor, (d) => { d[3] = value; });
      const file = save(m, 'bad.onnx');
      const quoted = tensor.replace(/[.]/g, '\\.');
      const message = new RegExp(`^weight '${quoted}' holds ${String(value)} at index 3: onnxruntime would return NaN or infinite values`);
      for (const strategy of ['importance', 'first'] as const) await refusedWithNothingWritten({ arch: '1,2,16,24', strategy }, message, file);
      // the CLI: the same one line, exit 1, nothing written
      const out = path.join(path.dirname(file), 'small.onnx');
      const r = spawnSync(process.execPath, [CLI, file, '--arch', '1,2,16,24', '-o', out], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`weight '${quoted}' holds ${String(value)} at index 3`));
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fs.existsSync(out)).toBe(false);
    });
  }
});

describe('importance is measured on the effective weight alpha·W', () => {
  const ALPHA = 3;
  const scaled = [linears(0).ffnIn, linears(1).q, linears(1).o];

  /** Every score the importance scorer gives. */
  function allScores(m: BertModel): number[] {
    const s = weightScorer;
    return [
      ...s.layers(m), ...s.hidden(m),
      ...m.layers.flatMap((_, l) => [...s.heads(m, l), ...s.attentionChannels(m, l), ...s.neurons(m, l), ...s.headSimilarity!(m, l).flat()]),
    ];
  }

  it('a linear with alpha = 3 scores as one whose stored weight is 3·W', () => {
    // A: the stored weights, with Gemm's alpha recorded as 3 on three linears
    const a = recognize(base());
    const byPrefix = (m: BertModel, p: string) => {
      const all = m.layers.flatMap((l) => [l.attention.q, l.attention.k, l.attention.v, l.attention.o, l.ffn.in, l.ffn.out]);
      return all.find((l) => l.weight === weightOf(p))!;
    };
    for (const p of scaled) byPrefix(a, p).alpha = ALPHA;
    // B: the weights themselves multiplied by 3, alpha 1
    const bModel = base();
    for (const p of scaled) editWeight(bModel, weightOf(p), (d) => d.forEach((v, i) => { d[i] = v * ALPHA; }));
    const b = recognize(bModel);
    for (const p of scaled) expect(byPrefix(b, p).alpha).toBe(1);
    const plain = allScores(recognize(base()));
    const sa = allScores(a), sb = allScores(b);
    expect(sa).toHaveLength(sb.length);
    sa.forEach((x, i) => expect(Math.abs(x - sb[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(sb[i]))));
    // and alpha matters: the scores without it differ
    expect(plain.some((x, i) => Math.abs(x - sb[i]) > 1e-3 * Math.max(1, Math.abs(sb[i])))).toBe(true);
  });
});

/**
 * The native engine skips padding: a batch's real tokens are packed and attention runs per sequence.
 * On every ISA path this machine has, against the same engine with packing off (BORT_PACK=0), each
 * row run alone at its own length, and onnxruntime (padded): real positions equal (1e-5 against the
 * engine's padded computation, 1e-4 against onnxruntime as the parity tests), padded positions are 0.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, runOrt, tmpDir, supportedIsas } from './helpers.js';

interface Case {
  name: string;
  model: string;
  batch: number;
  seq: number;
  ids: number[];
  mask: number[];
  /** every row's tokens come first (then each row can also be run alone) */
  prefix: boolean;
  expectSkipped: boolean;
  /** onnxruntime's outputs by engine role */
  ort: Record<string, number[]>;
}
interface ChildRun {
  name: string;
  isa: string;
  skippedPadding: boolean;
  outs: Record<string, number[]>;
  alone: ({ skippedPadding: boolean } & Record<string, number[]>)[];
}

const TINY = path.join(FIXTURES, 'bert-tiny-op14.onnx');
const MLM = path.join(FIXTURES, 'bert-tiny-mlm-op14.onnx');
const CLS = path.join(FIXTURES, 'bert-tiny-cls-op14.onnx');
/** onnxruntime output name -> engine role, per model */
const ROLES: Record<string, Record<string, string>> = {
  [TINY]: { last_hidden_state: 'hidden', pooler_output: 'pooled' },
  [MLM]: { logits: 'mlm' },
  [CLS]: { logits: 'cls' },
};
const PER_POSITION = new Set(['hidden', 'mlm']);

const dir = tmpDir('bort-skip-padding-');
const cases: Case[] = [];

function maskOf(lens: number[], seq: number): number[] {
  return lens.flatMap((n) => Array.from({ length: seq }, (_, s) => (s < n ? 1 : 0)));
}

beforeAll(async () => {
  let x = 11;
  const rnd = (n: number) => 1 + ((x = (x * 1103515245 + 12345) % 2147483648) % (n - 1));
  const add = async (name: string, model: string, seq: number, mask: number[], expectSkipped: boolean) => {
    const batch = mask.length / seq;
    const ids = mask.map((m) => (m ? rnd(1000) : 0));
    let prefix = true;
    for (let b = 0; b < batch; b++) for (let s = 1; s < seq; s++) if (mask[b * seq + s] && !mask[b * seq + s - 1]) prefix = false;
    if (mask[0] === 0) prefix = false;
    const feeds = {
      input_ids: { shape: [batch, seq], data: ids },
      attention_mask: { shape: [batch, seq], data: mask },
      token_type_ids: { shape: [batch, seq], data: new Array(batch * seq).fill(0) },
    };
    const ref = await runOrt(model, feeds);
    const ort: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(ref)) ort[ROLES[model][k]] = Array.from(v.data);
    cases.push({ name, model, batch, seq, ids, mask, prefix, expectSkipped, ort });
  };
  await add('mixed lengths (hidden, pooled)', TINY, 16, maskOf([5, 1, 16, 9], 16), true);
  await add('mixed lengths (masked-LM logits)', MLM, 12, maskOf([3, 12, 1, 7], 12), true);
  await add('mixed lengths (classifier)', CLS, 10, maskOf([4, 10, 2], 10), true);
  await add('rows of length 1', TINY, 6, maskOf([1, 1, 1], 6), true);
  await add('a row all padding but one token', MLM, 20, maskOf([20, 1], 20), true);
  await add('batch of one', TINY, 12, maskOf([7], 12), true);
  await add('all rows full', TINY, 9, maskOf([9, 9], 9), false);
  await add('a hole in a row', MLM, 8, [1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0], true);
  await add('position 0 padding (runs padded)', TINY, 6, [0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], false);
  fs.writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(cases));
}, 120_000);

function runChild(isa: string, pack: boolean): ChildRun[] {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'test', 'skip-padding-child.cjs'), path.join(dir, 'cases.json')], {
    env: { ...process.env, BORT_ISA: isa, BORT_PACK: pack ? '1' : '0' }, encoding: 'utf8', maxBuffer: 1 << 26,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout) as ChildRun[];
  expect(out.length).toBe(cases.length);
  return out;
}

/** max |a-b| over real positions, and whether every padded position is exactly 0 in `zeros` */
function compare(c: Case, role: string, a: number[], b: number[]): { diff: number; paddedZero: boolean } {
  expect(a.length).toBe(b.length);
  const perPos = PER_POSITION.has(role);
  const width = perPos ? a.length / (c.batch * c.seq) : 0;
  let diff = 0;
  let paddedZero = true;
  for (let i = 0; i < a.length; i++) {
    if (perPos && c.mask[Math.floor(i / width)] === 0) {
      if (a[i] !== 0) paddedZero = false;
    } else {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
    }
  }
  return { diff: Number.isNaN(diff) ? Infinity : diff, paddedZero };
}

describe('skipping padding: packed real tokens equal the padded computation', () => {
  it('onnxruntime returns computed values (not zeros) at padded positions', () => {
    const c = cases[0];
    const { paddedZero } = compare(c, 'hidden', c.ort.hidden, c.ort.hidden);
    expect(paddedZero).toBe(false);
  });

  for (const isa of supportedIsas()) {
    it(`${isa}: packed vs padded (BORT_PACK=0), rows alone, and onnxruntime`, () => {
      const on = runChild(isa, true);
      const off = runChild(isa, false);
      for (let i = 0; i < cases.length; i++) {
        const c = cases[i];
        const what = `${c.name} [${isa}]`;
        expect(on[i].isa, what).toBe(isa);
        expect(on[i].skippedPadding, `${what}: skipped padding`).toBe(c.expectSkipped);
        expect(off[i].skippedPadding, `${what}: BORT_PACK=0 skipped padding`).toBe(false);
        // the engine computes the hidden states always, and the model's heads
        const roles = Object.keys(on[i].outs);
        expect(roles, what).toEqual(expect.arrayContaining(['hidden', ...Object.keys(c.ort)]));
        expect(Object.keys(off[i].outs).sort(), what).toEqual([...roles].sort());
        for (const role of roles) {
          const vsPadded = compare(c, role, on[i].outs[role], off[i].outs[role]);
          expect(vsPadded.diff, `${what} ${role} vs padded`).toBeLessThanOrEqual(1e-5);
          expect(vsPadded.paddedZero, `${what} ${role}: padded positions 0`).toBe(true);
          expect(compare(c, role, off[i].outs[role], on[i].outs[role]).paddedZero, `${what} ${role}: padded positions 0 (BORT_PACK=0)`).toBe(true);
          if (c.ort[role]) expect(compare(c, role, on[i].outs[role], c.ort[role]).diff, `${what} ${role} vs onnxruntime`).toBeLessThanOrEqual(1e-4);
        }
        if (!c.prefix) continue;
        // each row alone, unpadded: its values are the batch row's real positions
        expect(on[i].alone.length, what).toBe(c.batch);
        for (let b = 0; b < c.batch; b++) {
          const alone = on[i].alone[b];
          expect(alone.skippedPadding, `${what} row ${b} alone`).toBe(false);
          for (const role of roles) {
            const got = on[i].outs[role];
            const width = PER_POSITION.has(role) ? got.length / (c.batch * c.seq) : got.length / c.batch;
            const start = PER_POSITION.has(role) ? b * c.seq * width : b * width;
            const part = got.slice(start, start + alone[role].length);
            let d = 0;
            for (let j = 0; j < part.length; j++) d = Math.max(d, Math.abs(part[j] - alone[role][j]));
            expect(d, `${what} row ${b} ${role} vs alone`).toBeLessThanOrEqual(1e-5);
          }
        }
      }
    }, 120_000);
  }
});

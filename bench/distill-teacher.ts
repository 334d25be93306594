/**
 * Distillation benchmark on the trained teacher in ../shared/teacher: extract a student, measure its
 * top-1 agreement with the teacher and its accuracy on held-out cases of mlm-eval.json, distil it on
 * train.txt with `distill()` (native training engine), and measure again.
 *
 *   npx tsx bench/distill-teacher.ts [--arch 3,8,256,512] [--strategy first] [--steps 100] [--batch 32]
 *                                    [--seq 64] [--lr 5e-4] [--limit 500] [--threads 2]
 *                                    [--mlm-weight A] [--kl-weight B]   (default: distill()'s loss)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { compress } from '../lib/compress.js';
import { distill } from '../lib/distill/distill.js';
import { Encoder } from '../lib/runtime/encoder.js';

// the shared folder sits beside the repository root (BORT_SHARED overrides it, e.g. from a worktree)
const T = path.join(process.env.BORT_SHARED ?? path.resolve(__dirname, '..', '..', 'shared'), 'teacher');
const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: '3,8,256,512' }, strategy: { type: 'string', default: 'first' },
    steps: { type: 'string', default: '100' }, batch: { type: 'string', default: '32' }, seq: { type: 'string', default: '64' },
    lr: { type: 'string', default: '5e-4' }, limit: { type: 'string', default: '500' }, threads: { type: 'string', default: '2' },
    // the loss (default: distill()'s, pure distillation; the Bort recipe: --mlm-weight 0.1 --kl-weight 0.9)
    'mlm-weight': { type: 'string' }, 'kl-weight': { type: 'string' },
  },
});
const threads = Number(a.threads);

interface Case { input_ids: number[]; masked_index: number; label: number }

/** Argmax at the masked position of every case, equal-length cases run together. */
async function predictions(model: string, cases: Case[]): Promise<Int32Array> {
  const enc = await Encoder.load(model, { threads });
  const roles = enc.inputRoles;
  const out = new Int32Array(cases.length);
  const byLen = new Map<number, number[]>();
  cases.forEach((c, i) => byLen.set(c.input_ids.length, [...(byLen.get(c.input_ids.length) ?? []), i]));
  for (const [S, idx] of byLen) {
    for (let s = 0; s < idx.length; s += 16) {
      const group = idx.slice(s, s + 16);
      const B = group.length;
      const ids = new Int32Array(B * S);
      group.forEach((ci, b) => {
        ids.set(cases[ci].input_ids, b * S);
        ids[b * S + cases[ci].masked_index] = 4;
      });
      const feeds: Record<string, { data: Int32Array; dims: number[] }> = { [roles.ids]: { data: ids, dims: [B, S] } };
      if (roles.mask) feeds[roles.mask] = { data: new Int32Array(B * S).fill(1), dims: [B, S] };
      if (roles.tokenTypes) feeds[roles.tokenTypes] = { data: new Int32Array(B * S), dims: [B, S] };
      const r = await enc.run(feeds);
      const logits = Object.values(r).find((t) => t.dims.length === 3)!;
      const V = logits.dims[2];
      group.forEach((ci, b) => {
        const row = logits.data.subarray((b * S + cases[ci].masked_index) * V, (b * S + cases[ci].masked_index + 1) * V);
        let best = 0;
        for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
        out[ci] = best;
      });
    }
  }
  enc.close();
  return out;
}

function score(pred: Int32Array, teacher: Int32Array, cases: Case[]): string {
  let agree = 0, hits = 0;
  cases.forEach((c, i) => {
    if (pred[i] === teacher[i]) agree++;
    if (pred[i] === c.label) hits++;
  });
  return `agreement ${((100 * agree) / cases.length).toFixed(1)}%, accuracy ${((100 * hits) / cases.length).toFixed(1)}%`;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-distill-'));
  const teacherFile = path.join(T, 'teacher-mlm.onnx');
  const cases = (JSON.parse(fs.readFileSync(path.join(T, 'mlm-eval.json'), 'utf8')).cases as Case[]).slice(0, Number(a.limit));
  const student = path.join(dir, 'student.onnx');
  await compress(teacherFile, { arch: a.arch!, strategy: a.strategy as 'first' | 'importance', output: student });
  const tp = await predictions(teacherFile, cases);
  console.log(`${cases.length} held-out cases; student ${a.arch} (${a.strategy}) at step 0: ${score(await predictions(student, cases), tp, cases)}`);
  const out = path.join(dir, 'distilled.onnx');
  let lastLine = 0;
  const r = await distill({
    ...(a['mlm-weight'] === undefined ? {} : { mlmWeight: Number(a['mlm-weight']) }),
    ...(a['kl-weight'] === undefined ? {} : { klWeight: Number(a['kl-weight']) }),
    teacher: teacherFile, student, corpus: path.join(T, 'train.txt'), vocab: path.join(T, 'vocab.txt'), output: out,
    steps: Number(a.steps), batch: Number(a.batch), seq: Number(a.seq), lr: Number(a.lr), threads,
    onProgress: (p) => {
      if (Date.now() - lastLine > 10000 || p.step === p.steps) {
        lastLine = Date.now();
        console.log(`step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} (mlm ${p.mlm.toFixed(3)}, kl ${p.kl.toFixed(4)}) lr ${p.lr.toExponential(2)} ${p.tokensPerSecond.toFixed(0)} tok/s ETA ${p.etaSeconds.toFixed(0)} s`);
      }
    },
  });
  const steps = r.steps;
  console.log(`distilled ${steps} steps in ${r.seconds.toFixed(1)} s (${(steps / r.seconds).toFixed(3)} steps/s incl. setup); loss ${r.firstLoss?.toFixed(4)} -> ${r.lastLoss?.toFixed(4)}`);
  console.log(`student after ${steps} steps: ${score(await predictions(out, cases), tp, cases)}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

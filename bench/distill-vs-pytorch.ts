/**
 * Distillation speed against PyTorch, one run, same machine: the first-k (3,8,256,512) student of the
 * trained teacher in ../shared/teacher, the same masked-LM batches (32 × 64 from train.txt, 15% masked),
 * the same loss (0.1·MLM + 0.9·T²·KL at the masked positions, T = 2), AdamW 5e-4 with 5% warm-up, clipping
 * at 1, 2 threads. Ours: the native Trainer with the teacher's logits from the native Encoder (as
 * `distill()` runs). PyTorch: bench/distill_torch.py (Debian's python3-torch, /usr/bin/python3) on the
 * batches this script writes. A pause between the engines lets each one's threads go quiet.
 *
 *   npx tsx bench/distill-vs-pytorch.ts [--steps 30] [--arch 3,8,256,512] [--threads 2] [--pause 5]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { compress } from '../lib/compress.js';
import { recognize } from '../lib/bert/recognize.js';
import { loadModel } from '../lib/onnx/io.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { Trainer } from '../lib/train/trainer.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { MaskedLmBatches, type MaskedBatch } from '../lib/distill/masked-batches.js';

const SHARED = process.env.BORT_SHARED ?? path.resolve(__dirname, '..', '..', 'shared');
const T = path.join(SHARED, 'teacher');
const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '30' }, arch: { type: 'string', default: '3,8,256,512' },
    threads: { type: 'string', default: '2' }, pause: { type: 'string', default: '5' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const steps = Number(a.steps), threads = Number(a.threads), BATCH = 32, SEQ = 64, LR = 5e-4;
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-kd-vs-torch-'));
  const teacherFile = path.join(T, 'teacher-mlm.onnx');
  const studentFile = path.join(dir, 'student.onnx');
  await compress(teacherFile, { arch: a.arch!, strategy: 'first', output: studentFile });
  const tok = TextTokenizer.fromFile(path.join(T, 'vocab.txt'));
  const source = new MaskedLmBatches(tok, fs.readFileSync(path.join(T, 'train.txt'), 'utf8'), { batch: BATCH, seq: SEQ, maskRate: 0.15, seed: 1 });
  const batches: MaskedBatch[] = Array.from({ length: steps }, () => source.next());
  const batchFile = path.join(dir, 'batches.json');
  fs.writeFileSync(batchFile, JSON.stringify({
    batch: BATCH, seq: SEQ, totalSteps: steps,
    batches: batches.map((b) => ({ ids: Array.from(b.ids), mask: Array.from(b.mask), positions: Array.from(b.positions), labels: Array.from(b.labels) })),
  }));
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ISA ${process.env.BORT_ISA ?? 'auto'}`);
  console.log(`student ${a.arch} (first-k) of ${teacherFile}; ${steps} steps of ${BATCH} × ${SEQ}, ${threads} threads`);

  // ours
  const teacher = await Encoder.load(teacherFile, { threads });
  const trainer = Trainer.fromModel(recognize(loadModel(studentFile).model), {
    lr: LR, warmupSteps: Math.round(0.05 * steps), totalSteps: steps, threads,
  });
  const V = teacher.info.vocab;
  const times: number[] = [];
  let firstLoss = NaN;
  const phase = { teacher: 0, step: 0 };
  for (const b of batches) {
    const t0 = performance.now();
    const out = await teacher.run({ input_ids: { data: b.ids, dims: [b.batch, b.seq] }, attention_mask: { data: b.mask, dims: [b.batch, b.seq] }, token_type_ids: { data: b.types, dims: [b.batch, b.seq] } });
    const logits = Object.values(out)[0].data;
    const tl = new Float32Array(b.positions.length * V);
    b.positions.forEach((p, i) => tl.set(logits.subarray(p * V, (p + 1) * V), i * V));
    const t1 = performance.now();
    const r = await trainer.step({ ...b, teacher: tl, mlmWeight: 0.1, klWeight: 0.9, temperature: 2 });
    const t2 = performance.now();
    if (Number.isNaN(firstLoss)) firstLoss = r.loss;
    times.push((t2 - t0) / 1000);
    if (times.length > 2) {
      phase.teacher += (t1 - t0) / 1000;
      phase.step += (t2 - t1) / 1000;
    }
  }
  teacher.close();
  trainer.close();
  const timed = times.slice(2);
  const ours = { stepsPerSecond: timed.length / timed.reduce((x, y) => x + y, 0), firstLoss, maxRssKiB: process.resourceUsage().maxRSS };
  console.log(`ours:    ${ours.stepsPerSecond.toFixed(3)} steps/s (teacher forward ${(phase.teacher / timed.length * 1000).toFixed(0)} ms + student step ${(phase.step / timed.length * 1000).toFixed(0)} ms), first loss ${firstLoss.toFixed(5)}, peak RSS ${(ours.maxRssKiB / 1024).toFixed(0)} MiB`);

  await sleep(Number(a.pause));
  const py = spawnSync(a.python!, [path.join(__dirname, 'distill_torch.py'), teacherFile, studentFile, batchFile, '--threads', String(threads), '--lr', String(LR)], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`PyTorch run failed: ${py.stderr}`);
  const torch = JSON.parse(py.stdout.trim().split('\n').pop()!);
  console.log(`PyTorch ${torch.torch} (${torch.threads} threads): ${torch.stepsPerSecond.toFixed(3)} steps/s, first loss ${torch.firstLoss.toFixed(5)}, peak RSS ${(torch.maxRssKiB / 1024).toFixed(0)} MiB`);
  if (torch.savedBytes) {
    console.log(`PyTorch activation memory kept for the backward (first step, student forward + loss, parameters excluded): ${torch.savedBytes} B = ${(torch.savedBytes / torch.tokens).toFixed(0)} B per token over ${torch.tokens} tokens with ${torch.lossPositions} loss positions (ours: native/build/bort_bench_train prints its per-token and per-loss-position figures)`);
  }
  console.log(`ours / PyTorch: ${(ours.stepsPerSecond / torch.stepsPerSecond).toFixed(2)}× steps/s; first-loss relative difference ${(Math.abs(firstLoss - torch.firstLoss) / torch.firstLoss).toExponential(2)}; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

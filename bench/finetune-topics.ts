/**
 * Fine-tuning benchmark on ../shared/tasks/fortune-topics (4 topics, train 2,900 / dev 362) with the
 * trained teacher in ../shared/teacher: dev accuracy of (a) the teacher fine-tuned, (b) the first-k
 * (3,8,256,512) student fine-tuned directly, (c) that student fine-tuned with task distillation from
 * (a) of the same seed — per seed, with each model's parameter count and native latency (batch 1 × 64).
 * Before them, the speed anchor: native training steps/s against PyTorch (/usr/bin/python3, torch)
 * fine-tuning the same teacher on the same padded batches at the same batch, seq and threads.
 * Results are appended to OUT/results.jsonl as they come and summarised at the end.
 *
 *   npx tsx bench/finetune-topics.ts [--seeds 1,2,3] [--epochs 3] [--batch 32] [--seq 128] [--threads 2]
 *                                    [--runs a,b,c,d,e] [--speed-steps 20] [--torch-steps 3] [--out DIR]
 *                                    [--distilled STUDENT.onnx]
 * --distilled: (d) that student (e.g. from `bort-compress distill`) fine-tuned, (e) the same with task
 * distillation from (a).
 * (PyTorch times batches 2.. after one warm-up step on batch 1: the native run's timed batches, fewer.)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { recognize } from '../lib/bert/recognize.js';
import { compress } from '../lib/compress.js';
import { EpochBatches, encodeExamples, padBatch } from '../lib/finetune/class-batches.js';
import { writeClassifierHead } from '../lib/finetune/classifier-head.js';
import { labelSet, readExamples } from '../lib/finetune/examples.js';
import { finetune, type FinetuneSummary } from '../lib/finetune/finetune.js';
import { loadModel } from '../lib/onnx/io.js';
import { floatData } from '../lib/onnx/tensor.js';
import { benchmark } from '../lib/runtime/bench.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';
import { Trainer } from '../lib/train/trainer.js';

// the shared folder sits beside the repository root (BORT_SHARED overrides it, e.g. from a worktree)
const SHARED = process.env.BORT_SHARED ?? path.resolve(__dirname, '..', '..', 'shared');
const TEACHER = path.join(SHARED, 'teacher', 'teacher-mlm.onnx');
const VOCAB = path.join(SHARED, 'teacher', 'vocab.txt');
const TASK = path.join(SHARED, 'tasks', 'fortune-topics');
const { values: a } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' }, epochs: { type: 'string', default: '3' }, batch: { type: 'string', default: '32' },
    seq: { type: 'string', default: '128' }, threads: { type: 'string', default: '2' }, runs: { type: 'string', default: 'a,b,c' },
    distilled: { type: 'string' },
    'speed-steps': { type: 'string', default: '20' }, 'torch-steps': { type: 'string', default: '3' }, out: { type: 'string', default: path.join(os.tmpdir(), 'bort-finetune-bench') },
  },
});
const threads = Number(a.threads), batch = Number(a.batch), seq = Number(a.seq), epochs = Number(a.epochs);
const out = a.out!;
fs.mkdirSync(out, { recursive: true });
const results = path.join(out, 'results.jsonl');
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const record = (r: Record<string, unknown>) => {
  const line = JSON.stringify({ ...r, load: load(), at: new Date().toISOString() });
  fs.appendFileSync(results, line + '\n');
  console.log(line);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function paramCount(file: string): number {
  const m = loadModel(file).model;
  return m.graph!.initializer.filter((t) => t.dataType === 1).reduce((s, t) => s + floatData(t).length, 0);
}

async function latencyMs(file: string): Promise<number> {
  return (await benchmark(file, { batch: 1, seq: 64, threads, runs: 50 })).ours.medianMs;
}

/** Native and PyTorch training steps/s on the same padded batches (teacher + a new head, batch, seq, threads). */
async function speed(steps: number): Promise<void> {
  const tok = TextTokenizer.fromFile(VOCAB);
  const ex = readExamples(path.join(TASK, 'train.jsonl'), 'training');
  const labels = labelSet(ex, 'train.jsonl');
  const data = encodeExamples(tok, ex, labels, seq);
  const order = new EpochBatches(data.length, batch, 1);
  const batches = Array.from({ length: steps + 2 }, () => padBatch(data, order.next().rows, tok.padId));
  const loaded = loadModel(TEACHER);
  let bert = recognize(loaded.model);
  writeClassifierHead(loaded.model, bert, labels.length, 1);
  bert = recognize(loaded.model);
  const tr = Trainer.fromModel(bert, { head: 'classifier', lr: 5e-5, headLr: 1e-3, totalSteps: batches.length, threads });
  let t0 = 0, first = 0, last = 0;
  for (let i = 0; i < batches.length; i++) {
    if (i === 2) t0 = performance.now();
    const b = batches[i];
    const r = await tr.step({ ids: b.ids, types: b.types, mask: b.mask, batch: b.batch, seq: b.seq, classes: b.classes });
    if (i === 0) first = r.loss;
    last = r.loss;
  }
  const secs = (performance.now() - t0) / 1000;
  tr.close();
  const meanSeq = batches.slice(2).reduce((s, b) => s + b.seq, 0) / steps;
  record({ kind: 'speed', engine: 'native', threads, batch, steps, meanPaddedSeq: meanSeq, seconds: secs, stepsPerSecond: steps / secs, firstLoss: first, lastLoss: last });
  const file = path.join(out, 'speed-batches.json');
  fs.writeFileSync(file, JSON.stringify({
    labels: labels.length, heads: bert.arch.heads,
    batches: batches.slice(1, 2 + Number(a['torch-steps'])).map((b) => ({ batch: b.batch, seq: b.seq, ids: [...b.ids], types: [...b.types], mask: [...b.mask], classes: [...b.classes] })),
  }));
  await sleep(5000);
  const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'finetune_torch.py'), TEACHER, file, '--threads', String(threads), '--warmup', '1'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (py.status !== 0) {
    record({ kind: 'speed', engine: 'pytorch', error: py.stderr.slice(-2000) });
  } else {
    const tb = batches.slice(2, 2 + Number(a['torch-steps']));
    record({ kind: 'speed', ...JSON.parse(py.stdout.trim().split('\n').pop()!), batch, meanPaddedSeq: tb.reduce((s, b) => s + b.seq, 0) / tb.length });
  }
}

async function run(kind: string, model: string, seed: number, teacher?: string): Promise<FinetuneSummary> {
  const output = path.join(out, `${kind}-seed${seed}.onnx`);
  const r = await finetune({
    model, train: path.join(TASK, 'train.jsonl'), dev: path.join(TASK, 'dev.jsonl'), vocab: VOCAB, output, teacher,
    epochs, batch, seq, lr: 5e-5, headLr: 1e-3, seed, threads,
  });
  const extra = seed === seeds[0] ? { params: paramCount(output), latencyMs1x64: await latencyMs(output) } : {};
  record({
    kind, seed, devBest: r.devAccuracy, bestEpoch: r.bestEpoch, devFinal: r.devHistory[r.devHistory.length - 1], devHistory: r.devHistory,
    steps: r.steps, seconds: r.seconds, stepsPerSecond: r.stepsPerSecond, teacher: teacher ? path.basename(teacher) : undefined, ...extra,
  });
  return r;
}

const seeds = a.seeds!.split(',').map(Number);
const which = new Set(a.runs!.split(','));
(async () => {
  record({ kind: 'start', seeds, epochs, batch, seq, threads, cpus: os.cpus().length, cpu: os.cpus()[0]?.model });
  if (Number(a['speed-steps']) > 0) await speed(Number(a['speed-steps']));
  const student = path.join(out, 'student-first-3-8-256-512.onnx');
  if (!fs.existsSync(student)) await compress(TEACHER, { arch: '3,8,256,512', strategy: 'first', output: student });
  for (const seed of seeds) {
    const teacherFt = path.join(out, `a-teacher-seed${seed}.onnx`);
    if (which.has('a')) await run('a-teacher', TEACHER, seed);
    if (which.has('b')) await run('b-student', student, seed);
    if (which.has('c') && fs.existsSync(teacherFt)) await run('c-student-kd', student, seed, teacherFt);
    if (a.distilled && which.has('d')) await run('d-distilled', a.distilled, seed);
    if (a.distilled && which.has('e') && fs.existsSync(teacherFt)) await run('e-distilled-kd', a.distilled, seed, teacherFt);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * Module replacing (BERT-of-Theseus) against plain knowledge distillation at equal wall-clock time, on
 * the trained teacher in ../shared/teacher: extract first-k students, train each with `distill()` for
 * the same number of minutes with either method (train.txt only), and score every held-out case of
 * mlm-eval.json: top-1 agreement with the teacher, mean KL(teacher ‖ student) at the masked position
 * (T = 1, float64), and accuracy against the label.
 *
 *   BORT_SHARED=/work/shared npx tsx bench/theseus-teacher.ts [--archs "3,8,256,512;3,4,256,512"]
 *       [--minutes 8] [--methods kd,theseus,theseus:trained,theseus:constant] [--schedule curriculum]
 *       [--rate 0.5] [--shared frozen]
 *       [--student-only 0.25] [--batch 32] [--seq 64] [--lr 5e-4] [--threads 2] [--limit 2553]
 *
 * Equal time: `distill()` takes a step count (its learning-rate and replacement schedules end at the
 * last step), so each method's seconds per step are measured first (6 steps of plain KD, 6 of module
 * replacing at p = 0.5), the step count that fills the budget is derived from them (a mixed step costs
 * in proportion to the teacher layers it runs), and the training loop's real time is printed beside
 * the scores.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { compress } from '../lib/compress.js';
import { distill, type DistillOptions } from '../lib/distill/distill.js';
import { replaceRate, type ReplaceSchedule } from '../lib/distill/module-replacing.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { argmax, logSoftmax } from '../lib/search/masked-lm.js';

const T = path.join(process.env.BORT_SHARED ?? path.resolve(__dirname, '..', '..', 'shared'), 'teacher');
const { values: a } = parseArgs({
  options: {
    archs: { type: 'string', default: '3,8,256,512;3,4,256,512' }, minutes: { type: 'string', default: '8' },
    methods: { type: 'string', default: 'kd,theseus' }, schedule: { type: 'string', default: 'curriculum' },
    rate: { type: 'string', default: '0.5' }, shared: { type: 'string', default: 'frozen' },
    'student-only': { type: 'string', default: '0.25' }, batch: { type: 'string', default: '32' },
    seq: { type: 'string', default: '64' }, lr: { type: 'string', default: '5e-4' }, threads: { type: 'string', default: '2' },
    limit: { type: 'string', default: '2553' },
  },
});
const threads = Number(a.threads);

interface Case { input_ids: number[]; masked_index: number; label: number }

/** Logits row at each case's masked position ([MASK] = 4), equal-length cases 16 at a time, native engine. */
async function maskedRows(model: string, cases: Case[]): Promise<Float32Array[]> {
  const enc = await Encoder.load(model, { threads });
  const roles = enc.inputRoles;
  const out: Float32Array[] = new Array(cases.length);
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
      const logits = Object.values(await enc.run(feeds)).find((t) => t.dims.length === 3)!;
      const V = logits.dims[2];
      group.forEach((ci, b) => {
        const at = (b * S + cases[ci].masked_index) * V;
        out[ci] = logits.data.slice(at, at + V);
      });
    }
  }
  enc.close();
  return out;
}

interface Scores { agreement: number; kl: number; accuracy: number }

function scores(student: Float32Array[], teacherLp: Float64Array[], teacherTop: number[], cases: Case[]): Scores {
  let agree = 0, hits = 0, kl = 0;
  cases.forEach((c, i) => {
    const top = argmax(student[i]);
    if (top === teacherTop[i]) agree++;
    if (top === c.label) hits++;
    const ls = logSoftmax(student[i]), lt = teacherLp[i];
    let k = 0;
    for (let j = 0; j < lt.length; j++) k += Math.exp(lt[j]) * (lt[j] - ls[j]);
    kl += k;
  });
  return { agreement: agree / cases.length, kl: kl / cases.length, accuracy: hits / cases.length };
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** Seconds per training step of a short run (steps 2 … n, so setup and the first step are left out). */
async function secondsPerStep(o: DistillOptions, n: number): Promise<number> {
  const at: number[] = [];
  await distill({ ...o, steps: n, onProgress: () => at.push(Date.now()) });
  return (at[n - 1] - at[0]) / 1000 / (n - 1);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-theseus-'));
  const teacherFile = path.join(T, 'teacher-mlm.onnx');
  const cases = (JSON.parse(fs.readFileSync(path.join(T, 'mlm-eval.json'), 'utf8')).cases as Case[]).slice(0, Number(a.limit));
  const tRows = await maskedRows(teacherFile, cases);
  const teacherLp = tRows.map((r) => logSoftmax(r));
  const teacherTop = tRows.map((r) => argmax(r));
  const budget = Number(a.minutes) * 60;
  const rate = Number(a.rate), onlyShare = Number(a['student-only']);
  console.log(`${cases.length} held-out cases; ${a.minutes} min of training per run; batch ${a.batch} × seq ${a.seq}, lr ${a.lr}, ${threads} threads`);
  const rows: string[] = [];
  for (const arch of a.archs!.split(';')) {
    const student = path.join(dir, `student-${arch}.onnx`);
    await compress(teacherFile, { arch, strategy: 'first', output: student });
    const s0 = scores(await maskedRows(student, cases), teacherLp, teacherTop, cases);
    console.log(`(${arch}) first-k, step 0: agreement ${pct(s0.agreement)}, KL ${s0.kl.toFixed(4)}, accuracy ${pct(s0.accuracy)}`);
    rows.push(`| (${arch}) | extracted, step 0 | – | – | – | ${pct(s0.agreement)} | ${s0.kl.toFixed(4)} | ${pct(s0.accuracy)} |`);
    const base: DistillOptions = {
      teacher: teacherFile, student, corpus: path.join(T, 'train.txt'), vocab: path.join(T, 'vocab.txt'), output: path.join(dir, 'cal.onnx'),
      batch: Number(a.batch), seq: Number(a.seq), lr: Number(a.lr), threads, seed: 1,
    };
    const tKd = await secondsPerStep(base, 10);
    // p = 0.5 constant: on average half the groups run their teacher layers
    const tHalf = await secondsPerStep({ ...base, method: 'theseus', replaceRate: 0.5, schedule: 'constant', studentOnlySteps: 0, shared: a.shared as 'frozen' }, 10);
    console.log(`(${arch}) seconds per step: kd ${tKd.toFixed(3)}, theseus at p = 0.5 ${tHalf.toFixed(3)}`);
    for (const spec of a.methods!.split(',')) {
      // kd, or theseus with optional :frozen/:trained and :constant/:linear/:curriculum overrides
      const [method, ...mods] = spec.split(':') as ['kd' | 'theseus', ...string[]];
      const shared = (mods.find((m) => m === 'frozen' || m === 'trained') ?? a.shared) as 'frozen' | 'trained';
      const schedule = (mods.find((m) => ['constant', 'linear', 'curriculum'].includes(m)) ?? a.schedule) as ReplaceSchedule;
      // steps that fill the budget: a mixed step at p costs tKd + 2 (1 − p)(tHalf − tKd)
      const cost = (n: number) => {
        if (method === 'kd') return n * tKd;
        const only = Math.round(onlyShare * n), R = n - only;
        let s = only * tKd;
        for (let t = 1; t <= R; t++) s += tKd + 2 * (1 - replaceRate({ schedule, rate, replacingSteps: R }, t)) * Math.max(0, tHalf - tKd);
        return s;
      };
      let steps = Math.max(2, Math.floor(budget / tKd));
      while (steps > 2 && cost(steps) > budget) steps--;
      const out = path.join(dir, `${spec.replace(/:/g, '-')}-${arch}.onnx`);
      let first = 0, last = 0;
      const cpu0 = process.cpuUsage();
      const r = await distill({
        ...base, output: out, steps,
        ...(method === 'theseus' ? { method, schedule, replaceRate: rate, studentOnlySteps: Math.round(onlyShare * steps), shared } : {}),
        onProgress: (p) => {
          if (p.step === 1) first = Date.now();
          last = Date.now();
          if (p.step % 50 === 0 || p.step === p.steps) {
            console.log(`  ${method} step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} (kl ${p.kl.toFixed(4)})${p.replaceRate === undefined ? '' : ` p ${p.replaceRate.toFixed(3)}`} ${((Date.now() - first) / 1000).toFixed(0)} s`);
          }
        },
      });
      const secs = (last - first) / 1000 + tKd; // the loop's time, the first step's counted at a KD step's cost
      const cpu = process.cpuUsage(cpu0);
      const cpuSecs = (cpu.user + cpu.system) / 1e6; // every thread of this process, setup included
      const sc = scores(await maskedRows(out, cases), teacherLp, teacherTop, cases);
      const what = method === 'kd' ? 'plain KD' : `Theseus (${schedule}, p ${rate}, ${shared} embeddings and head, student alone last ${Math.round(onlyShare * steps)})`;
      console.log(`(${arch}) ${what}: ${r.steps} steps in ${secs.toFixed(0)} s (CPU ${cpuSecs.toFixed(0)} s): agreement ${pct(sc.agreement)}, KL ${sc.kl.toFixed(4)}, accuracy ${pct(sc.accuracy)}; uptime ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
      rows.push(`| (${arch}) | ${what} | ${r.steps} | ${secs.toFixed(0)} s | ${cpuSecs.toFixed(0)} s | ${pct(sc.agreement)} | ${sc.kl.toFixed(4)} | ${pct(sc.accuracy)} |`);
    }
  }
  console.log('\n| student | method | steps | training time | CPU time | agreement | KL(teacher ‖ student) | accuracy |\n|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

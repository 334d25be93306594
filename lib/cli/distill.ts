/** `bort-compress distill`: argument checks, the progress line, and Ctrl-C → checkpoint. */
import * as fs from 'node:fs';
import { distill, type DistillProgress } from '../distill/distill.js';
import { BortError, quoteName } from '../errors.js';
import { decimalNumber, intOption } from './options.js';
import { REPLACE_SCHEDULES, type ReplaceSchedule } from '../distill/module-replacing.js';

type Out = (line: string) => void;

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function fileArg(v: string | undefined, what: string, flag: string): string {
  if (!v) throw new BortError(`missing ${what}`, `pass ${flag}; see bort-compress distill --help`);
  if (!fs.existsSync(v)) throw new BortError(`${what} ${quoteName(v)} does not exist`, `check the path given as ${flag}`);
  return v;
}

export async function distillCommand(positionals: string[], o: Record<string, string | boolean | undefined>, out: Out): Promise<void> {
  const str = (k: string) => o[k] as string | undefined;
  if (positionals.length > 2) throw new BortError(`unexpected argument ${quoteName(positionals[2])}`, 'give TEACHER.onnx and STUDENT.onnx; see bort-compress distill --help');
  const teacher = fileArg(positionals[0], 'the teacher model', 'TEACHER.onnx');
  const student = fileArg(positionals[1], 'the student model', 'STUDENT.onnx');
  const corpus = fileArg(str('corpus'), 'the corpus', '--corpus TEXT');
  const vocab = fileArg(str('vocab'), 'the vocabulary', '--vocab V');
  const output = str('output');
  if (!output) throw new BortError('missing the output path', 'pass -o OUT.onnx; see bort-compress distill --help');
  let lr = 5e-4;
  const lrs = str('lr');
  if (lrs !== undefined) {
    lr = decimalNumber(lrs);
    if (!(lr > 0 && lr <= 1)) throw new BortError(`--lr ${quoteName(lrs)} is not a learning rate`, 'pass --lr X with X a number above 0 and at most 1 (e.g. 5e-4)');
  }
  // loss weights and temperature: numbers here; their ranges are checked by distill()
  const num = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const x = decimalNumber(v, true);
    if (Number.isNaN(x)) throw new BortError(`--${k} ${quoteName(v)} is not a number`, `pass --${k} with a number; see bort-compress distill --help`);
    return x;
  };
  const mlmWeight = num('mlm-weight'), klWeight = num('kl-weight'), temperature = num('temperature');
  const hiddenWeight = num('hidden-weight'), attentionWeight = num('attention-weight');
  const steps = intOption(str('steps'), 'steps', 1000);
  const batch = intOption(str('batch'), 'batch', 32);
  const seq = intOption(str('seq'), 'seq', 64);
  const threads = str('threads') === undefined ? undefined : intOption(str('threads'), 'threads', 1);
  const seed = intOption(str('seed'), 'seed', 1);
  const evalCases = str('eval') === undefined ? undefined : fileArg(str('eval'), 'the evaluation cases', '--eval CASES');
  const evalEvery = str('eval-every') === undefined ? undefined : intOption(str('eval-every'), 'eval-every', 1);
  const every = str('checkpoint-every') === undefined ? undefined : intOption(str('checkpoint-every'), 'checkpoint-every', 1);
  const method = str('method') ?? 'kd';
  if (method !== 'kd' && method !== 'theseus') throw new BortError(`--method ${quoteName(method)} is not a distillation method`, 'pass --method kd or --method theseus');
  const rs = str('replace-rate');
  let replaceRate: number | undefined;
  if (rs !== undefined) {
    replaceRate = decimalNumber(rs);
    if (!(replaceRate > 0 && replaceRate <= 1)) throw new BortError(`--replace-rate ${quoteName(rs)} is not a probability above 0`, 'pass --replace-rate p with 0 < p ≤ 1 (e.g. 0.5)');
  }
  const schedule = str('schedule');
  if (schedule !== undefined && !REPLACE_SCHEDULES.includes(schedule as ReplaceSchedule)) {
    throw new BortError(`--schedule ${quoteName(schedule)} is not a replacement schedule`, `pass --schedule ${REPLACE_SCHEDULES.join(', ')}`);
  }
  const studentOnlySteps = str('student-only-steps') === undefined ? undefined : intOption(str('student-only-steps'), 'student-only-steps', 0);
  const shared = str('shared');
  if (shared !== undefined && shared !== 'frozen' && shared !== 'trained') throw new BortError(`--shared ${quoteName(shared)} is not frozen or trained`, 'pass --shared frozen or --shared trained');
  const theseusOnly = ['replace-rate', 'schedule', 'student-only-steps', 'from-scratch', 'shared'].filter((k) => o[k] !== undefined && o[k] !== false);
  if (method !== 'theseus' && theseusOnly.length) {
    throw new BortError(`--${theseusOnly[0]} only applies to module replacing`, 'add --method theseus, or leave the module-replacing options out');
  }
  const ac = new AbortController();
  // the first Ctrl-C stops after the current step (checkpoint); a second one exits at once, which is
  // safe too: the model and the checkpoint are only ever replaced by a rename
  let signals = 0;
  const stop = () => {
    if (++signals > 1) process.exit(130);
    ac.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const tty = !!process.stderr.isTTY;
  let lastLine = 0;
  const line = (p: DistillProgress) =>
    `step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)} (mlm ${p.mlm.toFixed(3)}, kl ${p.kl.toFixed(4)}${p.hidden === undefined ? '' : `, hidden ${p.hidden.toFixed(4)}, attention ${p.attention!.toFixed(4)}`})  lr ${p.lr.toExponential(2)}${p.replaceRate === undefined ? '' : `  p ${p.replaceRate.toFixed(3)}`}  ${Math.round(p.tokensPerSecond)} tokens/s  ETA ${duration(p.etaSeconds)}`;
  try {
    const r = await distill({
      teacher, student, corpus, vocab, output, steps, batch, seq, lr, threads, seed, checkpointEvery: every,
      resume: !!o.resume, signal: ac.signal, evalCases, evalEvery, mlmWeight, klWeight, temperature,
      hiddenWeight, attentionWeight,
      ...(method === 'theseus' ? { method, replaceRate, schedule: schedule as ReplaceSchedule | undefined, studentOnlySteps, fromScratch: !!o['from-scratch'], shared: shared as 'frozen' | 'trained' | undefined } : {}),
      onEval: (e) => {
        if (tty) process.stderr.write('\r\x1b[K');
        process.stderr.write(`eval at step ${e.step}: agreement with the teacher ${(100 * e.agreement).toFixed(1)}%, accuracy ${(100 * e.accuracy).toFixed(1)}% (${e.cases} cases)\n`);
      },
      onProgress: (p) => {
        if (tty) process.stderr.write(`\r\x1b[K${line(p)}`);
        else if (Date.now() - lastLine >= 10_000 || p.step === p.steps) {
          lastLine = Date.now();
          process.stderr.write(`${line(p)}\n`);
        }
      },
    });
    if (tty) process.stderr.write('\n');
    if (o.json) out(JSON.stringify(r, null, 2));
    else if (r.finished) out(`bort-compress: distilled ${r.steps} steps in ${r.seconds.toFixed(1)} s → ${r.output}`);
    else out(`bort-compress: stopped at step ${r.steps}; state saved in ${r.checkpoint} (continue with --resume); no model written`);
    if (!r.finished) process.exitCode = 130;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

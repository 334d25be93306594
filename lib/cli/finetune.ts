/** `bort-compress finetune`: argument checks, the progress line, per-epoch dev accuracy, and Ctrl-C → checkpoint. */
import * as fs from 'node:fs';
import { finetune, type FinetuneProgress } from '../finetune/finetune.js';
import { BortError, quoteName } from '../errors.js';
import { decimalNumber, intOption } from './options.js';

type Out = (line: string) => void;

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function fileArg(v: string | undefined, what: string, flag: string): string {
  if (!v) throw new BortError(`missing ${what}`, `pass ${flag}; see bort-compress finetune --help`);
  if (!fs.existsSync(v)) throw new BortError(`${what} ${quoteName(v)} does not exist`, `check the path given as ${flag}`);
  return v;
}

function rate(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const x = decimalNumber(v);
  if (!(x > 0 && x <= 1)) throw new BortError(`${flag} ${quoteName(v)} is not a learning rate`, `pass ${flag} X with X a number above 0 and at most 1 (e.g. ${dflt})`);
  return x;
}

export async function finetuneCommand(positionals: string[], o: Record<string, string | boolean | undefined>, out: Out): Promise<void> {
  const str = (k: string) => o[k] as string | undefined;
  if (positionals.length > 1) throw new BortError(`unexpected argument ${quoteName(positionals[1])}`, 'give one MODEL.onnx; see bort-compress finetune --help');
  const task = str('task');
  if (task === undefined) throw new BortError('missing --task', 'pass --task cls (sequence classification, the only task so far)');
  if (task !== 'cls') throw new BortError(`--task ${quoteName(task)} is not available`, 'only --task cls (sequence classification) is available so far');
  const model = fileArg(positionals[0], 'the model', 'MODEL.onnx');
  const train = fileArg(str('train'), 'the training examples', '--train FILE');
  const dev = fileArg(str('dev'), 'the dev examples', '--dev FILE');
  const vocab = str('vocab') === undefined ? undefined : fileArg(str('vocab'), 'the vocabulary', '--vocab V');
  const teacher = str('teacher') === undefined ? undefined : fileArg(str('teacher'), 'the teacher', '--teacher T.onnx');
  const output = str('output');
  if (!output) throw new BortError('missing the output path', 'pass -o OUT.onnx; see bort-compress finetune --help');
  const lr = rate(str('lr'), '--lr', 5e-5);
  const headLr = rate(str('head-lr'), '--head-lr', 1e-3);
  const epochs = intOption(str('epochs'), 'epochs', 3);
  const batch = intOption(str('batch'), 'batch', 32);
  const seq = str('seq') === undefined ? undefined : intOption(str('seq'), 'seq', 128);
  const patience = intOption(str('patience'), 'patience', 0);
  const seed = intOption(str('seed'), 'seed', 1);
  const threads = str('threads') === undefined ? undefined : intOption(str('threads'), 'threads', 1);
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
  const line = (p: FinetuneProgress) =>
    `epoch ${p.epoch}/${p.epochs}  step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}${p.kl ? ` (ce ${p.ce.toFixed(3)}, kl ${p.kl.toFixed(4)})` : ''}  ${Math.round(p.examplesPerSecond)} examples/s  ETA ${duration(p.etaSeconds)}`;
  try {
    const r = await finetune({
      model, train, dev, output, task, vocab, teacher, epochs, batch, seq, lr, headLr, patience, seed, threads,
      resume: !!o.resume, signal: ac.signal,
      onEpoch: (e) => {
        if (tty) process.stderr.write('\r\x1b[K');
        process.stderr.write(`epoch ${e.epoch}: dev accuracy ${(100 * e.devAccuracy).toFixed(1)}% (best ${(100 * e.bestAccuracy).toFixed(1)}% at epoch ${e.bestEpoch})${e.stopping ? '; stopping early' : ''}\n`);
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
    else if (r.finished) {
      out(`bort-compress: fine-tuned ${r.epochs} epoch${r.epochs === 1 ? '' : 's'} (${r.steps} steps${r.earlyStopped ? ', stopped early' : ''}) in ${r.seconds.toFixed(1)} s; dev accuracy ${(100 * (r.devAccuracy ?? 0)).toFixed(1)}% (epoch ${r.bestEpoch}); labels ${r.labels.join(', ')} → ${r.output}`);
    } else out(`bort-compress: stopped at step ${r.steps}; state saved in ${r.checkpoint} (continue with --resume); no model written`);
    if (!r.finished) process.exitCode = 130;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

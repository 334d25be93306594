/**
 * `bort-compress search MODEL --corpus TEXT --vocab V [--space …] [-o DIR]`: the optimal
 * sub-architecture search (lib/search/search.ts), with progress on stderr and Ctrl-C keeping what was
 * measured (the same command resumes).
 */
import { parseArgs } from 'node:util';
import { BortError, quoteName } from '../errors.js';
import { formatArch } from '../extract/arch.js';
import { search, type SearchProgress } from '../search/search.js';

type Out = (line: string) => void;

export const SEARCH_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  space: { type: 'string' },
  corpus: { type: 'string' },
  vocab: { type: 'string' },
  steps: { type: 'string' },
  epsilon: { type: 'string' },
  shape: { type: 'string' },
  strategy: { type: 'string', short: 's' },
  output: { type: 'string', short: 'o' },
  extract: { type: 'boolean' },
  'no-refit': { type: 'boolean' },
  'calibrate-latency': { type: 'string' },
  threads: { type: 'string' },
} as const;

export const SEARCH_HELP = `bort-compress search MODEL.onnx --corpus TEXT --vocab V [options]

Finds the best sub-architecture of a masked-LM among a space of (D, A, H, I), as in the Bort paper:
every candidate's parameters p̂ (exact) and latency î (native engine), the maximum point T of the
space as reference, the error ê of each candidate evaluated by the FPTAS (cross-entropy of its
masked-word predictions against T's on the calibration text after n steps of distillation from T), the W-coefficient and the Pareto front.
Writes DIR/search.json (after every candidate; the same command resumes an interrupted search) and
DIR/search.html (the front, the chosen architecture, every candidate). Progress goes to stderr.

Options:
      --space S             D=2..6,A=4|8,H=128..256/64,I=256..1024/256 (lists a|b, ranges lo..hi[/step]) or
                            JSON {"D":[2,4],"H":"128..256/64"}; dimensions left out get defaults from the model
      --corpus TEXT         calibration text, one paragraph a line (never the evaluation text)
      --vocab V             the model's vocab.txt or tokenizer.json
      --steps N             distillation steps from T per candidate before ê (default 100; T's logits for the
                            training batches are computed once); 0: zero-shot (extract, no training)
      --epsilon E           FPTAS interval size: evaluate one candidate per E, sorted by parameters (default 1: all)
      --shape BxS           batch × sequence for the latency (default 1x128, at most the model's positions)
  -s, --strategy S          how each candidate is extracted: data (default: layers chosen by ablation on the
                            corpus), importance or first
  -o, --output DIR          folder for search.json and search.html (default: the current folder)
      --extract             also write the chosen model into DIR, named as compress names it (with strategy
                            data, its W_O and W_out then refitted by least squares on the corpus)
      --no-refit            --extract with strategy data, without that refit
      --calibrate-latency K time only K candidates (spread over FLOPs) and predict the others with a cost
                            model fitted to them (its error is in search.json); default: time all
      --threads T           engine threads (default: all cores)
      --json                print search.json's summary as JSON
  -h, --help                this text`;

function whole(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new BortError(`--${name} ${quoteName(v)} is not a whole number ≥ ${min}`, `pass --${name} N with N ≥ ${min}`);
  return Number(v);
}

function line(p: SearchProgress): string {
  const eta = p.etaSeconds === undefined ? '' : `, ETA ${Math.ceil(p.etaSeconds)} s`;
  const best = p.best ? `; best so far ${p.best.key} (W ${p.best.w.toFixed(3)})` : '';
  return `search: [${p.phase} ${p.done}/${p.total}${eta}] ${p.message}${best}\n`;
}

export async function searchCommand(args: string[], out: Out): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: SEARCH_OPTIONS });
  } catch (e) {
    throw new BortError((e as Error).message.split(/\n|\. /)[0].replace(/\.$/, '').replace(/[\u0000-\u001f\u007f]/g, '?'), 'see bort-compress search --help');
  }
  const o = parsed.values;
  if (o.help) {
    out(SEARCH_HELP);
    return;
  }
  if (parsed.positionals.length !== 1) {
    throw new BortError(parsed.positionals.length ? `unexpected argument ${quoteName(parsed.positionals[1])}` : 'missing the model path', 'give one model path; see bort-compress search --help');
  }
  const strategy = o.strategy ?? 'data';
  if (strategy !== 'data' && strategy !== 'importance' && strategy !== 'first') throw new BortError(`--strategy ${quoteName(strategy)} is unknown`, 'use --strategy data, importance or first');
  if (!o.corpus) throw new BortError('missing --corpus TEXT', 'give calibration text (one paragraph a line); see bort-compress search --help');
  if (!o.vocab) throw new BortError('missing --vocab V', "give the model's vocab.txt or tokenizer.json; see bort-compress search --help");
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('search: interrupted; stopping after the current candidate (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await search(parsed.positionals[0], {
      space: o.space, corpus: o.corpus, vocab: o.vocab, steps: whole(o.steps, 'steps', 0), epsilon: whole(o.epsilon, 'epsilon', 1),
      shape: o.shape, strategy, output: o.output, extract: !!o.extract, refit: !o['no-refit'], calibrateLatency: whole(o['calibrate-latency'], 'calibrate-latency', 3),
      threads: whole(o.threads, 'threads', 1),
      command: ['bort-compress', 'search', ...args].map((a) => (/^[\w./=,:|-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' '),
      signal: controller.signal,
      onProgress: (p) => process.stderr.write(line(p)),
    });
    const f = r.file;
    if (o.json) {
      out(JSON.stringify({ status: f.status, chosen: f.chosen, json: r.json, html: r.html, extracted: r.extracted?.output, costModel: f.costModel, seconds: f.seconds }, null, 2));
      return;
    }
    const chosen = f.candidates.find((c) => c.chosen);
    out(`bort-compress search: ${f.candidates.length} candidates, ${f.candidates.filter((c) => c.error !== undefined).length} evaluated, ${f.candidates.filter((c) => c.pareto).length} on the Pareto front (${f.status}, ${f.seconds.toFixed(1)} s)`);
    if (chosen) {
      out(`  chosen  ${formatArch(chosen.arch)}: ${chosen.params.toLocaleString('en-US')} params, ${chosen.latencyMs!.toFixed(2)} ms, ê ${chosen.error!.toFixed(4)} nats, W ${chosen.w!.toFixed(3)}`);
    }
    out(`  source  ${formatArch(f.source.arch)}: ${f.source.params.toLocaleString('en-US')} params, ${f.source.latencyMs?.toFixed(2) ?? '–'} ms`);
    if (f.costModel) out(`  latency cost model: mean error ${(100 * f.costModel.meanRelError).toFixed(1)}%, leave-one-out ${(100 * f.costModel.looMeanRelError).toFixed(1)}%`);
    out(`  wrote   ${r.json}, ${r.html}${r.extracted ? `, ${r.extracted.output}` : ''}`);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

#!/usr/bin/env node
/**
 * The `bort-compress` command line. Every failure is one line naming the problem and the fix, and a
 * non-zero exit; no stack traces (set BORT_DEBUG=1 to see them).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { compress, type CompressSummary } from '../compress.js';
import { inspect, type InspectSummary } from '../inspect.js';
import { quantizeCommand } from './quantize.js';
import { precisionSummary } from '../quantize/precision.js';
import { synth } from '../synth/bert.js';
import { synthHead, synthVariantOptions } from '../synth/cli-flags.js';
import { benchmark, type BenchResult } from '../runtime/bench.js';
import { distillCommand } from './distill.js';
import { finetuneCommand } from './finetune.js';
import { BortError, escapeControls, quoteName } from '../errors.js';
import { formatArch, parseArch } from '../extract/arch.js';
import { formatBytes, formatCount } from './format.js';
import { HELP, commandHelp } from './help.js';
import { COMMANDS, MAX_BENCH_TOKENS, OPTIONS, intOption, type Command } from './options.js';
import { checkSynthSize } from './synth-size.js';
import { closestName } from './suggest.js';
import { Progress } from './progress.js';
import { TEXT_COMMANDS } from './text-commands.js';
import { textDemo } from './demo-text.js';
import { searchCommand, SEARCH_HELP } from './search.js';
import { dataStrategyScorer } from './data-strategy.js';

type Out = (line: string) => void;

function printCompress(s: CompressSummary, out: Out): void {
  out(`bort-compress: ${path.basename(s.input)} → ${s.output}`);
  out(`  arch    ${formatArch(s.source.arch)} → ${formatArch(s.target.arch)}   (strategy ${s.strategy}; source layers kept: ${s.plan.layers.join(',')})`);
  out(`  params  ${formatCount(s.source.params)} → ${formatCount(s.target.params)}   (${(s.ratio * 100).toFixed(1)}%)`);
  out(`  size    ${formatBytes(s.source.bytes)} → ${formatBytes(s.target.bytes)}${s.dataFile ? `   (weights in ${path.basename(s.dataFile)})` : ''}`);
  out(`  heads   ${s.target.arch.heads} × ${s.plan.headSize} (source ${s.source.arch.heads} × ${s.plan.sourceHeadSize})`);
  for (const n of s.plan.notes) out(`  note    ${n}`);
  out(`  time    ${s.seconds.toFixed(2)} s`);
}

function printInspect(s: InspectSummary, out: Out): void {
  const split = s.outputs.filter((o) => o.column !== undefined).map((o) => o.name);
  const heads = [s.heads.pooler && `pooler (${s.poolerActivation})`, s.heads.mlm && `masked-LM${s.heads.mlmTied ? ' (decoder tied to word embeddings)' : ''}`,
    ...s.heads.classifiers.map((c) => `classifier on ${c.source === 'hidden' ? 'every token' : c.source} (${c.labels} labels${c.source === 'hidden' && split.length ? `, split into ${split.map(escapeControls).join(', ')}` : ''})`)].filter(Boolean);
  const types = s.tokenTypeIds.kind === 'constant' ? ` (no input: row ${s.tokenTypeIds.row} for every token)` : '';
  const p = s.positionIds;
  const positions = p.kind === 'arange' ? `token t reads row ${p.start ? `${p.start} + ` : ''}t` : p.kind === 'from-ids' ? `computed from the ids (padding id ${p.paddingIdx})` : p.kind === 'other' ? `other: ${p.problem}` : 'none';
  const a = s.attentionMask;
  const mask = a.kind === 'none' ? 'none' : a.kind === 'add' ? `added, (1 - mask) · ${a.value ?? '?'}` : `Where, ${a.value ?? '?'} in place of padding keys' scores`;
  out(`${s.path}`);
  out(`  arch        ${formatArch(s.arch)}   (layers, heads, hidden, intermediate; head size ${s.headSize})`);
  out(`  vocab       ${s.vocab}   positions ${s.maxPositions}${s.maxSequence < s.maxPositions ? ` (sequences up to ${s.maxSequence} tokens)` : ''}   token types ${s.typeVocab || 'none'}${types}`);
  out(`  positions   ${positions}`);
  out(`  mask        ${mask}${a.kind !== 'none' && a.problem ? ` (${a.problem})` : ''}`);
  out(`  params      ${formatCount(s.params)}   (${formatBytes(s.weightBytes)} of weights; file ${formatBytes(s.fileBytes)}${s.externalData ? ', external data' : ''})`);
  out(`  precision   linear weights: ${precisionSummary(s.weights)}`);
  out(`  attention   score scale ${s.scoreScale.toPrecision(6)}, LayerNorm ${s.layerNorm}, activation ${s.activation}`);
  out(`  heads       ${heads.length ? heads.join('; ') : 'none (encoder only)'}`);
  out(`  inputs      ids=${quoteName(s.inputs.ids)}${s.inputs.mask ? ` mask=${quoteName(s.inputs.mask)}` : ''}${s.inputs.tokenTypes ? ` token types=${quoteName(s.inputs.tokenTypes)}` : ''}`);
  out(`  outputs     ${s.outputs.map((o) => `${quoteName(o.name)} (${o.role})`).join(', ')}`);
  out(`  format      opset ${s.opset}, IR ${s.irVersion}, producer ${s.producer ? quoteName(s.producer) : 'unknown'}`);
}

function printBench(r: BenchResult, out: Out): void {
  out(`${r.model}: ${formatArch(r.arch)}, batch ${r.batch} × seq ${r.seq}, ${r.threads} thread${r.threads > 1 ? 's' : ''}, ${r.gflop.toFixed(2)} GFLOP per run`);
  out(`  bort-compress (${r.isa})   median ${r.ours.medianMs.toFixed(2)} ms   ${r.ours.gflops.toFixed(1)} GFLOP/s`);
  if (r.ort) {
    out(`  onnxruntime-node ${r.ort.version}  median ${r.ort.medianMs.toFixed(2)} ms   ${r.ort.gflops.toFixed(1)} GFLOP/s`);
    out(`  ratio ort/ours  ${r.ratio!.toFixed(2)}`);
  } else {
    out('  onnxruntime-node is not installed: no comparison');
  }
}

function need(v: string | undefined, what: string, cmd: string): string {
  if (!v) throw new BortError(`missing ${what}`, `see bort-compress ${cmd ? cmd + ' ' : ''}--help`);
  return v;
}

function onePositional(positionals: string[], cmd: string): void {
  if (positionals.length > 1) {
    throw new BortError(`unexpected argument ${quoteName(positionals[1])}`, `give one model path; see bort-compress ${cmd ? cmd + ' ' : ''}--help`);
  }
}

/** Which command argv names: a command word, or compress when the first argument is its input. */
function commandOf(argv: string[]): { sub: Command; rest: string[] } {
  const first = argv[0];
  const named = COMMANDS.find((c) => c === first);
  if (named) return { sub: named, rest: argv.slice(1) };
  // a word that is no file but close to a command name is a typo, not a model path
  if (!first.startsWith('-') && !/[./\\]/.test(first) && !fs.existsSync(first)) {
    const near = closestName(first, [...COMMANDS, ...Object.keys(TEXT_COMMANDS), 'search', 'help']);
    if (near) throw new BortError(`unknown command ${quoteName(first)}`, `did you mean '${near}'? (bort-compress --help lists the commands)`);
  }
  return { sub: 'compress', rest: argv };
}

async function run(argv: string[], out: Out): Promise<void> {
  const cmd = argv[0];
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? argv[1] : undefined;
    if (topic && Object.hasOwn(TEXT_COMMANDS, topic)) out(TEXT_COMMANDS[topic].help);
    else if (topic === 'search') out(SEARCH_HELP);
    else out(topic && COMMANDS.some((c) => c === topic) ? commandHelp(topic) : HELP);
    return;
  }
  if (cmd === '--version' || cmd === '-v') {
    out(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
    return;
  }
  if (Object.hasOwn(TEXT_COMMANDS, cmd)) return TEXT_COMMANDS[cmd].run(argv.slice(1), out);
  if (cmd === 'search') return searchCommand(argv.slice(1), out);
  const { sub, rest } = commandOf(argv);
  const progress = new Progress(process.stderr);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: OPTIONS[sub] });
  } catch (e) {
    const first = (e as Error).message.split(/\n|\. /)[0].replace(/\.$/, '');
    throw new BortError(first.replace(/[\u0000-\u001f\u007f]/g, '?'), `see bort-compress ${sub === 'compress' ? '' : sub + ' '}--help`);
  }
  const { positionals } = parsed;
  const o = parsed.values as Record<string, string | boolean | undefined>;
  const str = (k: string) => o[k] as string | undefined;
  if (o.help) {
    out(commandHelp(sub));
    return;
  }
  if (sub === 'inspect') {
    onePositional(positionals, 'inspect');
    const s = inspect(need(positionals[0], 'the model path', 'inspect'));
    // a mask value of -Infinity (DistilBERT's Where fill) as the string JSON cannot hold it as a number
    if (o.json) out(JSON.stringify(s, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2));
    else printInspect(s, out);
    return;
  }
  if (sub === 'quantize') {
    onePositional(positionals, 'quantize');
    return quantizeCommand(need(positionals[0], 'the model path', 'quantize'), o, out);
  }
  if (sub === 'synth') {
    const head = synthHead(str('head'));
    const arch = parseArch(need(str('arch'), '--arch D,A,H,I', 'synth'));
    if (str('output') && positionals.length) throw new BortError(`unexpected argument ${quoteName(positionals[0])}`, 'give the output path once, with -o; see bort-compress synth --help');
    onePositional(positionals, 'synth');
    const output = need(str('output') ?? positionals[0], 'the output path (-o OUT)', 'synth');
    const sizes = {
      vocab: intOption(str('vocab'), 'vocab', 30522), maxPositions: intOption(str('positions'), 'positions', 512),
      // absent: the family's default (BERT 2, RoBERTa 1)
      typeVocab: str('type-vocab') === undefined ? undefined : intOption(str('type-vocab'), 'type-vocab', 2), labels: intOption(str('labels'), 'labels', 2),
    };
    const variants = synthVariantOptions(o);
    checkSynthSize(arch, { ...sizes, typeVocab: sizes.typeVocab ?? 2 }, head);
    progress.step('writing random model');
    const s = synth({
      arch, output, head, opset: intOption(str('opset'), 'opset', 14), seed: intOption(str('seed'), 'seed', 1234),
      ...sizes, externalData: o['external-data'] ? true : undefined, ...variants,
    });
    progress.done();
    if (o.json) out(JSON.stringify(s, null, 2));
    else out(`bort-compress synth: wrote ${s.output} (${formatArch(s.arch)}, vocab ${s.vocab}, ${s.head} head, opset ${s.opset}, ${formatBytes(s.bytes)}) in ${s.seconds.toFixed(2)} s`);
    return;
  }
  if (sub === 'bench') {
    onePositional(positionals, 'bench');
    const model = need(positionals[0], 'the model path', 'bench');
    const batch = intOption(str('batch'), 'batch', 1), seq = intOption(str('seq'), 'seq', 128);
    const threads = str('threads') === undefined ? undefined : intOption(str('threads'), 'threads', 1);
    const runs = intOption(str('runs'), 'runs', 10);
    if (batch * seq > MAX_BENCH_TOKENS) {
      throw new BortError(`--batch ${batch} × --seq ${seq} is ${batch * seq} tokens per run`, `keep batch × seq at most ${MAX_BENCH_TOKENS}`);
    }
    const longest = inspect(model).maxSequence;
    if (seq > longest) throw new BortError(`--seq ${seq} exceeds the longest sequence the model reads (${longest} tokens)`, `pass --seq ${longest} or less`);
    const r = await benchmark(model, { batch, seq, threads, runs });
    if (o.json) out(JSON.stringify(r, null, 2));
    else printBench(r, out);
    return;
  }
  if (sub === 'distill') {
    await distillCommand(positionals, o, out);
    return;
  }
  if (sub === 'finetune') {
    await finetuneCommand(positionals, o, out);
    return;
  }
  if (sub === 'demo') {
    if (positionals.length) throw new BortError(`unexpected argument ${quoteName(positionals[0])}`, 'demo takes no arguments');
    await demo(out, progress);
    return;
  }
  const input = need(positionals[0], 'the input model path', '');
  onePositional(positionals, '');
  const strategy = str('strategy') ?? 'importance';
  if (strategy !== 'importance' && strategy !== 'first' && strategy !== 'data') throw new BortError(`--strategy ${quoteName(strategy)} is unknown`, 'use --strategy importance, first or data');
  if (strategy !== 'data' && (str('corpus') || str('vocab'))) throw new BortError(`--${str('corpus') ? 'corpus' : 'vocab'} is only used by --strategy data`, 'add --strategy data, or leave it out');
  let attentionScale = str('attention-scale') as 'keep' | 'mean' | 'rescale' | undefined;
  if (attentionScale !== undefined && !['keep', 'mean', 'rescale'].includes(attentionScale)) {
    throw new BortError(`--attention-scale ${quoteName(attentionScale)} is unknown`, 'use --attention-scale mean, keep or rescale');
  }
  if (o['rescale-attention']) {
    if (attentionScale !== undefined && attentionScale !== 'rescale') {
      throw new BortError(`--rescale-attention contradicts --attention-scale ${attentionScale}`, 'give one of them');
    }
    attentionScale = 'rescale';
  }
  const arch = need(str('arch'), '--arch D,A,H,I', '');
  if (strategy !== 'data' && o['no-refit']) throw new BortError('--no-refit is only used by --strategy data', 'add --strategy data, or leave it out');
  const data = strategy === 'data' ? await dataStrategyScorer(input, arch, str('corpus'), str('vocab'), (step) => progress.step(step), !o['no-refit']) : undefined;
  const s = await compress(input, {
    arch, output: str('output'),
    strategy: data ? data.scorer : strategy as 'importance' | 'first',
    externalData: o['external-data'] ? true : undefined,
    attentionScale,
    refit: data?.refit ? { sequences: data.refit } : undefined,
    onProgress: (step) => progress.step(step),
  });
  progress.done();
  if (o.json) out(JSON.stringify(s, null, 2));
  else printCompress(s, out);
}

async function demo(out: Out, progress: Progress): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-demo-'));
  try {
    const teacher = path.join(dir, 'bert-6-12-768-3072.onnx');
    out('bort-compress demo: synthesise a BERT, inspect it, extract a smaller one, inspect that.\n');
    out(`$ bort-compress synth --arch 6,12,768,3072 --vocab 30522 -o ${teacher}`);
    progress.step('writing random model');
    const s = synth({ arch: '6,12,768,3072', vocab: 30522, output: teacher });
    progress.done();
    out(`wrote ${formatBytes(s.bytes)} in ${s.seconds.toFixed(2)} s\n`);
    out(`$ bort-compress inspect ${teacher}`);
    printInspect(inspect(teacher), out);
    const student = path.join(dir, 'student.onnx');
    out(`\n$ bort-compress ${teacher} --arch 3,8,512,768 -o ${student}`);
    const c = await compress(teacher, { arch: '3,8,512,768', output: student, onProgress: (st) => progress.step(st) });
    progress.done();
    printCompress(c, out);
    out(`\n$ bort-compress inspect ${student}`);
    printInspect(inspect(student), out);
    out('\nRunning both on the native engine (batch 1 × seq 128, all cores):');
    try {
      for (const [label, file] of [['teacher', teacher], ['student', student]]) {
        const r = await benchmark(file, { batch: 1, seq: 128, runs: 10, warmup: 2, compareOrt: false, pauseMs: 0 });
        out(`  ${label.padEnd(8)} ${formatArch(r.arch).padEnd(16)} median ${r.ours.medianMs.toFixed(1)} ms (${r.ours.gflops.toFixed(0)} GFLOP/s, ${r.isa}, ${r.threads} threads)`);
      }
    } catch (e) {
      if (!(e instanceof BortError)) throw e;
      out(`  skipped: ${e.message}`);
    }
    await textDemo(dir, out);
    out(`\n(demo files in ${dir} are removed now)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    await run(argv, (line) => process.stdout.write(line + '\n'));
    // a command may end without an error but not done (distill stopped by Ctrl-C: 130)
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (process.env.BORT_DEBUG) console.error(e);
    if (e instanceof BortError) {
      process.stderr.write(`bort-compress: error: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`bort-compress: internal error: ${(e as Error).message ?? e} (please report this with the model's exporter; BORT_DEBUG=1 shows details)\n`);
    return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

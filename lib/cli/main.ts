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
import { synth } from '../synth/bert.js';
import { benchmark, type BenchResult } from '../runtime/bench.js';
import { BortError } from '../errors.js';
import { formatArch, parseArch } from '../extract/arch.js';
import { formatBytes, formatCount } from './format.js';
import { HELP, commandHelp } from './help.js';
import { Progress } from './progress.js';
import { TEXT_COMMANDS } from './text-commands.js';
import { textDemo } from './demo-text.js';

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
  const heads = [s.heads.pooler && 'pooler', s.heads.mlm && `masked-LM${s.heads.mlmTied ? ' (decoder tied to word embeddings)' : ''}`,
    ...s.heads.classifiers.map((c) => `classifier on ${c.source} (${c.labels} labels)`)].filter(Boolean);
  out(`${s.path}`);
  out(`  arch        ${formatArch(s.arch)}   (layers, heads, hidden, intermediate; head size ${s.headSize})`);
  out(`  vocab       ${s.vocab}   positions ${s.maxPositions}   token types ${s.typeVocab || 'none'}`);
  out(`  params      ${formatCount(s.params)}   (${formatBytes(s.weightBytes)} of fp32 weights; file ${formatBytes(s.fileBytes)}${s.externalData ? ', external data' : ''})`);
  out(`  attention   score scale ${s.scoreScale.toPrecision(6)}, LayerNorm ${s.layerNorm}, activation ${s.activation}`);
  out(`  heads       ${heads.length ? heads.join('; ') : 'none (encoder only)'}`);
  out(`  inputs      ids=${s.inputs.ids}${s.inputs.mask ? ` mask=${s.inputs.mask}` : ''}${s.inputs.tokenTypes ? ` token types=${s.inputs.tokenTypes}` : ''}`);
  out(`  outputs     ${s.outputs.map((o) => `${o.name} (${o.role})`).join(', ')}`);
  out(`  format      opset ${s.opset}, IR ${s.irVersion}, producer ${s.producer || 'unknown'}`);
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
  if (!v) throw new BortError(`missing ${what}`, `see bort-compress ${cmd} --help`);
  return v;
}

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new BortError(`--${name} '${v}' is not a whole number`, `pass --${name} N`);
  return Number(v);
}

async function run(argv: string[], out: Out): Promise<void> {
  const cmd = argv[0];
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(HELP);
    return;
  }
  if (cmd === '--version' || cmd === '-v') {
    out(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
    return;
  }
  if (Object.hasOwn(TEXT_COMMANDS, cmd)) return TEXT_COMMANDS[cmd].run(argv.slice(1), out);
  const known = ['inspect', 'synth', 'demo', 'bench'];
  const sub = known.includes(cmd) ? cmd : 'compress';
  const rest = sub === 'compress' ? argv : argv.slice(1);
  const progress = new Progress(process.stderr);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
        arch: { type: 'string', short: 'a' },
        output: { type: 'string', short: 'o' },
        strategy: { type: 'string', short: 's' },
        'external-data': { type: 'boolean' },
        'rescale-attention': { type: 'boolean' },
        'attention-scale': { type: 'string' },
        vocab: { type: 'string' },
        head: { type: 'string' },
        opset: { type: 'string' },
        seed: { type: 'string' },
        positions: { type: 'string' },
        'type-vocab': { type: 'string' },
        labels: { type: 'string' },
        batch: { type: 'string' },
        seq: { type: 'string' },
        threads: { type: 'string' },
        runs: { type: 'string' },
      },
    });
  } catch (e) {
    throw new BortError((e as Error).message.split('\n')[0].replace(/\.$/, ''), `see bort-compress ${sub === 'compress' ? '' : sub + ' '}--help`);
  }
  const { values: o, positionals } = parsed;
  if (o.help) {
    out(commandHelp(sub));
    return;
  }
  if (sub === 'inspect') {
    const s = inspect(need(positionals[0], 'the model path', 'inspect'));
    if (o.json) out(JSON.stringify(s, null, 2));
    else printInspect(s, out);
    return;
  }
  if (sub === 'synth') {
    const head = o.head ?? 'base';
    if (!['base', 'mlm', 'cls'].includes(head)) throw new BortError(`--head '${head}' is unknown`, 'use --head base, mlm or cls');
    const arch = parseArch(need(o.arch, '--arch D,A,H,I', 'synth'));
    const output = need(o.output ?? positionals[0], 'the output path (-o OUT)', 'synth');
    progress.step('writing random model');
    const s = synth({
      arch, output, vocab: int(o.vocab, 'vocab', 30522), head: head as 'base', opset: int(o.opset, 'opset', 14),
      seed: int(o.seed, 'seed', 1234), maxPositions: int(o.positions, 'positions', 512), typeVocab: int(o['type-vocab'], 'type-vocab', 2),
      labels: int(o.labels, 'labels', 2), externalData: o['external-data'] ? true : undefined,
    });
    progress.done();
    if (o.json) out(JSON.stringify(s, null, 2));
    else out(`bort-compress synth: wrote ${s.output} (${formatArch(s.arch)}, vocab ${s.vocab}, ${s.head} head, opset ${s.opset}, ${formatBytes(s.bytes)}) in ${s.seconds.toFixed(2)} s`);
    return;
  }
  if (sub === 'bench') {
    const model = need(positionals[0], 'the model path', 'bench');
    const threads = o.threads === undefined ? undefined : int(o.threads, 'threads', 1);
    if (threads === 0) throw new BortError('--threads 0', 'use at least one thread');
    const r = await benchmark(model, { batch: int(o.batch, 'batch', 1), seq: int(o.seq, 'seq', 128), threads, runs: int(o.runs, 'runs', 10) });
    if (o.json) out(JSON.stringify(r, null, 2));
    else printBench(r, out);
    return;
  }
  if (sub === 'demo') {
    await demo(out, progress);
    return;
  }
  const input = need(positionals[0], 'the input model path', '');
  if (positionals.length > 1) throw new BortError(`unexpected argument '${positionals[1]}'`, 'give one input model; see bort-compress --help');
  const strategy = o.strategy ?? 'importance';
  if (strategy !== 'importance' && strategy !== 'first') throw new BortError(`--strategy '${strategy}' is unknown`, 'use --strategy importance or --strategy first');
  let attentionScale = o['attention-scale'] as 'keep' | 'mean' | 'rescale' | undefined;
  if (attentionScale !== undefined && !['keep', 'mean', 'rescale'].includes(attentionScale)) {
    throw new BortError(`--attention-scale '${attentionScale}' is unknown`, 'use --attention-scale mean, keep or rescale');
  }
  if (o['rescale-attention']) attentionScale = 'rescale';
  const s = await compress(input, {
    arch: need(o.arch, '--arch D,A,H,I', ''), output: o.output, strategy,
    externalData: o['external-data'] ? true : undefined,
    attentionScale,
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
    return 0;
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

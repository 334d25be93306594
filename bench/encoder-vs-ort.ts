/**
 * Benchmark: the native engine against onnxruntime-node, side by side in one process, on synthetic
 * Bort (4,8,1024,768), BERT-base (12,12,768,3072) and BERT-large (24,16,1024,4096), vocab 30522, at
 * batch 1 × seq 128, batch 8 × seq 128 and batch 1 × seq 32, with the same thread count. Also the
 * resident memory after loading each model against its fp32 parameter bytes, and our own
 * BERT-large → Bort speedup.
 *
 *   npm run build && npx tsx bench/encoder-vs-ort.ts [--threads 2] [--runs 10] [--models bort,base,large] [--memory-only]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { synth } from '../lib/synth/bert.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = Number(opt('threads', '2'));
const runs = Number(opt('runs', '10'));
const wanted = opt('models', 'bort,base,large').split(',');
const MODELS = [
  { key: 'bort', label: 'Bort (4,8,1024,768)', arch: '4,8,1024,768' },
  { key: 'base', label: 'BERT-base (12,12,768,3072)', arch: '12,12,768,3072' },
  { key: 'large', label: 'BERT-large (24,16,1024,4096)', arch: '24,16,1024,4096' },
].filter((m) => wanted.includes(m.key));
const CONFIGS = [[1, 128], [8, 128], [1, 32]];
const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-encbench-'));

/**
 * Resident memory of a child that only loads the model into the engine: its RSS before loading (Node
 * and the library), after loading (file buffer released, garbage collected), and the growth.
 */
function loadMemory(model: string): { rssBefore: number; rssAfterLoad: number; paramBytes: number } {
  const code = `
    const { Encoder, inspect } = require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'index.js'))});
    require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'runtime', 'native.js'))}).native();
    (async () => {
      global.gc();
      const rssBefore = process.memoryUsage().rss;
      const enc = await Encoder.load(process.argv[1], { threads: ${threads} });
      global.gc(); global.gc();
      await new Promise((r) => setTimeout(r, 200));
      global.gc();
      const rssAfterLoad = process.memoryUsage().rss;
      const info = inspect(process.argv[1]);
      console.log(JSON.stringify({ rssBefore, rssAfterLoad, paramBytes: info.params * 4 }));
      enc.close();
    })();`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', code, model], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const rows: string[] = [];
const results: Record<string, Record<string, { ours: number; ort?: number }>> = {};
try {
  for (const m of MODELS) {
    const file = path.join(dir, `${m.key}.onnx`);
    synth({ arch: m.arch, vocab: 30522, output: file });
    const mem = loadMemory(file);
    const growth = mem.rssAfterLoad - mem.rssBefore;
    console.log(`${m.label}: fp32 parameters ${(mem.paramBytes / 1e6).toFixed(0)} MB; RSS ${(mem.rssBefore / 1e6).toFixed(0)} MB before load, ${(mem.rssAfterLoad / 1e6).toFixed(0)} MB after (${(mem.rssAfterLoad / mem.paramBytes).toFixed(3)} × parameter bytes; growth ${(growth / 1e6).toFixed(0)} MB = ${(growth / mem.paramBytes).toFixed(3)} ×)`);
    if (args.includes('--memory-only')) { fs.rmSync(file, { force: true }); continue; }
    results[m.key] = {};
    for (const [b, s] of CONFIGS) {
      const r = spawnSync(process.execPath, [cli, 'bench', file, '--batch', String(b), '--seq', String(s), '--threads', String(threads), '--runs', String(runs), '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
      if (r.status !== 0) throw new Error(r.stderr);
      const j = JSON.parse(r.stdout);
      results[m.key][`${b}x${s}`] = { ours: j.ours.medianMs, ort: j.ort?.medianMs };
      const line = `| ${m.label} | ${b} × ${s} | ${j.ours.medianMs.toFixed(2)} ms (${j.ours.gflops.toFixed(0)} GFLOP/s, ${j.isa}) | ${j.ort ? `${j.ort.medianMs.toFixed(2)} ms (${j.ort.gflops.toFixed(0)} GFLOP/s)` : 'n/a'} | ${j.ratio ? j.ratio.toFixed(2) : 'n/a'} |`;
      console.log(line);
      rows.push(line);
    }
    fs.rmSync(file, { force: true });
  }
  console.log(`\nmachine: ${os.cpus()[0].model} × ${os.cpus().length}, Node ${process.version}, ${threads} threads, median of ${runs} alternating runs after warm-up`);
  console.log('| model | batch × seq | bort-compress | onnxruntime-node | ort/ours |\n|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  if (results.large && results.bort) {
    const sp = results.large['1x128'].ours / results.bort['1x128'].ours;
    console.log(`\nour BERT-large → Bort speedup at batch 1 × seq 128: ${sp.toFixed(1)}×`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

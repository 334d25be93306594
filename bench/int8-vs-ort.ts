/**
 * Benchmark (not a test): our int8 encoder (Encoder.load(fp32, { int8: true })) against onnxruntime-node
 * running the float32 model and running the int8 ONNX that `quantize` writes for it, plus our float32
 * encoder for reference, on synthetic Bort (4,8,1024,768) and BERT-base (12,12,768,3072), vocab 30522,
 * batch 1 × seq 128 and 1 × seq 32, same thread count. Engines take turns in blocks of back-to-back
 * runs with a pause before each block (onnxruntime's threads spin after a run; see native/README.md);
 * medians over all blocks. Also the resident memory after loading each model int8 vs its fp32 weights.
 *
 *   npm run build && npx tsx bench/int8-vs-ort.ts [--threads 2] [--runs 10] [--blocks 3] [--models bort,base] [--memory-only]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { synth } from '../lib/synth/bert.js';
import { quantize } from '../lib/quantize/quantize.js';
import { Encoder, type TensorInput } from '../lib/runtime/encoder.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = Number(opt('threads', '2'));
const runs = Number(opt('runs', '10'));
const blocks = Number(opt('blocks', '3'));
const pauseMs = 200;
const wanted = opt('models', 'bort,base').split(',');
const memoryOnly = args.includes('--memory-only');
const MODELS = [
  { key: 'bort', label: 'Bort (4,8,1024,768)', arch: '4,8,1024,768' },
  { key: 'base', label: 'BERT-base (12,12,768,3072)', arch: '12,12,768,3072' },
].filter((m) => wanted.includes(m.key));
const CONFIGS: [number, number][] = [[1, 128], [1, 32]];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-int8bench-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** RSS growth of a child that only loads the model into our engine (int8 or not), and the fp32 weight bytes. */
function loadMemory(model: string, int8: boolean): { growth: number; after: number; paramBytes: number } {
  const code = `
    const { Encoder, inspect } = require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'index.js'))});
    require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'runtime', 'native.js'))}).native();
    (async () => {
      global.gc();
      const before = process.memoryUsage().rss;
      const enc = await Encoder.load(process.argv[1], { threads: ${threads}, int8: ${int8} });
      global.gc(); global.gc();
      await new Promise((r) => setTimeout(r, 1500)); // past the model-reading thread's 1 s idle stop
      global.gc();
      const after = process.memoryUsage().rss;
      console.log(JSON.stringify({ growth: after - before, after, paramBytes: inspect(process.argv[1]).params * 4 }));
      enc.close();
    })();`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', code, model], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

interface Engine { name: string; run(): Promise<unknown> }

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const m of MODELS) {
    const fp32 = path.join(dir, `${m.key}.onnx`), int8 = path.join(dir, `${m.key}.int8.onnx`);
    synth({ arch: m.arch, vocab: 30522, output: fp32 });
    quantize(fp32, { output: int8 });
    const mf = loadMemory(fp32, false), mq = loadMemory(fp32, true), mfile = loadMemory(int8, true);
    const x = (b: number) => `${(b / 1e6).toFixed(0)} MB (${(b / mf.paramBytes).toFixed(2)}×)`;
    console.log(`${m.label}: fp32 weights ${(mf.paramBytes / 1e6).toFixed(0)} MB; RSS growth at load: fp32 ${x(mf.growth)}, int8 at load ${x(mq.growth)}, int8 ONNX file with { int8: true } ${x(mfile.growth)} (× the fp32 weights)`);
    if (memoryOnly) continue;
    const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    const ortFp32 = await ort.InferenceSession.create(fp32, so);
    const ortInt8 = await ort.InferenceSession.create(int8, so);
    const ours = await Encoder.load(fp32, { threads });
    const ours8 = await Encoder.load(fp32, { threads, int8: true });
    for (const [b, s] of CONFIGS) {
      const n = b * s;
      const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(1000 + ((i * 7919) % 28000)));
      const ones = new BigInt64Array(n).fill(1n), zeros = new BigInt64Array(n);
      const feeds: Record<string, ort.Tensor> = {};
      for (const name of ortFp32.inputNames) feeds[name] = new ort.Tensor('int64', /mask/.test(name) ? ones : /type/.test(name) ? zeros : ids, [b, s]);
      const ourFeeds: Record<string, TensorInput> = {};
      for (const name of ortFp32.inputNames) ourFeeds[name] = { data: (feeds[name].data as BigInt64Array), dims: [b, s] };
      const engines: Engine[] = [
        { name: 'ours int8', run: () => ours8.run(ourFeeds) },
        { name: 'ort fp32', run: () => ortFp32.run(feeds) },
        { name: 'ort int8', run: () => ortInt8.run(feeds) },
        { name: 'ours fp32', run: () => ours.run(ourFeeds) },
      ];
      const times = new Map<string, number[]>(engines.map((e) => [e.name, []]));
      for (const e of engines) for (let w = 0; w < 3; w++) await e.run();
      for (let blk = 0; blk < blocks; blk++) {
        for (const e of engines) {
          await sleep(pauseMs);
          for (let r = 0; r < runs; r++) {
            const t0 = performance.now();
            await e.run();
            times.get(e.name)!.push(performance.now() - t0);
          }
        }
      }
      const med = Object.fromEntries([...times].map(([k, v]) => [k, median(v)]));
      const line = `| ${m.label} | ${b} × ${s} | ${med['ours int8'].toFixed(2)} | ${med['ort fp32'].toFixed(2)} | ${med['ort int8'].toFixed(2)} | ${med['ours fp32'].toFixed(2)} | ${(med['ort fp32'] / med['ours int8']).toFixed(2)} | ${(med['ort int8'] / med['ours int8']).toFixed(2)} |`;
      console.log(line);
      rows.push(line);
    }
    ours.close(); ours8.close();
    await ortFp32.release(); await ortInt8.release();
  }
  console.log(`\nmachine: ${os.cpus()[0].model} × ${os.cpus().length}, Node ${process.version}, onnxruntime-node ${(ort.env as { versions?: { common?: string } }).versions?.common ?? '?'}, ${threads} threads, median of ${blocks} blocks × ${runs} runs per engine, ${pauseMs} ms pause before each block`);
  console.log('| model | batch × seq | ours int8 ms | ort fp32 ms | ort int8 ms | ours fp32 ms | ort fp32 / ours int8 | ort int8 / ours int8 |\n|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main().finally(() => fs.rmSync(dir, { recursive: true, force: true }));

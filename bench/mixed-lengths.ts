/**
 * Benchmark (never run as a test): a batch of 8 texts of mixed lengths (5 … 128 tokens, evenly spread,
 * 532 real tokens in an 8 × 128 block) on synthetic Bort (4,8,1024,768) and BERT-base (12,12,768,3072),
 * vocab 30522, through three engines in one process with the same thread count:
 *   - ours, skipping padding (the default: real tokens packed, attention per sequence);
 *   - ours, padded (BORT_PACK=0 while that encoder is created: every one of the 1024 positions);
 *   - onnxruntime-node, padded (the 8 × 128 block with its attention mask).
 * Rounds alternate the engines run by run, each timed run after a pause (onnxruntime's threads spin
 * after a run; see native/README.md), and the medians are reported with tokens/s over the 532 real
 * tokens. Load average is printed before and after.
 *
 *   npm run build && npx tsx bench/mixed-lengths.ts [--threads 2] [--rounds 15] [--models bort,base] [--pause 100]
 *   BORT_ISA=avx2 npx tsx bench/mixed-lengths.ts …      # the AVX2 path on an AVX-512 machine
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Encoder } from '../lib/runtime/encoder.js';
import { synth } from '../lib/synth/bert.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = Number(opt('threads', '2'));
const rounds = Number(opt('rounds', '15'));
const pauseMs = Number(opt('pause', '100'));
const wanted = opt('models', 'bort,base').split(',');
const MODELS = [
  { key: 'bort', label: 'Bort (4,8,1024,768)', arch: '4,8,1024,768' },
  { key: 'base', label: 'BERT-base (12,12,768,3072)', arch: '12,12,768,3072' },
].filter((m) => wanted.includes(m.key));

const B = 8, S = 128;
const LENGTHS = Array.from({ length: B }, (_, i) => Math.round(5 + (i * (S - 5)) / (B - 1)));
const TOKENS = LENGTHS.reduce((a, b) => a + b, 0);

const ids = new BigInt64Array(B * S), mask = new BigInt64Array(B * S), types = new BigInt64Array(B * S);
for (let b = 0; b < B; b++) {
  for (let s = 0; s < LENGTHS[b]; s++) {
    ids[b * S + s] = s === 0 ? 101n : BigInt(1000 + ((b * 7919 + s * 104729) % 29000));
    mask[b * S + s] = 1n;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pause = () => new Promise((r) => setTimeout(r, pauseMs));
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-mixed-'));
  const lines: string[] = [];
  try {
    console.log(`lengths ${LENGTHS.join(', ')}: ${TOKENS} real tokens in a ${B} × ${S} block; ${threads} threads; ${rounds} alternating rounds, ${pauseMs} ms pause before each timed run`);
    console.log(`load average before: ${load()}`);
    for (const m of MODELS) {
      const file = path.join(dir, `${m.key}.onnx`);
      synth({ arch: m.arch, vocab: 30522, output: file });
      const packed = await Encoder.load(file, { threads });
      const saved = process.env.BORT_PACK;
      process.env.BORT_PACK = '0';
      const padded = await Encoder.load(file, { threads });
      if (saved === undefined) delete process.env.BORT_PACK;
      else process.env.BORT_PACK = saved;
      const roles = packed.inputRoles;
      const feeds: Record<string, { data: BigInt64Array; dims: number[] }> = { [roles.ids]: { data: ids, dims: [B, S] } };
      if (roles.mask) feeds[roles.mask] = { data: mask, dims: [B, S] };
      if (roles.tokenTypes) feeds[roles.tokenTypes] = { data: types, dims: [B, S] };
      const session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const n of session.inputNames) ortFeeds[n] = new ort.Tensor('int64', feeds[n].data, [B, S]);

      // the engines agree at the real positions (a sanity check of what is being timed)
      const a = await packed.run(feeds), p = await padded.run(feeds), o = await session.run(ortFeeds);
      const out = packed.outputNames[0];
      let dPad = 0, dOrt = 0, zeros = true;
      const H = a[out].dims[2];
      for (let i = 0; i < a[out].data.length; i++) {
        if (mask[Math.floor(i / H)] === 0n) { if (a[out].data[i] !== 0) zeros = false; continue; }
        dPad = Math.max(dPad, Math.abs(a[out].data[i] - p[out].data[i]));
        dOrt = Math.max(dOrt, Math.abs(a[out].data[i] - (o[out].data as Float32Array)[i]));
      }
      console.log(`${m.label}: real positions max |packed − padded| ${dPad.toExponential(2)}, |packed − onnxruntime| ${dOrt.toExponential(2)}; padded positions all 0: ${zeros}`);

      const engines: [string, () => Promise<unknown>][] = [
        ['ours, padding skipped', () => packed.run(feeds)],
        ['ours, padded', () => padded.run(feeds)],
        [`onnxruntime-node ${require('onnxruntime-node/package.json').version}, padded`, () => session.run(ortFeeds)],
      ];
      for (const [, run] of engines) for (let w = 0; w < 2; w++) await run();
      const times: number[][] = engines.map(() => []);
      for (let r = 0; r < rounds; r++) {
        for (let e = 0; e < engines.length; e++) {
          await pause();
          const t0 = process.hrtime.bigint();
          await engines[e][1]();
          times[e].push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
      const ortMs = median(times[2]);
      for (let e = 0; e < engines.length; e++) {
        const ms = median(times[e]);
        const line = `| ${m.label} | ${engines[e][0]} | ${ms.toFixed(1)} ms | ${Math.round(TOKENS / (ms / 1e3))} | ${(ortMs / ms).toFixed(2)} |`;
        lines.push(line);
        console.log(`${line}   runs: ${times[e].map((t) => t.toFixed(1)).join(' ')}`);
      }
      packed.close();
      padded.close();
      await session.release();
      fs.rmSync(file, { force: true });
    }
    console.log(`load average after: ${load()}`);
    console.log(`\nmachine: ${os.cpus()[0].model} × ${os.cpus().length}, Node ${process.version}, BORT_ISA=${process.env.BORT_ISA ?? '(best)'}`);
    console.log(`| model | engine | median (${B} texts, ${TOKENS} tokens) | real tokens/s | onnxruntime / this |\n|---|---|---|---|---|`);
    for (const l of lines) console.log(l);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });

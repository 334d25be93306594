/**
 * Benchmark (not a test): our engine on a dynamic int8 ONNX (`quantize`: inputs quantized per row at run
 * time) against the static one (`quantize --calibration`: one calibrated scale per input), same model,
 * synthetic Bort (4,8,1024,768), vocab 30522, batch 1 × seq 128. The calibration text is random words
 * of a generated vocabulary (the scales' values do not change the work). Engines take turns in blocks
 * of back-to-back runs; medians over all runs. All times ms.
 *
 *   npx tsx bench/int8-static-speed.ts [--threads 1] [--runs 10] [--blocks 3] [--arch 4,8,1024,768] [--seq 128]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { synth } from '../lib/synth/bert.js';
import { quantize } from '../lib/quantize/quantize.js';
import { calibrate, inputStatistic } from '../lib/quantize/calibrate.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = Number(opt('threads', '1'));
const runs = Number(opt('runs', '10'));
const blocks = Number(opt('blocks', '3'));
const arch = opt('arch', '4,8,1024,768');
const seq = Number(opt('seq', '128'));
const VOCAB = 30522;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-static-speed-'));
  try {
    const fp32 = path.join(dir, 'model.onnx');
    synth({ arch, vocab: VOCAB, maxPositions: 512, seed: 3, output: fp32 });
    const words = Array.from({ length: VOCAB - 5 }, (_, i) => `w${i}`);
    const vocab = path.join(dir, 'vocab.txt');
    fs.writeFileSync(vocab, ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words].join('\n') + '\n');
    let s = 1;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const lines = Array.from({ length: 32 }, () => Array.from({ length: 100 }, () => words[Math.floor(rnd() * words.length)]).join(' '));
    const cal = await calibrate(fp32, lines, TextTokenizer.fromFile(vocab), { threads });
    const dyn = path.join(dir, 'dynamic.onnx'), stat = path.join(dir, 'static.onnx');
    quantize(fp32, { output: dyn });
    quantize(fp32, { output: stat, inputMax: new Map([...cal.rowMaxima].map(([k, v]) => [k, inputStatistic(v, 100)])) });
    const engines: [string, Encoder][] = [['dynamic', await Encoder.load(dyn, { threads })], ['static', await Encoder.load(stat, { threads })]];
    const ids = new Int32Array(seq).map(() => 5 + Math.floor(rnd() * (VOCAB - 5)));
    ids[0] = 2;
    ids[seq - 1] = 3;
    const times = new Map<string, number[]>(engines.map(([n]) => [n, []]));
    for (const [, e] of engines) for (let i = 0; i < 3; i++) await e.run({ [e.inputRoles.ids]: { data: ids, dims: [1, seq] } });
    for (let b = 0; b < blocks; b++) {
      for (const [n, e] of engines) {
        await new Promise((r) => setTimeout(r, 200));
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          await e.run({ [e.inputRoles.ids]: { data: ids, dims: [1, seq] } });
          times.get(n)!.push(performance.now() - t0);
        }
      }
    }
    for (const [, e] of engines) e.close();
    const [d, st] = [median(times.get('dynamic')!), median(times.get('static')!)];
    console.log(`arch ${arch}, 1 × ${seq}, ${threads} thread(s), ${blocks}×${runs} runs each, ISA ${engines[0][1].isa}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`| int8 activations | median ms |\n|---|---|\n| dynamic (per row at run time) | ${d.toFixed(2)} |\n| static (calibrated) | ${st.toFixed(2)} |\nstatic / dynamic ${(st / d).toFixed(3)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();

/**
 * Benchmark: compress a synthetic BERT-large (24,16,1024,4096, vocab 30522) to Bort (4,8,1024,768).
 * Runs the compress CLI in a child process and reports its wall time and peak RSS against the input
 * file size. Targets on a 2-core machine: ≤ 20 s, peak RSS ≤ 1.5 × input size.
 *
 *   npx tsx bench/compress-bert-large.ts [--keep DIR]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
if (!fs.existsSync(cli)) throw new Error('build first: npm run build');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-bench-'));
const input = path.join(dir, 'bert-large.onnx');
const output = path.join(dir, 'bort.onnx');


/** Runs the CLI in a child that reports its own peak RSS (getrusage maxRSS) when it exits. */
function peakRss(args: string[]): { seconds: number; peakRssBytes: number; stdout: string } {
  const wrapper = `process.on('exit',()=>{require('fs').writeSync(2,'\\nBORT_MAXRSS_KB='+process.resourceUsage().maxRSS+'\\n')});require(${JSON.stringify(cli)}).main(process.argv.slice(1)).then(c=>process.exitCode=c)`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', wrapper, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  const m = /BORT_MAXRSS_KB=(\d+)/.exec(r.stderr);
  return { seconds, peakRssBytes: m ? Number(m[1]) * 1024 : NaN, stdout: r.stdout };
}

try {
  const s = peakRss(['synth', '--arch', '24,16,1024,4096', '--vocab', '30522', '-o', input]);
  const inBytes = fs.statSync(input).size;
  console.log(`synth BERT-large: ${s.seconds.toFixed(2)} s, ${(inBytes / 1e9).toFixed(3)} GB`);
  const c = peakRss([input, '--arch', '4,8,1024,768', '-o', output, '--json']);
  const summary = JSON.parse(c.stdout);
  const ratio = c.peakRssBytes / inBytes;
  console.log(`compress BERT-large → Bort: wall ${c.seconds.toFixed(2)} s (target ≤ 20 s), peak RSS ${(c.peakRssBytes / 1e9).toFixed(3)} GB = ${ratio.toFixed(2)} × input (target ≤ 1.5)`);
  console.log(`params ${summary.source.params} → ${summary.target.params}; output ${(fs.statSync(output).size / 1e6).toFixed(1)} MB`);
  console.log(JSON.stringify({ machine: `${os.cpus()[0].model} × ${os.cpus().length}`, node: process.version, wallSeconds: c.seconds, peakRssBytes: c.peakRssBytes, inputBytes: inBytes, rssRatio: ratio, targetParams: summary.target.params }));
} finally {
  if (!process.argv.includes('--keep')) fs.rmSync(dir, { recursive: true, force: true });
}

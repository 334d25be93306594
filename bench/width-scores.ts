/**
 * Which head/neuron scores keep the teacher best: extracts every architecture of
 * bench/teacher-eval.ts from ../shared/teacher with several scorers and measures, on every case of
 * mlm-eval.json (native engine, float64 log-softmax), top-1 agreement with the teacher, accuracy and
 * mean KL(teacher ‖ student). Calibration (layers, gradients) on train.txt only, never heldout.txt.
 *
 *   npx tsx bench/width-scores.ts [--ablations] [--sequences N] [--refit-sequences N] [--ridge R] [--archs A/B/…] [--only first+importance+…] [--files a.onnx+b.onnx]
 *
 * --files also scores the given models (e.g. what `search --extract` wrote) the same way.
 *
 * Scorers: first, importance (weights), data/weight (layers by subset KL, heads+neurons by weights),
 * data/gradient (layers by subset KL, heads+neurons by Taylor importance against the masked words),
 * data/gradient-own (the same against the model's own arg-max), first-layers/gradient (the first
 * layers, heads+neurons by Taylor importance).
 *
 * A suffix `:refit` adds the least-squares refit after the extraction (lib/extract/reconstruct.ts, what
 * `--strategy data` does by default) on --refit-sequences (default 128) sequences of 64 tokens of
 * train.txt, ridge --ridge (default 1e-3), with the first layer aimed at the source depth when layers
 * before it were removed (`:refit-nolead`: without that; until 2026-12-05 12:20 UTC `:refit` meant
 * that and `:refit-lead` the default); data/gradient-own-layers-refit chooses the layer subset after
 * refitting every candidate (on 32 of those sequences). The scoring seconds include the refit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compress } from '../lib/compress.js';
import { dataScorer, widthScorer } from '../lib/extract/data-scorer.js';
import { refitFile } from '../lib/extract/reconstruct.js';
import { parseArch } from '../lib/extract/arch.js';
import { firstScorer, type ImportanceScorer } from '../lib/extract/scorer.js';
import { Encoder } from '../lib/runtime/encoder.js';
import { buildCalibration, readCorpus } from '../lib/search/calibration.js';
import { argmax, logSoftmax } from '../lib/search/masked-lm.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = process.env.BORT_TEACHER_DIR ?? path.resolve(repoRoot, '..', 'shared', 'teacher');
const teacherPath = path.join(dir, 'teacher-mlm.onnx');
const argv = process.argv.slice(2);
const ablations = argv.includes('--ablations');
const seqArg = argv.indexOf('--sequences');
const sequences = seqArg >= 0 ? Number(argv[seqArg + 1]) : 32;
const refitArg = argv.indexOf('--refit-sequences');
const refitSequences = refitArg >= 0 ? Number(argv[refitArg + 1]) : 128;
const ridgeArg = argv.indexOf('--ridge');
const ridge = ridgeArg >= 0 ? Number(argv[ridgeArg + 1]) : undefined;
const only = argv.indexOf('--only');
const onlyList = only >= 0 ? argv[only + 1].split('+') : undefined;

interface EvalCase { input_ids: number[]; masked_index: number; label: number }
const evalSet = JSON.parse(fs.readFileSync(path.join(dir, 'mlm-eval.json'), 'utf8')) as { cases: EvalCase[]; mask_id?: number };
const cases = evalSet.cases;
const maskId = evalSet.mask_id ?? 4;

/** Logits rows at the masked position of every case, grouped by length, 16 a run. */
async function rows(file: string, onRow: (i: number, row: Float32Array) => void): Promise<void> {
  const enc = await Encoder.load(file, { threads: 2 });
  try {
    const byLen = new Map<number, number[]>();
    cases.forEach((c, i) => byLen.set(c.input_ids.length, [...(byLen.get(c.input_ids.length) ?? []), i]));
    const out = enc.outputNames.find((n) => n === 'logits') ?? enc.outputNames[0];
    for (const [len, list] of byLen) {
      for (let s = 0; s < list.length; s += 16) {
        const part = list.slice(s, s + 16);
        const ids = new Int32Array(part.length * len);
        part.forEach((ci, r) => cases[ci].input_ids.forEach((t, k) => { ids[r * len + k] = k === cases[ci].masked_index ? maskId : t; }));
        const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [enc.inputRoles.ids]: { data: ids, dims: [part.length, len] } };
        if (enc.inputRoles.mask) inputs[enc.inputRoles.mask] = { data: new Int32Array(ids.length).fill(1), dims: [part.length, len] };
        if (enc.inputRoles.tokenTypes) inputs[enc.inputRoles.tokenTypes] = { data: new Int32Array(ids.length), dims: [part.length, len] };
        const r = (await enc.run(inputs))[out];
        const V = r.dims[2];
        part.forEach((ci, k) => { const o = (k * len + cases[ci].masked_index) * V; onRow(ci, r.data.subarray(o, o + V)); });
      }
    }
  } finally {
    enc.close();
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const teacherLp: Float32Array[] = [];
  const teacherTop: number[] = [];
  await rows(teacherPath, (i, row) => { const lp = logSoftmax(row); teacherLp[i] = Float32Array.from(lp); teacherTop[i] = argmax(row); });
  const cal = buildCalibration(readCorpus(path.join(dir, 'train.txt')), TextTokenizer.fromFile(path.join(dir, 'vocab.txt')), { vocab: 8000, maxPositions: 128, sequences });
  const refitCal = buildCalibration(readCorpus(path.join(dir, 'train.txt')), TextTokenizer.fromFile(path.join(dir, 'vocab.txt')), { vocab: 8000, maxPositions: 128, sequences: refitSequences });
  console.log(`teacher rows ${((Date.now() - t0) / 1000).toFixed(1)} s; calibration ${cal.inputs.length} × ${cal.seq} tokens (${cal.positions} masked) from train.txt`);
  const archArg = argv.indexOf('--archs');
  const archs = archArg >= 0 ? argv[archArg + 1].split('/')
    : ['3,4,256,512', '2,8,256,256', ...(ablations ? ['6,4,256,1024', '6,8,256,512', '6,8,256,256', '3,8,256,1024', '2,8,256,1024', '3,8,256,512'] : [])];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-width-'));
  const score = async (file: string) => {
    let agree = 0, hits = 0, kl = 0;
    await rows(file, (i, row) => {
      const q = logSoftmax(row);
      const p = teacherLp[i];
      let k = 0;
      for (let v = 0; v < p.length; v++) { const pv = Math.exp(p[v]); if (pv > 0) k += pv * (p[v] - q[v]); }
      kl += k;
      const top = argmax(row);
      if (top === teacherTop[i]) agree++;
      if (top === cases[i].label) hits++;
    });
    return { agree, hits, kl: kl / cases.length };
  };
  const lines = ['| arch | scorer | layers | accuracy | agreement | mean KL | scoring s |', '|---|---|---|---:|---:|---:|---:|'];
  const filesArg = argv.indexOf('--files');
  for (const f of filesArg >= 0 ? argv[filesArg + 1].split('+') : []) {
    const r = await score(f);
    const line = `| ${path.basename(f)} | (file) | | ${r.hits} | ${r.agree} | ${r.kl.toFixed(4)} | |`;
    console.log(line);
    lines.push(line);
  }
  const grad = !onlyList || onlyList.includes('first-layers/gradient') ? await widthScorer(teacherPath, cal, 'gradient') : firstScorer;
  try {
    for (const a of archs) {
      const target = parseArch(a);
      const variants: [string, () => Promise<ImportanceScorer | 'first' | 'importance'>][] = [
        ['first', async () => 'first'],
        ['importance', async () => 'importance'],
        ['data/weight', () => dataScorer(teacherPath, cal, { target, widths: 'weight' })],
        ['data/gradient', () => dataScorer(teacherPath, cal, { target, widths: 'gradient' })],
        ['data/gradient-own', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own' })],
        ['data/search', () => dataScorer(teacherPath, cal, {})], // as search extracts: layers by greedy elimination, no target
        ['data/gradient-own-b1', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own', gradientBatch: 1 })],
        ['data/gradient-own-b1-agree', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own', gradientBatch: 1, layerCriterion: 'agreement' })],
        ['data/gradient-own+merged-heads-by-weight', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own', mergedHeads: 'weight' })],
        ['first-layers/gradient', async () => ({ ...grad, name: 'fl', layers: firstScorer.layers })],
        ['first:refit', async () => 'first'],
        ['importance:refit', async () => 'importance'],
        ['data/gradient-own:refit', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own' })],
        ['data/gradient-own-weight-merged:refit', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own', mergedHeads: 'weight' })],
        ['data/weight:refit', () => dataScorer(teacherPath, cal, { target, widths: 'weight' })],
        ['data/gradient-own:refit-nolead', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own' })],
        // layer subset chosen after refitting every candidate (on the first 32 refit sequences)
        ['data/gradient-own-layers-refit:refit', () => dataScorer(teacherPath, cal, { target, widths: 'gradient-own', layerRefit: { sequences: refitCal.inputs.slice(0, 32), ridge } })],
      ];
      for (const [name, make] of variants) {
        if (onlyList && !onlyList.includes(name)) continue;
        const s0 = Date.now();
        const strategy = await make();
        const file = path.join(tmp, `${a.replace(/,/g, '-')}-${name.replace(/\//g, '_')}.onnx`);
        const summary = await compress(teacherPath, { arch: a, strategy, output: file });
        if (/:refit(-lead|-nolead)?$/.test(name)) {
          await refitFile(teacherPath, file, summary.plan.layers, refitCal.inputs, { ridge, threads: 2, leadingTarget: name.endsWith(':refit-nolead') ? false : true, onProgress: (m) => console.error(m) });
        }
        const secs = (Date.now() - s0) / 1000;
        const { agree, hits, kl } = await score(file);
        fs.rmSync(file, { force: true });
        const line = `| ${a} | ${name} | ${summary.plan.layers.join(',')} | ${hits} | ${agree} | ${kl.toFixed(4)} | ${secs.toFixed(1)} |`;
        console.log(line);
        lines.push(line);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`\n${cases.length} cases; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${((Date.now() - t0) / 1000).toFixed(0)} s\n${lines.join('\n')}`);
}

main().catch((e) => { console.error(e); process.exit(1); });

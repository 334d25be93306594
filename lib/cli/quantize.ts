/** `bort-compress quantize`: int8 weights; activations dynamic, or static from --calibration text. */
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';
import { calibrate, DEFAULT_CALIBRATION_PERCENTILE, inputStatistic, readCalibrationText, type CalibrateProgress } from '../quantize/calibrate.js';
import { quantize, type QuantizeSummary } from '../quantize/quantize.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { formatBytes } from './format.js';
import { intOption } from './options.js';

type Out = (line: string) => void;

export interface QuantizeCalibrationSummary {
  text: string;
  sequences: number;
  tokens: number;
  percentile: number;
  seconds: number;
}

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function percentileOption(v: string | undefined): number {
  if (v === undefined) return DEFAULT_CALIBRATION_PERCENTILE;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0 && n <= 100)) {
    throw new BortError(`--calibration-percentile ${quoteName(v)} is not a number in (0, 100]`, 'give e.g. 100 (the max |x| seen) or 99.99');
  }
  return n;
}

function printQuantize(s: QuantizeSummary, cal: QuantizeCalibrationSummary | undefined, out: Out): void {
  out(`bort-compress quantize: ${path.basename(s.input)} → ${s.output}`);
  out(`  int8    ${s.quantized.length} linear weights, symmetric ${s.scheme}; activations ${s.activations === 'static'
    ? 'static (Clip + QuantizeLinear to int8, one scale per input tensor)' : 'dynamic (DynamicQuantizeLinear)'}`);
  if (cal) {
    out(`  calibration  ${cal.sequences} sequences (${cal.tokens} tokens) of ${path.basename(cal.text)}, scale = ${cal.percentile >= 100 ? 'max |x|' : `${cal.percentile}th percentile of the token rows' max |x|`} / 127, ${cal.seconds.toFixed(1)} s`);
  }
  out(`  bytes   ${formatBytes(s.floatBytes)} of float32 weights → ${formatBytes(s.int8Bytes)} int8 + scales; file ${formatBytes(s.fileBytes)}`);
  out(`  time    ${s.seconds.toFixed(2)} s`);
}

export async function quantizeCommand(model: string, o: Record<string, string | boolean | undefined>, out: Out): Promise<void> {
  const str = (k: string) => o[k] as string | undefined;
  const text = str('calibration');
  const calOnly = ['vocab', 'calibration-samples', 'calibration-percentile'].find((k) => o[k] !== undefined);
  if (!text && calOnly) throw new BortError(`--${calOnly} is only used with --calibration`, 'add --calibration TEXT for static activation scales, or leave it out');
  const opts = { output: str('output'), perTensor: o['per-tensor'] === true, all: o.all === true };
  if (!text) {
    const s = quantize(model, opts);
    if (o.json) out(JSON.stringify(s, null, 2));
    else printQuantize(s, undefined, out);
    return;
  }
  const samples = intOption(str('calibration-samples'), 'calibration-samples', 256);
  const percentile = percentileOption(str('calibration-percentile'));
  const lines = readCalibrationText(text);
  const tokenizer = TextTokenizer.fromFile(str('vocab') ?? TextTokenizer.find(model));
  const tty = !!process.stderr.isTTY;
  let last = Date.now();
  const line = (p: CalibrateProgress) => `calibrating: ${p.done}/${p.total} sequences  ${Math.round(p.tokensPerSecond)} tokens/s  ETA ${duration(p.etaSeconds)}`;
  const started = Date.now();
  const cal = await calibrate(model, lines, tokenizer, {
    samples, all: opts.all,
    onProgress: (p) => {
      // shown once the calibration has taken a second, then refreshed (every 10 s when not a terminal)
      const now = Date.now();
      if (now - started < 1000) return;
      if (tty) process.stderr.write(`\r\x1b[K${line(p)}`);
      else if (now - last >= 10_000) {
        last = now;
        process.stderr.write(`${line(p)}\n`);
      }
    },
  });
  if (tty && Date.now() - started >= 1000) process.stderr.write('\r\x1b[K');
  const inputMax = new Map([...cal.rowMaxima].map(([k, v]) => [k, inputStatistic(v, percentile)]));
  const s = quantize(model, { ...opts, inputMax });
  const summary: QuantizeCalibrationSummary = { text: path.resolve(text), sequences: cal.sequences, tokens: cal.tokens, percentile, seconds: cal.seconds };
  if (o.json) out(JSON.stringify({ ...s, calibration: summary }, null, 2));
  else printQuantize(s, summary, out);
}

/**
 * Calibration for static int8 activation scales (`quantize --calibration`): the float32 model runs on
 * the native engine over lines of calibration text, one sequence a line ([CLS] line [SEP], cut at
 * `maxTokens`), and the engine's recorder (Encoder.recordInputMaxima) returns, for every linear layer,
 * the max |x| of each input row. The rows of each quantizable linear's input tensor are kept here; the
 * static scale of a tensor is then a statistic of them (`inputStatistic`: their max, which is the
 * tensor's max |x| over the calibration text, or a percentile of the row maxima).
 */
import * as fs from 'node:fs';
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { BortError, quoteName } from '../errors.js';
import { Encoder } from '../runtime/encoder.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { quantizableLinears } from './quantize.js';

export interface CalibrateOptions {
  /** Lines of text to run, spread evenly over the file (default 256). */
  samples?: number;
  /** Tokens per sequence at most, special tokens included (default 128, at most the model's positions). */
  maxTokens?: number;
  /** Also the linear heads (pooler, masked-LM transform and decoder, classifiers), as `quantize --all`. */
  all?: boolean;
  threads?: number;
  onProgress?: (p: CalibrateProgress) => void;
}

export interface CalibrateProgress {
  done: number;
  total: number;
  tokensPerSecond: number;
  etaSeconds: number;
}

export interface Calibration {
  /** Per input tensor of a quantizable linear (its ONNX name): the max |x| of each token row seen. */
  rowMaxima: Map<string, Float32Array>;
  sequences: number;
  tokens: number;
  seconds: number;
}

export const DEFAULT_CALIBRATION_SAMPLES = 256;
export const DEFAULT_CALIBRATION_TOKENS = 128;
/** The statistic `quantize --calibration` uses by default (100: the max |x| seen; chosen by measurement, README). */
export const DEFAULT_CALIBRATION_PERCENTILE = 100;

/** The calibration text's non-empty lines; one-line BortErrors for a missing, unreadable or empty file. */
export function readCalibrationText(file: string): string[] {
  const fix = 'give a text file, one paragraph a line, from the data the model will see (not its evaluation set)';
  let text: string;
  try {
    if (!fs.statSync(file).isFile()) throw new BortError(`--calibration ${quoteName(file)} is not a file`, fix);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof BortError) throw e;
    throw new BortError(`cannot read --calibration ${quoteName(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, fix);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (!lines.length) throw new BortError(`--calibration ${quoteName(file)} has no text`, fix);
  return lines;
}

/**
 * The engine slot (encoder.h, Encoder.takeInputMaxima) that records the input of each linear
 * `quantizableLinears` lists, by role.
 */
function slotOf(role: string, layers: number, classifierSource?: 'pooler' | 'hidden'): number {
  const m = /^layer (\d+) (attention query|attention key|attention value|attention output|feed-forward input|feed-forward output)$/.exec(role);
  if (m) {
    const l = Number(m[1]);
    return 4 * l + (m[2] === 'attention output' ? 1 : m[2] === 'feed-forward input' ? 2 : m[2] === 'feed-forward output' ? 3 : 0);
  }
  if (role === 'pooler') return 4 * layers;
  if (role === 'masked-LM transform') return 4 * layers + 1;
  if (role === 'masked-LM decoder') return 4 * layers + 2;
  if (role.startsWith('classifier ')) return 4 * layers + (classifierSource === 'hidden' ? 4 : 3);
  throw new Error(`internal: no engine slot for ${role}`);
}

/**
 * Runs the float32 model at `modelPath` over `lines` and returns every quantizable linear's input row
 * maxima. Refuses an already-quantized model (calibrate the float32 one).
 */
export async function calibrate(modelPath: string, lines: string[], tokenizer: TextTokenizer, opts: CalibrateOptions = {}): Promise<Calibration> {
  const t0 = performance.now();
  const samples = opts.samples ?? DEFAULT_CALIBRATION_SAMPLES;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new BortError(`--calibration-samples ${samples} is not a positive integer`, 'give the number of lines to run, e.g. 256');
  const m = recognize(loadModel(modelPath).model);
  const targets = quantizableLinears(m, opts.all === true);
  const already = quantizableLinears(m, true).find((t) => t.linear.quant);
  if (already) {
    throw new BortError(`the model is already int8-quantized (${already.role} weight ${quoteName(already.linear.weight)}); calibration needs float32 activations`, 'calibrate and quantize the float32 model it was made from');
  }
  const enc = await Encoder.load(modelPath, opts.threads === undefined ? {} : { threads: opts.threads });
  try {
    const info = enc.info;
    const seqMax = Math.min(opts.maxTokens ?? DEFAULT_CALIBRATION_TOKENS, info.fixedLength ?? info.maxPositions);
    // lines spread over the whole file, in file order
    const n = Math.min(samples, lines.length);
    const picked: string[] = [];
    for (let i = 0; i < n; i++) picked.push(lines[Math.floor((i * lines.length) / n)]);
    const seqs = picked.map((l) => tokenizer.encode(l, null, { maxLength: seqMax, truncation: 'longest_first' }).ids);
    for (const ids of seqs) {
      const bad = ids.find((id) => id >= info.vocab);
      if (bad !== undefined) throw new BortError(`the tokenizer ${quoteName(tokenizer.source)} gives token id ${bad} but the model has ${info.vocab} words`, "pass --vocab with the model's own vocab.txt or tokenizer.json");
    }
    const roles = enc.inputRoles;
    const total = seqs.reduce((s, x) => s + x.length, 0);
    enc.recordInputMaxima(true);
    const start = performance.now();
    let tokens = 0;
    for (let i = 0; i < seqs.length; i++) {
      const ids = seqs[i];
      // one sequence a run: no padding, every recorded row is a real token
      const len = info.fixedLength ?? ids.length;
      const data = new Int32Array(len);
      data.set(ids);
      const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [roles.ids]: { data, dims: [1, len] } };
      if (roles.mask) inputs[roles.mask] = { data: new Int32Array(len).fill(1, 0, ids.length), dims: [1, len] };
      if (roles.tokenTypes) inputs[roles.tokenTypes] = { data: new Int32Array(len), dims: [1, len] };
      await enc.run(inputs);
      tokens += ids.length;
      if (opts.onProgress) {
        const rate = tokens / Math.max(1e-3, (performance.now() - start) / 1000);
        opts.onProgress({ done: i + 1, total: seqs.length, tokensPerSecond: rate, etaSeconds: (total - tokens) / rate });
      }
    }
    const slots = enc.takeInputMaxima();
    enc.recordInputMaxima(false);
    const rowMaxima = new Map<string, Float32Array>();
    for (const t of targets) {
      if (rowMaxima.has(t.linear.input)) continue;
      const cls = m.classifiers.find((c) => c.linear === t.linear);
      const rows = slots[slotOf(t.role, m.layers.length, cls?.source)];
      if (!rows || rows.length === 0) throw new Error(`internal: calibration recorded no input rows for the ${t.role}`);
      const at = rows.findIndex((v) => !Number.isFinite(v));
      if (at >= 0) throw new BortError(`the ${t.role} input reaches ${rows[at]} on the calibration text`, 'the float32 model overflows on this text; check the model, or calibrate on other text');
      rowMaxima.set(t.linear.input, rows);
    }
    return { rowMaxima, sequences: seqs.length, tokens, seconds: (performance.now() - t0) / 1000 };
  } finally {
    enc.close();
  }
}

/**
 * The statistic a static scale is made from: the largest row maximum (percentile 100: the tensor's
 * max |x| over the calibration text), or the nearest-rank `percentile` of the row maxima.
 */
export function inputStatistic(rowMaxima: Float32Array, percentile: number): number {
  if (percentile >= 100) return rowMaxima.reduce((a, b) => (b > a ? b : a), 0);
  const sorted = Float32Array.from(rowMaxima).sort();
  const rank = Math.max(1, Math.ceil((percentile / 100) * sorted.length));
  return sorted[rank - 1];
}

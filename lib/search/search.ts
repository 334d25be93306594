/**
 * `search()`: the Bort paper's optimal sub-architecture extraction over a space Ξ of (D, A, H, I).
 *
 * 1. p̂ (exact parameter count, closed form) and î (latency on the native engine at batch × seq,
 *    measured on a random-weight model of each shape, or predicted by a FLOP cost model fitted to a
 *    few measured candidates) for every candidate;
 * 2. the maximum point T of Ξ, extracted from the source; its masked-LM distributions on the
 *    calibration text are the reference;
 * 3. the FPTAS step: Ξ sorted by p̂ and cut into intervals of ε; one candidate per interval is
 *    extracted (by importance), distilled from T for n steps (lib/search/distilled-error.ts; T's
 *    logits for the training batches computed once) and evaluated: ê = cross-entropy of its
 *    predictions against T's at the calibration set's masked positions (n = 0: zero-shot, no training);
 * 4. the W-coefficient of every evaluated candidate, the Pareto front over (î, p̂, ê), and the
 *    candidate with the largest W.
 *
 * search.json is rewritten after every measurement; a run with the same settings resumes from it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';
import type { Arch } from '../bert/model.js';
import { archParameters, type HeadsConfig } from '../bert/params.js';
import { runCompress, defaultOutput, type CompressSummary } from '../compress-job.js';
import { dataScorer } from '../extract/data-scorer.js';
import { refitSummary } from '../compress.js';
import { REFIT_SEQUENCES } from '../extract/reconstruct.js';
import { scorerFor, type ImportanceScorer } from '../extract/scorer.js';
import { inspect } from '../inspect.js';
import { encoderFlops } from '../runtime/bench.js';
import { Encoder } from '../runtime/encoder.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { buildCalibration, readCorpus, type CalibrationSet } from './calibration.js';
import { fitCostModel, predictMs } from './cost-model.js';
import { argmaxW, representatives } from './fptas.js';
import { measureLatency, timeEncoder, type Shape } from './latency.js';
import { fidelity, referenceLogProbs, type MaskedLogProbs } from './masked-lm.js';
import { DEFAULT_TRAIN, SEARCH_LOSS, distillCandidate, teacherBatches, type TeacherBatches, type TrainSettings } from './distilled-error.js';
import { paretoFlags } from './pareto.js';
import { renderReport } from './report-html.js';
import { readForResume, writeSearchFile, type CandidateRecord, type SearchConfig, type SearchFile } from './search-file.js';
import { archKey, candidatesOf, completeSpace, maximumPoint, parseSpace, type SearchSpace } from './space.js';
import { wCoefficient } from './w-coefficient.js';

export interface SearchOptions {
  /** The space: text ('D=2..6,A=4|8,…'), JSON text, or an object; default from the source's size. */
  space?: string | Partial<SearchSpace>;
  /** Calibration text (one paragraph a line) and the model's tokenizer (vocab.txt or tokenizer.json). */
  corpus: string;
  vocab: string;
  /** Training steps n per candidate (distillation from T before ê; default DEFAULT_STEPS); 0 is zero-shot. */
  steps?: number;
  /** Distillation settings for n > 0: sequences per step (default 8) and peak learning rate (default 5e-4). */
  train?: { batch?: number; lr?: number };
  /** FPTAS interval size ε ≥ 1 (default 1: every candidate is evaluated). */
  epsilon?: number;
  /** Batch × sequence for î (default 1 × 128, the sequence at most the model's positions). */
  shape?: Shape | string;
  /** Extraction scorer for each candidate: 'data' (default), 'importance' or 'first'. */
  strategy?: 'data' | 'importance' | 'first';
  /** Output folder for search.json and search.html (created when missing; default '.'). */
  output?: string;
  /** Also write the chosen model into the output folder, as compress would name it. */
  extract?: boolean;
  /**
   * With `extract` and strategy 'data': refit the written model's W_O and W_out by least squares on 128
   * calibration sequences (lib/extract/reconstruct.ts; default true). Candidates are evaluated without it.
   */
  refit?: boolean;
  /** Calibration sequences (default 32) of 64 tokens. */
  calibrationSequences?: number;
  /** Time only this many candidates (spread over FLOPs) and predict the others with the cost model. */
  calibrateLatency?: number;
  /** Timed runs per candidate (default 7, after 2 warm-up runs; the median counts). */
  runs?: number;
  threads?: number;
  /** The command line, shown in the report. */
  command?: string;
  /** Stops the search after the current candidate (search.json says 'interrupted'). */
  signal?: AbortSignal;
  onProgress?: (p: SearchProgress) => void;
}

export interface SearchProgress {
  phase: 'scoring' | 'latency' | 'reference' | 'error' | 'done';
  done: number;
  total: number;
  /** Seconds left in this phase, estimated from the candidates so far. */
  etaSeconds?: number;
  /** The evaluated candidate with the largest W so far. */
  best?: { key: string; w: number };
  message: string;
}

export interface SearchResult {
  file: SearchFile;
  json: string;
  html: string;
  /** The chosen model, with --extract. */
  extracted?: CompressSummary;
}

export function parseShape(v: string | Shape): Shape {
  if (typeof v === 'object') return v;
  const m = /^\s*(\d+)\s*[x×]\s*(\d+)\s*$/i.exec(String(v));
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new BortError(`--shape ${quoteName(v)} is not BATCHxSEQ`, 'write it as e.g. --shape 1x128 (batch 1, 128 tokens)');
  const shape = { batch: Number(m[1]), seq: Number(m[2]) };
  if (shape.batch * shape.seq > 65536) throw new BortError(`--shape ${v} is ${shape.batch * shape.seq} tokens per run`, 'keep batch × seq at most 65,536');
  return shape;
}

/** Training steps n per candidate when --steps is not given (see BENCHMARKS.md "Search on the teacher"). */
export const DEFAULT_STEPS = 100;

function notes(steps: number, train: TrainSettings): string[] {
  return [
    'W(ξ) = (p̂(T)/p̂(ξ))·(î(T)/î(ξ))·(ê(T)/ê(ξ)); the argmax of W is on the Pareto front (README: departures from the paper).',
    steps === 0
      ? 'ê with n = 0 steps: the candidate is extracted by importance and evaluated without training (zero-shot).'
      : `ê after n = ${steps} steps of distillation from T (batches of ${train.batch}×${train.seq} masked-LM tokens from the corpus, loss 0.1·CE + 0.9·τ²·KL at τ = 2, AdamW lr ${train.lr}); T's logits computed once for all candidates.`,
    'FPTAS step: Ξ sorted by p̂ (ties by î), cut into intervals of ε; the fastest candidate of each interval is evaluated.',
  ];
}

function checkOptions(o: SearchOptions): { steps: number; epsilon: number; strategy: 'data' | 'importance' | 'first' } {
  const steps = o.steps ?? DEFAULT_STEPS;
  if (!Number.isSafeInteger(steps) || steps < 0 || steps > 1_000_000) {
    throw new BortError(`--steps ${steps} is not a whole number from 0 to 1,000,000`, `pass --steps 0 (zero-shot) or a number of distillation steps (default ${DEFAULT_STEPS})`);
  }
  const epsilon = o.epsilon ?? 1;
  if (!Number.isSafeInteger(epsilon) || epsilon < 1) throw new BortError(`--epsilon ${epsilon} is not a whole number ≥ 1`, 'pass the FPTAS interval size ε, e.g. --epsilon 1 (evaluate every candidate)');
  const strategy = o.strategy ?? 'data';
  if (!['data', 'importance', 'first'].includes(strategy)) throw new BortError(`--strategy ${quoteName(strategy)} is unknown`, 'use --strategy data, importance or first');
  if (!o.corpus) throw new BortError('missing --corpus TEXT', 'give calibration text (one paragraph a line) for ê; see bort-compress search --help');
  if (!o.vocab) throw new BortError('missing --vocab V', "give the model's vocab.txt or tokenizer.json; see bort-compress search --help");
  return { steps, epsilon, strategy };
}

function trainOverrides(t: SearchOptions['train']): Partial<TrainSettings> {
  const out: Partial<TrainSettings> = {};
  if (t?.batch !== undefined) {
    if (!Number.isSafeInteger(t.batch) || t.batch < 1 || t.batch > 256) throw new BortError(`training batch ${t.batch} is not a whole number from 1 to 256`, 'pass train.batch, e.g. 8 sequences a step');
    out.batch = t.batch;
  }
  if (t?.lr !== undefined) {
    if (!Number.isFinite(t.lr) || t.lr <= 0 || t.lr > 1) throw new BortError(`training learning rate ${t.lr} is not in (0, 1]`, 'pass train.lr, e.g. 5e-4');
    out.lr = t.lr;
  }
  return out;
}

/** Candidates to time when only `k` are measured: spread evenly over FLOPs, the extremes included. */
function spreadByFlops(recs: CandidateRecord[], k: number): Set<string> {
  const order = [...recs].sort((a, b) => a.gflop - b.gflop);
  const out = new Set<string>();
  for (let i = 0; i < k; i++) out.add(order[Math.round((i * (order.length - 1)) / Math.max(1, k - 1))].key);
  return out;
}

function eta(t0: number, done: number, total: number): number | undefined {
  return done > 0 ? ((Date.now() - t0) / 1000 / done) * (total - done) : undefined;
}

export async function search(model: string, options: SearchOptions): Promise<SearchResult> {
  const started = Date.now();
  const { steps, epsilon, strategy } = checkOptions(options);
  const trainGiven = trainOverrides(options.train);
  const progress = options.onProgress ?? (() => {});
  const info = inspect(model);
  if (!info.heads.mlm) {
    throw new BortError(`${quoteName(path.basename(model))} has no masked-LM head`, 'search measures ê by masked-word prediction: give a masked-LM model (output logits [batch, seq, vocab])');
  }
  const src = info.arch;
  const given = options.space === undefined ? {} : typeof options.space === 'string' ? parseSpace(options.space) : options.space;
  const space = completeSpace(given, src, info.attentionWidth);
  const archs = candidatesOf(space);
  const shape = parseShape(options.shape ?? `1x${Math.min(128, info.maxPositions)}`);
  if (shape.seq > info.maxPositions) throw new BortError(`--shape ${shape.batch}x${shape.seq} exceeds the model's ${info.maxPositions} positions`, `use a sequence of at most ${info.maxPositions}`);
  const calibrate = options.calibrateLatency;
  if (calibrate !== undefined && (!Number.isSafeInteger(calibrate) || calibrate < 3)) {
    throw new BortError(`--calibrate-latency ${calibrate} is too few`, 'time at least 3 candidates to fit and check the cost model');
  }
  const runs = options.runs ?? 7;
  const heads: HeadsConfig = {
    vocab: info.vocab, positions: info.maxPositions, typeVocab: info.typeVocab, pooler: info.heads.pooler, mlm: info.heads.mlm,
    classifiers: info.heads.classifiers.map((c) => c.labels),
  };
  const params = (a: Arch) => archParameters(a, heads);
  const T = maximumPoint(space, archs, params);
  const flops = (a: Arch) => encoderFlops(a, shape.batch, shape.seq, { pooler: info.heads.pooler, mlmVocab: info.vocab }) / 1e9;

  const lines = readCorpus(options.corpus);
  const tokenizer = TextTokenizer.fromFile(options.vocab);
  const cal: CalibrationSet = buildCalibration(lines, tokenizer, { vocab: info.vocab, maxPositions: info.maxPositions, sequences: options.calibrationSequences ?? 32 });

  const outDir = path.resolve(options.output ?? '.');
  try {
    fs.mkdirSync(outDir, { recursive: true });
  } catch (e) {
    throw new BortError(`cannot create the output folder ${quoteName(outDir)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'choose another folder with -o');
  }
  const jsonPath = path.join(outDir, 'search.json');
  const htmlPath = path.join(outDir, 'search.html');

  const train: TrainSettings = { ...DEFAULT_TRAIN, ...trainGiven, seq: cal.seq };
  const config: SearchConfig = {
    model: path.resolve(model), modelBytes: info.fileBytes, space, shape, steps, epsilon, strategy, corpus: path.resolve(options.corpus),
    calibration: { sequences: cal.inputs.length, seq: cal.seq, positions: cal.positions },
    ...(steps > 0 ? { training: { batch: train.batch, seq: train.seq, lr: train.lr, seed: train.seed, loss: { ...SEARCH_LOSS } } } : {}),
    latency: calibrate === undefined ? { mode: 'measure', runs } : { mode: 'cost-model', calibrate, runs },
  };
  const previous = readForResume(jsonPath, config);
  const byKey = new Map(previous?.candidates.map((c) => [c.key, c]) ?? []);
  const state: SearchFile = {
    format: 'bort-compress-search', version: 1, status: 'running', config, command: options.command,
    source: previous?.source ?? { arch: src, params: info.params },
    maximumPoint: previous?.maximumPoint ?? { key: archKey(T), arch: T, params: params(T) },
    candidates: archs.map((a) => byKey.get(archKey(a)) ?? { key: archKey(a), arch: a, params: params(a), gflop: flops(a), evaluated: false }),
    costModel: previous?.costModel,
    teacherLogits: previous?.teacherLogits,
    seconds: previous?.seconds ?? 0,
    notes: notes(steps, train),
  };
  const save = () => {
    state.seconds = (previous?.seconds ?? 0) + (Date.now() - started) / 1000;
    writeSearchFile(jsonPath, state);
  };
  save();
  const aborted = () => options.signal?.aborted === true;
  const stop = () => {
    state.status = 'interrupted';
    save();
    const html = renderReport(state);
    writeReport(htmlPath, html);
    return { file: state, json: jsonPath, html: htmlPath };
  };

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-search-'));
  try {
    // 1. î
    const toMeasure = calibrate === undefined ? new Set(state.candidates.map((c) => c.key)) : spreadByFlops(state.candidates, Math.min(calibrate, state.candidates.length));
    toMeasure.add(state.maximumPoint.key);
    const pending = state.candidates.filter((c) => toMeasure.has(c.key) && c.latencySource !== 'measured');
    const latOpts = { shape, vocab: info.vocab, maxPositions: info.maxPositions, typeVocab: info.typeVocab, mlm: true, threads: options.threads, runs, tmpDir: tmp };
    const t1 = Date.now();
    for (let i = 0; i < pending.length; i++) {
      if (aborted()) return stop();
      const c = pending[i];
      c.latencyMs = await measureLatency(c.arch, latOpts);
      c.latencySource = 'measured';
      save();
      progress({ phase: 'latency', done: i + 1, total: pending.length, etaSeconds: eta(t1, i + 1, pending.length), message: `î ${c.key}: ${c.latencyMs.toFixed(2)} ms` });
    }
    if (state.source.latencyMs === undefined) {
      const enc = await Encoder.load(model, { threads: options.threads });
      try {
        state.source.latencyMs = await timeEncoder(enc, shape, runs);
      } finally {
        enc.close();
      }
    }
    const measured = state.candidates.filter((c) => c.latencySource === 'measured');
    if (measured.length >= 2) {
      state.costModel = fitCostModel(measured.map((c) => ({ gflop: c.gflop, ms: c.latencyMs! })));
      for (const c of state.candidates) {
        c.latencyModelMs = predictMs(state.costModel, c.gflop);
        if (c.latencySource !== 'measured') { c.latencyMs = c.latencyModelMs; c.latencySource = 'cost-model'; }
      }
    } else if (measured.length < state.candidates.length) {
      throw new BortError('too few candidates were timed to predict the others', 'time at least 3 with --calibrate-latency, or leave it out to time every candidate');
    }
    const tRec = state.candidates.find((c) => c.key === state.maximumPoint.key)!;
    state.maximumPoint.latencyMs = tRec.latencyMs;
    save();

    // 2. the scorer and the reference T
    let scorer: ImportanceScorer;
    if (strategy === 'data') {
      progress({ phase: 'scoring', done: 0, total: 1, message: 'data-driven importance: layers by ablation, heads and neurons by gradients on the calibration text' });
      scorer = await dataScorer(model, cal, { threads: options.threads });
    } else {
      scorer = scorerFor(strategy);
    }
    if (aborted()) return stop();
    progress({ phase: 'reference', done: 0, total: 1, message: `maximum point T = ${state.maximumPoint.key}` });
    const extract = (a: Arch, file: string) => runCompress(model, { arch: a, strategy: scorer, output: file });
    const tFile = path.join(tmp, 'T.onnx');
    const tSummary = extract(T, tFile);
    let ref: MaskedLogProbs;
    let tb: TeacherBatches | undefined;
    const tEnc = await Encoder.load(tFile, { threads: options.threads });
    try {
      ref = await referenceLogProbs(tEnc, cal, 'the maximum point');
      const self = await fidelity(tEnc, cal, ref, 'the maximum point');
      state.maximumPoint.error = self.crossEntropy;
      tRec.plan = { layers: tSummary.plan.layers, headSize: tSummary.plan.headSize, notes: tSummary.plan.notes };
      if (steps > 0 && state.candidates.some((c) => c.error === undefined)) {
        progress({ phase: 'reference', done: 0, total: 1, message: `T's logits for ${steps} training batches of ${train.batch}×${train.seq} tokens` });
        const t0 = Date.now();
        tb = await teacherBatches(tEnc, tokenizer, lines, steps, train);
        state.teacherLogits = { batches: tb.batches.length, bytes: tb.bytes, seconds: (Date.now() - t0) / 1000 };
      }
    } finally {
      tEnc.close();
      fs.rmSync(tFile, { force: true });
    }
    if (state.source.error === undefined) {
      const sEnc = await Encoder.load(model, { threads: options.threads });
      try {
        const f = await fidelity(sEnc, cal, ref, 'the source model');
        Object.assign(state.source, { error: f.crossEntropy, kl: f.kl, agreement: f.agreement });
      } finally {
        sEnc.close();
      }
    }
    save();

    // 3. FPTAS: one candidate per interval pays for ê
    const chosenIdx = new Set(representatives(state.candidates.map((c) => ({ params: c.params, latencyMs: c.latencyMs! })), epsilon));
    state.candidates.forEach((c, i) => { c.evaluated = chosenIdx.has(i); });
    const todo = state.candidates.filter((c) => c.evaluated && c.error === undefined);
    const tObj = () => ({ params: state.maximumPoint.params, latencyMs: state.maximumPoint.latencyMs!, error: state.maximumPoint.error! });
    const best = () => {
      let b: { key: string; w: number } | undefined;
      for (const c of state.candidates) {
        if (c.error === undefined) continue;
        const w = wCoefficient({ params: c.params, latencyMs: c.latencyMs!, error: c.error }, tObj());
        if (!b || w > b.w) b = { key: c.key, w };
      }
      return b;
    };
    const t2 = Date.now();
    for (let i = 0; i < todo.length; i++) {
      if (aborted()) return stop();
      const c = todo[i];
      const file = path.join(tmp, `${c.key.replace(/,/g, '-')}.onnx`);
      const s = extract(c.arch, file);
      let evalFile = file;
      let trained: { firstLoss: number; lastLoss: number } | undefined;
      const c0 = Date.now();
      if (steps > 0) {
        evalFile = file.replace(/\.onnx$/, '.trained.onnx');
        trained = await distillCandidate(file, evalFile, tb!, steps, train, { threads: options.threads, signal: options.signal });
        fs.rmSync(file, { force: true });
        if (!trained) return stop(); // interrupted mid-training: the candidate is not recorded
      }
      const enc = await Encoder.load(evalFile, { threads: options.threads });
      try {
        const f = await fidelity(enc, cal, ref, `candidate ${c.key}`);
        Object.assign(c, {
          error: f.crossEntropy, kl: f.kl, agreement: f.agreement, plan: { layers: s.plan.layers, headSize: s.plan.headSize, notes: s.plan.notes },
          ...(trained ? { training: { firstLoss: trained.firstLoss, lastLoss: trained.lastLoss, seconds: (Date.now() - c0) / 1000 } } : {}),
        });
      } finally {
        enc.close();
        fs.rmSync(file, { force: true });
        fs.rmSync(evalFile, { force: true });
      }
      save();
      progress({
        phase: 'error', done: i + 1, total: todo.length, etaSeconds: eta(t2, i + 1, todo.length), best: best(),
        message: `ê ${c.key}: ${c.error!.toFixed(4)} nats (KL ${c.kl!.toFixed(4)}, agreement ${(100 * c.agreement!).toFixed(1)}%)`,
      });
    }

    // 4. W, front, choice
    const evaluated = state.candidates.filter((c) => c.error !== undefined);
    for (const c of state.candidates) { delete c.w; delete c.pareto; delete c.chosen; }
    const flags = paretoFlags(evaluated.map((c) => ({ params: c.params, latencyMs: c.latencyMs!, error: c.error! })));
    evaluated.forEach((c, i) => {
      c.w = wCoefficient({ params: c.params, latencyMs: c.latencyMs!, error: c.error! }, tObj());
      c.pareto = flags[i];
    });
    const pick = argmaxW(evaluated.map((c) => c.w));
    if (pick !== undefined) {
      evaluated[pick].chosen = true;
      state.chosen = evaluated[pick].key;
    }
    state.status = 'done';
    save();
    writeReport(htmlPath, renderReport(state));
    progress({ phase: 'done', done: evaluated.length, total: evaluated.length, best: best(), message: `chosen ${state.chosen}` });

    let extracted: CompressSummary | undefined;
    if (options.extract && state.chosen) {
      const arch = evaluated[pick!].arch;
      extracted = runCompress(model, { arch, strategy: scorer, output: path.join(outDir, path.basename(defaultOutput(model, arch))) });
      if (strategy === 'data' && (options.refit ?? true)) {
        const seqs = buildCalibration(lines, tokenizer, { vocab: info.vocab, maxPositions: info.maxPositions, sequences: REFIT_SEQUENCES }).inputs;
        await refitSummary(model, extracted, { sequences: seqs, threads: options.threads }, undefined, (message) => progress({ phase: 'done', done: evaluated.length, total: evaluated.length, message }));
      }
    }
    return { file: state, json: jsonPath, html: htmlPath, extracted };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function writeReport(file: string, html: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, html);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new BortError(`cannot write ${quoteName(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'choose another output folder with -o');
  }
}

/**
 * search.json: everything a search measured, written atomically (temporary file, then rename) after
 * every candidate, so an interrupted search keeps what it measured and a new run with the same
 * settings resumes from it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';
import type { Arch } from '../bert/model.js';
import { tempPathBeside, removeQuietly, writeError } from '../onnx/files.js';
import type { CostModel } from './cost-model.js';
import type { SearchSpace } from './space.js';

export interface CandidateRecord {
  /** 'D,A,H,I'. */
  key: string;
  arch: Arch;
  /** p̂: exact parameter count. */
  params: number;
  /** GFLOP of one forward pass at the search's shape. */
  gflop: number;
  /** î in ms: measured, or predicted by the cost model (see latencySource). */
  latencyMs?: number;
  latencySource?: 'measured' | 'cost-model';
  /** The cost model's prediction (also for measured candidates, to show its error). */
  latencyModelMs?: number;
  /** Chosen by the FPTAS step to pay for ê. */
  evaluated: boolean;
  /** ê: mean cross-entropy H(p_T, q) at the calibration set's masked positions, nats. */
  error?: number;
  /** KL(p_T ‖ q), nats, and top-1 agreement with T, for the report. */
  kl?: number;
  agreement?: number;
  /** W-coefficient (evaluated candidates). */
  w?: number;
  /** On the Pareto front of the evaluated candidates over (î, p̂, ê). */
  pareto?: boolean;
  chosen?: boolean;
  /** The extraction plan's summary. */
  plan?: { layers: number[]; headSize: number; notes: string[] };
  /** With n > 0: the distillation loss at the first and last step, and seconds for training and ê. */
  training?: { firstLoss: number; lastLoss: number; seconds: number };
}

export interface SearchConfig {
  model: string;
  modelBytes: number;
  space: SearchSpace;
  shape: { batch: number; seq: number };
  steps: number;
  epsilon: number;
  strategy: string;
  corpus: string;
  calibration: { sequences: number; seq: number; positions: number };
  latency: { mode: 'measure' | 'cost-model'; calibrate?: number; runs: number };
  /** With n > 0: the distillation batches, learning rate and loss (a file from another loss is not resumed). */
  training?: { batch: number; seq: number; lr: number; seed: number; loss: { mlmWeight: number; klWeight: number; temperature: number } };
}

export interface SearchFile {
  format: 'bort-compress-search';
  version: 1;
  status: 'running' | 'interrupted' | 'done';
  config: SearchConfig;
  command?: string;
  source: { arch: Arch; params: number; latencyMs?: number; error?: number; kl?: number; agreement?: number };
  maximumPoint: { key: string; arch: Arch; params: number; latencyMs?: number; error?: number };
  candidates: CandidateRecord[];
  costModel?: CostModel;
  /** With n > 0: T's logits for the training batches, computed once (the last run that needed them). */
  teacherLogits?: { batches: number; bytes: number; seconds: number };
  chosen?: string;
  /** Wall-clock seconds spent, summed over runs that resumed. */
  seconds: number;
  /** What this implementation does differently from the paper (shown in the report). */
  notes: string[];
}

export function writeSearchFile(file: string, s: SearchFile): void {
  const tmp = tempPathBeside(file);
  try {
    fs.writeFileSync(tmp, JSON.stringify(s, null, 1) + '\n');
    fs.renameSync(tmp, file);
  } catch (e) {
    removeQuietly(tmp);
    throw writeError(e, file);
  }
}

/**
 * The previous run's file when its settings equal `config` (resume); undefined when there is none.
 * A file from other settings, or one that cannot be read, is refused rather than overwritten.
 */
export function readForResume(file: string, config: SearchConfig): SearchFile | undefined {
  if (!fs.existsSync(file)) return undefined;
  const where = quoteName(path.basename(path.dirname(path.resolve(file))) + '/' + path.basename(file));
  let s: SearchFile;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new BortError(`${where} exists but is not a search file`, 'remove it or choose another output folder with -o');
  }
  if (!s || s.format !== 'bort-compress-search' || s.version !== 1 || !Array.isArray(s.candidates)) {
    throw new BortError(`${where} exists but is not a bort-compress search file`, 'remove it or choose another output folder with -o');
  }
  if (JSON.stringify(s.config) !== JSON.stringify(config)) {
    throw new BortError(`${where} holds a search with other settings (model, space, shape, steps, ε, strategy, corpus or latency)`,
      'run with the same settings to resume it, or remove it / choose another output folder with -o');
  }
  return s;
}

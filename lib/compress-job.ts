/**
 * The compress job itself, synchronous from start to end: load a BERT ONNX model, plan an extraction
 * to a target architecture, rewrite the graph and save it. compress.ts runs it on a worker thread.
 */
import { checkOutputPath, identityOf, type FileIdentity } from './onnx/files.js';
import { dataPathFor, loadModel, saveModel } from './onnx/io.js';
import { recognize } from './bert/recognize.js';
import { countParameters, parameterNames, weightBytes } from './bert/params.js';
import type { Arch, BertModel } from './bert/model.js';
import { initializerData } from './bert/weights.js';
import { firstNonFinite } from './onnx/tensor.js';
import { BortError, quoteName } from './errors.js';
import { parseArch } from './extract/arch.js';
import { planExtraction, type ExtractionPlan } from './extract/plan.js';
import { scorerFor, type ImportanceScorer } from './extract/scorer.js';
import { applyPlan } from './rewrite/apply.js';

/** What the job needs; `CompressOptions` without the callback (a worker cannot call back into it). */
export interface CompressJobOptions {
  arch: Arch | string;
  strategy?: 'importance' | 'first' | ImportanceScorer;
  output?: string;
  externalData?: boolean;
  attentionScale?: 'keep' | 'rescale' | 'mean';
}

export interface CompressSummary {
  input: string;
  output: string;
  dataFile?: string;
  source: { arch: Arch; params: number; bytes: number; weightBytes: number };
  target: { arch: Arch; params: number; bytes: number; weightBytes: number };
  /** target params / source params. */
  ratio: number;
  strategy: string;
  plan: { layers: number[]; headSize: number; sourceHeadSize: number; hiddenKept: number; notes: string[] };
  seconds: number;
}

export function defaultOutput(input: string, arch: Arch): string {
  const base = input.replace(/\.onnx$/i, '');
  return `${base}.bort-${arch.layers}-${arch.heads}-${arch.hidden}-${arch.intermediate}.onnx`;
}

const ATTENTION_SCALES = ['keep', 'rescale', 'mean'] as const;

/** A value given in the options, for a message: strings escaped and quoted, anything else by type. */
function shown(v: unknown): string {
  return typeof v === 'string' ? quoteName(v) : v === null ? 'null' : typeof v;
}

/** The scorer the options ask for; an unknown strategy is refused rather than read as the default. */
function scorerOf(strategy: unknown): ImportanceScorer {
  if (strategy === undefined || strategy === 'importance' || strategy === 'first') return scorerFor(strategy ?? 'importance');
  if (typeof strategy === 'object' && strategy !== null) return strategy as ImportanceScorer; // its answers are checked by planExtraction
  throw new BortError(`strategy ${shown(strategy)} is unknown`, "use 'importance', 'first' or an ImportanceScorer object");
}

function checkAttentionScale(v: unknown): void {
  if (v !== undefined && !(ATTENTION_SCALES as readonly unknown[]).includes(v)) {
    throw new BortError(`attentionScale ${shown(v)} is unknown`, "use 'mean', 'keep' or 'rescale', or leave it out");
  }
}

/**
 * Refuses a model with a NaN or infinite weight, naming the tensor: onnxruntime computes NaN or
 * infinite outputs from it, and the importance of its parts cannot be measured.
 */
function checkFiniteWeights(m: BertModel): void {
  for (const name of parameterNames(m)) {
    const bad = firstNonFinite(initializerData(m, name));
    if (bad) {
      throw new BortError(`weight ${quoteName(name)} holds ${bad.value} at index ${bad.index}`,
        'onnxruntime would return NaN or infinite values for this model and its parts cannot be ranked; repair the weights');
    }
  }
}

/** Refuses, before the slow part, outputs that would replace what the job reads or cannot be written. */
function checkOutputs(output: string, externalData: boolean | undefined, protect: FileIdentity[]): void {
  checkOutputPath(output, protect);
  if (externalData) checkOutputPath(dataPathFor(output), protect);
}

export function runCompress(input: string, options: CompressJobOptions, progress: (step: string) => void = () => {}): CompressSummary {
  const t0 = process.hrtime.bigint();
  const arch = typeof options.arch === 'string' ? parseArch(options.arch) : parseArch(`${options.arch.layers},${options.arch.heads},${options.arch.hidden},${options.arch.intermediate}`);
  const scorer = scorerOf(options.strategy);
  checkAttentionScale(options.attentionScale);
  const output = options.output ?? defaultOutput(input, arch);
  const inputId = identityOf(input, 'the input model');
  checkOutputs(output, options.externalData, inputId ? [inputId] : []);
  progress('reading model');
  const loaded = loadModel(input);
  checkOutputs(output, options.externalData, loaded.sources);
  progress('recognising structure');
  const m = recognize(loaded.model);
  checkFiniteWeights(m);
  const sourceParams = countParameters(m);
  const sourceWeightBytes = weightBytes(m);
  const sourceArch = { ...m.arch };
  progress('scoring importance');
  const plan: ExtractionPlan = planExtraction(m, arch, scorer, { attentionScale: options.attentionScale });
  progress('rewriting graph');
  applyPlan(m, plan);
  const out = recognize(loaded.model);
  const targetParams = countParameters(out);
  progress('writing model');
  const saved = saveModel(loaded.model, output, { externalData: options.externalData, protect: loaded.sources });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    input: loaded.path,
    output: saved.path,
    dataFile: saved.dataPath,
    source: { arch: sourceArch, params: sourceParams, bytes: loaded.fileBytes, weightBytes: sourceWeightBytes },
    target: { arch: out.arch, params: targetParams, bytes: saved.bytes + (saved.dataBytes ?? 0), weightBytes: weightBytes(out) },
    ratio: targetParams / sourceParams,
    strategy: scorer.name,
    plan: { layers: plan.layers.map((l) => l.source), headSize: plan.headSize, sourceHeadSize: plan.sourceHeadSize, hiddenKept: plan.hidden.length, notes: plan.notes },
    seconds,
  };
}

/**
 * The main job as a library call: load a BERT ONNX model, plan an extraction to a target
 * architecture, rewrite the graph and save it. Returns the summary the CLI prints.
 */
import * as path from 'node:path';
import { loadModel, saveModel } from './onnx/io.js';
import { recognize } from './bert/recognize.js';
import { countParameters, weightBytes } from './bert/params.js';
import type { Arch } from './bert/model.js';
import { parseArch } from './extract/arch.js';
import { planExtraction, type ExtractionPlan } from './extract/plan.js';
import { scorerFor, type ImportanceScorer } from './extract/scorer.js';
import { applyPlan } from './rewrite/apply.js';
import { BortError } from './errors.js';

export interface CompressOptions {
  /** Target architecture: an object or 'D,A,H,I'. */
  arch: Arch | string;
  /** 'importance' (default) or 'first'; or a custom scorer. */
  strategy?: 'importance' | 'first' | ImportanceScorer;
  /** Output path; defaults to IN with `.bort-D-A-H-I.onnx`. */
  output?: string;
  /** Write weights to an external data file (always when the model passes 2 GB). */
  externalData?: boolean;
  /** Attention-score scale when the head size changes: keep the source's (default) or 1/sqrt(d). */
  attentionScale?: 'keep' | 'rescale' | 'mean';
  /** Progress callback: step name and fraction done. */
  onProgress?: (step: string) => void;
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

export async function compress(input: string, options: CompressOptions): Promise<CompressSummary> {
  const t0 = process.hrtime.bigint();
  const arch = typeof options.arch === 'string' ? parseArch(options.arch) : parseArch(`${options.arch.layers},${options.arch.heads},${options.arch.hidden},${options.arch.intermediate}`);
  const output = options.output ?? defaultOutput(input, arch);
  if (path.resolve(output) === path.resolve(input)) throw new BortError(`output ${output} is the input file`, 'choose a different output path with -o');
  const progress = options.onProgress ?? (() => {});
  progress('reading model');
  const loaded = loadModel(input);
  progress('recognising structure');
  const m = recognize(loaded.model);
  const sourceParams = countParameters(m);
  const sourceWeightBytes = weightBytes(m);
  const sourceArch = { ...m.arch };
  const scorer = typeof options.strategy === 'object' ? options.strategy : scorerFor(options.strategy ?? 'importance');
  progress('scoring importance');
  const plan: ExtractionPlan = planExtraction(m, arch, scorer, { attentionScale: options.attentionScale });
  progress('rewriting graph');
  applyPlan(m, plan);
  const out = recognize(loaded.model);
  const targetParams = countParameters(out);
  progress('writing model');
  const saved = saveModel(loaded.model, output, { externalData: options.externalData });
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

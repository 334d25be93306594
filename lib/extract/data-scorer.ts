/**
 * Data-driven importance (`--strategy data`): scores measured on calibration text with the source
 * model running on the native engine.
 *
 * - Layers: greedy backward elimination by masked ablation. Starting from all layers, each round drops
 *   every remaining layer in turn (the model with that layer removed is extracted and run on the
 *   calibration set) and removes for good the one whose absence raises KL(source ‖ ablated) the least.
 *   A layer's score is the round it survived to, so the top k layers are exactly the k layers the
 *   elimination keeps: the set chosen by measured function, not by weight norms (which cannot tell
 *   layers apart). D·(D+1)/2 − 1 ablated runs.
 * - Heads and FFN neurons: gradient (Taylor, head-mask) importance from the training engine on the
 *   source itself over the calibration batches, loss the masked-LM cross-entropy against the source's
 *   own arg-max at the masked positions (lib/extract/gradient-importance.ts; measured best on the
 *   teacher, see BENCHMARKS.md; `widths` picks the true words or the weight scorer's instead).
 * - Attention channels, hidden channels and head similarity: the weight scorer's
 *   (lib/extract/scorer.ts); see BENCHMARKS.md "Data-driven importance" for what was measured.
 *
 * The scores belong to one source model: the scorer refuses a model of another architecture.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Arch, BertModel } from '../bert/model.js';
import { runCompress } from '../compress-job.js';
import { Encoder } from '../runtime/encoder.js';
import type { CalibrationSet } from '../search/calibration.js';
import { fidelity, referenceLogProbs } from '../search/masked-lm.js';
import { firstScorer, weightScorer, type ImportanceScorer } from './scorer.js';
import { formatArch } from './arch.js';
import { gradientImportance } from './gradient-importance.js';
import { refitFile } from './reconstruct.js';
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { argmax } from '../search/masked-lm.js';

export interface DataScorerOptions {
  threads?: number;
  /**
   * The architecture the scores are for. When given, layers are chosen for it: every subset of
   * `target.layers` layers (at most 64 subsets; else the greedy elimination) is extracted at the
   * target's widths (heads, hidden, neurons by the weight scorer) and the one with the lowest KL on
   * the calibration set is kept.
   */
  target?: Arch;
  /** Called after each ablated run with what was measured. */
  onProgress?: (message: string) => void;
  /**
   * Head and neuron scores: 'gradient-own' (default: Taylor importance, loss against the model's own
   * arg-max), 'gradient' (loss against the masked words) or 'weight' (the weight scorer's).
   */
  widths?: 'gradient' | 'gradient-own' | 'weight';
  /**
   * Head scores when heads merge (the target's head size above the source's): 'widths' (default, the
   * same scores as elsewhere) or 'weight' (the weight scorer's; they only order the seeds of the
   * similarity pairing). Measured on the teacher, neither wins everywhere (BENCHMARKS.md).
   */
  mergedHeads?: 'weight' | 'widths';
  /**
   * What the target-aware layer-subset search minimises on the calibration set: 'kl' (default,
   * KL(source ‖ extracted)) or 'agreement' (most top-1 agreements with the source, ties by KL).
   */
  layerCriterion?: 'kl' | 'agreement';
  /** Calibration sequences per gradient pass (|∂L/∂ξ| is summed over passes; default 8). */
  gradientBatch?: number;
  /**
   * Refit every candidate layer subset by least squares on these sequences before measuring it
   * (lib/extract/reconstruct.ts), so that the subset is chosen for the model the refit will give.
   * Costs one refit per subset.
   */
  layerRefit?: { sequences: Int32Array[]; ridge?: number };
}

export interface LayerAblation {
  /** Layers removed, in removal order (the least important first). */
  removed: number[];
  /** KL(source ‖ model without the removed layers) after each removal, nats. */
  klAfter: number[];
}

/** A scorer that keeps exactly `keep` layers and everything else whole (an exact layer ablation). */
function keepLayers(keep: number[]): ImportanceScorer {
  return { ...firstScorer, name: 'layers', layers: (m) => m.layers.map((_, i) => (keep.includes(i) ? 1 : 0)) };
}

/** Greedy backward elimination of layers by KL on the calibration set (see the file comment). */
export async function ablateLayers(model: string, cal: CalibrationSet, opts: DataScorerOptions = {}): Promise<LayerAblation> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-ablate-'));
  try {
    const source = await Encoder.load(model, { threads: opts.threads });
    const arch = source.arch;
    let ref;
    try {
      ref = await referenceLogProbs(source, cal, 'the source model');
    } finally {
      source.close();
    }
    let kept = Array.from({ length: arch.layers }, (_, i) => i);
    const removed: number[] = [], klAfter: number[] = [];
    while (kept.length > 1) {
      let best: { layer: number; kl: number } | undefined;
      for (const layer of kept) {
        const keep = kept.filter((l) => l !== layer);
        const file = path.join(dir, `without-${layer}.onnx`);
        runCompress(model, { arch: { ...arch, layers: keep.length }, strategy: keepLayers(keep), output: file });
        const enc = await Encoder.load(file, { threads: opts.threads });
        try {
          const f = await fidelity(enc, cal, ref, 'an ablated model');
          opts.onProgress?.(`layers ${keep.join(',')}: KL ${f.kl.toFixed(4)}`);
          if (!best || f.kl < best.kl) best = { layer, kl: f.kl };
        } finally {
          enc.close();
          fs.rmSync(file, { force: true });
        }
      }
      removed.push(best!.layer);
      klAfter.push(best!.kl);
      kept = kept.filter((l) => l !== best!.layer);
    }
    removed.push(kept[0]);
    return { removed, klAfter };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const rec = (start: number, acc: number[]) => {
    if (acc.length === k) { out.push([...acc]); return; }
    for (let i = start; i < n; i++) { acc.push(i); rec(i + 1, acc); acc.pop(); }
  };
  rec(0, []);
  return out;
}

/** Most layer subsets the target-aware search evaluates (C(D, k) above this: greedy elimination). */
const MAX_SUBSETS = 64;

/**
 * The layer subset of size `target.layers` with the lowest KL(source ‖ extracted) on `cal`, every
 * candidate extracted at the target's widths; undefined when there are too many subsets.
 */
export async function bestLayerSubset(model: string, cal: CalibrationSet, target: Arch, opts: DataScorerOptions = {}, widths: ImportanceScorer = weightScorer): Promise<{ layers: number[]; kl: number; agreement: number } | undefined> {
  const source = await Encoder.load(model, { threads: opts.threads });
  const D = source.arch.layers;
  let ref;
  try {
    ref = await referenceLogProbs(source, cal, 'the source model');
  } finally {
    source.close();
  }
  const all = subsets(D, target.layers);
  if (all.length > MAX_SUBSETS) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-layers-'));
  try {
    let best: { layers: number[]; kl: number; agreement: number } | undefined;
    const better = (f: { kl: number; agreement: number }) => !best || (opts.layerCriterion === 'agreement'
      ? f.agreement > best.agreement || (f.agreement === best.agreement && f.kl < best.kl)
      : f.kl < best.kl);
    for (const keep of all) {
      const file = path.join(dir, `${keep.join('-')}.onnx`);
      const scorer = { ...widths, name: 'layers', layers: (m: BertModel) => m.layers.map((_, i) => (keep.includes(i) ? 1 : 0)) };
      runCompress(model, { arch: target, strategy: scorer, output: file });
      if (opts.layerRefit) await refitFile(model, file, keep, opts.layerRefit.sequences, { ridge: opts.layerRefit.ridge, threads: opts.threads });
      const enc = await Encoder.load(file, { threads: opts.threads });
      try {
        const f = await fidelity(enc, cal, ref, 'a candidate layer subset');
        opts.onProgress?.(`layers ${keep.join(',')} at ${formatArch(target)}: KL ${f.kl.toFixed(4)}`);
        if (better(f)) best = { layers: keep, kl: f.kl, agreement: f.agreement };
      } finally {
        enc.close();
        fs.rmSync(file, { force: true });
      }
    }
    return best;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The scorer from a finished ablation (for a model of architecture `arch`). */
export function scorerFromAblation(ablation: LayerAblation, arch: BertModel['arch'], widths: ImportanceScorer = weightScorer): ImportanceScorer {
  const layerScores = new Array<number>(arch.layers);
  ablation.removed.forEach((layer, round) => { layerScores[layer] = round; });
  const check = (m: BertModel) => {
    if (m.arch.layers !== arch.layers || m.arch.hidden !== arch.hidden || m.arch.heads !== arch.heads || m.arch.intermediate !== arch.intermediate) {
      throw new TypeError(`the data scorer was measured on a ${formatArch(arch)} model, not on this ${formatArch(m.arch)} one`);
    }
  };
  return {
    name: 'data',
    layers: (m) => { check(m); return [...layerScores]; },
    heads: (m, l) => { check(m); return widths.heads(m, l); },
    attentionChannels: (m, l) => widths.attentionChannels(m, l),
    neurons: (m, l) => { check(m); return widths.neurons(m, l); },
    hidden: (m) => widths.hidden(m),
    headSimilarity: (m, l) => widths.headSimilarity!(m, l),
  };
}

/**
 * The weight scorer with heads and neurons replaced by gradient importance measured on `cal` (see
 * lib/extract/gradient-importance.ts); 'weight' returns the weight scorer itself.
 */
export async function widthScorer(model: string, cal: CalibrationSet, widths: DataScorerOptions['widths'] = 'gradient-own', threads?: number, batch?: number): Promise<ImportanceScorer> {
  if (widths === 'weight') return weightScorer;
  let ownArgmax: Int32Array | undefined;
  if (widths === 'gradient-own') {
    const enc = await Encoder.load(model, { threads });
    try {
      const ref = await referenceLogProbs(enc, cal, 'the source model');
      ownArgmax = Int32Array.from(ref, (r) => argmax(r));
    } finally {
      enc.close();
    }
  }
  const g = await gradientImportance(recognize(loadModel(model).model), cal, { labels: widths === 'gradient-own' ? 'own' : 'true', ownArgmax, threads, batch });
  return { ...weightScorer, name: widths, heads: (_m, l) => [...g.heads[l]], neurons: (_m, l) => [...g.neurons[l]] };
}

/** `widths` with the weight scorer's head scores: for targets whose heads merge (see mergedHeads). */
export function withWeightHeads(widths: ImportanceScorer): ImportanceScorer {
  return { ...widths, heads: (m, l) => weightScorer.heads(m, l) };
}

/** True when extracting `target` from a model of head size `sourceHeadSize` merges source heads. */
export function mergesHeads(target: Arch, sourceHeadSize: number): boolean {
  return target.hidden / target.heads > sourceHeadSize;
}

/** Measures data-driven scores for `model` on `cal` and returns them as an ImportanceScorer. */
export async function dataScorer(model: string, cal: CalibrationSet, opts: DataScorerOptions = {}): Promise<ImportanceScorer> {
  const { inspect } = await import('../inspect.js');
  const info = inspect(model);
  const arch = info.arch;
  let widths = await widthScorer(model, cal, opts.widths, opts.threads, opts.gradientBatch);
  if (opts.target && opts.mergedHeads === 'weight' && mergesHeads(opts.target, info.attentionWidth / arch.heads)) widths = withWeightHeads(widths);
  if (opts.target) {
    const best = await bestLayerSubset(model, cal, opts.target, opts, widths);
    if (best) {
      // the chosen subset survives longest, the others in source order
      const removed = [...Array.from({ length: arch.layers }, (_, i) => i).filter((l) => !best.layers.includes(l)), ...best.layers];
      return scorerFromAblation({ removed, klAfter: [] }, arch, widths);
    }
  }
  const ablation = await ablateLayers(model, cal, opts);
  return scorerFromAblation(ablation, arch, widths);
}

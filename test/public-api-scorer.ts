// A custom ImportanceScorer written the way a user would, with every import from the package's entry
// point (lib/index.ts) and nothing else. cli-surface.test.ts typechecks this file with tsc (vitest
// does not check types) and runs it.
import {
  applyPlan, compress, loadModel, planExtraction, recognize, saveModel,
  type Arch, type BertModel, type CompressSummary, type ExtractionPlan, type ImportanceScorer, type LayerPlan, type Linear,
  type RewriteStats, type TensorProto,
} from '../lib/index.js';

function values(t: TensorProto): Float32Array {
  const raw = t.rawData!;
  const out = new Float32Array(raw.byteLength / 4);
  new Uint8Array(out.buffer).set(raw);
  return out;
}

/** Squared norm of each output channel's weights (columns of an [in, out] matrix, rows of [out, in]). */
function outputNorms(m: BertModel, l: Linear): number[] {
  const w = m.index.weight(l.weight)!;
  const data = values(w.tensor);
  const [rows, cols] = w.dims;
  const norms = new Array<number>(l.outDim).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) norms[l.layout === 'in_out' ? c : r] += data[r * cols + c] ** 2;
  }
  return norms;
}

/** Prefers later layers and later heads; ranks FFN neurons by the norm of their input weights. */
export const lastLayersScorer: ImportanceScorer = {
  name: 'last-layers',
  layers: (m) => m.layers.map((_, i) => i),
  heads: (m, layer) => Array.from({ length: m.layers[layer].attention.heads }, (_, h) => h),
  attentionChannels: (m) => Array.from({ length: m.attentionWidth }, () => 1),
  neurons: (m, layer) => outputNorms(m, m.layers[layer].ffn.in),
  hidden: (m) => Array.from({ length: m.arch.hidden }, () => 1),
};

export interface CustomRun {
  summary: CompressSummary;
  /** The same extraction done step by step: plan, rewrite, save. */
  plan: ExtractionPlan;
  firstLayer: LayerPlan;
  stats: RewriteStats;
  neuronNorms: number[];
}

export async function compressWithCustomScorer(input: string, arch: Arch, output: string, stepwiseOutput: string): Promise<CustomRun> {
  const summary = await compress(input, { arch, output, strategy: lastLayersScorer });
  const loaded = loadModel(input);
  const m = recognize(loaded.model);
  const neuronNorms = outputNorms(m, m.layers[m.layers.length - 1].ffn.in);
  const plan = planExtraction(m, arch, lastLayersScorer);
  const stats = applyPlan(m, plan);
  saveModel(loaded.model, stepwiseOutput);
  return { summary, plan, firstLayer: plan.layers[0], stats, neuronNorms };
}

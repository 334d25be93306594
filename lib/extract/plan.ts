/**
 * An extraction plan: which source layers, hidden channels, attention channels (grouped into the new
 * heads) and FFN neurons to keep, chosen by an importance scorer. Plans are plain data; the rewrite
 * applies them to the graph and the summary reports them.
 */
import type { Arch, BertModel } from '../bert/model.js';
import { checkArchFits } from './arch.js';
import type { ImportanceScorer } from './scorer.js';

export interface LayerPlan {
  /** Source layer index. */
  source: number;
  /** Source attention channels, in new-head order: new head j is entries [j·d', (j+1)·d'). */
  attention: number[];
  /** For each new head, the source heads it draws channels from. */
  headSources: number[][];
  /** Source FFN neurons kept, ascending. */
  neurons: number[];
  /** Multiplier of Q·Kᵀ in the new layer. */
  scoreScale: number;
}

export interface ExtractionPlan {
  source: Arch;
  target: Arch;
  strategy: string;
  sourceHeadSize: number;
  headSize: number;
  /** Source hidden channels kept, ascending. */
  hidden: number[];
  layers: LayerPlan[];
  /** Human-readable notes on what changed beyond plain pruning. */
  notes: string[];
}

export interface PlanOptions {
  /**
   * Score scale when the head size changes. 'keep': the source's; 'rescale': 1/sqrt(new head size);
   * 'mean': the source's divided by new/old head size, so a merged head's logits are the mean of its
   * source heads' logits (exact when they agree; test/extract-numeric.test.ts). Default: 'mean' when
   * heads are merged (the teacher measurements in BENCHMARKS.md), 'keep' otherwise.
   */
  attentionScale?: 'keep' | 'rescale' | 'mean';
}

/** Indices of the k highest scores, ties to the lower index, returned ascending. */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Ranks indices by score, best first. */
function ranked(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

function planAttention(m: BertModel, scorer: ImportanceScorer, layer: number, heads: number, headSize: number): Pick<LayerPlan, 'attention' | 'headSources'> {
  const d = m.headSize;
  const channelScores = scorer.attentionChannels(m, layer);
  const bestChannels = (h: number, count: number) =>
    topK(channelScores.slice(h * d, (h + 1) * d), count).map((c) => h * d + c);
  if (headSize === d && heads === m.arch.heads) {
    const all = Array.from({ length: heads * d }, (_, i) => i);
    return { attention: all, headSources: Array.from({ length: heads }, (_, h) => [h]) };
  }
  const headScores = scorer.heads(m, layer);
  if (headSize <= d) {
    // each new head keeps the best headSize channels of one of the best source heads (exact pruning when equal)
    const chosen = topK(headScores, heads);
    return { attention: chosen.flatMap((h) => bestChannels(h, headSize)), headSources: chosen.map((h) => [h]) };
  }
  // larger heads made of whole source heads: merge the most similar heads together
  const per = headSize / d;
  if (Number.isInteger(per) && heads * per <= m.arch.heads && scorer.headSimilarity) {
    const chosen = topK(headScores, heads * per);
    const sim = scorer.headSimilarity(m, layer);
    const left = new Set(chosen);
    const groups: number[][] = [];
    while (left.size) {
      // seed with the most important remaining head, add its most similar partners
      const seed = [...left].sort((x, y) => headScores[y] - headScores[x] || x - y)[0];
      left.delete(seed);
      const group = [seed];
      while (group.length < per) {
        const next = [...left].sort((x, y) => sim[seed][y] - sim[seed][x] || x - y)[0];
        left.delete(next);
        group.push(next);
      }
      groups.push(group.sort((x, y) => x - y));
    }
    groups.sort((x, y) => x[0] - y[0]);
    return {
      attention: groups.flatMap((g) => g.flatMap((h) => Array.from({ length: d }, (_, c) => h * d + c))),
      headSources: groups,
    };
  }
  // otherwise: merge whole source heads in importance order, the last one partially
  let need = heads * headSize;
  const take: { head: number; channels: number[] }[] = [];
  for (const h of ranked(headScores)) {
    if (need <= 0) break;
    const n = Math.min(d, need);
    take.push({ head: h, channels: bestChannels(h, n) });
    need -= n;
  }
  take.sort((a, b) => a.head - b.head);
  const attention = take.flatMap((t) => t.channels);
  const headSources: number[][] = [];
  for (let j = 0; j < heads; j++) {
    const slice = attention.slice(j * headSize, (j + 1) * headSize);
    headSources.push([...new Set(slice.map((c) => Math.floor(c / d)))]);
  }
  return { attention, headSources };
}

/** Wraps a scorer so that each method's result is checked: `count` finite numbers. */
function checkedScorer(s: ImportanceScorer): ImportanceScorer {
  const check = (method: string, what: string, count: number, v: unknown): number[] => {
    if (!Array.isArray(v) && !ArrayBuffer.isView(v)) throw new TypeError(`scorer '${s.name}': ${method} returned ${typeof v}, not an array of scores`);
    const a = Array.from(v as ArrayLike<number>);
    if (a.length !== count) throw new TypeError(`scorer '${s.name}': ${method} returned ${a.length} scores for ${count} ${what}`);
    const bad = a.findIndex((x) => typeof x !== 'number' || Number.isNaN(x));
    if (bad >= 0) throw new TypeError(`scorer '${s.name}': ${method} returned ${String(a[bad])} at ${bad}; scores must be numbers`);
    return a;
  };
  return {
    name: s.name,
    layers: (m) => check('layers(m)', 'layers', m.arch.layers, s.layers(m)),
    heads: (m, l) => check(`heads(m, ${l})`, 'heads', m.layers[l].attention.heads, s.heads(m, l)),
    attentionChannels: (m, l) => check(`attentionChannels(m, ${l})`, 'attention channels', m.attentionWidth, s.attentionChannels(m, l)),
    neurons: (m, l) => check(`neurons(m, ${l})`, 'neurons', m.arch.intermediate, s.neurons(m, l)),
    hidden: (m) => check('hidden(m)', 'hidden channels', m.arch.hidden, s.hidden(m)),
    headSimilarity: s.headSimilarity && ((m, l) => {
      const sim = s.headSimilarity!(m, l);
      const A = m.layers[l].attention.heads;
      if (!Array.isArray(sim) || sim.length !== A) throw new TypeError(`scorer '${s.name}': headSimilarity(m, ${l}) must be a ${A}×${A} array`);
      return sim.map((row, h) => check(`headSimilarity(m, ${l})[${h}]`, 'heads', A, row));
    }),
  };
}

/**
 * Chooses what to keep for `target` by `scorer`'s scores (top k of each kind, in source order). Throws
 * a BortError when the target asks for more than the model has, and a TypeError when the scorer
 * returns the wrong number of scores or a NaN.
 */
export function planExtraction(m: BertModel, target: Arch, userScorer: ImportanceScorer, opts: PlanOptions = {}): ExtractionPlan {
  checkArchFits(m, target);
  const scorer = checkedScorer(userScorer);
  const headSize = target.hidden / target.heads;
  const layers = topK(scorer.layers(m), target.layers);
  const hidden = topK(scorer.hidden(m), target.hidden);
  const notes: string[] = [];
  const mode = headSize === m.headSize ? 'keep' : opts.attentionScale ?? (headSize > m.headSize ? 'mean' : 'keep');
  const newScale = (src: number) => (mode === 'rescale' ? 1 / Math.sqrt(headSize) : mode === 'mean' ? src * m.headSize / headSize : src);
  const plans = layers.map((source) => {
    const att = planAttention(m, scorer, source, target.heads, headSize);
    const srcScale = m.layers[source].attention.scoreScale;
    return {
      source, ...att,
      neurons: topK(scorer.neurons(m, source), target.intermediate),
      scoreScale: newScale(srcScale),
    };
  });
  if (headSize > m.headSize) {
    notes.push(`head size ${m.headSize} → ${headSize}: each new head merges ${headSize / m.headSize} source heads' channels${scorer.headSimilarity ? ', paired by similar Q·Kᵀ' : ''}`);
  } else if (headSize < m.headSize) {
    notes.push(`head size ${m.headSize} → ${headSize}: each new head keeps the ${headSize} most important channels of one source head`);
  }
  if (headSize !== m.headSize) {
    const s = m.layers[0].attention.scoreScale;
    notes.push(mode === 'rescale'
      ? `attention-score scale changed from ${s.toPrecision(6)} to 1/sqrt(${headSize}) = ${newScale(s).toPrecision(6)}`
      : mode === 'mean'
        ? `attention-score scale changed from ${s.toPrecision(6)} to ${newScale(s).toPrecision(6)} so merged heads' logits are averaged`
        : `attention-score scale kept at the source's ${s.toPrecision(6)} (not 1/sqrt(${headSize})); see --attention-scale`);
  }
  if (target.hidden < m.arch.hidden) notes.push(`hidden ${m.arch.hidden} → ${target.hidden}: LayerNorm statistics are now taken over the ${target.hidden} kept channels`);
  return {
    source: m.arch, target, strategy: scorer.name, sourceHeadSize: m.headSize, headSize,
    hidden, layers: plans, notes,
  };
}

/** `compress --strategy data`: the data-driven scorer, measured on --corpus with --vocab before the extraction. */
import { BortError } from '../errors.js';
import { dataScorer } from '../extract/data-scorer.js';
import { REFIT_SEQUENCES } from '../extract/reconstruct.js';
import type { ImportanceScorer } from '../extract/scorer.js';
import { parseArch } from '../extract/arch.js';
import { inspect } from '../inspect.js';
import { buildCalibration, readCorpus } from '../search/calibration.js';
import { TextTokenizer } from '../text/tokenizer.js';

export async function dataStrategyScorer(model: string, arch: string, corpus: string | undefined, vocab: string | undefined, step: (name: string) => void, refit = true): Promise<{ scorer: ImportanceScorer; refit?: Int32Array[] }> {
  const target = parseArch(arch); // a malformed --arch is reported before the slow part
  if (!corpus) throw new BortError('--strategy data needs --corpus TEXT', 'give calibration text (one paragraph a line) and --vocab V');
  if (!vocab) throw new BortError('--strategy data needs --vocab V', "give the model's vocab.txt or tokenizer.json");
  const info = inspect(model);
  const lines = readCorpus(corpus), tokenizer = TextTokenizer.fromFile(vocab);
  const cal = buildCalibration(lines, tokenizer, { vocab: info.vocab, maxPositions: info.maxPositions, sequences: 32 });
  step('scoring layers (ablation), heads and neurons (gradients) on the calibration text');
  // with the refit, merged heads are paired from weight-score seeds (measured better on the teacher: BENCHMARKS.md)
  const scorer = await dataScorer(model, cal, { target, mergedHeads: refit ? 'weight' : undefined });
  if (!refit) return { scorer };
  return { scorer, refit: buildCalibration(lines, tokenizer, { vocab: info.vocab, maxPositions: info.maxPositions, sequences: REFIT_SEQUENCES }).inputs };
}

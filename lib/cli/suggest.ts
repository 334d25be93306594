/**
 * "Did you mean …?" for a mistyped command: the closest name by edit distance (insertions, deletions,
 * substitutions and swaps of neighbours count one each), when it is close enough to be a typo.
 */

/** Optimal-string-alignment distance between a and b. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The name in `names` that `word` most likely misspells (case ignored): within 1 edit for names of up
 * to 4 letters, 2 for longer ones. Undefined when none is that close.
 */
export function closestName(word: string, names: readonly string[]): string | undefined {
  if (word.length > 40) return undefined;
  let best: string | undefined, bestD = Infinity;
  for (const n of names) {
    const dist = editDistance(word.toLowerCase(), n);
    if (dist <= (n.length <= 4 ? 1 : 2) && dist < bestD) [best, bestD] = [n, dist];
  }
  return best;
}

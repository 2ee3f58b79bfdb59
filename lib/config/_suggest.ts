/** "Did you mean" suggestions for misspelt keys and values. */

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j] ?? 0;
      row[j] = Math.min(
        (row[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        previous + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      previous = saved;
    }
  }
  return row[b.length] ?? 0;
}

/** The closest candidate within a small edit distance, or `undefined`. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  const lower = word.toLowerCase();
  for (const candidate of candidates) {
    const score = distance(lower, candidate.toLowerCase());
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestScore <= limit ? best : undefined;
}

/** `did you mean "x"?`, or a list of the allowed values when nothing is close. */
export function suggestion(word: string, candidates: readonly string[]): string {
  const best = closest(word, candidates);
  if (best !== undefined) return `did you mean ${JSON.stringify(best)}?`;
  return `expected one of: ${candidates.map((c) => JSON.stringify(c)).join(", ")}`;
}

/** Turning a model's output row into class scores. Pure functions; no I/O. */

/** Numerically stable softmax of one row, in a new array. */
export function softmax(row: Float32Array): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  const out = new Float32Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const e = Math.exp(row[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

export interface ClassScore {
  readonly label: string;
  readonly index: number;
  readonly score: number;
}

/** The `k` highest scores, best first; ties keep the lower index first. */
export function topK(scores: Float32Array, k: number, labels: readonly string[] | undefined): ClassScore[] {
  const n = Math.min(k, scores.length);
  // Partial selection: k is small (default 5) against up to thousands of classes.
  const best: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (best.length === n && s <= scores[best[n - 1]!]!) continue;
    let pos = best.length === n ? n - 1 : best.length;
    while (pos > 0 && scores[best[pos - 1]!]! < s) pos--;
    best.splice(pos, 0, i);
    if (best.length > n) best.pop();
  }
  return best.map((index) => ({ label: labels?.[index] ?? String(index), index, score: scores[index]! }));
}

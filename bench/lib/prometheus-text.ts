/**
 * Just enough of the Prometheus text exposition format to read the server's own histograms
 * and counters between two scrapes: `name{label="value",...} number` lines, comments skipped.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

function matches(labels: Readonly<Record<string, string>>, filter: Readonly<Record<string, string>>): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v);
}

/** Sum of every sample called `name` whose labels include `filter`. */
export function sumOf(samples: readonly Sample[], name: string, filter: Readonly<Record<string, string>> = {}): number {
  return samples.filter((s) => s.name === name && matches(s.labels, filter)).reduce((a, s) => a + s.value, 0);
}

export interface HistogramSnapshot {
  /** Cumulative counts by upper bound, ascending, `+Inf` last. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
  readonly sum: number;
  readonly count: number;
}

export function histogramOf(samples: readonly Sample[], name: string, filter: Readonly<Record<string, string>> = {}): HistogramSnapshot {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !matches(s.labels, filter) || s.labels.le === undefined) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return {
    buckets: [...byLe].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
    sum: sumOf(samples, `${name}_sum`, filter),
    count: sumOf(samples, `${name}_count`, filter),
  };
}

/** What was observed between two snapshots of the same histogram. */
export function histogramDelta(before: HistogramSnapshot, after: HistogramSnapshot): HistogramSnapshot {
  const earlier = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** Non-cumulative counts per bucket, labelled by range (`1`, `2`, `3–4`, `5–8`, …). */
export function bucketShares(h: HistogramSnapshot): Array<{ readonly range: string; readonly count: number }> {
  const out: Array<{ range: string; count: number }> = [];
  let previousLe = 0;
  let previousCount = 0;
  for (const { le, count } of h.buckets) {
    const low = Math.floor(previousLe) + 1;
    const range = le === Infinity ? `>${previousLe}` : low === le ? String(le) : `${low}–${le}`;
    out.push({ range, count: count - previousCount });
    previousLe = le;
    previousCount = count;
  }
  return out.filter((b) => !(b.range.startsWith('>') && b.count === 0));
}

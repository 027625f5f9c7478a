/**
 * Triton's statistics extension, accumulated from the same observer reports as the Prometheus
 * metrics (src/metrics.ts), so that both always agree. Field names and shape follow
 * https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_statistics.md
 * This module knows no HTTP; src/http/routes/statistics.ts renders it.
 *
 * What each field holds here, against Triton's definition:
 *
 * - `success`, `fail`: inference requests that reached a model's data plane, by how they
 *   ended; `ns` sums their end-to-end time (decoding to answer). A request is one call, whatever
 *   number of images it carries, as in Triton. `fail` takes the outcomes `bad_input` (an image
 *   that does not decode, a tensor of the wrong size), `timeout` (deadline passed while queued
 *   or running: Triton's failure reason REJECTED), `cancelled` (the client went away: Triton's
 *   CANCELED) and `error`. Requests refused at admission (`rejected`: queue full, shutting
 *   down) are in neither, as in Triton, whose queue-full refusal is the enqueue call's own
 *   error, given before the request enters its statistics; they are counted by
 *   `inference_requests_total{outcome="rejected"}`. Nor are requests the HTTP layer refuses
 *   before the data plane sees them (no key, rate limited, unparsable bodies, unknown models).
 * - `queue`: one per item (image or tensor row) that left the batch queue and ran, with its own
 *   wait. Triton counts one per request, so here the count is larger when requests carry
 *   several images.
 * - `compute_input`: one per image decoded and preprocessed (decode, resize, crop, tensor
 *   layout), with its time. Triton's is a backend copying one request's inputs into the
 *   framework (onto the GPU, say), one per request. Tensors sent ready (v2 `FP32`) have no such
 *   stage here and are not counted.
 * - `compute_infer`: one per batch run, with its time inside the inference session. Triton
 *   gives every request of an execution that execution's time, one per request; here the count
 *   equals `execution_count`.
 * - `compute_output`: one per request whose outputs the data plane turns into class scores
 *   (softmax and top-k: the v1 `:predict` routes), with its time. Raw output tensors (v2) are
 *   encoded at the HTTP edge, not here, and are not counted.
 * - `cache_hit`, `cache_miss`: one per image looked up in the response cache
 *   (`RESPONSE_CACHE_MAX_BYTES` above 0; always zero with it off), by whether it was found, with
 *   the lookup's time (hashing the image included). Triton counts one per request, and its miss
 *   time includes inserting the answer, which here happens when the batch ends and is not timed.
 *   A request whose images were all hits still counts in `success`, with its own time;
 *   `inference_count` counts its images, `execution_count` no batch for them.
 * - `inference_count`: items of successful requests (`inference_images_total`).
 * - `execution_count`: batches run (`inference_batches_total`); warm-up batches are not
 *   traffic and are left out.
 * - `last_inference`: when the last request counted in `success` or `fail` ended, in ms since
 *   the epoch (Triton: the request's end time); 0 before any.
 * - `batch_stats`: per batch size (items, not a fixed-size graph's padding), ascending;
 *   `compute_infer` as above. Its `compute_input` and `compute_output` are zero: this server
 *   does not time a batch's input or output handling apart from the session, and a zero count
 *   says "not measured" where a zero time would claim "took no time".
 * - `response_stats`: `{}`: Triton's per-response statistics of decoupled models; these
 *   models answer each request once. `memory_usage`: `[]`: not measured.
 *
 * Durations arrive in seconds; each is rounded to whole nanoseconds and summed as a BigInt,
 * so sums are exact whatever the uptime. They are rendered as JSON numbers: exact up to 2^53 ns
 * (about 104 days of cumulative time, which concurrent requests reach sooner than the uptime
 * does), the nearest double beyond (an error below one part in 2^53, which never accumulates).
 *
 * Statistics are kept per model version, as Triton keeps them: each version has its own queue,
 * workers and batches.
 */
import type { ModelKey, Outcome, ServingObserver } from './observer.js';

/** A count and a cumulative duration (Triton's `$duration_stat`). */
export interface TritonDurationStat {
  readonly count: number;
  readonly ns: number;
}

export interface TritonInferenceStats {
  readonly success: TritonDurationStat;
  readonly fail: TritonDurationStat;
  readonly queue: TritonDurationStat;
  readonly compute_input: TritonDurationStat;
  readonly compute_infer: TritonDurationStat;
  readonly compute_output: TritonDurationStat;
  readonly cache_hit: TritonDurationStat;
  readonly cache_miss: TritonDurationStat;
}

export interface TritonBatchStats {
  readonly batch_size: number;
  readonly compute_input: TritonDurationStat;
  readonly compute_infer: TritonDurationStat;
  readonly compute_output: TritonDurationStat;
}

/** One model's statistics (Triton's `$model_stat`). */
export interface TritonModelStats {
  readonly name: string;
  readonly version: string;
  /** ms since the epoch; 0 before any inference. */
  readonly last_inference: number;
  readonly inference_count: number;
  readonly execution_count: number;
  readonly inference_stats: TritonInferenceStats;
  /** Per-response statistics of decoupled models: always empty here. */
  readonly response_stats: Readonly<Record<string, never>>;
  readonly batch_stats: readonly TritonBatchStats[];
  /** Memory found in use at load: not measured, so always empty. */
  readonly memory_usage: readonly never[];
}

export interface InferenceStatisticsOptions {
  /** The wall clock `last_inference` reads, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

export interface InferenceStatistics {
  /** Takes the serving core's reports (beside the metrics': see `combineObservers`). */
  readonly observer: ServingObserver;
  /** The statistics of `models`, in the order given; a model without traffic has zeros. */
  snapshot(models: ReadonlyArray<{ readonly name: string; readonly version: string }>): TritonModelStats[];
}

/** Where each outcome is counted; `undefined`: nowhere (refused at admission, see above). */
const COUNTED_AS: Readonly<Record<Outcome, 'success' | 'fail' | undefined>> = {
  ok: 'success',
  bad_input: 'fail',
  timeout: 'fail',
  cancelled: 'fail',
  error: 'fail',
  rejected: undefined,
};

/** Whole nanoseconds in `seconds`; a value that is not a finite positive duration adds none (BigInt throws on NaN, and a throw would reach the core). */
function nanoseconds(seconds: number): bigint {
  return Number.isFinite(seconds) && seconds > 0 ? BigInt(Math.round(seconds * 1e9)) : 0n;
}

/** A running count and total, in ns. */
class DurationSum {
  count = 0;
  ns = 0n;

  add(seconds: number): void {
    this.count++;
    this.ns += nanoseconds(seconds);
  }

  render(): TritonDurationStat {
    return { count: this.count, ns: Number(this.ns) };
  }
}

interface ModelTally {
  lastInferenceMs: number;
  inferenceCount: number;
  readonly success: DurationSum;
  readonly fail: DurationSum;
  readonly queue: DurationSum;
  readonly computeInput: DurationSum;
  readonly computeInfer: DurationSum;
  readonly computeOutput: DurationSum;
  readonly cacheHit: DurationSum;
  readonly cacheMiss: DurationSum;
  /** `compute_infer` by batch size. */
  readonly batches: Map<number, DurationSum>;
}

const newTally = (): ModelTally => ({
  lastInferenceMs: 0,
  inferenceCount: 0,
  success: new DurationSum(),
  fail: new DurationSum(),
  queue: new DurationSum(),
  computeInput: new DurationSum(),
  computeInfer: new DurationSum(),
  computeOutput: new DurationSum(),
  cacheHit: new DurationSum(),
  cacheMiss: new DurationSum(),
  batches: new Map(),
});

const NOT_MEASURED: TritonDurationStat = Object.freeze({ count: 0, ns: 0 });

function render(name: string, version: string, tally: ModelTally): TritonModelStats {
  const batchStats = [...tally.batches]
    .sort(([a], [b]) => a - b)
    .map(([size, infer]) => ({ batch_size: size, compute_input: NOT_MEASURED, compute_infer: infer.render(), compute_output: NOT_MEASURED }));
  return {
    name,
    version,
    last_inference: tally.lastInferenceMs,
    inference_count: tally.inferenceCount,
    execution_count: tally.computeInfer.count,
    inference_stats: {
      success: tally.success.render(),
      fail: tally.fail.render(),
      queue: tally.queue.render(),
      compute_input: tally.computeInput.render(),
      compute_infer: tally.computeInfer.render(),
      compute_output: tally.computeOutput.render(),
      cache_hit: tally.cacheHit.render(),
      cache_miss: tally.cacheMiss.render(),
    },
    response_stats: {},
    batch_stats: batchStats,
    memory_usage: [],
  };
}

export function createInferenceStatistics(options: InferenceStatisticsOptions = {}): InferenceStatistics {
  const now = options.now ?? Date.now;
  if (typeof now !== 'function') throw new TypeError(`Expected \`now\` to be a function, got \`${typeof now}\``);
  // Keyed by the model versions the core reports (name, then version): a small fixed set.
  const tallies = new Map<string, Map<string, ModelTally>>();
  const tallyOf = (model: ModelKey): ModelTally => {
    let versions = tallies.get(model.name);
    if (versions === undefined) tallies.set(model.name, (versions = new Map()));
    let tally = versions.get(model.version);
    if (tally === undefined) versions.set(model.version, (tally = newTally()));
    return tally;
  };

  const observer: ServingObserver = {
    preprocessed: (model, seconds) => tallyOf(model).computeInput.add(seconds),
    queued: (model, seconds) => tallyOf(model).queue.add(seconds),
    computed(model, batchSize, seconds) {
      const tally = tallyOf(model);
      tally.computeInfer.add(seconds);
      let bySize = tally.batches.get(batchSize);
      if (bySize === undefined) tally.batches.set(batchSize, (bySize = new DurationSum()));
      bySize.add(seconds);
    },
    postprocessed: (model, seconds) => tallyOf(model).computeOutput.add(seconds),
    requestStarted() {},
    requestFinished(model, outcome, seconds, images) {
      const counted = COUNTED_AS[outcome];
      if (counted === undefined) return;
      const tally = tallyOf(model);
      tally[counted].add(seconds);
      if (counted === 'success') tally.inferenceCount += images;
      tally.lastInferenceMs = Math.floor(now());
    },
    queueDepth() {},
    inflightBatches() {},
    cacheLookedUp: (model, hit, seconds) => (hit ? tallyOf(model).cacheHit : tallyOf(model).cacheMiss).add(seconds),
    cacheEvicted() {},
    cacheUsage() {},
    coalesced() {},
    modelLoaded() {},
    // Triton keeps a model's statistics across unloads; so do these.
    modelUnloaded() {},
    modelLoadFailed() {},
  };

  return {
    observer,
    snapshot: (models) => models.map(({ name, version }) => render(name, version, tallies.get(name)?.get(version) ?? newTally())),
  };
}

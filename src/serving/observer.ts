/**
 * What the serving core reports as it works. The core calls these; src/metrics.ts turns them
 * into Prometheus series. Durations are in seconds; `model` is a loaded model version (its name
 * and version: a small, fixed set), never request data.
 */
import { isServingError } from '../errors.js';

export type Outcome = 'ok' | 'bad_input' | 'rejected' | 'timeout' | 'cancelled' | 'error';
/** The edge a request came in by. */
export type Protocol = 'http' | 'grpc';
export const PROTOCOLS: readonly Protocol[] = ['http', 'grpc'];
export const OUTCOMES: readonly Outcome[] = ['ok', 'bad_input', 'rejected', 'timeout', 'cancelled', 'error'];

/** Which model version a report is about: a served model (ModelView) is one. */
export interface ModelKey {
  readonly name: string;
  readonly version: string;
}

export interface ServingObserver {
  /** One image decoded and turned into a tensor. */
  preprocessed(model: ModelKey, seconds: number): void;
  /** One item left the queue for a batch. */
  queued(model: ModelKey, seconds: number): void;
  /** One batch of traffic ran on a worker (time inside the session); warm-up batches are not reported. */
  computed(model: ModelKey, batchSize: number, seconds: number): void;
  /** One request's outputs turned into its answer. */
  postprocessed(model: ModelKey, seconds: number): void;
  /** One inference request was admitted (it ends with `requestFinished`). */
  requestStarted(model: ModelKey): void;
  /** One inference request ended; `images` is how many it carried, `protocol` its edge. */
  requestFinished(model: ModelKey, outcome: Outcome, seconds: number, images: number, protocol: Protocol): void;
  queueDepth(model: ModelKey, depth: number): void;
  inflightBatches(model: ModelKey, count: number): void;
  /** One image looked up in the response cache (only when it is on), and how long the lookup took (hashing included). */
  cacheLookedUp(model: ModelKey, hit: boolean, seconds: number): void;
  /** One response cache entry of `model` dropped to make room for another. */
  cacheEvicted(model: ModelKey): void;
  /** The response cache entries of `model` (every load of that version) and the bytes they are charged, after a change. */
  cacheUsage(model: ModelKey, entries: number, bytes: number): void;
  /** One image joined an identical image's inference already in flight instead of being decoded and queued again. */
  coalesced(model: ModelKey): void;
  modelLoaded(info: { model: string; version: string; executionProvider: string; sha256: string; seconds: number }): void;
  /** A model version was retired (its workers ended): its series go, as it will report no more. */
  modelUnloaded(model: ModelKey): void;
  /** Loading `model` (`version` when the failure is one version's) failed; what served before still serves. */
  modelLoadFailed(model: string, version: string | undefined): void;
}

export const nullObserver: ServingObserver = {
  preprocessed() {},
  queued() {},
  computed() {},
  postprocessed() {},
  requestStarted() {},
  requestFinished() {},
  queueDepth() {},
  inflightBatches() {},
  cacheLookedUp() {},
  cacheEvicted() {},
  cacheUsage() {},
  coalesced() {},
  modelLoaded() {},
  modelUnloaded() {},
  modelLoadFailed() {},
};

/** The outcome label an error stands for. */
export function outcomeOf(err: unknown): Outcome {
  if (!isServingError(err)) return 'error';
  switch (err.code) {
    case 'QUEUE_FULL':
    case 'SHUTTING_DOWN':
    case 'RATE_LIMITED':
    case 'UNAUTHORIZED':
      return 'rejected';
    case 'DEADLINE_EXCEEDED':
      return 'timeout';
    case 'CANCELLED':
      return 'cancelled';
    default:
      return err.statusCode >= 400 && err.statusCode < 500 ? 'bad_input' : 'error';
  }
}

/**
 * One observer that tells each of `observers`, in order, of every call (e.g. the Prometheus
 * metrics and the statistics extension, both fed from the same reports). Observers must not
 * throw: as with a single observer, a throw reaches the core and the later observers miss
 * that call.
 */
export function combineObservers(...observers: ServingObserver[]): ServingObserver {
  if (observers.length === 0) return nullObserver;
  if (observers.length === 1) return observers[0]!;
  return {
    preprocessed: (model, seconds) => observers.forEach((o) => o.preprocessed(model, seconds)),
    queued: (model, seconds) => observers.forEach((o) => o.queued(model, seconds)),
    computed: (model, batchSize, seconds) => observers.forEach((o) => o.computed(model, batchSize, seconds)),
    postprocessed: (model, seconds) => observers.forEach((o) => o.postprocessed(model, seconds)),
    requestStarted: (model) => observers.forEach((o) => o.requestStarted(model)),
    requestFinished: (model, outcome, seconds, images, protocol) => observers.forEach((o) => o.requestFinished(model, outcome, seconds, images, protocol)),
    queueDepth: (model, depth) => observers.forEach((o) => o.queueDepth(model, depth)),
    inflightBatches: (model, count) => observers.forEach((o) => o.inflightBatches(model, count)),
    cacheLookedUp: (model, hit, seconds) => observers.forEach((o) => o.cacheLookedUp(model, hit, seconds)),
    cacheEvicted: (model) => observers.forEach((o) => o.cacheEvicted(model)),
    cacheUsage: (model, entries, bytes) => observers.forEach((o) => o.cacheUsage(model, entries, bytes)),
    coalesced: (model) => observers.forEach((o) => o.coalesced(model)),
    modelLoaded: (info) => observers.forEach((o) => o.modelLoaded(info)),
    modelUnloaded: (model) => observers.forEach((o) => o.modelUnloaded(model)),
    modelLoadFailed: (model, version) => observers.forEach((o) => o.modelLoadFailed(model, version)),
  };
}

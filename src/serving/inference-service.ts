/**
 * The transport-free data plane: images or tensors in, predictions or output tensors out,
 * with per-stage timings. The HTTP layer parses requests into these calls and renders their
 * results; everything measurable about a request is measured here.
 */
import { performance } from 'node:perf_hooks';
import { errors, isServingError, RETRY_AFTER_SECONDS } from '../errors.js';
import { mainThreadTurns } from '../preprocess/index.js';
import type { ItemResult } from './batcher.js';
import type { ItemOutput } from './batch-assembly.js';
import type { ModelView, ServedModel } from './model.js';
import type { ModelRegistry } from './model-registry.js';
import { createCoalescer } from './coalescer.js';
import { imageDigest } from './image-digest.js';
import { outcomeOf, type Protocol, type ServingObserver } from './observer.js';
import { softmax, topK, type ClassScore } from './postprocess.js';
import { createResponseCache, responseCacheKey, type ResponseCache } from './response-cache.js';

export interface RequestControl {
  /** Absolute deadline on `performance.now()`'s clock, in ms. */
  readonly deadline: number;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal;
  /** The edge the request came in by, for the request metrics. @default 'http' */
  readonly protocol?: Protocol;
}

/** Stage timings of one request, in ms (for `Server-Timing` and logs). */
export interface StageTimings {
  preprocessMs: number;
  queueMs: number;
  inferMs: number;
  postprocessMs: number;
  batchSize: number;
  /**
   * Where the images' outputs came from, for `Server-Timing`: `hit`, every one from the response
   * cache; `coalesced`, none computed for this request, some by an identical image's inference
   * already in flight (the rest hits); `miss`, some computed for it while the cache is on;
   * `undefined`, computed with the cache off (or a tensor request, never cached).
   */
  cache?: 'hit' | 'coalesced' | 'miss';
}

export interface Prediction extends ClassScore {
  readonly top_k: ClassScore[];
}

export interface ClassifyResult {
  readonly model: ServedModel;
  readonly predictions: Prediction[];
  readonly timings: StageTimings;
}

export interface TensorResult {
  readonly model: ServedModel;
  /** Output rows of every item, concatenated: shape [items, classes]. */
  readonly data: Float32Array;
  readonly shape: [number, number];
  readonly timings: StageTimings;
}

export interface InferenceService {
  readonly registry: ModelRegistry;
  /** Decodes, preprocesses and classifies images, answering in input order. */
  classify(model: ServedModel, images: readonly Uint8Array[], topKCount: number, control: RequestControl): Promise<ClassifyResult>;
  /** Decodes and preprocesses images, returning the raw output tensor (v2 `BYTES` input). */
  inferImages(model: ServedModel, images: readonly Uint8Array[], control: RequestControl): Promise<TensorResult>;
  /** Runs already-preprocessed items (v2 `FP32` input): `data` holds `count` items back to back. */
  inferTensor(model: ServedModel, data: Float32Array, count: number, control: RequestControl): Promise<TensorResult>;
  /**
   * Refuses new requests (`SHUTTING_DOWN`), waits for admitted ones to finish (they may still
   * be preprocessing, so the batchers must stay open meanwhile), then drains every model.
   * Idempotent: every call returns the same promise.
   */
  stop(): Promise<void>;
  /**
   * Whether `model` would admit one more request now. Lets an edge refuse a request before
   * reading its body when the answer would be QUEUE_FULL anyway (see load-shedding.ts).
   */
  hasRoom(model: ModelView): boolean;
  /**
   * Resolves once no request is admitted on `model` (none decoding, queued or running on it):
   * after a swap took it out of service, the moment it can be retired without refusing anyone.
   */
  whenIdle(model: ModelView): Promise<void>;
}

export interface InferenceServiceOptions {
  /**
   * Requests one model version may have admitted at once: decoding, queued or running (each
   * version has a queue of its own). A request is
   * admitted when the data plane is called, that is once its body has arrived, so slow senders
   * hold no slot; it leaves when the call settles, which every deadline guarantees (nothing
   * here waits on a socket's events, so no slot can leak with a connection).
   */
  readonly maxInflightPerModel: number;
  /**
   * The response cache of image answers; none (every lookup misses) when absent. Identical
   * images in flight are coalesced whether or not there is one.
   */
  readonly responseCache?: ResponseCache;
}

/** One image's output row and the stages that produced it, in ms. */
interface ItemRow {
  readonly row: Float32Array;
  readonly preprocessMs: number;
  readonly queueMs: number;
  readonly computeMs: number;
  readonly batchSize: number;
}

/** setTimeout's largest delay (2^31 − 1 ms); a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `work`'s outcome, or DEADLINE_EXCEEDED at `control`'s deadline, or CANCELLED when its signal
 * aborts, whichever comes first. `work` goes on either way (it may be shared: coalescer.ts).
 */
function withinControl<T>(work: Promise<T>, control: RequestControl): Promise<T> {
  const { signal, deadline } = control;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(errors.CANCELLED());
    };
    if (signal?.aborted) return reject(errors.CANCELLED());
    const leftMs = deadline - performance.now();
    if (leftMs <= 0) return reject(errors.DEADLINE_EXCEEDED());
    if (leftMs <= MAX_TIMER_MS) {
      timer = setTimeout(() => {
        done();
        reject(errors.DEADLINE_EXCEEDED());
      }, leftMs);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        done();
        resolve(value);
      },
      (err: unknown) => {
        done();
        reject(err as Error);
      },
    );
  });
}

function emptyTimings(): StageTimings {
  return { preprocessMs: 0, queueMs: 0, inferMs: 0, postprocessMs: 0, batchSize: 0 };
}

export function createInferenceService(registry: ModelRegistry, observer: ServingObserver, options: InferenceServiceOptions): InferenceService {
  const { maxInflightPerModel } = options;
  if (!Number.isInteger(maxInflightPerModel) || maxInflightPerModel < 1) {
    throw new RangeError(`Expected \`maxInflightPerModel\` to be an integer from 1 and up, got \`${maxInflightPerModel}\``);
  }
  /**
   * Admitted requests per served model version, keyed by the version itself (not its name and
   * number), so that a version replaced by a reload of the same number starts from zero while
   * the old one drains.
   */
  const inflight = new Map<ModelView, number>();
  const cache = options.responseCache ?? createResponseCache({ maxBytes: 0 });
  const coalescer = createCoalescer<ItemRow>();
  /** A number per load of a model version: a reload (even of the same version) never reads an earlier load's entries. */
  const loadIds = new WeakMap<ServedModel, number>();
  let nextLoadId = 0;
  const loadIdOf = (model: ServedModel) => {
    let id = loadIds.get(model);
    if (id === undefined) loadIds.set(model, (id = nextLoadId++));
    return id;
  };

  /**
   * Decodes and preprocesses the images at `indices` and runs them as one batcher request (so
   * they are queued, or refused for want of room, together), each with its own outcome: an
   * image that does not decode fails alone, and the others still run for whoever waits on them.
   * `signal` drops the work once nobody waits on it; the waiters' deadlines are their own.
   * `decodes` settles once every decode has ended (a decode under way runs to its end even when
   * nobody waits on it any more).
   */
  const startItems = (model: ServedModel, images: readonly Uint8Array[], keys: readonly string[], indices: readonly number[], signal: AbortSignal) => {
    const decoded = indices.map(async (i) => {
      const t0 = performance.now();
      // Nothing reads an image's bytes once it is decoding (waiters share its key, not its
      // bytes), so a preprocessing thread may take their buffer.
      const data = await model.preprocess(images[i]!, { signal }, true);
      const preprocessMs = performance.now() - t0;
      observer.preprocessed(model, preprocessMs / 1000);
      return { data, preprocessMs };
    });
    const ran = Promise.allSettled(decoded).then(async (settled) => {
      const ok = settled.flatMap((s, n) => (s.status === 'fulfilled' ? [n] : []));
      const tensors = ok.map((n) => (settled[n] as PromiseFulfilledResult<{ data: Float32Array }>).value.data);
      const results = await model.batcher.enqueue(tensors, { signal });
      const byPosition = new Map<number, ItemResult<ItemOutput>>();
      ok.forEach((n, j) => {
        const r = results[j]!;
        observer.queued(model, r.queueMs / 1000);
        if (cache.enabled) cache.set(keys[indices[n]!]!, model, r.output.row);
        byPosition.set(n, r);
      });
      return byPosition;
    });
    // Nobody may be left to hear of `ran`'s failure; each waiter hears it through its item.
    ran.catch(() => undefined);
    const items = indices.map(async (_, n): Promise<ItemRow> => {
      const { preprocessMs } = await decoded[n]!;
      const r = (await ran).get(n)!;
      return { row: r.output.row, preprocessMs, queueMs: r.queueMs, computeMs: r.output.computeMs, batchSize: r.batchSize };
    });
    return { items, decodes: Promise.allSettled(decoded) };
  };

  /**
   * One output row per image, in order: from the response cache, from an identical image's
   * inference already in flight, or decoded and run here. Only what is run here takes room in
   * the model's queue. The decodes this request starts are `hold`'s: the request keeps its
   * admission slot until they end, even once it has been answered (its deadline, its client
   * gone), so QUEUE_MAX_SIZE still bounds the decodes running per model version.
   */
  const imageRows = async (
    model: ServedModel,
    images: readonly Uint8Array[],
    control: RequestControl,
    timings: StageTimings,
    hold: (work: Promise<unknown>) => void,
  ): Promise<Float32Array[]> => {
    if (images.length === 0) throw errors.NO_IMAGES();
    if (!model.accepting) throw errors.SHUTTING_DOWN(undefined, { retryAfterSeconds: RETRY_AFTER_SECONDS });
    const loadId = loadIdOf(model);
    const rows: Array<Float32Array | undefined> = new Array(images.length);
    const keys = await Promise.all(
      images.map(async (bytes, i) => {
        const t0 = performance.now();
        const key = responseCacheKey(model, loadId, await imageDigest(bytes));
        if (cache.enabled) {
          rows[i] = cache.get(key);
          observer.cacheLookedUp(model, rows[i] !== undefined, (performance.now() - t0) / 1000);
        }
        return key;
      }),
    );
    const missing = keys.flatMap((_, i) => (rows[i] === undefined ? [i] : []));
    if (missing.length === 0) {
      timings.cache = 'hit';
      return rows as Float32Array[];
    }
    const missingImages = missing.map((i) => images[i]!);
    const missingKeys = missing.map((i) => keys[i]!);
    const attachment = coalescer.attach(missingKeys, (indices, signal) => {
      const { items, decodes } = startItems(model, missingImages, missingKeys, indices, signal);
      hold(decodes);
      return items;
    });
    for (const joined of attachment.joined) if (joined) observer.coalesced(model);
    try {
      const items = await withinControl(Promise.all(attachment.results), control);
      items.forEach((item, n) => {
        rows[missing[n]!] = item.row;
        timings.preprocessMs = Math.max(timings.preprocessMs, item.preprocessMs);
        timings.queueMs = Math.max(timings.queueMs, item.queueMs);
        timings.inferMs = Math.max(timings.inferMs, item.computeMs);
        timings.batchSize = Math.max(timings.batchSize, item.batchSize);
      });
    } finally {
      attachment.release();
    }
    if (attachment.joined.every(Boolean)) timings.cache = 'coalesced';
    else if (cache.enabled) timings.cache = 'miss';
    return rows as Float32Array[];
  };

  const runItems = async (
    model: ServedModel,
    items: Float32Array[],
    control: RequestControl,
    timings: StageTimings,
  ): Promise<Array<ItemResult<ItemOutput>>> => {
    const results = await model.batcher.enqueue(items, { deadline: control.deadline, ...(control.signal ? { signal: control.signal } : {}) });
    for (const r of results) {
      observer.queued(model, r.queueMs / 1000);
      timings.queueMs = Math.max(timings.queueMs, r.queueMs);
      timings.inferMs = Math.max(timings.inferMs, r.output.computeMs);
      timings.batchSize = Math.max(timings.batchSize, r.batchSize);
    }
    return results;
  };

  let stopping = false;
  let stopped: Promise<void> | undefined;
  let admitted = 0;
  let idle: (() => void) | undefined;
  /** Callers of whenIdle, per version, told when its last admitted request leaves. */
  const idleWaiters = new Map<ModelView, Array<() => void>>();

  /**
   * Wraps a request so its outcome and end-to-end time are observed exactly once. Work passed to
   * `hold` keeps the request's admission slot taken until it settles, after the answer.
   */
  const observed = async <T>(
    model: ServedModel,
    images: number,
    protocol: Protocol,
    work: (hold: (pending: Promise<unknown>) => void) => Promise<T>,
  ): Promise<T> => {
    const started = performance.now();
    observer.requestStarted(model);
    if (stopping) {
      observer.requestFinished(model, 'rejected', 0, images, protocol);
      throw errors.SHUTTING_DOWN(undefined, { retryAfterSeconds: RETRY_AFTER_SECONDS });
    }
    const count = inflight.get(model) ?? 0;
    if (count >= maxInflightPerModel) {
      observer.requestFinished(model, 'rejected', 0, images, protocol);
      throw errors.QUEUE_FULL(`Model ${model.name} version ${model.version} has ${count} requests in flight, its limit`, {
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      });
    }
    inflight.set(model, count + 1);
    admitted++;
    const held: Array<Promise<unknown>> = [];
    try {
      const result = await work((pending) => void held.push(pending));
      observer.requestFinished(model, 'ok', (performance.now() - started) / 1000, images, protocol);
      return result;
    } catch (err) {
      observer.requestFinished(model, outcomeOf(err), (performance.now() - started) / 1000, images, protocol);
      if (isServingError(err)) throw err;
      throw errors.INTERNAL(undefined, { cause: err });
    } finally {
      const release = () => {
        const left = inflight.get(model)! - 1;
        if (left === 0) {
          inflight.delete(model);
          const waiters = idleWaiters.get(model);
          idleWaiters.delete(model);
          waiters?.forEach((w) => w());
        } else inflight.set(model, left);
        if (--admitted === 0 && idle) idle();
      };
      if (held.length === 0) release();
      else void Promise.allSettled(held).then(release);
    }
  };

  const toTensor = (model: ServedModel, rows: readonly Float32Array[], timings: StageTimings): TensorResult => {
    const classes = model.output.classes;
    const data = new Float32Array(rows.length * classes);
    rows.forEach((row, i) => data.set(row, i * classes));
    return { model, data, shape: [rows.length, classes], timings };
  };

  return {
    registry,
    stop() {
      if (stopped) return stopped;
      stopping = true;
      const admittedDone = admitted === 0 ? Promise.resolve() : new Promise<void>((resolve) => (idle = resolve));
      stopped = admittedDone.then(() => registry.stop());
      return stopped;
    },
    async whenIdle(model) {
      // A request that looked the version up before the swap reaches `observed` within the
      // microtasks of its handler (its body has arrived by then): a turn of the event loop
      // lets every such request be counted before the count is trusted.
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        if (!inflight.has(model)) return;
        await new Promise<void>((resolve) => {
          const waiters = idleWaiters.get(model) ?? [];
          waiters.push(resolve);
          idleWaiters.set(model, waiters);
        });
      }
    },
    hasRoom(model) {
      return (inflight.get(model) ?? 0) < maxInflightPerModel;
    },
    classify(model, images, topKCount, control) {
      return observed(model, images.length, control.protocol ?? 'http', async (hold) => {
        const timings = emptyTimings();
        const rows = await imageRows(model, images, control, timings, hold);
        // A batch ends many requests at once; answering each on its own turn of the event loop
        // keeps the loop free for probes and new connections in between (see turns.ts).
        await mainThreadTurns.next();
        const t0 = performance.now();
        const predictions = rows.map((row) => {
          const scores = model.outputKind === 'logits' ? softmax(row) : row;
          const top = topK(scores, topKCount, model.labels);
          return { ...top[0]!, top_k: top };
        });
        timings.postprocessMs = performance.now() - t0;
        observer.postprocessed(model, timings.postprocessMs / 1000);
        return { model, predictions, timings };
      });
    },
    inferImages(model, images, control) {
      return observed(model, images.length, control.protocol ?? 'http', async (hold) => {
        const timings = emptyTimings();
        const rows = await imageRows(model, images, control, timings, hold);
        await mainThreadTurns.next();
        return toTensor(model, rows, timings);
      });
    },
    inferTensor(model, data, count, control) {
      return observed(model, count, control.protocol ?? 'http', async () => {
        const timings = emptyTimings();
        const size = model.input.itemSize;
        if (count < 1 || data.length !== count * size) {
          throw errors.INVALID_TENSOR(`Expected ${count} × ${size} values, got ${data.length}`);
        }
        const items = Array.from({ length: count }, (_, i) => data.subarray(i * size, (i + 1) * size));
        const results = await runItems(model, items, control, timings);
        return toTensor(
          model,
          results.map((r) => r.output.row),
          timings,
        );
      });
    },
  };
}

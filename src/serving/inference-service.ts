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
import { outcomeOf, type Protocol, type ServingObserver } from './observer.js';
import { softmax, topK, type ClassScore } from './postprocess.js';

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
  const preprocessAll = async (model: ServedModel, images: readonly Uint8Array[], control: RequestControl, timings: StageTimings) => {
    if (images.length === 0) throw errors.NO_IMAGES();
    if (!model.accepting) throw errors.SHUTTING_DOWN(undefined, { retryAfterSeconds: RETRY_AFTER_SECONDS });
    const started = performance.now();
    // sharp decodes on libuv's thread pool, so these overlap each other and running batches.
    const tensors = await Promise.all(
      images.map(async (bytes) => {
        const t0 = performance.now();
        const data = await model.preprocess(bytes, control);
        observer.preprocessed(model, (performance.now() - t0) / 1000);
        return data;
      }),
    );
    timings.preprocessMs = performance.now() - started;
    if (control.signal?.aborted) throw errors.CANCELLED();
    return tensors;
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

  /** Wraps a request so its outcome and end-to-end time are observed exactly once. */
  const observed = async <T>(model: ServedModel, images: number, protocol: Protocol, work: () => Promise<T>): Promise<T> => {
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
    try {
      const result = await work();
      observer.requestFinished(model, 'ok', (performance.now() - started) / 1000, images, protocol);
      return result;
    } catch (err) {
      observer.requestFinished(model, outcomeOf(err), (performance.now() - started) / 1000, images, protocol);
      if (isServingError(err)) throw err;
      throw errors.INTERNAL(undefined, { cause: err });
    } finally {
      const left = inflight.get(model)! - 1;
      if (left === 0) {
        inflight.delete(model);
        const waiters = idleWaiters.get(model);
        idleWaiters.delete(model);
        waiters?.forEach((w) => w());
      } else inflight.set(model, left);
      if (--admitted === 0 && idle) idle();
    }
  };

  const toTensor = (model: ServedModel, results: Array<ItemResult<ItemOutput>>, timings: StageTimings): TensorResult => {
    const classes = model.output.classes;
    const data = new Float32Array(results.length * classes);
    results.forEach((r, i) => data.set(r.output.row, i * classes));
    return { model, data, shape: [results.length, classes], timings };
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
      return observed(model, images.length, control.protocol ?? 'http', async () => {
        const timings = emptyTimings();
        const tensors = await preprocessAll(model, images, control, timings);
        const results = await runItems(model, tensors, control, timings);
        // A batch ends many requests at once; answering each on its own turn of the event loop
        // keeps the loop free for probes and new connections in between (see turns.ts).
        await mainThreadTurns.next();
        const t0 = performance.now();
        const predictions = results.map(({ output }) => {
          const scores = model.outputKind === 'logits' ? softmax(output.row) : output.row;
          const top = topK(scores, topKCount, model.labels);
          return { ...top[0]!, top_k: top };
        });
        timings.postprocessMs = performance.now() - t0;
        observer.postprocessed(model, timings.postprocessMs / 1000);
        return { model, predictions, timings };
      });
    },
    inferImages(model, images, control) {
      return observed(model, images.length, control.protocol ?? 'http', async () => {
        const timings = emptyTimings();
        const tensors = await preprocessAll(model, images, control, timings);
        const results = await runItems(model, tensors, control, timings);
        await mainThreadTurns.next();
        return toTensor(model, results, timings);
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
        return toTensor(model, await runItems(model, items, control, timings), timings);
      });
    },
  };
}

/**
 * The dynamic batcher: a bounded FIFO of items (one per image) between requests and the
 * inference workers. It knows neither HTTP nor models: a `BatchRunner` runs a batch.
 *
 * Rules (each has a test in test/unit/serving/batcher.test.ts):
 * - When a runner slot is free it takes up to `maxBatchSize` queued items at once.
 * - An idle batcher does not wait: with `maxDelayMs` 0 a lone item runs at once; a larger
 *   `maxDelayMs` holds a partial batch until it fills or its oldest item has waited that long.
 * - A request's items are admitted all together or refused at once (`QUEUE_FULL`).
 * - A request whose deadline passes is answered `DEADLINE_EXCEEDED` at that moment; its
 *   queued items are dropped without running. An aborted request's items are dropped too.
 * - A failed batch fails the requests that had items in it, and only those.
 * - `stop()` refuses new work (`SHUTTING_DOWN`), flushes partial batches, and resolves when
 *   nothing is queued or running.
 *
 * Single-threaded ownership: all state is touched only from the main thread's event loop.
 */
import { performance } from 'node:perf_hooks';
import { errors, RETRY_AFTER_SECONDS, type ServingError } from '../errors.js';

export interface BatchRunner<I, O> {
  /** How many batches may run at once (the number of inference workers). */
  readonly concurrency: number;
  /** Runs a batch; resolves with one output per item, in order. */
  run(items: readonly I[]): Promise<readonly O[]>;
}

export interface BatcherObserver {
  queueDepth?(depth: number): void;
  inflightBatches?(count: number): void;
}

export interface BatcherOptions<I, O> {
  /** Largest batch handed to the runner. */
  readonly maxBatchSize: number;
  /** How long a partial batch may wait for more items, in ms. @default 0 */
  readonly maxDelayMs?: number;
  /** Items that may wait at once; more are refused with `QUEUE_FULL`. */
  readonly queueMaxSize: number;
  readonly runner: BatchRunner<I, O>;
  /** Clock in ms; injected so tests drive time. @default performance.now */
  readonly now?: () => number;
  readonly observer?: BatcherObserver;
  /** `Retry-After` sent with `QUEUE_FULL` and `SHUTTING_DOWN`, in seconds. @default RETRY_AFTER_SECONDS (1) */
  readonly retryAfterSeconds?: number;
}

export interface EnqueueOptions {
  /** Absolute deadline on the batcher's clock (ms); `undefined` means none. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

export interface ItemResult<O> {
  readonly output: O;
  /** Time the item spent queued, in ms. */
  readonly queueMs: number;
  /** Size of the batch the item ran in. */
  readonly batchSize: number;
}

export interface Batcher<I, O> {
  /** Queues a request's items; resolves with their results in order. */
  enqueue(items: readonly I[], options?: EnqueueOptions): Promise<Array<ItemResult<O>>>;
  /** Items waiting (not yet running). */
  readonly queueDepth: number;
  /** Batches running now. */
  readonly inflightBatches: number;
  readonly stopping: boolean;
  /**
   * Stops intake and resolves once queued and running work is done. Idempotent: every call
   * returns the same promise.
   */
  stop(): Promise<void>;
}

interface RequestState<O> {
  readonly results: Array<ItemResult<O> | undefined>;
  remaining: number;
  settled: boolean;
  resolve(results: Array<ItemResult<O>>): void;
  reject(err: ServingError | Error): void;
  cleanup(): void;
}

interface Entry<I, O> {
  readonly item: I;
  readonly index: number;
  readonly enqueuedAt: number;
  readonly deadline: number | undefined;
  readonly request: RequestState<O>;
}

function validate(name: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min) {
    throw new TypeError(`Expected \`${name}\` to be a number from ${min} and up, got \`${value}\``);
  }
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  validate('maxBatchSize', options.maxBatchSize, 1);
  validate('queueMaxSize', options.queueMaxSize, 1);
  validate('maxDelayMs', options.maxDelayMs ?? 0, 0);
  validate('runner.concurrency', options.runner.concurrency, 1);
  const { maxBatchSize, queueMaxSize, runner, observer = {} } = options;
  const maxDelayMs = options.maxDelayMs ?? 0;
  const now = options.now ?? (() => performance.now());
  const retryAfterSeconds = options.retryAfterSeconds ?? RETRY_AFTER_SECONDS;

  let queue: Array<Entry<I, O>> = [];
  let inflight = 0;
  let stopping = false;
  let delayTimer: NodeJS.Timeout | undefined;
  let drained: (() => void) | undefined;
  let stopped: Promise<void> | undefined;

  const setDepth = () => observer.queueDepth?.(queue.length);

  const removeQueued = (request: RequestState<O>) => {
    const before = queue.length;
    queue = queue.filter((e) => e.request !== request);
    if (queue.length !== before) setDepth();
  };

  const fail = (request: RequestState<O>, err: ServingError | Error) => {
    if (request.settled) return;
    request.settled = true;
    request.cleanup();
    removeQueued(request);
    request.reject(err);
    checkDrained();
  };

  const checkDrained = () => {
    if (stopping && queue.length === 0 && inflight === 0 && drained) {
      const done = drained;
      drained = undefined;
      done();
    }
  };

  const takeBatch = (): Array<Entry<I, O>> => {
    const t = now();
    const batch: Array<Entry<I, O>> = [];
    while (batch.length < maxBatchSize && queue.length > 0) {
      // A settled request has no entry left in the queue (`fail` removes them).
      const entry = queue.shift()!;
      if (entry.deadline !== undefined && entry.deadline <= t) {
        fail(entry.request, errors.DEADLINE_EXCEEDED());
        continue;
      }
      batch.push(entry);
    }
    setDepth();
    return batch;
  };

  const runBatch = (batch: Array<Entry<I, O>>) => {
    const startedAt = now();
    inflight++;
    observer.inflightBatches?.(inflight);
    let outputs: Promise<readonly O[]>;
    try {
      outputs = runner.run(batch.map((e) => e.item));
    } catch (err) {
      outputs = Promise.reject(err);
    }
    outputs
      .then(
        (values) => {
          batch.forEach((entry, i) => {
            const request = entry.request;
            if (request.settled) return;
            request.results[entry.index] = { output: values[i] as O, queueMs: startedAt - entry.enqueuedAt, batchSize: batch.length };
            if (--request.remaining === 0) {
              request.settled = true;
              request.cleanup();
              request.resolve(request.results as Array<ItemResult<O>>);
            }
          });
        },
        (err: Error) => {
          for (const entry of batch) fail(entry.request, err);
        },
      )
      .finally(() => {
        inflight--;
        observer.inflightBatches?.(inflight);
        pump();
        checkDrained();
      });
  };

  const pump = () => {
    while (inflight < runner.concurrency && queue.length > 0) {
      if (queue.length < maxBatchSize && maxDelayMs > 0 && !stopping) {
        const waitMs = queue[0]!.enqueuedAt + maxDelayMs - now();
        if (waitMs > 0) {
          if (delayTimer === undefined) {
            delayTimer = setTimeout(() => {
              delayTimer = undefined;
              pump();
            }, waitMs);
          }
          return;
        }
      }
      if (delayTimer !== undefined) {
        clearTimeout(delayTimer);
        delayTimer = undefined;
      }
      const batch = takeBatch();
      if (batch.length > 0) runBatch(batch);
    }
  };

  return {
    get queueDepth() {
      return queue.length;
    },
    get inflightBatches() {
      return inflight;
    },
    get stopping() {
      return stopping;
    },
    enqueue(items, enqueueOptions = {}) {
      if (stopping) return Promise.reject(errors.SHUTTING_DOWN(undefined, { retryAfterSeconds }));
      if (items.length === 0) return Promise.resolve([]);
      if (queue.length + items.length > queueMaxSize) {
        return Promise.reject(errors.QUEUE_FULL(`The inference queue is full (${queueMaxSize} images); retry later`, { retryAfterSeconds }));
      }
      const { deadline, signal } = enqueueOptions;
      const t = now();
      if (signal?.aborted) return Promise.reject(errors.CANCELLED());
      if (deadline !== undefined && deadline <= t) return Promise.reject(errors.DEADLINE_EXCEEDED());
      return new Promise<Array<ItemResult<O>>>((resolve, reject) => {
        let deadlineTimer: NodeJS.Timeout | undefined;
        const onAbort = () => fail(request, errors.CANCELLED());
        const request: RequestState<O> = {
          results: new Array(items.length),
          remaining: items.length,
          settled: false,
          resolve,
          reject,
          cleanup() {
            if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
            signal?.removeEventListener('abort', onAbort);
          },
        };
        if (deadline !== undefined) {
          deadlineTimer = setTimeout(() => fail(request, errors.DEADLINE_EXCEEDED()), deadline - t);
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        items.forEach((item, index) => queue.push({ item, index, enqueuedAt: t, deadline, request }));
        setDepth();
        pump();
      });
    },
    stop() {
      if (stopped) return stopped;
      stopping = true;
      stopped = new Promise<void>((resolve) => {
        drained = resolve;
      });
      pump();
      checkDrained();
      return stopped;
    },
  };
}

/**
 * A fixed set of inference worker threads for one model, each owning one session. The
 * batcher never gives it more batches than it has workers, but the pool still queues
 * defensively (for the moment a crashed worker is being replaced).
 *
 * Ownership: a batch's input buffer is transferred to the worker and is unusable by the
 * caller afterwards, until the worker hands it back with the result (`BatchOutput.input`).
 * A worker that dies fails only the batch it was running, and is replaced.
 */
import { Worker } from 'node:worker_threads';
import { errors } from '../errors.js';
import type { ExecutionProvider, TensorInfo } from '../inference/onnx-binding.js';
import type { FromWorker, ReadyMessage, ToWorker, WorkerInit } from '../inference/worker-protocol.js';

export interface BatchOutput {
  readonly output: Float32Array;
  readonly dims: readonly number[];
  readonly computeMs: number;
  /**
   * The whole buffer that held the batch, handed back by the worker for reuse (the caller owns
   * it again); `undefined` when the worker did not return it.
   */
  readonly input: Float32Array | undefined;
}

export interface PoolLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WorkerPoolOptions {
  /** Module URL of the worker entry. @default the compiled src/inference/worker.js */
  readonly workerUrl?: URL;
  readonly init: WorkerInit;
  /** Workers (sessions) in the pool. @default 1 */
  readonly size?: number;
  readonly log: PoolLogger;
}

export interface WorkerPool {
  readonly size: number;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly executionProvider: ExecutionProvider;
  /**
   * Runs one batch; `input`'s whole buffer is transferred to the worker (and usually comes
   * back as `BatchOutput.input`).
   */
  run(inputName: string, input: Float32Array, dims: readonly number[]): Promise<BatchOutput>;
  /**
   * Refuses new batches (`SHUTTING_DOWN`), fails those waiting for a worker, and ends the
   * workers. Idempotent: every call returns the same promise.
   */
  close(): Promise<void>;
}

interface Job {
  readonly id: number;
  readonly inputName: string;
  readonly input: Float32Array;
  readonly dims: readonly number[];
  resolve(out: BatchOutput): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  /** True while a replacement for a dead worker is loading. */
  replacing: boolean;
}

const DEFAULT_WORKER_URL = new URL('../inference/worker.js', import.meta.url);

function startWorker(url: URL, init: WorkerInit): Promise<{ worker: Worker; ready: ReadyMessage }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(url, { workerData: init });
    // Remove only our own listeners: Worker keeps internal ones (message forwarding) that
    // removeAllListeners() would break.
    const detach = () => {
      worker.off('message', onMessage);
      worker.off('error', fail);
      worker.off('exit', onExit);
    };
    const fail = (err: Error) => {
      detach();
      void worker.terminate();
      reject(err);
    };
    const onExit = (code: number) => fail(new Error(`inference worker exited with code ${code} while loading`));
    const onMessage = (message: FromWorker) => {
      detach();
      if (message.type === 'ready') resolve({ worker, ready: message });
      else if (message.type === 'init-error') fail(new Error(message.message));
      else fail(new Error(`unexpected first message from worker: ${message.type}`));
    };
    worker.on('message', onMessage);
    worker.on('error', fail);
    worker.on('exit', onExit);
  });
}

/** Starts `size` workers and resolves once every one has loaded its session. */
export async function createWorkerPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const url = options.workerUrl ?? DEFAULT_WORKER_URL;
  const size = options.size ?? 1;
  const started = await Promise.allSettled(Array.from({ length: size }, () => startWorker(url, options.init)));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of started) if (s.status === 'fulfilled') await s.value.worker.terminate();
    throw (failed as PromiseRejectedResult).reason;
  }
  const first = (started[0] as PromiseFulfilledResult<{ worker: Worker; ready: ReadyMessage }>).value.ready;
  const slots: Slot[] = [];
  const waiting: Job[] = [];
  let nextId = 1;
  let closed = false;
  let closing: Promise<void> | undefined;

  const dispatch = () => {
    while (waiting.length > 0) {
      const slot = slots.find((s) => s.job === undefined && !s.replacing);
      if (!slot) return;
      const job = waiting.shift()!;
      slot.job = job;
      const buffer = job.input.buffer as ArrayBuffer;
      const message: ToWorker = { type: 'run', id: job.id, inputName: job.inputName, input: buffer, inputByteOffset: job.input.byteOffset, dims: job.dims };
      slot.worker.postMessage(message, [buffer]);
    }
  };

  const attach = (slot: Slot) => {
    const { worker } = slot;
    const onMessage = (message: FromWorker) => {
      const job = slot.job;
      if (!job || (message.type !== 'result' && message.type !== 'run-error') || message.id !== job.id) return;
      slot.job = undefined;
      if (message.type === 'result') {
        const input = message.input === undefined ? undefined : new Float32Array(message.input);
        job.resolve({ output: new Float32Array(message.output), dims: message.dims, computeMs: message.computeMs, input });
      } else {
        job.reject(errors.INFERENCE_FAILED('Inference failed', { cause: new Error(message.message) }));
      }
      dispatch();
    };
    const onError = (err: Error) => onDeath(err.message);
    const onExit = (code: number) => onDeath(`exit code ${code}`);
    const onDeath = (reason: string) => {
      if (slot.worker !== worker) return;
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      const job = slot.job;
      slot.job = undefined;
      if (job) job.reject(errors.INFERENCE_FAILED('Inference failed: the inference worker stopped', { cause: new Error(reason) }));
      if (closed) return;
      options.log.error({ reason }, 'inference worker died; replacing it');
      slot.replacing = true;
      startWorker(url, options.init).then(
        ({ worker: replacement }) => {
          if (closed) {
            void replacement.terminate();
            return;
          }
          slot.worker = replacement;
          slot.replacing = false;
          attach(slot);
          dispatch();
        },
        (err: Error) => {
          options.log.error({ err: err.message }, 'could not replace the inference worker; the pool is smaller now');
          slots.splice(slots.indexOf(slot), 1);
          if (slots.length === 0) for (const job of waiting.splice(0)) job.reject(errors.INFERENCE_FAILED('No inference worker is left'));
        },
      );
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  };

  for (const s of started) {
    const slot: Slot = { worker: (s as PromiseFulfilledResult<{ worker: Worker }>).value.worker, job: undefined, replacing: false };
    slots.push(slot);
    attach(slot);
  }

  return {
    size,
    inputs: first.inputs,
    outputs: first.outputs,
    executionProvider: first.executionProvider,
    run(inputName, input, dims) {
      if (closed) return Promise.reject(errors.SHUTTING_DOWN());
      return new Promise<BatchOutput>((resolve, reject) => {
        waiting.push({ id: nextId++, inputName, input, dims, resolve, reject });
        dispatch();
      });
    },
    close() {
      if (closing) return closing;
      closed = true;
      for (const job of waiting.splice(0)) job.reject(errors.SHUTTING_DOWN());
      closing = Promise.all(slots.map((s) => s.worker.terminate())).then(() => undefined);
      return closing;
    },
  };
}

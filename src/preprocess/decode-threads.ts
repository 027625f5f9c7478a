/**
 * Preprocessing threads: worker threads that decode large images into tensors, so that the
 * main thread, which answers every request and probe, keeps only the checks before a decode.
 *
 * Why: with phone photos the main thread's share of a decode (Pillow's filter after
 * shrink-on-load, the tensor, and 1–2 MB of pixels a photo for its garbage collector) was most
 * of its CPU time, and the health probe waited behind it (BENCHMARKS.md). In a thread of its own
 * that work runs at the decoding threads' lower priority (`niceIncrement`, like libvips' threads
 * under DECODE_NICE) and its garbage is collected in that thread's heap, without pausing the
 * event loop. libvips itself still runs in libuv's pool, which is process-wide.
 *
 * Bytes cross to a thread transferred when the caller hands them over (it will not read them
 * again, as the data plane does not once an image is decoding) and they own their whole buffer
 * (a body Buffer.concat made): no copy on the event loop, which cloning took about 0.5 ms a
 * phone photo for. Otherwise they cross as a copy (postMessage's structured clone, of only the
 * view's bytes), and the caller keeps them. The tensor comes back
 * in a transferred buffer, is copied into the caller's `into` (a slot of a batch buffer), and
 * the buffer goes back to the thread with its next job, so a steady load allocates none.
 *
 * Threads start on first use, and a thread that dies fails the jobs it held (INTERNAL) and is
 * started again on the next job. sharp is loaded by the main thread too (header reads), which
 * its documentation asks of worker-thread users: its shared libraries then stay loaded.
 */
import { Worker } from 'node:worker_threads';
import { errors, isServingError, type ErrorFactory } from '../errors.js';
import type { CheckedImage } from './decode-to-tensor.js';
import type { PreprocessSpec } from './spec.js';

/** A job for a preprocessing thread. */
export interface DecodeJob {
  readonly type: 'decode';
  readonly id: number;
  readonly spec: PreprocessSpec;
  readonly maxPixels: number;
  /** Names `spec` and `maxPixels` together: the thread keeps one decode per key. */
  readonly key: string;
  readonly image: CheckedImage;
  /** Tensor buffers handed back for reuse (transferred). */
  readonly recycled: readonly ArrayBuffer[];
}

/** A preprocessing thread's answer: the tensor's buffer (transferred), or the error. */
export type DecodeAnswer =
  | { readonly type: 'tensor'; readonly id: number; readonly tensor: ArrayBuffer }
  | { readonly type: 'error'; readonly id: number; readonly code: string | undefined; readonly message: string };

/** `workerData` of a preprocessing thread. */
export interface DecodeThreadInit {
  /** Added to the thread's nice value (Linux), as DECODE_NICE is to libvips' threads. */
  readonly niceIncrement: number;
}

export interface DecodeThreads {
  readonly size: number;
  /**
   * Decodes a checked image in a thread, into `into` when given, else into a new array the
   * caller owns. Rejects as the main thread's decode would (INVALID_IMAGE, IMAGE_TOO_LARGE),
   * with INTERNAL if the thread dies, and with SHUTTING_DOWN after close().
   *
   * @param handOver the caller will not read `image.bytes` again: when they own their whole
   *   buffer it is transferred, and they are empty (detached) once this returns.
   */
  decode(spec: PreprocessSpec, maxPixels: number, image: CheckedImage, into?: Float32Array, handOver?: boolean): Promise<Float32Array>;
  /** Threads started so far and still running (for tests and logs). */
  readonly running: number;
  /** Lets the jobs in hand finish, then ends the threads; later jobs are refused. Idempotent. */
  close(): Promise<void>;
}

export interface DecodeThreadsOptions {
  /** Threads; at least 1. */
  readonly size: number;
  readonly niceIncrement?: number;
  /** Module URL of the thread's entry. @default the compiled decode-thread.js */
  readonly workerUrl?: URL;
}

interface Pending {
  readonly into: Float32Array | undefined;
  readonly resolve: (data: Float32Array) => void;
  readonly reject: (err: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Tensor buffers to send back with the next job. */
  recycled: ArrayBuffer[];
  /** Called when its last job has settled (close() waits for that). */
  onIdle: (() => void) | undefined;
}

/** Tensor buffers kept for reuse per thread; more are left to the collector. */
const MAX_RECYCLED = 8;

const DEFAULT_WORKER_URL = new URL('./decode-thread.js', import.meta.url);

/** The catalog's factory for a code that crossed from a thread, if the catalog has it. */
function catalogError(code: string | undefined, message: string): Error {
  const factory = code === undefined ? undefined : (errors as Readonly<Record<string, ErrorFactory>>)[code];
  return factory === undefined ? errors.INTERNAL(`Preprocessing failed: ${message}`) : factory(message);
}

/**
 * The bytes as they should cross: a view over a small part of a larger buffer (a multipart
 * part, a pooled Buffer) is copied first, since structured clone copies a view's whole buffer.
 */
function crossing(bytes: Uint8Array): Uint8Array {
  const spare = bytes.buffer.byteLength - bytes.byteLength;
  return spare > 64 * 1024 && spare > bytes.byteLength ? bytes.slice() : bytes;
}

/** The buffer to transfer with handed-over bytes: theirs, when they are the whole of it. */
function transferable(bytes: Uint8Array): ArrayBuffer | undefined {
  const { buffer } = bytes;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength && buffer.byteLength > 0 ? buffer : undefined;
}

export function createDecodeThreads(options: DecodeThreadsOptions): DecodeThreads {
  const { size, niceIncrement = 0, workerUrl = DEFAULT_WORKER_URL } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be an integer ≥ 1, got ${size}`);
  const threads: Array<Thread | undefined> = new Array<Thread | undefined>(size).fill(undefined);
  let nextId = 1;
  let closing: Promise<void> | undefined;

  // A key per spec and limit, made once per spec object (a preprocessor's), not per image.
  const keys = new WeakMap<PreprocessSpec, Map<number, string>>();
  function keyOf(spec: PreprocessSpec, maxPixels: number): string {
    let byLimit = keys.get(spec);
    if (byLimit === undefined) keys.set(spec, (byLimit = new Map()));
    let key = byLimit.get(maxPixels);
    if (key === undefined) byLimit.set(maxPixels, (key = JSON.stringify([spec, maxPixels])));
    return key;
  }

  function fail(thread: Thread, err: Error): void {
    const index = threads.indexOf(thread);
    if (index >= 0) threads[index] = undefined;
    for (const job of thread.pending.values()) job.reject(err);
    thread.pending.clear();
    thread.onIdle?.();
  }

  function start(index: number): Thread {
    const init: DecodeThreadInit = { niceIncrement };
    const worker = new Worker(workerUrl, { workerData: init });
    const thread: Thread = { worker, pending: new Map(), recycled: [], onIdle: undefined };
    worker.unref();
    worker.on('message', (answer: DecodeAnswer) => {
      const job = thread.pending.get(answer.id);
      if (job === undefined) return;
      thread.pending.delete(answer.id);
      try {
        settleJob(thread, job, answer);
      } catch (err) {
        // A tensor that does not fit `into` (a thread's bug): that job fails, not the process.
        job.reject(err as Error);
      }
      if (thread.pending.size === 0) {
        worker.unref();
        thread.onIdle?.();
      }
    });
    worker.on('error', (err) => fail(thread, errors.INTERNAL(`The preprocessing thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => fail(thread, errors.INTERNAL(`The preprocessing thread exited (code ${code})`)));
    threads[index] = thread;
    return thread;
  }

  function settleJob(thread: Thread, job: Pending, answer: DecodeAnswer): void {
    if (answer.type === 'error') return job.reject(catalogError(answer.code, answer.message));
    const tensor = new Float32Array(answer.tensor);
    if (job.into === undefined) return job.resolve(tensor);
    job.into.set(tensor);
    if (thread.recycled.length < MAX_RECYCLED) thread.recycled.push(answer.tensor);
    job.resolve(job.into);
  }

  /** The running thread with the fewest jobs in hand, or a new one where a slot is empty. */
  function pick(): Thread {
    let best: Thread | undefined;
    for (let i = 0; i < threads.length; i++) {
      const thread = threads[i];
      if (thread === undefined) return start(i);
      if (best === undefined || thread.pending.size < best.pending.size) best = thread;
    }
    return best as Thread;
  }

  function decode(spec: PreprocessSpec, maxPixels: number, image: CheckedImage, into?: Float32Array, handOver = false): Promise<Float32Array> {
    if (closing !== undefined) return Promise.reject(errors.SHUTTING_DOWN('The server is shutting down; preprocessing has stopped'));
    const expected = 3 * spec.crop * spec.crop;
    if (into !== undefined && into.length !== expected) {
      return Promise.reject(new RangeError(`Expected a Float32Array of ${expected} elements to write into, got ${into.length}`));
    }
    const thread = pick();
    const id = nextId++;
    const recycled = thread.recycled;
    thread.recycled = [];
    const moved = handOver ? transferable(image.bytes) : undefined;
    const job: DecodeJob = {
      type: 'decode',
      id,
      spec,
      maxPixels,
      key: keyOf(spec, maxPixels),
      image: moved === undefined ? { ...image, bytes: crossing(image.bytes) } : image,
      recycled,
    };
    return new Promise<Float32Array>((resolve, reject) => {
      thread.pending.set(id, { into, resolve, reject });
      if (thread.pending.size === 1) thread.worker.ref();
      try {
        try {
          thread.worker.postMessage(job, moved === undefined ? recycled : [...recycled, moved]);
        } catch (err) {
          // A buffer Node will not let go of (one marked untransferable) is sent as a copy.
          if (moved === undefined || (err as Error).name !== 'DataCloneError') throw err;
          thread.worker.postMessage({ ...job, image: { ...image, bytes: crossing(image.bytes) } }, recycled);
        }
      } catch (err) {
        thread.pending.delete(id);
        reject(isServingError(err) ? err : errors.INTERNAL(`Could not hand the image to a preprocessing thread: ${(err as Error).message}`));
      }
    });
  }

  async function settle(thread: Thread): Promise<void> {
    if (thread.pending.size > 0) await new Promise<void>((idle) => (thread.onIdle = idle));
    const index = threads.indexOf(thread);
    if (index >= 0) threads[index] = undefined;
    await thread.worker.terminate();
  }

  return {
    size,
    decode,
    get running() {
      return threads.filter((t) => t !== undefined).length;
    },
    close() {
      // A thread is never terminated inside a libvips call (sharp's documentation: that can
      // crash the process): its jobs finish first.
      closing ??= Promise.all(threads.filter((t): t is Thread => t !== undefined).map(settle)).then(() => undefined);
      return closing;
    },
  };
}

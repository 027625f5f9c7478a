/**
 * Messages between the main thread and an inference worker. Tensors cross as transferred
 * ArrayBuffers (moved, not copied): after `postMessage` the sender's view is detached.
 */
import type { OpenSessionOptions, TensorInfo, ExecutionProvider } from './onnx-binding.js';

/** `workerData` of an inference worker. */
export interface WorkerInit {
  readonly modelPath: string;
  readonly session: OpenSessionOptions;
  /**
   * Added to the nice value of the inference thread before the session starts, so the
   * onnxruntime threads it creates inherit it (Linux: nice is per thread). @default 0
   */
  readonly niceIncrement?: number;
}

export interface RunRequest {
  readonly type: 'run';
  readonly id: number;
  readonly inputName: string;
  /**
   * Holds the batch at `inputByteOffset`, `dims`' product of float32 values; it may be larger
   * (a recycled buffer sized for the largest batch).
   */
  readonly input: ArrayBuffer;
  /** @default 0 */
  readonly inputByteOffset?: number;
  readonly dims: readonly number[];
}

export type ToWorker = RunRequest;

export interface ReadyMessage {
  readonly type: 'ready';
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly executionProvider: ExecutionProvider;
}

export interface InitErrorMessage {
  readonly type: 'init-error';
  readonly message: string;
}

export interface RunResult {
  readonly type: 'result';
  readonly id: number;
  /** The graph's first output, row-major. */
  readonly output: ArrayBuffer;
  readonly dims: readonly number[];
  /** Time inside `session.run`, in ms. */
  readonly computeMs: number;
  /** The request's `input`, handed back (transferred) so the main thread can reuse it. */
  readonly input?: ArrayBuffer;
}

export interface RunError {
  readonly type: 'run-error';
  readonly id: number;
  readonly message: string;
  /** The request's `input`, handed back as with a result. */
  readonly input?: ArrayBuffer;
}

export type FromWorker = ReadyMessage | InitErrorMessage | RunResult | RunError;

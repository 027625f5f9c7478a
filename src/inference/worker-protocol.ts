/**
 * Messages between the main thread and an inference worker. Tensors cross as transferred
 * ArrayBuffers (moved, not copied): after `postMessage` the sender's view is detached.
 */
import type { OpenSessionOptions, TensorInfo, ExecutionProvider } from './onnx-binding.js';

/** `workerData` of an inference worker. */
export interface WorkerInit {
  readonly modelPath: string;
  readonly session: OpenSessionOptions;
}

export interface RunRequest {
  readonly type: 'run';
  readonly id: number;
  readonly inputName: string;
  readonly input: ArrayBuffer;
  readonly dims: readonly number[];
}

/** Test-only: makes the worker exit abruptly, to exercise crash recovery. */
export interface CrashRequest {
  readonly type: 'crash';
}

export type ToWorker = RunRequest | CrashRequest;

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
}

export interface RunError {
  readonly type: 'run-error';
  readonly id: number;
  readonly message: string;
}

export type FromWorker = ReadyMessage | InitErrorMessage | RunResult | RunError;

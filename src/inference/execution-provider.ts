/**
 * Choosing the execution provider: `cpu`, `cuda` (fail startup when CUDA cannot be used), or
 * `auto` (CUDA when it can be created, else CPU with a warning). The opener is injected, so
 * the rules are tested without a GPU; in the server it starts a worker pool whose workers
 * open sessions through onnx-binding.ts.
 *
 * Untested on a GPU: this project has none, and onnxruntime-node's CUDA libraries cannot be
 * installed where it is built. The CUDA path follows onnxruntime-node's documented API.
 */
import type { ExecutionProvider } from './onnx-binding.js';

export type ExecutionProviderChoice = 'cpu' | 'cuda' | 'auto';

export interface ProviderLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Largest batch by provider, when `BATCH_MAX_SIZE` is not set. A CPU gains little past 8
 * (BENCHMARKS.md) while larger batches only add queueing delay; a GPU needs large batches
 * to fill its cores, and its per-batch cost barely grows with the batch.
 */
export const DEFAULT_BATCH_MAX_SIZE: Readonly<Record<ExecutionProvider, number>> = { cpu: 8, cuda: 32 };

/** How a GPU user installs what the CUDA execution provider needs. */
export const CUDA_INSTALL_HINT =
  "It needs an NVIDIA GPU with its driver, CUDA 12 and cuDNN 9, and onnxruntime-node's CUDA provider libraries, which " +
  "this project does not let npm install (package.json denies onnxruntime-node's install script): run it yourself with " +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` ' +
  '(README, "GPU (CUDA)"). Set EXECUTION_PROVIDER=auto to fall back to CPU instead.';

export class ExecutionProviderError extends Error {
  constructor(what: string, reason: string, options?: { cause?: unknown }) {
    super(`EXECUTION_PROVIDER=cuda: the CUDA execution provider could not be created for ${what} (${reason}). ${CUDA_INSTALL_HINT}`, options);
    this.name = 'ExecutionProviderError';
  }
}

/**
 * Opens something (a session, a worker pool) on the chosen provider. `what` names it in
 * messages (e.g. the model file).
 */
export async function openWithProvider<T>(
  choice: ExecutionProviderChoice,
  what: string,
  open: (provider: ExecutionProvider) => Promise<T>,
  log: ProviderLogger,
): Promise<{ value: T; provider: ExecutionProvider }> {
  if (choice === 'cpu') return { value: await open('cpu'), provider: 'cpu' };
  try {
    return { value: await open('cuda'), provider: 'cuda' };
  } catch (err) {
    const reason = (err as Error).message;
    if (choice === 'cuda') throw new ExecutionProviderError(what, reason, { cause: err });
    log.warn({ model: what, reason }, 'EXECUTION_PROVIDER=auto: the CUDA execution provider could not be created; falling back to CPU');
    return { value: await open('cpu'), provider: 'cpu' };
  }
}

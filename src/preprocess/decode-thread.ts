/**
 * A preprocessing thread's entry (decode-threads.ts): decodes checked images into tensors with
 * the same code as the main thread (decode-to-tensor.ts), its synchronous share run at once
 * rather than in turns, since no event loop here answers requests.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isServingError } from '../errors.js';
import { lowerThisThreadPriority, nameThisThread } from '../system/thread-self.js';
import { createTensorDecode, type TensorDecode } from './decode-to-tensor.js';
import type { DecodeAnswer, DecodeJob, DecodeThreadInit } from './decode-threads.js';
import { createSharpDecoder } from './sharp-pipeline.js';

if (!parentPort) throw new Error('decode-thread.ts must run as a worker thread');
const port = parentPort;
const init = workerData as DecodeThreadInit;

nameThisThread('preprocess');
lowerThisThreadPriority(init.niceIncrement);

const decoder = createSharpDecoder();
/** A decode per spec and pixel limit in use (a handful: one per model version loaded). */
const decodes = new Map<string, TensorDecode>();
const MAX_DECODES = 64;
/** Tensor buffers the main thread handed back, by byte length. */
const free: ArrayBuffer[] = [];
const MAX_FREE = 16;

function decodeFor({ key, spec, maxPixels }: DecodeJob): TensorDecode {
  let decode = decodes.get(key);
  if (decode === undefined) {
    if (decodes.size >= MAX_DECODES) decodes.clear();
    decode = createTensorDecode(spec, maxPixels, decoder, undefined);
    decodes.set(key, decode);
  }
  return decode;
}

function tensorOf(elements: number): Float32Array {
  const index = free.findIndex((b) => b.byteLength === elements * 4);
  if (index < 0) return new Float32Array(elements);
  const [buffer] = free.splice(index, 1);
  return new Float32Array(buffer as ArrayBuffer);
}

function answer(message: DecodeAnswer, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

port.on('message', async (job: DecodeJob) => {
  for (const buffer of job.recycled) if (free.length < MAX_FREE) free.push(buffer);
  const { id, spec, image } = job;
  try {
    const tensor = await decodeFor(job)(image, tensorOf(3 * spec.crop * spec.crop));
    answer({ type: 'tensor', id, tensor: tensor.buffer as ArrayBuffer }, [tensor.buffer as ArrayBuffer]);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    answer({ type: 'error', id, code: isServingError(err) ? err.code : undefined, message });
  }
});

/**
 * Inference worker entry: owns one onnxruntime session and runs one batch at a time.
 * `session.run` blocks this thread for the whole inference, which is why it lives here and
 * not on the main thread that answers HTTP and probes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { lowerThisThreadPriority, nameThisThread } from '../system/thread-self.js';
import { openSession } from './onnx-binding.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

// Named `ort-inference` before the session starts onnxruntime's intra-op threads, which inherit
// the name and the lowered priority: the event loop and libuv's pool win the CPU when they want it.
nameThisThread('ort-inference');
lowerThisThreadPriority(init.niceIncrement ?? 0);
try {
  const session = await openSession(init.modelPath, init.session);
  const outputName = session.outputs[0]?.name;
  if (outputName === undefined) throw new Error('the graph has no output');

  port.on('message', async (message: ToWorker) => {
    const { id, input } = message;
    const length = message.dims.reduce((a, b) => a * b, 1);
    try {
      const data = new Float32Array(input, message.inputByteOffset ?? 0, length);
      const started = performance.now();
      const results = await session.run({ [message.inputName]: { data, dims: message.dims } });
      const computeMs = performance.now() - started;
      const output = results[outputName];
      if (!output) throw new Error(`output \`${outputName}\` is not float32`);
      // The result may live in memory owned by onnxruntime, which cannot be transferred;
      // the copy is small (batch × classes floats).
      const out = output.data.slice();
      // The input goes back too: the main thread reuses it for a later batch, which spares it
      // a fresh multi-megabyte allocation (and its page faults) per batch.
      send({ type: 'result', id, output: out.buffer as ArrayBuffer, dims: output.dims, computeMs, input }, [out.buffer as ArrayBuffer, input]);
    } catch (err) {
      send({ type: 'run-error', id, message: (err as Error).message, input }, [input]);
    }
  });
  send({ type: 'ready', inputs: session.inputs, outputs: session.outputs, executionProvider: session.executionProvider });
} catch (err) {
  send({ type: 'init-error', message: (err as Error).message });
}

/**
 * Inference worker entry: owns one onnxruntime session and runs one batch at a time.
 * `session.run` blocks this thread for the whole inference, which is why it lives here and
 * not on the main thread that answers HTTP and probes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { openSession } from './onnx-binding.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

try {
  const session = await openSession(init.modelPath, init.session);
  const outputName = session.outputs[0]?.name;
  if (outputName === undefined) throw new Error('the graph has no output');

  port.on('message', async (message: ToWorker) => {
    if (message.type === 'crash') process.exit(70);
    const { id } = message;
    try {
      const started = performance.now();
      const results = await session.run({ [message.inputName]: { data: new Float32Array(message.input), dims: message.dims } });
      const computeMs = performance.now() - started;
      const output = results[outputName];
      if (!output) throw new Error(`output \`${outputName}\` is not float32`);
      // The result may live in memory owned by onnxruntime, which cannot be transferred;
      // the copy is small (batch × classes floats).
      const data = output.data.slice();
      send({ type: 'result', id, output: data.buffer as ArrayBuffer, dims: output.dims, computeMs }, [data.buffer as ArrayBuffer]);
    } catch (err) {
      send({ type: 'run-error', id, message: (err as Error).message });
    }
  });
  send({ type: 'ready', inputs: session.inputs, outputs: session.outputs, executionProvider: session.executionProvider });
} catch (err) {
  send({ type: 'init-error', message: (err as Error).message });
}

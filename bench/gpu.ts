/**
 * GPU benchmark, for users with an NVIDIA GPU: inference latency and throughput by batch
 * size with the CUDA execution provider (onnxruntime-node installed with
 * ONNXRUNTIME_NODE_INSTALL=cuda12). Its figures have NOT been measured by this project,
 * which has no GPU.
 *
 *   npm run build && node dist/bench/gpu.js [--model models/resnet50/model.onnx]
 *       [--device 0] [--batches 1,2,4,8,16,32,64] [--iterations 50] [--cudnn EXHAUSTIVE]
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openSession } from '../src/inference/onnx-binding.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/resnet50/model.onnx' },
    device: { type: 'string', default: '0' },
    batches: { type: 'string', default: '1,2,4,8,16,32,64' },
    iterations: { type: 'string', default: '50' },
    cudnn: { type: 'string', default: 'HEURISTIC' },
  },
});
const batches = values.batches.split(',').map(Number);
const iterations = Number(values.iterations);

const session = await openSession(values.model, {
  executionProvider: 'cuda',
  cuda: { deviceId: Number(values.device), memLimitBytes: 0, cudnnConvAlgoSearch: values.cudnn as 'HEURISTIC' },
}).catch((err: Error) => {
  process.stderr.write(`Could not open ${values.model} on CUDA: ${err.message}\n`);
  process.exit(1);
});
const input = session.inputs[0]!;
const itemDims = input.shape.slice(1).map((d) => (typeof d === 'number' ? d : 224));
const itemSize = itemDims.reduce((a, b) => a * b, 1);

console.log(`# GPU benchmark — ${new Date().toISOString()} — host CPU ${cpus()[0]?.model ?? '?'}; model ${values.model}; device ${values.device}`);
console.log('| batch | p50 ms/batch | p99 ms/batch | ms/image | images/s |');
console.log('| ---: | ---: | ---: | ---: | ---: |');
for (const batch of batches) {
  const data = new Float32Array(batch * itemSize).map((_, i) => Math.sin(i));
  const feeds = { [input.name]: { data, dims: [batch, ...itemDims] } };
  for (let i = 0; i < 5; i++) await session.run(feeds); // warm-up: kernel selection, arena growth
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const p50 = times[Math.floor(times.length * 0.5)]!;
  const p99 = times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]!;
  console.log(`| ${batch} | ${p50.toFixed(2)} | ${p99.toFixed(2)} | ${(p50 / batch).toFixed(2)} | ${((1000 * batch) / p50).toFixed(0)} |`);
}
await session.release();

/**
 * onnxruntime on its own, in this process, with the server's session settings: the time of
 * one `session.run` at each batch size, which bounds what any server around it can reach.
 *
 * Batch sizes are measured in interleaved rounds (each round runs every size), and each size's
 * figure is the median over its runs, so a burst of load from other processes on a shared
 * machine lands on one run of many sizes rather than on every run of one size.
 */
import { performance } from 'node:perf_hooks';
import { openSession } from '../../src/inference/onnx-binding.js';
import { createRandom } from '../../src/model-tools/prng.js';
import { median } from './stats.js';

export interface BatchTiming {
  readonly batchSize: number;
  /** Timed runs (after the warm-up runs). */
  readonly runs: number;
  /** Median time of one run, in ms. */
  readonly msPerBatch: number;
  readonly msPerImage: number;
}

export interface DirectInferenceOptions {
  readonly modelPath: string;
  readonly intraOpThreads: number;
  readonly batchSizes: readonly number[];
  /** Shape of one item (without the batch dimension). */
  readonly itemDims: readonly number[];
  /** Rounds over every batch size. @default 7 */
  readonly rounds?: number;
  /** Untimed runs at each size first. @default 2 */
  readonly warmupRuns?: number;
  /** Called after each round, e.g. to show progress. */
  readonly onRound?: (round: number) => void;
}

/** Runs of size `b` in one round: small batches run several times, so each size gets enough samples. */
function runsPerRound(batchSize: number): number {
  return Math.max(1, Math.round(4 / batchSize));
}

export async function measureDirectInference(options: DirectInferenceOptions): Promise<BatchTiming[]> {
  const { rounds = 7, warmupRuns = 2 } = options;
  const session = await openSession(options.modelPath, { intraOpThreads: options.intraOpThreads });
  const inputName = session.inputs[0]?.name;
  if (inputName === undefined) throw new Error(`${options.modelPath} has no input`);
  const itemSize = options.itemDims.reduce((a, b) => a * b, 1);
  const random = createRandom(1);
  // Values in the range of normalized pixels; the time of a ResNet does not depend on them.
  const feeds = options.batchSizes.map((batchSize) => ({
    batchSize,
    feed: { [inputName]: { data: random.fillUniform(new Float32Array(batchSize * itemSize), -2, 2), dims: [batchSize, ...options.itemDims] } },
  }));
  const times = new Map<number, number[]>(options.batchSizes.map((b) => [b, []]));
  try {
    for (const { feed } of feeds) for (let i = 0; i < warmupRuns; i++) await session.run(feed);
    for (let round = 0; round < rounds; round++) {
      for (const { batchSize, feed } of feeds) {
        for (let i = 0; i < runsPerRound(batchSize); i++) {
          const t0 = performance.now();
          await session.run(feed);
          times.get(batchSize)!.push(performance.now() - t0);
        }
      }
      options.onRound?.(round + 1);
    }
  } finally {
    await session.release();
  }
  return options.batchSizes.map((batchSize) => {
    const samples = times.get(batchSize)!;
    const msPerBatch = median(samples);
    return { batchSize, runs: samples.length, msPerBatch, msPerImage: msPerBatch / batchSize };
  });
}

/**
 * One served model: its files, resolved configuration, inference workers and batcher.
 * Loading validates everything that could make the model answer wrongly (config fields,
 * graph input, labels count against the output) and fails with the file and field named.
 */
import { performance } from 'node:perf_hooks';
import { DEFAULT_BATCH_MAX_SIZE, ExecutionProviderError, openWithProvider, type ExecutionProviderChoice } from '../inference/execution-provider.js';
import type { CudaOptions, ExecutionProvider, TensorInfo } from '../inference/onnx-binding.js';
import { createImagePreprocessor, type DecodeBudget, type DecodeWait, type ImagePreprocessor } from '../preprocess/index.js';
import { createBatcher, type Batcher } from './batcher.js';
import { createBufferPool, type BufferPool } from './buffer-pool.js';
import { ModelConfigError, resolveModelInput, type OutputKind, type ResolvedModelInput } from './model-config.js';
import { readModelFolder } from './model-repository.js';
import type { ServingObserver } from './observer.js';
import { createWorkerPool, type PoolLogger, type WorkerPool } from './worker-pool.js';

export interface ModelLogger extends PoolLogger {
  info(obj: object, msg: string): void;
}

export interface ModelLoadOptions {
  readonly executionProvider: ExecutionProviderChoice;
  readonly cuda: CudaOptions;
  readonly intraOpThreads: number;
  readonly workers: number;
  /** `undefined`: the provider's default (DEFAULT_BATCH_MAX_SIZE). */
  readonly batchMaxSize: number | undefined;
  readonly batchMaxDelayMs: number;
  readonly queueMaxSize: number;
  readonly maxImagePixels: number;
  /** Decoding memory shared by every model (see decode-budget.ts); none when absent. */
  readonly decodeBudget?: DecodeBudget;
  readonly observer: ServingObserver;
  readonly log: ModelLogger;
  /** Worker entry override, for tests. */
  readonly workerUrl?: URL;
  /** Nice increment of the inference threads (see WorkerInit.niceIncrement). @default 0 */
  readonly inferenceNice?: number;
}

/** One output row per item, and the batch's compute time. */
export interface ItemOutput {
  readonly row: Float32Array;
  readonly computeMs: number;
}

export interface ServedModel {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly trained: boolean | undefined;
  readonly description: string | undefined;
  readonly outputKind: OutputKind;
  readonly labels: readonly string[] | undefined;
  readonly input: ResolvedModelInput;
  readonly output: { readonly name: string; readonly shape: readonly number[]; readonly classes: number };
  readonly graphInputs: readonly TensorInfo[];
  readonly graphOutputs: readonly TensorInfo[];
  readonly executionProvider: ExecutionProvider;
  /** Largest batch the batcher forms: the graph's fixed batch size, else `BATCH_MAX_SIZE`. */
  readonly maxBatchSize: number;
  readonly workers: number;
  readonly loadSeconds: number;
  readonly preprocessor: ImagePreprocessor;
  /**
   * Decodes and preprocesses one image into a recycled tensor, which goes back to the pool
   * once its batch has been assembled (see buffer-pool.ts). Errors as `preprocessor.preprocess`.
   */
  preprocess(bytes: Uint8Array, wait?: DecodeWait): Promise<Float32Array>;
  readonly batcher: Batcher<Float32Array, ItemOutput>;
  /** Test hook: crash one inference worker. */
  crashWorker(): void;
  /** Stops intake, drains queued and running work, then ends the workers. */
  stop(): Promise<void>;
}

/** Sizes to warm up: every size the batcher can form, largest first so memory grows once. */
export function warmupBatchSizes(maxBatchSize: number, fixedBatchSize: number | undefined): number[] {
  if (fixedBatchSize !== undefined) return [fixedBatchSize];
  // Beyond 16 (GPU settings) warm powers of two and the maximum; onnxruntime's CPU arena
  // then already holds the largest buffers, and CUDA kernels are chosen per shape class.
  if (maxBatchSize <= 16) return Array.from({ length: maxBatchSize }, (_, i) => maxBatchSize - i);
  const sizes = new Set<number>([maxBatchSize]);
  for (let s = 1; s < maxBatchSize; s *= 2) sizes.add(s);
  return [...sizes].sort((a, b) => b - a);
}

async function openPool(modelPath: string, options: ModelLoadOptions): Promise<WorkerPool> {
  const { value } = await openWithProvider(
    options.executionProvider,
    modelPath,
    (provider) =>
      createWorkerPool({
        init: {
          modelPath,
          session: { intraOpThreads: options.intraOpThreads, executionProvider: provider, cuda: options.cuda },
          niceIncrement: options.inferenceNice ?? 0,
        },
        size: options.workers,
        log: options.log,
        ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
      }),
    options.log,
  );
  return value;
}

/** Loads, validates and warms up the model in `dir`; `name` is the folder name. */
export async function loadModel(dir: string, name: string, options: ModelLoadOptions): Promise<ServedModel> {
  const started = performance.now();
  const { modelPath, configPath, labelsPath, config, labels, sha256 } = await readModelFolder(dir);
  const files = { config: configPath, model: modelPath };

  const pool = await openPool(modelPath, options).catch((err: Error) => {
    if (err instanceof ExecutionProviderError) throw err;
    throw new ModelConfigError(modelPath, undefined, `cannot be loaded by onnxruntime: ${err.message}`);
  });
  try {
    const input = resolveModelInput(config, pool.inputs, files);
    const outputInfo = pool.outputs[0];
    if (!outputInfo || outputInfo.type !== 'float32') {
      throw new ModelConfigError(modelPath, undefined, 'must have a float32 first output (class scores)');
    }
    const maxBatchSize = input.fixedBatchSize ?? options.batchMaxSize ?? DEFAULT_BATCH_MAX_SIZE[pool.executionProvider];
    const rowsFromDims = (dims: readonly number[]) => dims.slice(1).reduce((a, b) => a * b, 1);

    // Tensors of images waiting to be batched, and whole-batch buffers (one per running
    // batch); both recycled, since fresh ones cost page faults on the main thread.
    const itemPool = createBufferPool(input.itemSize, Math.min(options.queueMaxSize, 4 * maxBatchSize * pool.size));
    const batchRows = input.fixedBatchSize ?? maxBatchSize;
    const batchPool = createBufferPool(batchRows * input.itemSize, pool.size);

    /** A lone item that owns its whole buffer can go to the worker as it is, without a copy. */
    const ownsBuffer = (item: Float32Array) => item.byteOffset === 0 && item.byteLength === item.buffer.byteLength;

    /** Runs one batch; `observe: false` for warm-up batches, which are not traffic. */
    const runBatch = async (items: readonly Float32Array[], observe = true): Promise<ItemOutput[]> => {
      const batch = input.fixedBatchSize ?? items.length;
      const dims = [batch, ...input.shape.slice(1)];
      let data: Float32Array;
      let bufferPool: BufferPool;
      if (batch === 1 && ownsBuffer(items[0]!)) {
        // The common case at low load: the image's own tensor is transferred (the request no
        // longer reads it) and comes back to the item pool.
        data = items[0]!;
        bufferPool = itemPool;
      } else {
        // One contiguous buffer, transferred (not copied) to the worker, which hands it back.
        data = batchPool.acquire().subarray(0, batch * input.itemSize);
        items.forEach((item, i) => {
          data.set(item, i * input.itemSize);
          itemPool.release(item);
        });
        // A fixed-size graph gets zero rows as padding (the recycled buffer holds old rows).
        if (items.length < batch) data.fill(0, items.length * input.itemSize);
        bufferPool = batchPool;
      }
      const { output, dims: outDims, computeMs, input: returned } = await pool.run(input.name, data, dims);
      if (returned !== undefined) bufferPool.adopt(returned);
      const rowSize = rowsFromDims(outDims);
      if (observe) options.observer.computed(name, items.length, computeMs / 1000);
      return items.map((_, i) => ({ row: output.subarray(i * rowSize, (i + 1) * rowSize), computeMs }));
    };

    // Warm-up before readiness, at every batch size the batcher will form, and learn the
    // true output size (graphs often leave it symbolic).
    let classes = 0;
    for (const size of warmupBatchSizes(maxBatchSize, input.fixedBatchSize)) {
      const rows = await runBatch(
        Array.from({ length: Math.min(size, maxBatchSize) }, () => new Float32Array(input.itemSize)),
        false,
      );
      classes = rows[0]!.row.length;
    }
    if (labels !== undefined && labels.length !== classes) {
      throw new ModelConfigError(labelsPath, undefined, `has ${labels.length} labels, but the model outputs ${classes} classes`);
    }

    const batcher = createBatcher<Float32Array, ItemOutput>({
      maxBatchSize,
      maxDelayMs: options.batchMaxDelayMs,
      queueMaxSize: options.queueMaxSize,
      runner: { concurrency: pool.size, run: (items) => runBatch(items) },
      observer: {
        queueDepth: (depth) => options.observer.queueDepth(name, depth),
        inflightBatches: (count) => options.observer.inflightBatches(name, count),
      },
    });
    const preprocessor = createImagePreprocessor(input.preprocess, { maxPixels: options.maxImagePixels }, options.decodeBudget ? { decodeBudget: options.decodeBudget } : {});
    const loadSeconds = (performance.now() - started) / 1000;
    const version = config.version ?? '1';
    options.observer.modelLoaded({ model: name, version, executionProvider: pool.executionProvider, sha256, seconds: loadSeconds });
    return {
      name,
      version,
      sha256,
      trained: config.trained,
      description: config.description,
      outputKind: config.output ?? 'logits',
      labels,
      input,
      output: { name: outputInfo.name, shape: [input.fixedBatchSize ?? -1, classes], classes },
      graphInputs: pool.inputs,
      graphOutputs: pool.outputs,
      executionProvider: pool.executionProvider,
      maxBatchSize,
      workers: pool.size,
      loadSeconds,
      preprocessor,
      async preprocess(bytes, wait) {
        const into = itemPool.acquire();
        try {
          return (await preprocessor.preprocess(bytes, into, wait)).data;
        } catch (err) {
          itemPool.release(into);
          throw err;
        }
      },
      batcher,
      crashWorker: () => pool.crashOne(),
      async stop() {
        await batcher.stop();
        await pool.close();
      },
    };
  } catch (err) {
    await pool.close();
    throw err;
  }
}

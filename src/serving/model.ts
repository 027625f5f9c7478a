/**
 * One served model version, the unit that is loaded, served and stopped: its files read
 * (model-repository.ts), its own inference workers, batch assembly (batch-assembly.ts) and
 * batcher, wired together and warmed up. Versions of one model share nothing but their name. Loading validates
 * everything that could make the model answer wrongly (config fields, graph input, labels count
 * against the output) and fails with the file and field named.
 */
import { performance } from 'node:perf_hooks';
import { DEFAULT_BATCH_MAX_SIZE, ExecutionProviderError, openWithProvider, type ExecutionProviderChoice } from '../inference/execution-provider.js';
import type { CudaOptions, ExecutionProvider, TensorInfo } from '../inference/onnx-binding.js';
import { createImagePreprocessor, type DecodeBudget, type DecodeThreads, type DecodeWait, type ImagePreprocessor } from '../preprocess/index.js';
import { createBatcher, type Batcher } from './batcher.js';
import { createBatchAssembly, type BatchAssembly, type ItemOutput } from './batch-assembly.js';
import { ModelConfigError, resolveModelInput, type OutputKind, type ResolvedModelInput } from './model-config.js';
import { fingerprintOf, readModelVersion, type ModelPlan } from './model-repository.js';
import type { ModelKey, ServingObserver } from './observer.js';
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
  /** Preprocessing threads shared by every model (decode-threads.ts); none: the main thread decodes. */
  readonly decodeThreads?: DecodeThreads;
  readonly observer: ServingObserver;
  readonly log: ModelLogger;
  /** Worker entry override, for tests. */
  readonly workerUrl?: URL;
  /** Nice increment of the inference threads (see WorkerInit.niceIncrement). @default 0 */
  readonly inferenceNice?: number;
}

/**
 * What an edge may read of a served model version: what it renders (name, version, shapes,
 * labels) and whether it takes work now. The batcher, workers and buffers behind it are the
 * data plane's.
 */
export interface ModelView extends ModelKey {
  readonly name: string;
  /** The version that answers requests sent to this view (a version folder's name, or a flat model's config `version`). */
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
  /** False from the moment stop() begins; new work is then refused with SHUTTING_DOWN. */
  readonly accepting: boolean;
}

/** A loaded model version, as the data plane drives it. */
export interface ServedModel extends ModelView {
  readonly preprocessor: ImagePreprocessor;
  /**
   * Decodes and preprocesses one image into a recycled tensor, which goes back to the pool
   * once its batch has been assembled (see batch-assembly.ts). Errors as `preprocessor.preprocess`,
   * and `handOver` as there: the caller will not read `bytes` again.
   */
  preprocess(bytes: Uint8Array, wait?: DecodeWait, handOver?: boolean): Promise<Float32Array>;
  readonly batcher: Batcher<Float32Array, ItemOutput>;
  /** What it was loaded from (model-repository.ts' `fingerprintOf`): equal fingerprints, same model. */
  readonly fingerprint: string;
  /**
   * Stops intake, drains queued and running work, then ends the workers. Idempotent: every
   * call returns the same promise.
   */
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

/**
 * Warm-up before readiness: a batch of zeros at every size the batcher will form (not reported
 * as traffic). Returns the classes the graph outputs, which graphs often leave symbolic.
 */
async function warmUp(assembly: BatchAssembly, input: ResolvedModelInput, maxBatchSize: number): Promise<number> {
  let classes = 0;
  for (const size of warmupBatchSizes(maxBatchSize, input.fixedBatchSize)) {
    const rows = await assembly.run(
      Array.from({ length: Math.min(size, maxBatchSize) }, () => new Float32Array(input.itemSize)),
      false,
    );
    classes = rows[0]!.row.length;
  }
  return classes;
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

/** Which version of which model folder to load. */
export interface ModelSource {
  /** The model's name: its folder's name. */
  readonly name: string;
  readonly plan: ModelPlan;
  /** One of `plan.versions`. */
  readonly version: string;
}

/** Loads, validates and warms up one version of a model, on workers of its own. */
export async function loadModel(source: ModelSource, options: ModelLoadOptions): Promise<ServedModel> {
  const started = performance.now();
  const { name, version } = source;
  const key: ModelKey = { name, version };
  const { modelPath, configPath, labelsPath, config, labels, sha256 } = await readModelVersion(source.plan, version);
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
    const assembly = createBatchAssembly({
      input,
      maxBatchSize,
      concurrency: pool.size,
      maxFreeItems: Math.min(options.queueMaxSize, 4 * maxBatchSize * pool.size),
      run: (inputName, data, dims) => pool.run(inputName, data, dims),
      computed: (items, seconds) => options.observer.computed(key, items, seconds),
    });

    const classes = await warmUp(assembly, input, maxBatchSize);
    if (labels !== undefined && labels.length !== classes) {
      throw new ModelConfigError(labelsPath, undefined, `has ${labels.length} labels, but the model outputs ${classes} classes`);
    }

    const batcher = createBatcher<Float32Array, ItemOutput>({
      maxBatchSize,
      maxDelayMs: options.batchMaxDelayMs,
      queueMaxSize: options.queueMaxSize,
      runner: { concurrency: pool.size, run: (items) => assembly.run(items) },
      observer: {
        queueDepth: (depth) => options.observer.queueDepth(key, depth),
        inflightBatches: (count) => options.observer.inflightBatches(key, count),
      },
    });
    let stopped: Promise<void> | undefined;
    const preprocessor = createImagePreprocessor(
      input.preprocess,
      { maxPixels: options.maxImagePixels },
      {
        ...(options.decodeBudget ? { decodeBudget: options.decodeBudget } : {}),
        ...(options.decodeThreads ? { threads: options.decodeThreads } : {}),
      },
    );
    const loadSeconds = (performance.now() - started) / 1000;
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
      async preprocess(bytes, wait, handOver) {
        const into = assembly.acquireItem();
        try {
          return (await preprocessor.preprocess(bytes, into, wait, handOver)).data;
        } catch (err) {
          assembly.releaseItem(into);
          throw err;
        }
      },
      get accepting() {
        return !batcher.stopping;
      },
      batcher,
      fingerprint: fingerprintOf({ sha256, config, labels }),
      stop() {
        stopped ??= batcher.stop().then(() => pool.close());
        return stopped;
      },
    };
  } catch (err) {
    await pool.close();
    throw err;
  }
}

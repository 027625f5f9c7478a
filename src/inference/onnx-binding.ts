/**
 * The one module that imports onnxruntime-node. Everything else sees plain typed arrays and
 * the small `OnnxSession` contract below, so tests can replace the runtime at this seam and
 * the rest of the code never depends on onnxruntime's types.
 *
 * `session.run` in onnxruntime-node 1.30 blocks the calling thread for the whole inference
 * (a synchronous native call deferred by one tick): call it only from an inference worker.
 */
import * as ort from 'onnxruntime-node';

export type ExecutionProvider = 'cpu' | 'cuda';

/** Shape and type of one graph input or output, as the graph declares them. */
export interface TensorInfo {
  readonly name: string;
  /** onnxruntime's element type name, e.g. `float32`. */
  readonly type: string;
  /** Dimensions; a symbolic or unknown dimension is its name as a string (or `"?"`). */
  readonly shape: ReadonlyArray<number | string>;
}

export interface Float32TensorData {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export interface CudaOptions {
  /** @default 0 */
  readonly deviceId: number;
  /** Memory arena limit in bytes; 0 leaves onnxruntime's default. @default 0 */
  readonly memLimitBytes: number;
  /** @default "HEURISTIC" */
  readonly cudnnConvAlgoSearch: 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
}

export interface OpenSessionOptions {
  /** Threads onnxruntime uses inside one operator. @default onnxruntime's choice (all cores) */
  readonly intraOpThreads?: number;
  /** @default "cpu" */
  readonly executionProvider?: ExecutionProvider;
  /** Used only when `executionProvider` is `cuda`. */
  readonly cuda?: CudaOptions;
}

export interface OnnxSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly executionProvider: ExecutionProvider;
  /** Runs the graph on float32 feeds and returns every float32 output. Blocks this thread. */
  run(feeds: Readonly<Record<string, Float32TensorData>>): Promise<Record<string, Float32TensorData>>;
  release(): Promise<void>;
}

function describe(meta: ort.InferenceSession.ValueMetadata): TensorInfo {
  if (!meta.isTensor) return { name: meta.name, type: 'non-tensor', shape: [] };
  return {
    name: meta.name,
    type: meta.type,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))),
  };
}

/** The `executionProviders` session option for these options (exported for tests). */
export function executionProviders(options: OpenSessionOptions): ort.InferenceSession.SessionOptions['executionProviders'] {
  if ((options.executionProvider ?? 'cpu') === 'cpu') return ['cpu'];
  const cuda = options.cuda ?? { deviceId: 0, memLimitBytes: 0, cudnnConvAlgoSearch: 'HEURISTIC' as const };
  // onnxruntime-node 1.30's binding (js/node/src/session_options_helper.cc) reads only `name`
  // and `deviceId` of this object; the arena limit and cuDNN search are passed under the
  // names of OrtCUDAProviderOptionsV2 for bindings that read them, and the server warns at
  // startup that 1.30 ignores them. A CPU fallback inside onnxruntime is deliberately not
  // listed: a missing CUDA library must fail loudly (or fall back visibly, with `auto`).
  const provider: Record<string, unknown> = {
    name: 'cuda',
    deviceId: cuda.deviceId,
    cudnn_conv_algo_search: cuda.cudnnConvAlgoSearch,
  };
  if (cuda.memLimitBytes > 0) provider.gpu_mem_limit = cuda.memLimitBytes;
  return [provider as unknown as ort.InferenceSession.ExecutionProviderConfig];
}

/**
 * `InferenceSession.create` on a path or on bytes: one implementation, which TypeScript sees as
 * separate overloads that a union argument matches none of.
 */
const createSession = ort.InferenceSession.create as (
  model: string | Uint8Array,
  options: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;

/** Opens an inference session on a model file path or its bytes. */
export async function openSession(model: string | Uint8Array, options: OpenSessionOptions = {}): Promise<OnnxSession> {
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: executionProviders(options),
    graphOptimizationLevel: 'all',
    // One request stream per session: inter-op parallelism only adds thread contention here.
    executionMode: 'sequential',
    interOpNumThreads: 1,
    // onnxruntime's intra-op threads spin, waiting for work, after every parallel section;
    // between runs that burns a core the event loop and sharp's decoding need, and CPU quota
    // in a container (measured: 62 → 53 CPU ms per batch-1 request, latency no worse;
    // BENCHMARKS.md). This stops the spinning when a run returns and restarts it with the
    // next run, so spinning still speeds the sections within a run.
    extra: { session: { force_spinning_stop: '1' } },
  };
  if (options.intraOpThreads !== undefined) sessionOptions.intraOpNumThreads = options.intraOpThreads;
  const session = await createSession(model, sessionOptions);
  const provider: ExecutionProvider = options.executionProvider ?? 'cpu';
  return {
    inputs: session.inputMetadata.map(describe),
    outputs: session.outputMetadata.map(describe),
    executionProvider: provider,
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
      const results = await session.run(ortFeeds);
      const out: Record<string, Float32TensorData> = {};
      for (const [name, tensor] of Object.entries(results)) {
        if (tensor.type !== 'float32') continue;
        out[name] = { data: tensor.data as Float32Array, dims: [...tensor.dims] };
      }
      return out;
    },
    release: () => session.release(),
  };
}

/**
 * Configuration, parsed once from the environment by the entry point, validated with precise
 * messages, frozen and passed down. Nothing else reads `process.env`.
 */

import { parseTrustProxy, TrustProxyError } from './system/trust-proxy.js';
import type { ExecutionProviderChoice } from './inference/execution-provider.js';

export type { ExecutionProviderChoice };
export type CudnnConvAlgoSearch = 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
export type ModelControlMode = 'none' | 'explicit' | 'poll';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** Interface to listen on. @default "0.0.0.0" */
  readonly host: string;
  /** HTTP port. @default 8080 */
  readonly port: number;
  /** Separate port for `/metrics` only; `undefined` serves metrics on `port` alone. */
  readonly metricsPort: number | undefined;
  /** Port of the Open Inference Protocol's gRPC service; 0 disables it. @default 8081 */
  readonly grpcPort: number;
  /** pino log level. @default "info" */
  readonly logLevel: LogLevel;

  /** Folder holding one sub-folder per model. @default "./models" */
  readonly modelRepository: string;
  /** Model served by the short routes (`/v1/predict`); with a single model it is that one. */
  readonly defaultModel: string | undefined;
  /**
   * Copy the shipped trained ResNet-20 (assets/models/resnet20-cifar10) into an empty
   * repository at startup. `SEED_DEFAULT_MODEL`; `BUILD_DEFAULT_MODEL` is its former name,
   * still read. @default true
   */
  readonly seedDefaultModel: boolean;
  /**
   * How the served models change while the server runs (docs/models.md): `none`, every model
   * folder loaded at startup and never again; `explicit`, the models of `modelLoad` at startup,
   * then the repository API (`/v2/repository/...`); `poll`, every model folder at startup, then
   * the repository rescanned every `modelPollIntervalS`. `MODEL_CONTROL_MODE`. @default "none"
   */
  readonly modelControlMode: ModelControlMode;
  /** `explicit` mode: the model names loaded at startup, or `'*'` for every model folder. `MODEL_LOAD` (comma-separated). @default [] */
  readonly modelLoad: readonly string[] | '*';
  /** `poll` mode: seconds between two scans of the repository. `MODEL_POLL_INTERVAL_S`. @default 15 */
  readonly modelPollIntervalS: number;

  /**
   * Largest batch a worker takes from the queue at once; `undefined` leaves it to the provider
   * in use (8 on CPU, 32 on CUDA; see inference/execution-provider.ts).
   */
  readonly batchMaxSize: number | undefined;
  /** How long a partial batch may wait for more items, in ms. @default 0 */
  readonly batchMaxDelayMs: number;
  /** Inference sessions (worker threads) per served model version. @default 1 */
  readonly inferenceWorkers: number;
  /** onnxruntime intra-op threads per session. @default the CPUs this process may use (cgroup quota included) */
  readonly intraOpThreads: number;
  /**
   * Added to the nice value of the inference threads (0 keeps the process's priority), so the
   * event loop and image decoding win a contended core over onnxruntime. Nice ranks threads
   * within one CPU cgroup (a container); on a host without one, it also ranks inference below
   * other processes. @default 10
   */
  readonly inferenceNice: number;
  /**
   * Added to the nice value of libvips' decoding threads (0 keeps the process's priority), so a
   * core busy decoding yields to the event loop at once instead of after a scheduler slice
   * (system/thread-nice.ts). As for `inferenceNice`, nice ranks threads within one CPU cgroup,
   * and on a host without one also below other processes. @default 10
   */
  readonly decodeNice: number;
  /**
   * Preprocessing threads: images of a megapixel or more are decoded into tensors there rather
   * than on the main thread, whose event loop answers every request and probe
   * (preprocess/decode-threads.ts); they run at `decodeNice` too. 0: every image on the main
   * thread. @default 1
   */
  readonly decodeThreads: number;
  /** Images that may wait in one model version's queue before requests are refused. @default 128 */
  readonly queueMaxSize: number;
  /**
   * Bytes the response cache may hold (model output rows per image, their keys and a fixed
   * overhead each; see docs/caching.md); 0 turns it off. Identical images in flight are
   * coalesced whatever this is. @default 0
   */
  readonly responseCacheMaxBytes: number;
  /** Default deadline of a request, in ms; `X-Request-Timeout-Ms` may lower it. @default 30000 */
  readonly requestTimeoutMs: number;

  /** Largest request body or uploaded file, in bytes. @default 10 MiB */
  readonly uploadMaxBytes: number;
  /** Largest JSON body (v1 `instances`, v2 tensors), in bytes. @default 16 MiB */
  readonly jsonBodyMaxBytes: number;
  /** Images one request may carry. @default 32 */
  readonly maxImagesPerRequest: number;
  /** Largest image, in pixels (width × height), checked from the header before decoding. @default 40_000_000 */
  readonly maxImagePixels: number;
  /**
   * Most memory one image's decode may take, in bytes, estimated from its header (the frame at
   * its bit depth and band count, plus a progressive JPEG's coefficients); 413 beyond.
   * @default 256 MiB
   */
  readonly maxImageDecodeBytes: number;
  /**
   * Memory all decodes in flight may take together, in bytes; past it images wait for room
   * (within their deadline). @default 512 MiB
   */
  readonly decodeMemoryBudgetBytes: number;
  /**
   * Bytes received of request bodies not yet complete, all requests together; a chunk past it
   * fails its request with 503 QUEUE_FULL. @default 256 MiB
   */
  readonly bodyMemoryBudgetBytes: number;

  /** Node's `keepAliveTimeout`, in ms; above the idle timeout of load balancers. @default 72000 */
  readonly httpKeepAliveTimeoutMs: number;
  /** Time allowed to receive request headers, in ms. @default 10000 */
  readonly httpHeadersTimeoutMs: number;
  /** Time allowed to receive a whole request, in ms. @default 60000 */
  readonly httpRequestTimeoutMs: number;

  /** @default "cpu" */
  readonly executionProvider: ExecutionProviderChoice;
  /** @default 0 */
  readonly cudaDeviceId: number;
  /** CUDA memory arena limit in bytes; 0 leaves onnxruntime's default (no limit). @default 0 */
  readonly cudaMemLimitBytes: number;
  /** cuDNN convolution algorithm search. @default "HEURISTIC" */
  readonly cudnnConvAlgoSearch: CudnnConvAlgoSearch;

  /** After SIGTERM, keep serving (but report unready) this long, in ms, while endpoints update. @default 0 */
  readonly shutdownDelayMs: number;
  /** Longest wait for queued and in-flight work to finish after the delay, in ms. @default 25000 */
  readonly shutdownTimeoutMs: number;

  /** Bearer keys accepted on the inference routes; empty means no authentication. */
  readonly apiKeys: readonly string[];
  /** Requests per client per window; 0 turns rate limiting off. @default 0 */
  readonly rateLimitMax: number;
  /** Rate-limit window, in ms. @default 60000 */
  readonly rateLimitWindowMs: number;
  /**
   * The proxies whose `X-Forwarded-For` is believed when taking the client's address (rate
   * limit, logs), as IP addresses and CIDR ranges; `false`: the TCP peer is the client.
   * @default false
   */
  readonly trustProxy: false | readonly string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadConfigOptions {
  /** CPUs this process may use; supplied by the entry point (see system/cpu-quota.ts). */
  availableCpus: number;
  /** Reads `API_KEYS_FILE`; injected so that loading stays testable. */
  readFile?: (path: string) => string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The name of every environment variable the server reads; a test checks that config.ts reads
 * none that is missing here and that README's configuration table lists each. Their meanings
 * are documented on the fields of `Config` above.
 */
export const ENV_VARS = [
  'HOST',
  'PORT',
  'METRICS_PORT',
  'GRPC_PORT',
  'LOG_LEVEL',
  'MODEL_REPOSITORY',
  'DEFAULT_MODEL',
  'SEED_DEFAULT_MODEL',
  'BUILD_DEFAULT_MODEL',
  'MODEL_CONTROL_MODE',
  'MODEL_LOAD',
  'MODEL_POLL_INTERVAL_S',
  'BATCH_MAX_SIZE',
  'BATCH_MAX_DELAY_MS',
  'INFERENCE_WORKERS',
  'INTRA_OP_THREADS',
  'INFERENCE_NICE',
  'DECODE_NICE',
  'DECODE_THREADS',
  'QUEUE_MAX_SIZE',
  'RESPONSE_CACHE_MAX_BYTES',
  'REQUEST_TIMEOUT_MS',
  'UPLOAD_MAX_BYTES',
  'JSON_BODY_MAX_BYTES',
  'MAX_IMAGES_PER_REQUEST',
  'MAX_IMAGE_PIXELS',
  'MAX_IMAGE_DECODE_BYTES',
  'DECODE_MEMORY_BUDGET_BYTES',
  'BODY_MEMORY_BUDGET_BYTES',
  'HTTP_KEEP_ALIVE_TIMEOUT_MS',
  'HTTP_HEADERS_TIMEOUT_MS',
  'HTTP_REQUEST_TIMEOUT_MS',
  'EXECUTION_PROVIDER',
  'CUDA_DEVICE_ID',
  'CUDA_MEM_LIMIT_BYTES',
  'CUDNN_CONV_ALGO_SEARCH',
  'SHUTDOWN_DELAY_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'API_KEYS',
  'API_KEYS_FILE',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_WINDOW_MS',
  'TRUST_PROXY',
] as const;

function readInt(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `from ${min} and up` : `from ${min} to ${max}`;
    throw new ConfigError(`Expected \`${name}\` to be an integer ${range}, got \`${raw}\``);
  }
  return value;
}

function readOptionalInt(env: Env, name: string, min: number, max?: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  return readInt(env, name, 0, min, max);
}

function readEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T, normalize = (s: string) => s.toLowerCase()): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = normalize(raw.trim());
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`Expected \`${name}\` to be one of ${allowed.map((a) => `\`${a}\``).join(', ')}, got \`${raw}\``);
  }
  return value as T;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(`Expected \`${name}\` to be true or false, got \`${raw}\``);
}

/**
 * `SEED_DEFAULT_MODEL`, or its former name `BUILD_DEFAULT_MODEL` (which built an untrained
 * resnet50 before a trained model shipped); both set and disagreeing is refused.
 */
function readSeedDefaultModel(env: Env): boolean {
  const seed = readBool(env, 'SEED_DEFAULT_MODEL', true);
  const former = readBool(env, 'BUILD_DEFAULT_MODEL', seed);
  if (env.SEED_DEFAULT_MODEL?.trim() && env.BUILD_DEFAULT_MODEL?.trim() && seed !== former) {
    throw new ConfigError('`SEED_DEFAULT_MODEL` and its former name `BUILD_DEFAULT_MODEL` are both set and disagree; set only `SEED_DEFAULT_MODEL`');
  }
  return env.SEED_DEFAULT_MODEL?.trim() ? seed : former;
}

function readString(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? fallback : raw.trim();
}

/**
 * Smallest response cache that is not off, in bytes: below it no entry would fit (one entry of
 * a 10-class model is charged about 550 bytes, of a 1000-class model about 4.5 KB).
 */
export const RESPONSE_CACHE_MIN_BYTES = 1024;

/** `RESPONSE_CACHE_MAX_BYTES`: 0 (off) or a bound that can hold an entry. */
function readResponseCacheMaxBytes(env: Env): number {
  const value = readInt(env, 'RESPONSE_CACHE_MAX_BYTES', 0, 0);
  if (value > 0 && value < RESPONSE_CACHE_MIN_BYTES) {
    throw new ConfigError(
      `Expected \`RESPONSE_CACHE_MAX_BYTES\` to be 0 (off) or at least ${RESPONSE_CACHE_MIN_BYTES} bytes (a smaller cache could hold no entry), got \`${env.RESPONSE_CACHE_MAX_BYTES}\``,
    );
  }
  return value;
}

/** `TRUST_PROXY`, parsed and bounded by trust-proxy.ts. */
function readTrustProxy(env: Env): false | readonly string[] {
  try {
    return parseTrustProxy(env.TRUST_PROXY);
  } catch (err) {
    if (err instanceof TrustProxyError) throw new ConfigError(err.message);
    throw err;
  }
}

/** `MODEL_LOAD`: model names, comma-separated, or `*` alone for every model folder. */
function readModelLoad(env: Env): readonly string[] | '*' {
  const names = (env.MODEL_LOAD ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  if (names.includes('*')) {
    if (names.length > 1) throw new ConfigError(`Expected \`MODEL_LOAD\` to be \`*\` alone or a list of model names, got \`${env.MODEL_LOAD}\``);
    return '*';
  }
  return Object.freeze(names);
}

function parseKeys(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}

/** Parses and validates the environment; throws `ConfigError` naming the variable at fault. */
export function loadConfig(env: Env, options: LoadConfigOptions): Config {
  const executionProvider = readEnum<ExecutionProviderChoice>(env, 'EXECUTION_PROVIDER', ['cpu', 'cuda', 'auto'], 'cpu');
  const port = readInt(env, 'PORT', 8080, 0, 65535);
  const metricsPort = readOptionalInt(env, 'METRICS_PORT', 0, 65535);
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError(`Expected \`METRICS_PORT\` to differ from \`PORT\` (${port})`);
  }
  const grpcPort = readInt(env, 'GRPC_PORT', 8081, 0, 65535);
  if (grpcPort !== 0 && (grpcPort === port || grpcPort === metricsPort)) {
    throw new ConfigError(`Expected \`GRPC_PORT\` (${grpcPort}) to differ from \`PORT\` and \`METRICS_PORT\`, or to be 0 (off)`);
  }

  let apiKeys = parseKeys(env.API_KEYS ?? '');
  const keysFile = env.API_KEYS_FILE?.trim();
  if (keysFile) {
    const readFile = options.readFile;
    if (!readFile) throw new ConfigError('`API_KEYS_FILE` is set but no file reader was supplied');
    let text: string;
    try {
      text = readFile(keysFile);
    } catch (err) {
      throw new ConfigError(`Could not read \`API_KEYS_FILE\` (${keysFile}): ${(err as Error).message}`);
    }
    apiKeys = [...apiKeys, ...parseKeys(text)];
  }

  const config: Config = {
    host: readString(env, 'HOST', '0.0.0.0'),
    port,
    metricsPort,
    grpcPort,
    logLevel: readEnum<LogLevel>(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    modelRepository: readString(env, 'MODEL_REPOSITORY', './models'),
    defaultModel: env.DEFAULT_MODEL?.trim() || undefined,
    seedDefaultModel: readSeedDefaultModel(env),
    modelControlMode: readEnum<ModelControlMode>(env, 'MODEL_CONTROL_MODE', ['none', 'explicit', 'poll'], 'none'),
    modelLoad: readModelLoad(env),
    modelPollIntervalS: readInt(env, 'MODEL_POLL_INTERVAL_S', 15, 1, 86_400),
    batchMaxSize: readOptionalInt(env, 'BATCH_MAX_SIZE', 1, 1024),
    batchMaxDelayMs: readInt(env, 'BATCH_MAX_DELAY_MS', 0, 0, 10_000),
    inferenceWorkers: readInt(env, 'INFERENCE_WORKERS', 1, 1, 64),
    intraOpThreads: readInt(env, 'INTRA_OP_THREADS', Math.max(1, options.availableCpus), 1, 1024),
    inferenceNice: readInt(env, 'INFERENCE_NICE', 10, 0, 19),
    decodeNice: readInt(env, 'DECODE_NICE', 10, 0, 19),
    decodeThreads: readInt(env, 'DECODE_THREADS', 1, 0, 64),
    queueMaxSize: readInt(env, 'QUEUE_MAX_SIZE', 128, 1),
    responseCacheMaxBytes: readResponseCacheMaxBytes(env),
    requestTimeoutMs: readInt(env, 'REQUEST_TIMEOUT_MS', 30_000, 1),
    uploadMaxBytes: readInt(env, 'UPLOAD_MAX_BYTES', 10 * 1024 * 1024, 1),
    jsonBodyMaxBytes: readInt(env, 'JSON_BODY_MAX_BYTES', 16 * 1024 * 1024, 1),
    maxImagesPerRequest: readInt(env, 'MAX_IMAGES_PER_REQUEST', 32, 1),
    maxImagePixels: readInt(env, 'MAX_IMAGE_PIXELS', 40_000_000, 1),
    maxImageDecodeBytes: readInt(env, 'MAX_IMAGE_DECODE_BYTES', 256 * 1024 * 1024, 1),
    decodeMemoryBudgetBytes: readInt(env, 'DECODE_MEMORY_BUDGET_BYTES', 512 * 1024 * 1024, 1),
    bodyMemoryBudgetBytes: readInt(env, 'BODY_MEMORY_BUDGET_BYTES', 256 * 1024 * 1024, 1),
    httpKeepAliveTimeoutMs: readInt(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1),
    httpHeadersTimeoutMs: readInt(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 1),
    httpRequestTimeoutMs: readInt(env, 'HTTP_REQUEST_TIMEOUT_MS', 60_000, 1),
    executionProvider,
    cudaDeviceId: readInt(env, 'CUDA_DEVICE_ID', 0, 0),
    cudaMemLimitBytes: readInt(env, 'CUDA_MEM_LIMIT_BYTES', 0, 0),
    cudnnConvAlgoSearch: readEnum<CudnnConvAlgoSearch>(env, 'CUDNN_CONV_ALGO_SEARCH', ['EXHAUSTIVE', 'HEURISTIC', 'DEFAULT'], 'HEURISTIC', (s) =>
      s.toUpperCase(),
    ),
    shutdownDelayMs: readInt(env, 'SHUTDOWN_DELAY_MS', 0, 0),
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 25_000, 0),
    apiKeys: Object.freeze(apiKeys),
    rateLimitMax: readInt(env, 'RATE_LIMIT_MAX', 0, 0),
    rateLimitWindowMs: readInt(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1),
    trustProxy: readTrustProxy(env),
  };
  if (config.maxImagesPerRequest > config.queueMaxSize) {
    throw new ConfigError(
      `Expected \`MAX_IMAGES_PER_REQUEST\` (${config.maxImagesPerRequest}) to be at most \`QUEUE_MAX_SIZE\` (${config.queueMaxSize}): a larger request could never be queued`,
    );
  }
  if (config.maxImageDecodeBytes > config.decodeMemoryBudgetBytes) {
    throw new ConfigError(
      `Expected \`MAX_IMAGE_DECODE_BYTES\` (${config.maxImageDecodeBytes}) to be at most \`DECODE_MEMORY_BUDGET_BYTES\` (${config.decodeMemoryBudgetBytes}): a larger image could never be decoded`,
    );
  }
  const largestBody = Math.max(config.uploadMaxBytes, config.jsonBodyMaxBytes);
  if (config.bodyMemoryBudgetBytes < largestBody) {
    throw new ConfigError(
      `Expected \`BODY_MEMORY_BUDGET_BYTES\` (${config.bodyMemoryBudgetBytes}) to be at least the largest body a route takes (${largestBody}, from \`UPLOAD_MAX_BYTES\` and \`JSON_BODY_MAX_BYTES\`)`,
    );
  }
  if (config.modelControlMode !== 'explicit' && env.MODEL_LOAD?.trim()) {
    throw new ConfigError(
      `\`MODEL_LOAD\` applies to \`MODEL_CONTROL_MODE=explicit\` only (it is \`${config.modelControlMode}\`, which loads every model folder)`,
    );
  }
  if (config.httpHeadersTimeoutMs > config.httpRequestTimeoutMs) {
    throw new ConfigError('Expected `HTTP_HEADERS_TIMEOUT_MS` to be at most `HTTP_REQUEST_TIMEOUT_MS`');
  }
  return Object.freeze(config);
}

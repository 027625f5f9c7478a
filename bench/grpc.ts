/**
 * The gRPC benchmark: the gRPC edge (src/grpc/server.ts) beside the HTTP v2 binary path, in
 * the same run, for the two kinds of input this server takes, against the perfect-pipeline
 * limit measured around each level.
 *
 *   npm run bench:grpc [-- --duration 10 --warmup 3 --concurrency 1,32 --rounds 2 --json-clients 1 --batch 8 --image <file> --model <folder> --no-write]
 *
 * Also: --out <file> (default BENCHMARKS.md), --json <file> (every figure, for tools),
 * --grpc-client h2|grpc-js: the gRPC load's client. `h2` (default) makes the same calls with
 * Node's HTTP/2 directly (bench/lib/v2-grpc-h2.ts): grpc-js's client costs 3–5× the HTTP
 * client's CPU per call, and on this machine that CPU comes out of the server's inference.
 *
 * Requests to ResNet-50 (the model builder's, cached in .bench/ as for `npm run bench`):
 * - FP32 [batch,3,224,224], the photos of ../shared/images/photos preprocessed as the model's
 *   config says: gRPC unary ModelInfer with `raw_input_contents` (little-endian), and HTTP with
 *   Triton's binary tensor extension (bench/lib/v2-requests.ts, as `bench:protocol` sends it);
 *   every request's bytes are built once and sent as they are by each call, the HTTP body as
 *   the gRPC message (serialized once), so the clients cost alike and little; the gRPC FP32
 *   request also with its message serialized by each call, as tritonclient does (for a 4.8 MB
 *   tensor that adds 4–6 ms to a lone caller's latency, bench/lib/v2-grpc.ts);
 *   also HTTP JSON (a flat array of numbers, 23.5 MB at batch 8), the reference of the CPU goal,
 *   at the client counts of `--json-clients` only (at 32 clients each of its runs is dominated
 *   by a 10–20 s first burst of JSON parsing);
 * - one JPEG (default ../shared/images/photos/rocket.jpg; each client sends its own copy, a JPEG
 *   comment naming the client, the same pixels, since the server runs identical images in flight
 *   as one inference) as a BYTES tensor of shape [1]: gRPC
 *   unary (raw: a 4-byte little-endian length, then the bytes), gRPC ModelStreamInfer (one
 *   stream per client, one request at a time on it), and HTTP binary.
 *
 * 1. Starts the server built beside this file (`../src/server.js`) on free loopback ports, HTTP
 *    and gRPC (GRPC_PORT), with a repository holding only the model.
 * 2. Checks the answers once, the server idle: every kind answers, output [batch,1000] (or
 *    [1,1000]), and gRPC's logits equal HTTP binary's for the same input.
 * 3. At each client count: measures the limit (below) with the server idle; then in `--rounds`
 *    rounds runs every kind, `--warmup` seconds (and until every client has had an answer) then
 *    `--duration` seconds measured, closed loop; gRPC and HTTP alternate and the order reverses
 *    in every other round, so the machine's drift falls on both alike; then measures the limit
 *    again. The server is let go idle before each run. gRPC unary callers share one channel
 *    (one HTTP/2 connection), as gRPC clients do by default: tritonclient.grpc's Python clients
 *    made with the same arguments share gRPC core's connections (its global subchannel pool),
 *    perf_analyzer's C++ clients share a few channels (TRITON_CLIENT_GRPC_CHANNEL_MAX_SHARE_COUNT
 *    sets how many clients share one); each HTTP client has its own keep-alive
 *    connection (bench/lib/request-loop.ts), as HTTP/1.1 needs.
 * 4. Server CPU per request from /proc over each window: all threads, the inference threads
 *    (`ort-inference`) and the rest, "outside inference" (event loop, where grpc-js and Fastify
 *    run; libuv's pool, where sharp decodes; V8's helpers).
 * 5. The perfect-pipeline limit at a level: onnxruntime alone in this process (bench/lib/
 *    onnx-direct.ts, the server's intra-op threads) and sharp's preprocessing of the JPEG
 *    (bench/preprocess.ts), each measured just before and just after the level, the server idle,
 *    and averaged (this shared VM's speed drifts by up to 2× within minutes):
 *    - FP32: batch × 1000 / (onnxruntime ms at that batch), whatever the clients: each request
 *      is one batch, and inference takes every core;
 *    - JPEG at 1 client: 1000 / (preprocessing wall ms + batch-1 ms), a lone request in a closed
 *      loop overlaps nothing;
 *    - JPEG at more clients: 1000 / (best ms per image at a batch the clients can fill, up to
 *      the server's BATCH_MAX_SIZE, + preprocessing CPU ms / cores), as `npm run bench` has it.
 * 6. Prints, and appends to BENCHMARKS.md, images/s, ratio to the limit, p50/p99, errors and the
 *    CPU figures per kind and client count, each run on its own too, and the issue's goals:
 *    gRPC images/s ≥ HTTP binary's; gRPC FP32 server CPU outside inference ≤ 1/5 of JSON FP32's.
 *
 * Server settings come from the environment, as for the server itself. Unless the environment
 * sets them, the benchmark sets (as `bench:protocol` does, so that it measures the protocols
 * rather than the server's limits): JSON_BODY_MAX_BYTES 32 MiB (the JSON FP32 body is over the
 * default 16 MiB); BODY_MEMORY_BUDGET_BYTES 1.25 × clients × the largest body sent at that count
 * (over the default 256 MiB only if JSON FP32 runs at many clients: 32 × 23.5 MB needs 940 MiB);
 * QUEUE_MAX_SIZE batch × most clients; REQUEST_TIMEOUT_MS 120 s.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ENV_VARS, loadConfig, type Config } from '../src/config.js';
import { DEFAULT_BATCH_MAX_SIZE } from '../src/inference/execution-provider.js';
import { decoderVersions } from '../src/preprocess/sharp-pipeline.js';
import type { ResolvedModelInput } from '../src/serving/model-config.js';
import { availableCpus, cgroupCpuLimit } from '../src/system/cpu-quota.js';
import { ensureModel, photoBatch, prepareRepository, readModelInput } from './lib/bench-model.js';
import { runCallLoop } from './lib/call-loop.js';
import { commandLine, positive } from './lib/cli.js';
import { ownCpuSeconds, readMachineTimes } from './lib/cpu-usage.js';
import { createCpuWindow, type WindowCpu } from './lib/cpu-window.js';
import { httpGet } from './lib/http-get.js';
import { measureDirectInference } from './lib/onnx-direct.js';
import { findRepoRoot, revision, versionOf } from './lib/repo-root.js';
import { runRequestLoop, type RequestLoopResult } from './lib/request-loop.js';
import { createV2GrpcH2Client } from './lib/v2-grpc-h2.js';
import { waitUntilIdle } from './lib/server-idle.js';
import { freePort, startServer } from './lib/server-process.js';
import { parsePrometheusText, sumOf } from './lib/prometheus-text.js';
import { withUniqueTag } from './lib/unique-images.js';
import { quantile } from './lib/stats.js';
import {
  bytesGrpcRequest,
  checkGrpcFp32Answer,
  createV2GrpcClient,
  fp32GrpcRequest,
  readGrpcFp32Output,
  type GrpcRequest,
  type V2GrpcClient,
  type V2GrpcStream,
} from './lib/v2-grpc.js';
import { bytesBinaryRequest, checkFp32Answer, fp32BinaryRequest, fp32JsonRequest, readV2Answer, type V2Request } from './lib/v2-requests.js';
import { measurePreprocessCost } from './preprocess.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = findRepoRoot(HERE);
/** The server of the same build as this file, so the benchmark measures the code it was built with. */
const SERVER_ENTRY = resolve(HERE, '..', 'src', 'server.js');
const PROTO = join(ROOT, 'proto', 'grpc_service.proto');
const CACHE = join(ROOT, '.bench');
const PHOTOS = resolve(ROOT, '..', 'shared', 'images', 'photos');
const DEFAULT_IMAGE = join(PHOTOS, 'rocket.jpg');
const REPOSITORY = join(CACHE, 'grpc-repository');
const SERVER_LOG = join(CACHE, 'grpc-server.log');
/** The thread name of the inference worker and of onnxruntime's threads (src/inference/worker.ts). */
const INFERENCE_THREADS = 'ort-inference';
/** Set for the server whatever the environment says: no keys, no rate limit (keys are never printed). GRPC_PORT is added. */
const FORCED_SERVER_ENV: Readonly<Record<string, string>> = { API_KEYS: '', API_KEYS_FILE: '', RATE_LIMIT_MAX: '0' };
/** Set by the benchmark itself, so not part of the command that reproduces it. */
const OWN_SERVER_ENV = ['HOST', 'PORT', 'GRPC_PORT', 'MODEL_REPOSITORY', 'DEFAULT_MODEL', 'SEED_DEFAULT_MODEL'];
const BENCH_JSON_BODY_MAX_BYTES = 32 * 1024 * 1024;
/** The server's BODY_MEMORY_BUDGET_BYTES default (src/config.ts). */
const DEFAULT_BODY_BUDGET_BYTES = 256 * 1024 * 1024;
/** REQUEST_TIMEOUT_MS unless set, in ms. */
const BENCH_REQUEST_TIMEOUT_MS = 120_000;
/** Rounds of onnxruntime alone in each limit measurement (bench/lib/onnx-direct.ts). */
const REFERENCE_ROUNDS = 5;
/** Passes over the JPEG in each preprocessing measurement. */
const REFERENCE_PREPROCESS_ITERATIONS = 20;

// ---------------------------------------------------------------------------------------------
// Arguments

interface Args {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: number[];
  readonly jsonClients: number[];
  readonly rounds: number;
  readonly batch: number;
  readonly image: string;
  readonly modelDir: string | undefined;
  readonly write: boolean;
  readonly out: string;
  readonly json: string | undefined;
  /** The gRPC client the load comes from: `h2` (v2-grpc-h2.ts, the default) or `grpc-js`. */
  readonly grpcClient: 'h2' | 'grpc-js';
}

function clientList(name: string, value: string): number[] {
  if (value.trim() === '' || value.trim() === 'none') return [];
  return value.split(',').map((c) => positive(name, c.trim(), { integer: true }));
}

function parseCliArgs(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '1,32' },
      'json-clients': { type: 'string', default: '1' },
      rounds: { type: 'string', default: '2' },
      batch: { type: 'string', default: '8' },
      image: { type: 'string', default: DEFAULT_IMAGE },
      model: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      out: { type: 'string', default: 'BENCHMARKS.md' },
      json: { type: 'string' },
      'grpc-client': { type: 'string', default: 'h2' },
    },
  });
  const grpcClient = values['grpc-client'];
  if (grpcClient !== 'h2' && grpcClient !== 'grpc-js') throw new Error(`--grpc-client ${grpcClient}: expected h2 or grpc-js`);
  const image = resolve(values.image);
  if (!existsSync(image)) throw new Error(`--image ${values.image}: no such file`);
  const concurrency = clientList('concurrency', values.concurrency);
  if (concurrency.length === 0) throw new Error('--concurrency must name at least one client count');
  const jsonClients = clientList('json-clients', values['json-clients']);
  const stray = jsonClients.filter((c) => !concurrency.includes(c));
  if (stray.length > 0) throw new Error(`--json-clients ${stray.join(',')}: not in --concurrency ${concurrency.join(',')}`);
  return {
    durationSeconds: positive('duration', values.duration),
    warmupSeconds: positive('warmup', values.warmup, { zero: true }),
    concurrency,
    jsonClients,
    rounds: positive('rounds', values.rounds, { integer: true }),
    batch: positive('batch', values.batch, { integer: true }),
    image,
    modelDir: values.model === undefined ? undefined : resolve(values.model),
    write: !values['no-write'],
    out: resolve(ROOT, values.out),
    json: values.json === undefined ? undefined : resolve(values.json),
    grpcClient,
  };
}

const mibAbove = (bytes: number) => Math.ceil(bytes / 2 ** 20) * 2 ** 20;

// ---------------------------------------------------------------------------------------------
// The kinds of request

type KindId = 'grpc-fp32' | 'grpc-fp32-per-call' | 'http-fp32-binary' | 'http-fp32-json' | 'grpc-jpeg' | 'grpc-stream-jpeg' | 'http-jpeg-binary';
type Input = 'FP32' | 'JPEG';

interface Kind {
  readonly id: KindId;
  readonly label: string;
  readonly input: Input;
  readonly transport: 'gRPC unary' | 'gRPC stream' | 'HTTP binary' | 'HTTP JSON';
  /** Bytes of the request's payload (the HTTP body, or the tensor bytes of the gRPC message). */
  readonly bytes: number;
  /** Images a request carries. */
  readonly images: number;
  readonly outputShape: readonly number[];
  readonly http?: V2Request;
  /** The message, or (as HTTP's body) the message serialized once. */
  readonly grpc?: GrpcRequest;
  /**
   * JPEG kinds: what client `i` sends instead, the JPEG under bytes of its own (a comment per
   * client, the same pixels), since the server runs identical images in flight as one.
   */
  readonly perClient?: { readonly http?: readonly V2Request[]; readonly grpc?: readonly GrpcRequest[] };
}

/** The kinds run at `clients`, in the order of an odd round: per input, gRPC and HTTP alternate. */
function kindsAt(kinds: readonly Kind[], clients: number, args: Args): Kind[] {
  const order: KindId[] = ['grpc-fp32', 'http-fp32-binary', 'grpc-fp32-per-call', 'http-fp32-json', 'grpc-jpeg', 'http-jpeg-binary', 'grpc-stream-jpeg'];
  return order.filter((id) => id !== 'http-fp32-json' || args.jsonClients.includes(clients)).map((id) => kinds.find((k) => k.id === id)!);
}

async function postOnce(url: string, request: V2Request): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body });
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => (headers[k] = v));
  return { status: response.status, headers, body: Buffer.from(await response.arrayBuffer()) };
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

interface AnswerCheck {
  readonly what: string;
  readonly maxAbsDifference: number;
  readonly maxAbsLogit: number;
}

/**
 * Sends each kind once with the server idle: every answer right in shape and framing, and the
 * logits of every gRPC kind and of JSON equal to HTTP binary's for the same input (the same
 * float32 values to the same session at the same batch: any difference means an edge decoded
 * the input or encoded the answer wrongly).
 */
async function checkAnswers(url: string, grpc: V2GrpcClient, kinds: readonly Kind[], outputName: string, timeoutMs: number): Promise<AnswerCheck[]> {
  const logits = new Map<KindId, Float32Array>();
  const never = new AbortController().signal;
  for (const kind of kinds) {
    let data: Float32Array | Error;
    if (kind.http !== undefined) {
      const answer = await postOnce(url, kind.http);
      if (answer.status !== 200) throw new Error(`${kind.label}: the server answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 300)}`);
      const problem = checkFp32Answer(answer.headers, answer.body, outputName, kind.outputShape, kind.transport === 'HTTP binary');
      if (problem !== undefined) throw new Error(`${kind.label}: ${problem}`);
      data = readV2Answer(answer.headers, answer.body).find((o) => o.name === outputName)!.data!;
    } else if (kind.transport === 'gRPC stream') {
      const stream = grpc.openStream();
      try {
        data = readGrpcFp32Output(await stream.infer(kind.grpc!, never), outputName, kind.outputShape);
      } finally {
        stream.close();
      }
    } else {
      data = readGrpcFp32Output(await grpc.infer(kind.grpc!, never, timeoutMs), outputName, kind.outputShape);
    }
    if (data instanceof Error) throw new Error(`${kind.label}: ${data.message}`);
    if (!data.every(Number.isFinite)) throw new Error(`${kind.label}: the logits are not all finite`);
    logits.set(kind.id, data);
  }
  const checks: AnswerCheck[] = [];
  for (const kind of kinds) {
    const reference: KindId = kind.input === 'FP32' ? 'http-fp32-binary' : 'http-jpeg-binary';
    if (kind.id === reference) continue;
    const a = logits.get(kind.id)!;
    const b = logits.get(reference)!;
    const check = {
      what: `${kind.label} vs ${kinds.find((k) => k.id === reference)!.label}`,
      maxAbsDifference: maxAbsDifference(a, b),
      maxAbsLogit: b.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
    };
    if (!(check.maxAbsDifference <= 1e-5 * Math.max(1, check.maxAbsLogit)))
      throw new Error(`${check.what}: the logits differ by up to ${check.maxAbsDifference}`);
    checks.push(check);
  }
  return checks;
}

// ---------------------------------------------------------------------------------------------
// The limit

/** onnxruntime alone and preprocessing, measured with the server idle. */
interface Reference {
  /** ms per run at each batch size measured. */
  readonly msPerBatch: Readonly<Record<number, number>>;
  readonly preprocessCpuMs: number;
  readonly preprocessWallMs: number;
  /** Cores other processes kept busy meanwhile. */
  readonly otherCores: number;
}

async function measureReference(
  modelPath: string,
  input: ResolvedModelInput,
  image: string,
  intraOpThreads: number,
  batchSizes: readonly number[],
): Promise<Reference> {
  const machine = readMachineTimes();
  const own = ownCpuSeconds();
  const started = performance.now();
  const preprocess = await measurePreprocessCost(input.preprocess, [image], { iterations: REFERENCE_PREPROCESS_ITERATIONS });
  const timings = await measureDirectInference({ modelPath, intraOpThreads, batchSizes, itemDims: input.shape.slice(1), rounds: REFERENCE_ROUNDS });
  const seconds = (performance.now() - started) / 1000;
  const busy = readMachineTimes().busySeconds - machine.busySeconds;
  return {
    msPerBatch: Object.fromEntries(timings.map((t) => [t.batchSize, t.msPerBatch])),
    preprocessCpuMs: preprocess.cpuMsPerImage,
    preprocessWallMs: preprocess.msPerImageWall,
    otherCores: Math.max(0, (busy - (ownCpuSeconds() - own)) / seconds),
  };
}

/** The perfect pipeline's images/s for `input` at `clients` (see the header, step 5). */
function limitOf(r: Reference, input: Input, clients: number, batch: number, maxBatch: number, cores: number): number {
  if (input === 'FP32') return (batch * 1000) / r.msPerBatch[batch]!;
  if (clients === 1) return 1000 / (r.preprocessWallMs + r.msPerBatch[1]!);
  const fillable = Object.entries(r.msPerBatch)
    .map(([b, ms]) => ({ b: Number(b), ms }))
    .filter(({ b }) => b <= Math.min(clients, maxBatch));
  const bestMsPerImage = Math.min(...fillable.map(({ b, ms }) => ms / b));
  return 1000 / (bestMsPerImage + r.preprocessCpuMs / cores);
}

// ---------------------------------------------------------------------------------------------
// Runs

interface Run {
  readonly clients: number;
  readonly round: number;
  readonly kind: KindId;
  readonly load: Omit<RequestLoopResult, 'latenciesMs' | 'errors'> & { readonly errors: Record<string, number> };
  readonly latenciesMs: number[];
  readonly cpu: WindowCpu;
  readonly loadAverage: number;
  /** Images per batch the server formed over the whole run (warm-up included), from its /metrics. */
  readonly meanBatch: number;
}

interface Target {
  readonly url: string;
  /** The server's base URL, for /metrics. */
  readonly baseUrl: string;
  readonly grpc: V2GrpcClient;
  readonly pid: number;
  readonly outputName: string;
  readonly timeoutMs: number;
}

/** The server's inference_batch_size histogram, summed over its models. */
async function batchSizes(url: string): Promise<{ readonly sum: number; readonly count: number }> {
  const answer = await httpGet(`${url}/metrics`);
  if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}`);
  const samples = parsePrometheusText(answer.body);
  return { sum: sumOf(samples, 'inference_batch_size_sum'), count: sumOf(samples, 'inference_batch_size_count') };
}

async function runOne(target: Target, kind: Kind, clients: number, round: number, args: Args): Promise<Run> {
  const batchesBefore = await batchSizes(target.baseUrl);
  const window = createCpuWindow(target.pid, INFERENCE_THREADS);
  const phases = { warmupSeconds: args.warmupSeconds, durationSeconds: args.durationSeconds, onWindowStart: window.start, onWindowEnd: window.end };
  let load: RequestLoopResult;
  if (kind.http !== undefined) {
    const binary = kind.transport === 'HTTP binary';
    load = await runRequestLoop({
      url: target.url,
      headers: kind.http.headers,
      body: kind.http.body,
      ...(kind.perClient?.http ? { perConnection: kind.perClient.http } : {}),
      check: (a) => checkFp32Answer(a.headers, a.body, target.outputName, kind.outputShape, binary),
      connections: clients,
      timeoutMs: target.timeoutMs,
      ...phases,
    });
  } else if (kind.transport === 'gRPC stream') {
    const streams: V2GrpcStream[] = Array.from({ length: clients }, () => target.grpc.openStream());
    try {
      load = await runCallLoop({
        clients,
        call: async (client, signal) => {
          try {
            return checkGrpcFp32Answer(await streams[client]!.infer(kind.perClient?.grpc?.[client] ?? kind.grpc!, signal), target.outputName, kind.outputShape);
          } catch (err) {
            // A stream that failed is done: the next call opens another.
            if (!signal.aborted) {
              streams[client]!.close();
              streams[client] = target.grpc.openStream();
            }
            throw err;
          }
        },
        ...phases,
      });
    } finally {
      for (const s of streams) s.close();
    }
  } else {
    load = await runCallLoop({
      clients,
      call: async (client, signal) =>
        checkGrpcFp32Answer(
          await target.grpc.infer(kind.perClient?.grpc?.[client] ?? kind.grpc!, signal, target.timeoutMs),
          target.outputName,
          kind.outputShape,
        ),
      ...phases,
    });
  }
  const { latenciesMs, errors, ...rest } = load;
  const batchesAfter = await batchSizes(target.baseUrl);
  return {
    meanBatch: (batchesAfter.sum - batchesBefore.sum) / (batchesAfter.count - batchesBefore.count),
    clients,
    round,
    kind: kind.id,
    load: { ...rest, errors: Object.fromEntries(errors) },
    latenciesMs,
    cpu: window.result(),
    loadAverage: loadavg()[0]!,
  };
}

// ---------------------------------------------------------------------------------------------
// Figures

interface Level {
  readonly clients: number;
  readonly before: Reference;
  readonly after: Reference;
  /** Limit per input: the mean of the limits before and after. */
  readonly limit: Readonly<Record<Input, number>>;
  readonly limitBefore: Readonly<Record<Input, number>>;
  readonly limitAfter: Readonly<Record<Input, number>>;
}

interface Figures {
  readonly clients: number;
  readonly kind: KindId;
  readonly runs: number;
  readonly ok: number;
  readonly requestsPerSecond: number;
  readonly imagesPerSecond: number;
  readonly ratio: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly errorDetail: string;
  /** Server CPU ms per answered request: all threads, the inference threads, the rest, the main thread. */
  readonly totalMs: number;
  readonly inferenceMs: number;
  readonly outsideMs: number;
  readonly mainMs: number;
  /** Cores over the windows: other processes (machine minus server minus this process). */
  readonly otherCores: number;
}

function figuresOf(runs: readonly Run[], kind: Kind, level: Level): Figures {
  const sum = (f: (r: Run) => number) => runs.reduce((a, r) => a + f(r), 0);
  const seconds = sum((r) => r.load.windowSeconds);
  const ok = sum((r) => r.load.ok);
  const latencies = runs.flatMap((r) => r.latenciesMs);
  const errors = new Map<string, number>();
  for (const r of runs) for (const [k, n] of Object.entries(r.load.errors)) errors.set(k, (errors.get(k) ?? 0) + n);
  const total = sum((r) => r.cpu.serverSeconds);
  const inference = sum((r) => r.cpu.inferenceSeconds);
  const perRequest = (s: number) => (ok > 0 ? (s * 1000) / ok : Number.NaN);
  const imagesPerSecond = (ok * kind.images) / seconds;
  return {
    clients: runs[0]!.clients,
    kind: kind.id,
    runs: runs.length,
    ok,
    requestsPerSecond: ok / seconds,
    imagesPerSecond,
    ratio: imagesPerSecond / level.limit[kind.input],
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    errors: [...errors.values()].reduce((a, b) => a + b, 0),
    errorDetail: [...errors].map(([k, n]) => `${n}× ${k}`).join(', '),
    totalMs: perRequest(total),
    inferenceMs: perRequest(inference),
    outsideMs: perRequest(total - inference),
    mainMs: perRequest(sum((r) => r.cpu.mainSeconds)),
    otherCores: Math.max(0, (sum((r) => r.cpu.machineBusySeconds) - total - sum((r) => r.cpu.benchSeconds)) / seconds),
  };
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(bytes < 1e6 ? 3 : 1)} MB`;

function table(header: string[], rows: string[][], textColumns: number): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < textColumns ? ':---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const runOutsideMs = (r: Run) => (r.load.ok > 0 ? ((r.cpu.serverSeconds - r.cpu.inferenceSeconds) * 1000) / r.load.ok : Number.NaN);

interface Report {
  readonly date: string;
  readonly command: string;
  readonly machine: string;
  readonly versions: string;
  readonly revision: string;
  readonly settings: string;
  readonly benchSettings: string;
  readonly loadBefore: string;
  readonly model: string;
  readonly workload: string;
  readonly kinds: ReadonlyArray<Omit<Kind, 'http' | 'grpc'>>;
  readonly checks: readonly AnswerCheck[];
  readonly levels: readonly Level[];
  readonly figures: readonly Figures[];
  readonly runs: readonly Run[];
  readonly args: Args;
}

/** `a` over `b` for one figure, over all rounds and per round. */
function ratioOf(
  r: Report,
  clients: number,
  a: KindId,
  b: KindId,
  of: (run: Run, kind: Kind) => number,
  all: (f: Figures) => number,
): { all: number; perRound: number[] } {
  const fig = (id: KindId) => r.figures.find((f) => f.clients === clients && f.kind === id)!;
  const kind = (id: KindId) => r.kinds.find((k) => k.id === id)! as Kind;
  const rounds = [...new Set(r.runs.filter((x) => x.clients === clients).map((x) => x.round))];
  const perRound = rounds.map((round) => {
    const run = (id: KindId) => r.runs.find((x) => x.clients === clients && x.round === round && x.kind === id)!;
    return of(run(a), kind(a)) / of(run(b), kind(b));
  });
  return { all: all(fig(a)) / all(fig(b)), perRound };
}

function goals(r: Report): string[] {
  const lines: string[] = [];
  const has = (c: number, id: KindId) => r.figures.some((f) => f.clients === c && f.kind === id);
  const fig = (c: number, id: KindId) => r.figures.find((f) => f.clients === c && f.kind === id)!;
  const imagesPerSecond = (run: Run, kind: Kind) => (run.load.ok * kind.images) / run.load.windowSeconds;
  for (const c of r.args.concurrency) {
    const who = `${c} client${c === 1 ? '' : 's'}`;
    for (const [grpcId, httpId, input] of [
      ['grpc-fp32', 'http-fp32-binary', 'FP32'],
      ['grpc-fp32-per-call', 'http-fp32-binary', 'FP32'],
      ['grpc-jpeg', 'http-jpeg-binary', 'JPEG'],
      ['grpc-stream-jpeg', 'http-jpeg-binary', 'JPEG'],
    ] as const) {
      const t = ratioOf(r, c, grpcId, httpId, imagesPerSecond, (f) => f.imagesPerSecond);
      const errors = fig(c, grpcId).errors + fig(c, httpId).errors;
      const label =
        grpcId === 'grpc-stream-jpeg' ? `${input} (gRPC stream)` : grpcId === 'grpc-fp32-per-call' ? `${input} (gRPC message encoded per call)` : input;
      lines.push(
        `- ${who}, ${label}: gRPC/HTTP binary images/s = ${f1(fig(c, grpcId).imagesPerSecond)} / ${f1(fig(c, httpId).imagesPerSecond)} = **${f3(t.all)}** ` +
          `(per round: ${t.perRound.map(f3).join(', ')}); ${errors} errors → **${t.all >= 1 && errors === 0 ? 'met' : 'not met'}** (≥ 1)`,
      );
    }
    if (has(c, 'http-fp32-json')) {
      const cpu = ratioOf(
        r,
        c,
        'grpc-fp32',
        'http-fp32-json',
        (run) => runOutsideMs(run),
        (f) => f.outsideMs,
      );
      const bin = ratioOf(
        r,
        c,
        'http-fp32-binary',
        'http-fp32-json',
        (run) => runOutsideMs(run),
        (f) => f.outsideMs,
      );
      const errors = fig(c, 'grpc-fp32').errors + fig(c, 'http-fp32-json').errors;
      lines.push(
        `- ${who}, FP32: gRPC/HTTP JSON server CPU outside inference = ${f1(fig(c, 'grpc-fp32').outsideMs)} / ${f1(fig(c, 'http-fp32-json').outsideMs)} ms = **${f3(cpu.all)}** ` +
          `(per round: ${cpu.perRound.map(f3).join(', ')}); ${errors} errors → **${cpu.all <= 0.2 && errors === 0 ? 'met' : 'not met'}** (≤ 0.2). ` +
          `HTTP binary, for comparison: ${f1(fig(c, 'http-fp32-binary').outsideMs)} / ${f1(fig(c, 'http-fp32-json').outsideMs)} ms = ${f3(bin.all)}.`,
      );
    }
  }
  return lines;
}

function renderMarkdown(r: Report): string {
  const kind = new Map(r.kinds.map((k) => [k.id, k]));
  const main = table(
    [
      'clients',
      'request',
      'payload',
      'requests/s',
      'images/s',
      '× limit',
      'p50 ms',
      'p99 ms',
      'errors',
      'server CPU ms/request',
      'inference threads ms/request',
      '**outside inference ms/request**',
      'of which main thread',
      'other processes (cores)',
    ],
    r.figures.map((f) => {
      const level = r.levels.find((l) => l.clients === f.clients)!;
      return [
        String(f.clients),
        kind.get(f.kind)!.label,
        mb(kind.get(f.kind)!.bytes),
        f2(f.requestsPerSecond),
        f1(f.imagesPerSecond),
        `${f2(f.ratio)} (of ${f1(level.limit[kind.get(f.kind)!.input])})`,
        f1(f.p50),
        f1(f.p99),
        f.errors === 0 ? '0' : `${f.errors} (${f.errorDetail})`,
        f1(f.totalMs),
        f1(f.inferenceMs),
        `**${f1(f.outsideMs)}**`,
        f1(f.mainMs),
        f2(f.otherCores),
      ];
    }),
    2,
  );
  const batches = [...new Set(r.levels.flatMap((l) => Object.keys(l.before.msPerBatch).map(Number)))].sort((a, b) => a - b);
  const limits = table(
    [
      'clients',
      'when',
      ...batches.map((b) => `onnxruntime batch ${b} ms`),
      'JPEG preprocessing CPU ms',
      'wall ms',
      'other processes (cores)',
      'FP32 limit images/s',
      'JPEG limit images/s',
    ],
    r.levels.flatMap((l) =>
      (['before', 'after'] as const).map((when) => {
        const ref = l[when];
        const lim = when === 'before' ? l.limitBefore : l.limitAfter;
        return [
          String(l.clients),
          when,
          ...batches.map((b) => f1(ref.msPerBatch[b] ?? Number.NaN)),
          f2(ref.preprocessCpuMs),
          f2(ref.preprocessWallMs),
          f2(ref.otherCores),
          f1(lim.FP32),
          f1(lim.JPEG),
        ];
      }),
    ),
    2,
  );
  const perRun = table(
    [
      'clients',
      'round',
      'request',
      'warm-up s',
      'window s',
      'answers',
      'images/s',
      'server CPU ms/request',
      'inference ms/request',
      'outside ms/request',
      'mean batch (whole run)',
      'server threads (CPU s in the window)',
      'bench process cores',
      'load avg',
    ],
    r.runs.map((x) => [
      String(x.clients),
      String(x.round),
      kind.get(x.kind)!.label,
      f1(x.load.warmupSeconds),
      f1(x.load.windowSeconds),
      String(x.load.ok),
      f1((x.load.ok * kind.get(x.kind)!.images) / x.load.windowSeconds),
      f1((x.cpu.serverSeconds * 1000) / x.load.ok),
      f1((x.cpu.inferenceSeconds * 1000) / x.load.ok),
      f1(runOutsideMs(x)),
      f2(x.meanBatch),
      x.cpu.groups
        .filter((g) => g.seconds >= 0.005)
        .map((g) => `${g.group} ${f2(g.seconds)}`)
        .join(', '),
      f2(x.cpu.benchSeconds / x.load.windowSeconds),
      f2(x.loadAverage),
    ]),
    3,
  );
  return [
    `## ${r.date} — gRPC vs HTTP v2 (${r.model})`,
    '',
    `- command: \`${r.command}\` (bench/grpc.ts; see its header for what it measures)`,
    `- machine: ${r.machine}`,
    `- versions: ${r.versions}`,
    `- code: ${r.revision}`,
    `- server settings: ${r.settings}`,
    `- set by the benchmark (unless the environment sets them): ${r.benchSettings}`,
    `- load average before the run: ${r.loadBefore}`,
    `- workload: ${r.workload}`,
    '',
    "Answers checked once, the server idle (shape, framing); largest absolute difference between logits and HTTP binary's for the same input:",
    '',
    ...r.checks.map((c) => `- ${c.what}: ${c.maxAbsDifference.toExponential(2)} (largest logit ${f2(c.maxAbsLogit)})`),
    '',
    'The perfect-pipeline limit, measured just before and just after each level with the server idle (each level is compared with the mean of the two): ' +
      'FP32 = batch × 1000 / (onnxruntime ms at that batch); JPEG at 1 client = 1000 / (preprocessing wall ms + batch-1 ms); ' +
      'JPEG at more clients = 1000 / (best ms per image at a batch the clients can fill + preprocessing CPU ms / cores):',
    '',
    limits,
    '',
    'Every kind and client count over all rounds (CPU from /proc over the measured windows, divided by the answers completed in them; inference threads = `ort-inference`; outside inference = every other thread of the server: event loop (grpc-js, Fastify), libuv pool (sharp), V8 helpers):',
    '',
    main,
    '',
    "Goals (the issue): gRPC throughput ≥ the HTTP binary path's; gRPC FP32 server CPU outside inference ≤ 1/5 of the JSON path's:",
    '',
    ...goals(r),
    '',
    'Each run (gRPC and HTTP alternate; every other round in reverse order):',
    '',
    perRun,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

function describeSettings(config: Config): string {
  return [
    `BATCH_MAX_SIZE ${config.batchMaxSize ?? `${DEFAULT_BATCH_MAX_SIZE.cpu} (default)`}`,
    `BATCH_MAX_DELAY_MS ${config.batchMaxDelayMs}`,
    `INFERENCE_WORKERS ${config.inferenceWorkers}`,
    `INTRA_OP_THREADS ${config.intraOpThreads}`,
    `QUEUE_MAX_SIZE ${config.queueMaxSize}`,
    `JSON_BODY_MAX_BYTES ${config.jsonBodyMaxBytes}`,
    `BODY_MEMORY_BUDGET_BYTES ${config.bodyMemoryBudgetBytes}`,
    `REQUEST_TIMEOUT_MS ${config.requestTimeoutMs}`,
    `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
    `LOG_LEVEL ${config.logLevel}`,
  ].join(', ');
}

async function main(): Promise<void> {
  const args = parseCliArgs(process.argv.slice(2));
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const cores = availableCpus();
  const cgroup = cgroupCpuLimit();
  const maxClients = Math.max(...args.concurrency);

  await mkdir(CACHE, { recursive: true });
  const model = await ensureModel(args.modelDir, join(CACHE, 'models'));
  const input = await readModelInput(model.dir);
  const jpeg = readFileSync(args.image);
  const photos = await photoBatch(input, args.batch, PHOTOS);
  const tensorShape = [args.batch, ...input.shape.slice(1)];
  const http = {
    'http-fp32-json': fp32JsonRequest(input.name, tensorShape, photos.data),
    'http-fp32-binary': fp32BinaryRequest(input.name, tensorShape, photos.data),
    'http-jpeg-binary': bytesBinaryRequest('image', [jpeg]),
  } as const;
  const bodyAt = (c: number) => Math.max(http['http-fp32-binary'].body.length, ...(args.jsonClients.includes(c) ? [http['http-fp32-json'].body.length] : []));

  const unset = (k: string) => process.env[k] === undefined || process.env[k] === '';
  const jsonBody = http['http-fp32-json'].body.length;
  const benchEnv: Record<string, string> = {
    ...(unset('JSON_BODY_MAX_BYTES') ? { JSON_BODY_MAX_BYTES: String(Math.max(BENCH_JSON_BODY_MAX_BYTES, mibAbove(jsonBody))) } : {}),
    ...(unset('BODY_MEMORY_BUDGET_BYTES')
      ? { BODY_MEMORY_BUDGET_BYTES: String(Math.max(DEFAULT_BODY_BUDGET_BYTES, ...args.concurrency.map((c) => mibAbove(bodyAt(c) * c * 1.25)))) }
      : {}),
    ...(unset('QUEUE_MAX_SIZE') ? { QUEUE_MAX_SIZE: String(Math.max(128, args.batch * maxClients)) } : {}),
    ...(unset('REQUEST_TIMEOUT_MS') ? { REQUEST_TIMEOUT_MS: String(BENCH_REQUEST_TIMEOUT_MS) } : {}),
  };
  const grpcPort = await freePort();
  const serverEnv = { ...benchEnv, ...FORCED_SERVER_ENV, GRPC_PORT: String(grpcPort) };
  const config = loadConfig({ ...process.env, ...serverEnv }, { availableCpus: cores });
  if (config.executionProvider !== 'cpu') throw new Error('This benchmark measures the CPU execution provider; unset EXECUTION_PROVIDER');
  if (args.batch > config.maxImagesPerRequest) throw new Error(`--batch ${args.batch} exceeds MAX_IMAGES_PER_REQUEST ${config.maxImagesPerRequest}`);
  if (args.batch * maxClients > config.queueMaxSize)
    throw new Error(`--batch ${args.batch} × ${maxClients} clients exceeds QUEUE_MAX_SIZE ${config.queueMaxSize}: requests would be refused by design`);
  if (args.jsonClients.length > 0 && jsonBody > config.jsonBodyMaxBytes)
    throw new Error(`The JSON FP32 body is ${jsonBody} bytes, over JSON_BODY_MAX_BYTES ${config.jsonBodyMaxBytes}`);
  const maxBatch = config.batchMaxSize ?? DEFAULT_BATCH_MAX_SIZE.cpu;
  const referenceBatches = [...new Set([1, args.batch, maxBatch])].sort((a, b) => a - b);

  const versions = decoderVersions();
  const date = new Date().toISOString();
  const command = commandLine({
    serverEnv: ENV_VARS,
    forced: FORCED_SERVER_ENV,
    own: OWN_SERVER_ENV,
    npmScript: 'bench:grpc',
    direct: `node ${relative(ROOT, fileURLToPath(import.meta.url))}`,
  });
  const revisionAtStart = revision(ROOT, ['src', 'proto']);
  const machine =
    `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores (nproc ${availableParallelism()}), cgroup CPU limit ${cgroup ?? 'none'} → ${cores} cores for the server, ` +
    `${(totalmem() / 2 ** 30).toFixed(1)} GiB memory; a shared VM whose speed drifts (other tenants), so figures vary from run to run`;
  process.stdout.write(
    `gRPC benchmark ${date}\n${command}\nmachine: ${machine}\nload average: ${loadBefore}\nmodel: ${model.dir} (input ${input.name} [${input.shape.join(', ')}])\n`,
  );

  await prepareRepository(model, REPOSITORY);
  process.stdout.write(`Starting ${relative(ROOT, SERVER_ENTRY)} with GRPC_PORT ${grpcPort} (log: ${SERVER_LOG}) ...\n`);
  const server = await startServer({
    entry: SERVER_ENTRY,
    env: { ...serverEnv, MODEL_REPOSITORY: REPOSITORY, DEFAULT_MODEL: model.name, SEED_DEFAULT_MODEL: 'false' },
    logPath: SERVER_LOG,
  });
  const grpc = (args.grpcClient === 'h2' ? createV2GrpcH2Client : createV2GrpcClient)(`127.0.0.1:${grpcPort}`, PROTO);
  const runs: Run[] = [];
  const levels: Level[] = [];
  let report: Report;
  try {
    const metadataAnswer = await httpGet(`${server.baseUrl}/v2/models/${encodeURIComponent(model.name)}`);
    if (metadataAnswer.status !== 200) throw new Error(`GET /v2/models/${model.name} answered ${metadataAnswer.status}`);
    const metadata = JSON.parse(metadataAnswer.body) as { inputs: Array<{ name: string }>; outputs: Array<{ name: string; shape: number[] }> };
    if (metadata.inputs[0]?.name !== input.name) throw new Error(`The server names the input ${metadata.inputs[0]?.name}, the model file ${input.name}`);
    const output = metadata.outputs[0]!;
    const classes = output.shape[output.shape.length - 1]!;
    const fp32 = `FP32 [${tensorShape.join(',')}]`;
    const fp32Grpc = fp32GrpcRequest(model.name, input.name, tensorShape, photos.data);
    const jpegGrpc = bytesGrpcRequest(model.name, 'image', [jpeg]);
    // One variant of the JPEG per client (each has one request in flight at a time).
    const jpegs = Array.from({ length: maxClients }, (_, i) => withUniqueTag(jpeg, `client ${i}`));
    const jpegGrpcPerClient = jpegs.map((j) => grpc.encode(bytesGrpcRequest(model.name, 'image', [j])));
    const jpegHttpPerClient = jpegs.map((j) => bytesBinaryRequest('image', [j]));
    const fp32Out = [args.batch, classes];
    const jpegOut = [1, classes];
    const kinds: Kind[] = [
      {
        id: 'grpc-fp32',
        label: `${fp32} gRPC`,
        input: 'FP32',
        transport: 'gRPC unary',
        bytes: fp32Grpc.raw_input_contents[0]!.length,
        images: args.batch,
        outputShape: fp32Out,
        grpc: grpc.encode(fp32Grpc),
      },
      {
        id: 'grpc-fp32-per-call',
        label: `${fp32} gRPC, encoded per call`,
        input: 'FP32',
        transport: 'gRPC unary',
        bytes: fp32Grpc.raw_input_contents[0]!.length,
        images: args.batch,
        outputShape: fp32Out,
        grpc: fp32Grpc,
      },
      {
        id: 'http-fp32-binary',
        label: `${fp32} HTTP binary`,
        input: 'FP32',
        transport: 'HTTP binary',
        bytes: http['http-fp32-binary'].body.length,
        images: args.batch,
        outputShape: fp32Out,
        http: http['http-fp32-binary'],
      },
      {
        id: 'http-fp32-json',
        label: `${fp32} HTTP JSON`,
        input: 'FP32',
        transport: 'HTTP JSON',
        bytes: jsonBody,
        images: args.batch,
        outputShape: fp32Out,
        http: http['http-fp32-json'],
      },
      {
        id: 'grpc-jpeg',
        label: 'JPEG BYTES [1] gRPC',
        input: 'JPEG',
        transport: 'gRPC unary',
        bytes: jpegGrpc.raw_input_contents[0]!.length,
        images: 1,
        outputShape: jpegOut,
        grpc: grpc.encode(jpegGrpc),
        perClient: { grpc: jpegGrpcPerClient },
      },
      {
        id: 'grpc-stream-jpeg',
        label: 'JPEG BYTES [1] gRPC stream',
        input: 'JPEG',
        transport: 'gRPC stream',
        bytes: jpegGrpc.raw_input_contents[0]!.length,
        images: 1,
        outputShape: jpegOut,
        grpc: grpc.encode(jpegGrpc),
        perClient: { grpc: jpegGrpcPerClient },
      },
      {
        id: 'http-jpeg-binary',
        label: 'JPEG BYTES [1] HTTP binary',
        input: 'JPEG',
        transport: 'HTTP binary',
        bytes: http['http-jpeg-binary'].body.length,
        images: 1,
        outputShape: jpegOut,
        http: http['http-jpeg-binary'],
        perClient: { http: jpegHttpPerClient },
      },
    ];
    for (const k of kinds) process.stdout.write(`  ${k.label}: ${k.bytes} bytes\n`);
    const target: Target = {
      url: `${server.baseUrl}/v2/models/${encodeURIComponent(model.name)}/infer`,
      baseUrl: server.baseUrl,
      grpc,
      pid: server.pid,
      outputName: output.name,
      timeoutMs: config.requestTimeoutMs + 10_000,
    };

    const checked = kinds.filter((k) => k.id !== 'http-fp32-json' || args.jsonClients.length > 0);
    const checks = await checkAnswers(target.url, grpc, checked, output.name, target.timeoutMs);
    for (const c of checks) process.stdout.write(`  check ${c.what}: max |Δ| ${c.maxAbsDifference.toExponential(2)} (largest logit ${f2(c.maxAbsLogit)})\n`);

    const measureNow = async (clients: number) => {
      if (!(await waitUntilIdle(server.pid))) process.stdout.write('  warning: the server did not go idle within 30 s; the limit may be low\n');
      const ref = await measureReference(join(model.dir, 'model.onnx'), input, args.image, config.intraOpThreads, referenceBatches);
      const limit = { FP32: limitOf(ref, 'FP32', clients, args.batch, maxBatch, cores), JPEG: limitOf(ref, 'JPEG', clients, args.batch, maxBatch, cores) };
      process.stdout.write(
        `  limit (server idle): ${referenceBatches.map((b) => `batch ${b} ${f1(ref.msPerBatch[b]!)} ms`).join(', ')}, preprocessing ${f2(ref.preprocessCpuMs)} CPU ms / ${f2(ref.preprocessWallMs)} wall ms ` +
          `→ FP32 ${f1(limit.FP32)}, JPEG ${f1(limit.JPEG)} images/s at ${clients} client${clients === 1 ? '' : 's'} (other processes ${f2(ref.otherCores)} cores)\n`,
      );
      return { ref, limit };
    };

    for (const clients of args.concurrency) {
      const before = await measureNow(clients);
      const atLevel = kindsAt(kinds, clients, args);
      for (let round = 1; round <= args.rounds; round++) {
        const order = round % 2 === 1 ? atLevel : [...atLevel].reverse();
        for (const kind of order) {
          if (!(await waitUntilIdle(server.pid))) process.stdout.write('  warning: the server did not go idle within 30 s\n');
          process.stdout.write(`${clients} client${clients === 1 ? '' : 's'}, round ${round}, ${kind.label} (load ${loadavg()[0]!.toFixed(2)}) ... `);
          const run = await runOne(target, kind, clients, round, args);
          runs.push(run);
          const errors = Object.values(run.load.errors).reduce((a, b) => a + b, 0);
          process.stdout.write(
            `${run.load.ok} answers in ${f1(run.load.windowSeconds)} s (warm-up ${f1(run.load.warmupSeconds)} s): ${f1((run.load.ok * kind.images) / run.load.windowSeconds)} images/s, ` +
              `p50 ${f1(quantile(run.latenciesMs, 0.5))} ms, errors ${errors}${
                errors > 0
                  ? ` (${Object.entries(run.load.errors)
                      .map(([k, n]) => `${n}× ${k}`)
                      .join(', ')})`
                  : ''
              }; ` +
              `server CPU ${f1((run.cpu.serverSeconds * 1000) / run.load.ok)} ms/request, inference ${f1((run.cpu.inferenceSeconds * 1000) / run.load.ok)}, outside ${f1(runOutsideMs(run))} ` +
              `[${run.cpu.groups
                .filter((g) => g.seconds >= 0.005)
                .map((g) => `${g.group}×${g.threads} ${f2(g.seconds)} s`)
                .join(', ')}]\n`,
          );
        }
      }
      const after = await measureNow(clients);
      levels.push({
        clients,
        before: before.ref,
        after: after.ref,
        limitBefore: before.limit,
        limitAfter: after.limit,
        limit: { FP32: (before.limit.FP32 + after.limit.FP32) / 2, JPEG: (before.limit.JPEG + after.limit.JPEG) / 2 },
      });
    }

    const figures = args.concurrency.flatMap((c) => {
      const level = levels.find((l) => l.clients === c)!;
      return kindsAt(kinds, c, args).map((k) =>
        figuresOf(
          runs.filter((r) => r.clients === c && r.kind === k.id),
          k,
          level,
        ),
      );
    });
    report = {
      date,
      command,
      machine,
      versions:
        `node ${process.version}, onnxruntime-node ${versionOf(ROOT, 'onnxruntime-node')}, @grpc/grpc-js ${versionOf(ROOT, '@grpc/grpc-js')} (server${args.grpcClient === 'grpc-js' ? ' and client' : '; the client: Node http2, bench/lib/v2-grpc-h2.ts'}), ` +
        `@grpc/proto-loader ${versionOf(ROOT, '@grpc/proto-loader')}, fastify ${versionOf(ROOT, 'fastify')}, sharp ${versions.sharp} (libvips ${versions.libvips})`,
      revision: revisionAtStart,
      settings: describeSettings(config),
      benchSettings:
        Object.keys(benchEnv).length === 0
          ? 'nothing (the environment set them all)'
          : Object.entries(benchEnv)
              .map(([k, v]) => `${k} ${v}`)
              .join(', '),
      loadBefore,
      model: model.name === 'resnet50' && args.modelDir === undefined ? 'resnet50 from the model builder' : model.dir,
      workload:
        `FP32 tensor = ${photos.names.join(', ')} from ../shared/images/photos preprocessed here as the model's config says; JPEG = ${relative(resolve(ROOT, '..'), args.image)} (${jpeg.length} bytes); ` +
        `closed loop, every answer read and checked; each request's bytes built once and sent as they are by every call (the HTTP body; the gRPC message serialized once), ` +
        `except "gRPC, encoded per call" (the message serialized by every call, as tritonclient does); gRPC unary: all clients on one channel; gRPC stream: one ModelStreamInfer stream per client, one request in flight on each; ` +
        `HTTP: one keep-alive connection per client; HTTP JSON FP32 at ${args.jsonClients.length > 0 ? args.jsonClients.join(',') : 'no'} client count(s) only; ` +
        `${args.rounds} round${args.rounds === 1 ? '' : 's'} per client count, each run ${args.warmupSeconds} s warm-up (longer until every client had an answer) then ${args.durationSeconds} s measured, the server idle before each run`,
      kinds: kinds.map(({ http: _http, grpc: _grpc, ...k }) => k),
      checks,
      levels,
      figures,
      runs,
      args,
    };
  } finally {
    grpc.close();
    const code = await server.stop();
    if (code !== 0) process.stderr.write(`warning: the server exited with code ${code}; see ${SERVER_LOG}\n`);
  }

  if (args.json !== undefined) await writeFile(args.json, `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderMarkdown(report);
  process.stdout.write(`\n${markdown}\n`);
  if (args.write) {
    await appendFile(args.out, `\n${markdown}`);
    process.stdout.write(`Appended to ${args.out}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:grpc failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

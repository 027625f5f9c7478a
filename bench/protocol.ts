/**
 * The v2 protocol benchmark: what the framing of a request costs the server, JSON against
 * Triton's binary tensor extension, for the two kinds of v2 input this server takes.
 *
 *   npm run bench:protocol [-- --duration 10 --warmup 5 --concurrency 1,32 --rounds 2 --batch 8 --image <file> --model <folder> --no-write]
 *
 * Also: --out <file> (default BENCHMARKS.md), --json <file> (every figure, for tools).
 *
 * Four requests to ResNet-50 (the model builder's, cached in .bench/ as for `npm run bench`):
 * - FP32 [batch,3,224,224] as JSON: `data` a flat array of numbers, as tritonclient writes it
 *   (each float32 as the shortest decimal of its double; 23.5 MB at batch 8). The tensor is
 *   real: the photos of ../shared/images/photos preprocessed as the model's config says.
 * - the same tensor binary: `Inference-Header-Content-Length`, no Content-Type (as
 *   tritonclient sends it), `parameters.binary_data_output: true`;
 * - one JPEG (default ../shared/images/photos/rocket.jpg, the one JPEG photo there) as a BYTES
 *   tensor of shape [1], base64 in JSON;
 * - the same JPEG binary (a 4-byte little-endian length, then the bytes).
 * Each client sends its own copy of the JPEG (a JPEG comment naming the client, the same
 * pixels): the server runs identical images in flight as one inference.
 *
 * 1. Starts the server built beside this file (`../src/server.js`: run from dist/ that is
 *    dist/src/server.js) on a free loopback port with a repository holding only the model.
 * 2. Checks the answers once, the server idle: every kind answers 200, in the framing asked
 *    for, with output shape [batch,1000] (or [1,1000]); JSON and binary logits agree.
 * 3. At each client count (closed loop, keep-alive, one connection per client), in `--rounds`
 *    rounds, runs each kind for `--warmup` seconds (and until every client has had an answer)
 *    then `--duration` seconds measured; the order alternates JSON and binary, and reverses in
 *    every other round, so the machine's drift falls on both alike. Every answer is read and
 *    checked (status 200, framing, output shape). The server is let go idle between runs.
 * 4. Server CPU per request, from /proc over the window (bench/lib/cpu-usage.ts): all of the
 *    server's threads; the inference threads (`ort-inference`: the inference worker names its
 *    thread so, and onnxruntime's intra-op threads inherit the name); and the rest, "outside
 *    inference" (the event loop, libuv's pool where sharp decodes, V8's helper threads),
 *    divided by the answers completed in the window. The issue's goal: binary FP32 costs at
 *    most 1/5 of JSON FP32 in server CPU outside inference.
 * 5. Prints, and appends to BENCHMARKS.md, requests/s, p50/p99 latency, errors and those CPU
 *    figures per kind and client count, each run on its own too, with the machine, versions,
 *    load and the command.
 *
 * Server settings come from the environment, as for the server itself. Unless the environment
 * sets them, the benchmark sets, so that it measures the framing rather than the server's limits:
 * - JSON_BODY_MAX_BYTES 32 MiB: the JSON FP32 body is over the default 16 MiB;
 * - BODY_MEMORY_BUDGET_BYTES 1.25 × most clients × the largest body (940 MiB at 32 clients): at
 *   the default 256 MiB, 32 clients of 23.5 MB bodies sometimes got nothing but 503 QUEUE_FULL
 *   for a whole 20 s run (seemingly every body partly in, the budget full, each refused and resent);
 * - QUEUE_MAX_SIZE batch × most clients, so the FP32 load fits the queue;
 * - REQUEST_TIMEOUT_MS 120 s: 32 clients of JSON FP32 wait 10–20 s here, near the default 30 s,
 *   and a request past its deadline would spend CPU on no answer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ENV_VARS, loadConfig, type Config } from '../src/config.js';
import { DEFAULT_BATCH_MAX_SIZE } from '../src/inference/execution-provider.js';
import { decoderVersions } from '../src/preprocess/sharp-pipeline.js';
import { availableCpus, cgroupCpuLimit } from '../src/system/cpu-quota.js';
import { ensureModel, photoBatch, prepareRepository, readModelInput } from './lib/bench-model.js';
import { commandLine, positive } from './lib/cli.js';
import { ownCpuSeconds, readMachineTimes, readThreadTimes, threadGroupDelta, type MachineTimes, type ThreadTimes } from './lib/cpu-usage.js';
import { httpGet } from './lib/http-get.js';
import { findRepoRoot, revision, versionOf } from './lib/repo-root.js';
import { runRequestLoop, type RequestLoopResult } from './lib/request-loop.js';
import { waitUntilIdle } from './lib/server-idle.js';
import { startServer } from './lib/server-process.js';
import { quantile } from './lib/stats.js';
import { withUniqueTag } from './lib/unique-images.js';
import { bytesBinaryRequest, bytesJsonRequest, checkFp32Answer, fp32BinaryRequest, fp32JsonRequest, readV2Answer, type V2Request } from './lib/v2-requests.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = findRepoRoot(HERE);
/** The server of the same build as this file, so the benchmark measures the code it was built with. */
const SERVER_ENTRY = resolve(HERE, '..', 'src', 'server.js');
const CACHE = join(ROOT, '.bench');
const PHOTOS = resolve(ROOT, '..', 'shared', 'images', 'photos');
const DEFAULT_IMAGE = join(PHOTOS, 'rocket.jpg');
const DEFAULT_MODEL_DIR = join(CACHE, 'models', 'resnet50');
const REPOSITORY = join(CACHE, 'protocol-repository');
const SERVER_LOG = join(CACHE, 'protocol-server.log');
/** The thread name of the inference worker and of onnxruntime's threads (src/inference/worker.ts). */
const INFERENCE_THREADS = 'ort-inference';
/**
 * Set for the server whatever the environment says: no keys, no rate limit (and keys are never
 * printed), and no gRPC listener (this measures the HTTP edge, and a fixed gRPC port would
 * collide with any other server on the machine).
 */
const FORCED_SERVER_ENV: Readonly<Record<string, string>> = { API_KEYS: '', API_KEYS_FILE: '', RATE_LIMIT_MAX: '0', GRPC_PORT: '0' };
/** Set by the benchmark itself, so not part of the command that reproduces it. */
const OWN_SERVER_ENV = ['HOST', 'PORT', 'MODEL_REPOSITORY', 'DEFAULT_MODEL', 'SEED_DEFAULT_MODEL'];
/** JSON_BODY_MAX_BYTES unless set: room for the JSON FP32 body (23.5 MB at batch 8). */
const BENCH_JSON_BODY_MAX_BYTES = 32 * 1024 * 1024;
/** The server's BODY_MEMORY_BUDGET_BYTES default (src/config.ts). */
const DEFAULT_BODY_BUDGET_BYTES = 256 * 1024 * 1024;
/** REQUEST_TIMEOUT_MS unless set, and the clients' own wait for an answer, in ms. */
const BENCH_REQUEST_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// Arguments

interface Args {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: number[];
  readonly rounds: number;
  readonly batch: number;
  readonly image: string;
  readonly modelDir: string | undefined;
  readonly write: boolean;
  readonly out: string;
  readonly json: string | undefined;
}

function parseCliArgs(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,32' },
      rounds: { type: 'string', default: '2' },
      batch: { type: 'string', default: '8' },
      image: { type: 'string', default: DEFAULT_IMAGE },
      model: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      out: { type: 'string', default: 'BENCHMARKS.md' },
      json: { type: 'string' },
    },
  });
  const image = resolve(values.image);
  if (!existsSync(image)) throw new Error(`--image ${values.image}: no such file`);
  return {
    durationSeconds: positive('duration', values.duration),
    warmupSeconds: positive('warmup', values.warmup, { zero: true }),
    concurrency: values.concurrency.split(',').map((c) => positive('concurrency', c.trim(), { integer: true })),
    rounds: positive('rounds', values.rounds, { integer: true }),
    batch: positive('batch', values.batch, { integer: true }),
    image,
    modelDir: values.model === undefined ? undefined : resolve(values.model),
    write: !values['no-write'],
    out: resolve(ROOT, values.out),
    json: values.json === undefined ? undefined : resolve(values.json),
  };
}

// ---------------------------------------------------------------------------------------------
// Model, repository, tensors

/** The next whole MiB at or above `bytes`. */
function mibAbove(bytes: number): number {
  return Math.ceil(bytes / 2 ** 20) * 2 ** 20;
}

// ---------------------------------------------------------------------------------------------
// The four kinds of request

type Framing = 'JSON' | 'binary';

interface Kind {
  readonly id: 'fp32-json' | 'fp32-binary' | 'jpeg-json' | 'jpeg-binary';
  readonly label: string;
  readonly framing: Framing;
  readonly request: V2Request;
  /**
   * JPEG kinds: what connection `i` sends instead, the JPEG under bytes of its own (a comment
   * per client, the same pixels), since the server runs identical images in flight as one.
   */
  readonly perConnection?: readonly V2Request[];
  /** Images a request carries. */
  readonly images: number;
  readonly outputShape: readonly number[];
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

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

interface AnswerCheck {
  readonly what: string;
  readonly maxAbsDifference: number;
  readonly maxAbsLogit: number;
}

/**
 * Sends each kind once with the server idle and checks the answers: 200, framing, shape; JSON
 * and binary logits the same for the same input. Also compares the FP32 row of the JPEG's photo
 * with the answer to the JPEG itself (the same preprocessing, client side and server side).
 */
async function checkAnswers(url: string, kinds: readonly Kind[], outputName: string, imageRow: number | undefined): Promise<AnswerCheck[]> {
  const logits = new Map<Kind['id'], Float32Array>();
  for (const kind of kinds) {
    const answer = await postOnce(url, kind.request);
    if (answer.status !== 200) throw new Error(`${kind.label}: the server answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 300)}`);
    const problem = checkFp32Answer(answer.headers, answer.body, outputName, kind.outputShape, kind.framing === 'binary');
    if (problem !== undefined) throw new Error(`${kind.label}: ${problem}`);
    const out = readV2Answer(answer.headers, answer.body).find((o) => o.name === outputName)!;
    if (!out.data!.every(Number.isFinite)) throw new Error(`${kind.label}: the logits are not all finite`);
    logits.set(kind.id, out.data!);
  }
  const checks: AnswerCheck[] = [];
  for (const input of ['fp32', 'jpeg'] as const) {
    const json = logits.get(`${input}-json`)!;
    const binary = logits.get(`${input}-binary`)!;
    const check = {
      what: `${input === 'fp32' ? 'FP32' : 'JPEG'}: JSON vs binary`,
      maxAbsDifference: maxAbsDifference(json, binary),
      maxAbsLogit: maxAbs(json),
    };
    // Both carry the same float32 values to the same batch of the same session: any
    // difference beyond rounding means one framing decoded the input or encoded the answer wrongly.
    if (!(check.maxAbsDifference <= 1e-5 * Math.max(1, check.maxAbsLogit))) {
      throw new Error(`${check.what}: the logits differ by up to ${check.maxAbsDifference} (largest logit ${check.maxAbsLogit})`);
    }
    checks.push(check);
  }
  if (imageRow !== undefined) {
    const fp32 = logits.get('fp32-binary')!;
    const classes = fp32.length / kinds.find((k) => k.id === 'fp32-binary')!.outputShape[0]!;
    const row = fp32.subarray(imageRow * classes, (imageRow + 1) * classes);
    const jpeg = logits.get('jpeg-binary')!;
    checks.push({
      what: `FP32 row ${imageRow} (the JPEG preprocessed here) vs the JPEG preprocessed by the server (batch ${kinds[0]!.images} vs 1)`,
      maxAbsDifference: maxAbsDifference(row, jpeg),
      maxAbsLogit: maxAbs(jpeg),
    });
  }
  return checks;
}

// ---------------------------------------------------------------------------------------------
// Runs

interface ServerCpu {
  /** CPU seconds of all the server's threads over the window. */
  readonly totalSeconds: number;
  readonly inferenceSeconds: number;
  readonly mainSeconds: number;
  /** Every thread group, for the record. */
  readonly groups: ReadonlyArray<{ readonly group: string; readonly threads: number; readonly seconds: number }>;
}

interface Run {
  readonly connections: number;
  readonly round: number;
  readonly kind: Kind['id'];
  readonly load: Omit<RequestLoopResult, 'latenciesMs' | 'errors'> & { readonly errors: Record<string, number> };
  readonly latenciesMs: number[];
  readonly server: ServerCpu;
  readonly benchSeconds: number;
  readonly machineBusySeconds: number;
  readonly stealSeconds: number;
  readonly loadAverage: number;
}

async function runOne(
  url: string,
  pid: number,
  kind: Kind,
  connections: number,
  round: number,
  args: Args,
  outputName: string,
  requestTimeoutMs: number,
): Promise<Run> {
  let threads: ThreadTimes | undefined;
  let machine: MachineTimes | undefined;
  let bench = 0;
  let server: ServerCpu | undefined;
  let machineBusySeconds = 0;
  let stealSeconds = 0;
  let benchSeconds = 0;
  const load = await runRequestLoop({
    url,
    headers: kind.request.headers,
    body: kind.request.body,
    ...(kind.perConnection ? { perConnection: kind.perConnection } : {}),
    check: (a) => checkFp32Answer(a.headers, a.body, outputName, kind.outputShape, kind.framing === 'binary'),
    connections,
    warmupSeconds: args.warmupSeconds,
    durationSeconds: args.durationSeconds,
    // A little past the server's deadline, so the server's answer (504) is what counts.
    timeoutMs: requestTimeoutMs + 10_000,
    onWindowStart: () => {
      threads = readThreadTimes(pid);
      machine = readMachineTimes();
      bench = ownCpuSeconds();
    },
    onWindowEnd: () => {
      const groups = threadGroupDelta(pid, threads!, readThreadTimes(pid));
      const now = readMachineTimes();
      benchSeconds = ownCpuSeconds() - bench;
      machineBusySeconds = now.busySeconds - machine!.busySeconds;
      stealSeconds = now.stealSeconds - machine!.stealSeconds;
      const of = (name: string) => groups.filter((g) => g.group === name).reduce((a, g) => a + g.seconds, 0);
      server = { totalSeconds: groups.reduce((a, g) => a + g.seconds, 0), inferenceSeconds: of(INFERENCE_THREADS), mainSeconds: of('main'), groups };
    },
  });
  const { latenciesMs, errors, ...rest } = load;
  return {
    connections,
    round,
    kind: kind.id,
    load: { ...rest, errors: Object.fromEntries(errors) },
    latenciesMs,
    server: server!,
    benchSeconds,
    machineBusySeconds,
    stealSeconds,
    loadAverage: loadavg()[0]!,
  };
}

// ---------------------------------------------------------------------------------------------
// Figures

interface Figures {
  readonly connections: number;
  readonly kind: Kind['id'];
  readonly runs: number;
  readonly windowSeconds: number;
  readonly ok: number;
  readonly requestsPerSecond: number;
  readonly imagesPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly errorDetail: string;
  /** Server CPU ms per answered request: all threads, the inference threads, the rest, the rest's main thread. */
  readonly totalMs: number;
  readonly inferenceMs: number;
  readonly outsideMs: number;
  readonly mainMs: number;
  /** Cores over the window: server, this process, other processes, steal. */
  readonly serverCores: number;
  readonly benchCores: number;
  readonly otherCores: number;
  readonly stealCores: number;
}

function figuresOf(runs: readonly Run[], kind: Kind): Figures {
  const sum = (f: (r: Run) => number) => runs.reduce((a, r) => a + f(r), 0);
  const seconds = sum((r) => r.load.windowSeconds);
  const ok = sum((r) => r.load.ok);
  const latencies = runs.flatMap((r) => r.latenciesMs);
  const errors = new Map<string, number>();
  for (const r of runs) for (const [k, n] of Object.entries(r.load.errors)) errors.set(k, (errors.get(k) ?? 0) + n);
  const total = sum((r) => r.server.totalSeconds);
  const inference = sum((r) => r.server.inferenceSeconds);
  const perRequest = (s: number) => (ok > 0 ? (s * 1000) / ok : Number.NaN);
  return {
    connections: runs[0]!.connections,
    kind: kind.id,
    runs: runs.length,
    windowSeconds: seconds,
    ok,
    requestsPerSecond: ok / seconds,
    imagesPerSecond: (ok * kind.images) / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    errors: [...errors.values()].reduce((a, b) => a + b, 0),
    errorDetail: [...errors].map(([k, n]) => `${n}× ${k}`).join(', '),
    totalMs: perRequest(total),
    inferenceMs: perRequest(inference),
    outsideMs: perRequest(total - inference),
    mainMs: perRequest(sum((r) => r.server.mainSeconds)),
    serverCores: total / seconds,
    benchCores: sum((r) => r.benchSeconds) / seconds,
    otherCores: Math.max(0, (sum((r) => r.machineBusySeconds) - total - sum((r) => r.benchSeconds)) / seconds),
    stealCores: sum((r) => r.stealSeconds) / seconds,
  };
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(bytes < 1e6 ? 3 : 1)} MB`;

/** A Markdown table, its first `textColumns` columns aligned left and the numbers right. */
function table(header: string[], rows: string[][], textColumns: number): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < textColumns ? ':---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function runOutside(r: Run): number {
  return r.load.ok > 0 ? ((r.server.totalSeconds - r.server.inferenceSeconds) * 1000) / r.load.ok : Number.NaN;
}

interface Report {
  readonly date: string;
  readonly command: string;
  readonly machine: string;
  readonly versions: string;
  readonly revision: string;
  readonly settings: string;
  readonly loadBefore: string;
  readonly model: string;
  readonly workload: string;
  readonly kinds: ReadonlyArray<{ readonly id: Kind['id']; readonly label: string; readonly bodyBytes: number }>;
  readonly checks: readonly AnswerCheck[];
  readonly figures: readonly Figures[];
  readonly runs: readonly Run[];
  readonly args: Args;
}

/** Binary over JSON outside inference, per client count, for `input`: over all rounds, and per round. */
function ratios(r: Report, input: 'fp32' | 'jpeg', connections: number): { all: number; perRound: number[] } {
  const fig = (id: Kind['id']) => r.figures.find((f) => f.connections === connections && f.kind === id)!;
  const all = fig(`${input}-binary`).outsideMs / fig(`${input}-json`).outsideMs;
  const rounds = [...new Set(r.runs.map((x) => x.round))];
  const perRound = rounds.map((round) => {
    const run = (id: Kind['id']) => r.runs.find((x) => x.connections === connections && x.round === round && x.kind === id)!;
    return runOutside(run(`${input}-binary`)) / runOutside(run(`${input}-json`));
  });
  return { all, perRound };
}

function renderMarkdown(r: Report): string {
  const label = new Map(r.kinds.map((k) => [k.id, k.label]));
  const body = new Map(r.kinds.map((k) => [k.id, k.bodyBytes]));
  const main = table(
    [
      'clients',
      'request',
      'body',
      'requests/s',
      'images/s',
      'p50 ms',
      'p99 ms',
      'errors',
      'server CPU ms/request',
      'inference threads ms/request',
      '**outside inference ms/request**',
      'of which main thread',
      'other processes (cores)',
    ],
    r.figures.map((f) => [
      String(f.connections),
      label.get(f.kind)!,
      mb(body.get(f.kind)!),
      f2(f.requestsPerSecond),
      f1(f.imagesPerSecond),
      f1(f.p50),
      f1(f.p99),
      f.errors === 0 ? '0' : `${f.errors} (${f.errorDetail})`,
      f1(f.totalMs),
      f1(f.inferenceMs),
      `**${f1(f.outsideMs)}**`,
      f1(f.mainMs),
      f2(f.otherCores),
    ]),
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
      'requests/s',
      'server CPU ms/request',
      'inference ms/request',
      'outside ms/request',
      'server threads (CPU s in the window)',
      'bench process cores',
      'other processes cores',
      'load avg',
    ],
    r.runs.map((x) => [
      String(x.connections),
      String(x.round),
      label.get(x.kind)!,
      f1(x.load.warmupSeconds),
      f1(x.load.windowSeconds),
      String(x.load.ok),
      f2(x.load.ok / x.load.windowSeconds),
      f1((x.server.totalSeconds * 1000) / x.load.ok),
      f1((x.server.inferenceSeconds * 1000) / x.load.ok),
      f1(runOutside(x)),
      x.server.groups
        .filter((g) => g.seconds >= 0.005)
        .map((g) => `${g.group} ${f2(g.seconds)}`)
        .join(', '),
      f2(x.benchSeconds / x.load.windowSeconds),
      f2(Math.max(0, x.machineBusySeconds - x.server.totalSeconds - x.benchSeconds) / x.load.windowSeconds),
      f2(x.loadAverage),
    ]),
    3,
  );
  const goal: string[] = [];
  for (const c of r.args.concurrency) {
    const fp32 = ratios(r, 'fp32', c);
    const jpeg = ratios(r, 'jpeg', c);
    const errors = r.figures.filter((f) => f.connections === c && f.kind.startsWith('fp32')).reduce((a, f) => a + f.errors, 0);
    const fig = (id: Kind['id']) => r.figures.find((f) => f.connections === c && f.kind === id)!;
    goal.push(
      `- ${c} client${c === 1 ? '' : 's'}: FP32 binary/JSON outside inference = ${f1(fig('fp32-binary').outsideMs)} / ${f1(fig('fp32-json').outsideMs)} ms = **${f3(fp32.all)}** ` +
        `(per round: ${fp32.perRound.map(f3).join(', ')}); ${errors} errors → **${fp32.all <= 0.2 && errors === 0 ? 'met' : 'not met'}** (≤ 0.2). ` +
        `JPEG, for comparison: ${f1(fig('jpeg-binary').outsideMs)} / ${f1(fig('jpeg-json').outsideMs)} ms = ${f3(jpeg.all)} (per round: ${jpeg.perRound.map(f3).join(', ')}).`,
    );
  }
  return [
    `## ${r.date} — v2 protocol: JSON vs binary tensors (${r.model})`,
    '',
    `- command: \`${r.command}\``,
    `- machine: ${r.machine}`,
    `- versions: ${r.versions}`,
    `- code: ${r.revision}`,
    `- server settings: ${r.settings}`,
    `- load average before the run: ${r.loadBefore}`,
    `- workload: ${r.workload}`,
    '',
    'Answers checked once, the server idle (each kind 200, in the framing asked for, output shape as expected); largest absolute difference between logits:',
    '',
    ...r.checks.map((c) => `- ${c.what}: ${c.maxAbsDifference.toExponential(2)} (largest logit ${f2(c.maxAbsLogit)})`),
    '',
    "Every kind and client count over all rounds (CPU from /proc over the measured windows, divided by the answers completed in them; inference threads = `ort-inference`, the inference worker and onnxruntime's intra-op threads; outside inference = every other thread of the server: event loop, libuv pool (sharp), V8 helpers):",
    '',
    main,
    '',
    'Goal (the issue): binary FP32 costs ≤ 1/5 of JSON FP32 in server CPU outside inference:',
    '',
    ...goal,
    '',
    'Each run (JSON and binary alternate; every other round in reverse order):',
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
    `INFERENCE_NICE ${config.inferenceNice}`,
    `QUEUE_MAX_SIZE ${config.queueMaxSize}`,
    `JSON_BODY_MAX_BYTES ${config.jsonBodyMaxBytes}`,
    `BODY_MEMORY_BUDGET_BYTES ${config.bodyMemoryBudgetBytes}`,
    `REQUEST_TIMEOUT_MS ${config.requestTimeoutMs}`,
    `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
    `LOG_LEVEL ${config.logLevel}`,
    `GRPC_PORT ${config.grpcPort}${config.grpcPort === 0 ? ' (gRPC off)' : ''}`,
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
  const requests = {
    'fp32-json': fp32JsonRequest(input.name, tensorShape, photos.data),
    'fp32-binary': fp32BinaryRequest(input.name, tensorShape, photos.data),
    'jpeg-json': bytesJsonRequest('image', [jpeg]),
    'jpeg-binary': bytesBinaryRequest('image', [jpeg]),
  } as const;
  // One variant of the JPEG per client (each has one request in flight at a time).
  const jpegs = Array.from({ length: maxClients }, (_, i) => withUniqueTag(jpeg, `client ${i}`));
  const jpegPerConnection = {
    'jpeg-json': jpegs.map((j) => bytesJsonRequest('image', [j])),
    'jpeg-binary': jpegs.map((j) => bytesBinaryRequest('image', [j])),
  } as const;
  const largestBody = Math.max(...Object.values(requests).map((r) => r.body.length), ...jpegPerConnection['jpeg-json'].map((r) => r.body.length));

  const unset = (k: string) => process.env[k] === undefined || process.env[k] === '';
  const benchEnv: Record<string, string> = {
    ...(unset('JSON_BODY_MAX_BYTES') ? { JSON_BODY_MAX_BYTES: String(Math.max(BENCH_JSON_BODY_MAX_BYTES, mibAbove(largestBody))) } : {}),
    ...(unset('BODY_MEMORY_BUDGET_BYTES')
      ? { BODY_MEMORY_BUDGET_BYTES: String(Math.max(DEFAULT_BODY_BUDGET_BYTES, mibAbove(largestBody * maxClients * 1.25))) }
      : {}),
    ...(unset('QUEUE_MAX_SIZE') ? { QUEUE_MAX_SIZE: String(Math.max(128, args.batch * maxClients)) } : {}),
    ...(unset('REQUEST_TIMEOUT_MS') ? { REQUEST_TIMEOUT_MS: String(BENCH_REQUEST_TIMEOUT_MS) } : {}),
  };
  const serverEnv = { ...benchEnv, ...FORCED_SERVER_ENV };
  const config = loadConfig({ ...process.env, ...serverEnv }, { availableCpus: cores });
  if (config.executionProvider !== 'cpu') throw new Error('This benchmark measures the CPU execution provider; unset EXECUTION_PROVIDER');
  if (args.batch > config.maxImagesPerRequest) throw new Error(`--batch ${args.batch} exceeds MAX_IMAGES_PER_REQUEST ${config.maxImagesPerRequest}`);
  if (args.batch * maxClients > config.queueMaxSize) {
    throw new Error(`--batch ${args.batch} × ${maxClients} clients exceeds QUEUE_MAX_SIZE ${config.queueMaxSize}: requests would be refused by design`);
  }
  if (largestBody > config.jsonBodyMaxBytes) throw new Error(`A request body is ${largestBody} bytes, over JSON_BODY_MAX_BYTES ${config.jsonBodyMaxBytes}`);
  const versions = decoderVersions();
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  const date = new Date().toISOString();
  const command = commandLine({
    serverEnv: ENV_VARS,
    forced: FORCED_SERVER_ENV,
    own: OWN_SERVER_ENV,
    npmScript: 'bench:protocol',
    direct: `node ${relative(ROOT, fileURLToPath(import.meta.url))}`,
  });
  const revisionAtStart = revision(ROOT, ['src']);
  const machine =
    `${cpuModel}, ${cpus().length} logical cores (nproc ${availableParallelism()}), cgroup CPU limit ${cgroup ?? 'none'} → ${cores} cores for the server, ` +
    `${(totalmem() / 2 ** 30).toFixed(1)} GiB memory; a shared VM whose speed drifts (other tenants), so figures vary from run to run`;

  process.stdout.write(
    `v2 protocol benchmark ${date}\n${command}\nmachine: ${machine}\nload average: ${loadBefore}\nmodel: ${model.dir} (input ${input.name} [${input.shape.join(', ')}])\n`,
  );

  await prepareRepository(model, REPOSITORY);
  process.stdout.write(`Starting ${relative(ROOT, SERVER_ENTRY)} (log: ${SERVER_LOG}) ...\n`);
  const server = await startServer({
    entry: SERVER_ENTRY,
    env: { ...serverEnv, MODEL_REPOSITORY: REPOSITORY, DEFAULT_MODEL: model.name, SEED_DEFAULT_MODEL: 'false' },
    logPath: SERVER_LOG,
  });
  const runs: Run[] = [];
  let report: Report;
  try {
    const metadataAnswer = await httpGet(`${server.baseUrl}/v2/models/${encodeURIComponent(model.name)}`);
    if (metadataAnswer.status !== 200) throw new Error(`GET /v2/models/${model.name} answered ${metadataAnswer.status}`);
    const metadata = JSON.parse(metadataAnswer.body) as { inputs: Array<{ name: string }>; outputs: Array<{ name: string; shape: number[] }> };
    if (metadata.inputs[0]?.name !== input.name) throw new Error(`The server names the input ${metadata.inputs[0]?.name}, the model file ${input.name}`);
    const output = metadata.outputs[0]!;
    const classes = output.shape[output.shape.length - 1]!;
    const fp32 = `FP32 [${tensorShape.join(',')}]`;
    const kinds: Kind[] = [
      { id: 'fp32-json', label: `${fp32} JSON`, framing: 'JSON', request: requests['fp32-json'], images: args.batch, outputShape: [args.batch, classes] },
      {
        id: 'fp32-binary',
        label: `${fp32} binary`,
        framing: 'binary',
        request: requests['fp32-binary'],
        images: args.batch,
        outputShape: [args.batch, classes],
      },
      {
        id: 'jpeg-json',
        label: 'JPEG BYTES [1] JSON (base64)',
        framing: 'JSON',
        request: requests['jpeg-json'],
        perConnection: jpegPerConnection['jpeg-json'],
        images: 1,
        outputShape: [1, classes],
      },
      {
        id: 'jpeg-binary',
        label: 'JPEG BYTES [1] binary',
        framing: 'binary',
        request: requests['jpeg-binary'],
        perConnection: jpegPerConnection['jpeg-binary'],
        images: 1,
        outputShape: [1, classes],
      },
    ];
    for (const k of kinds) process.stdout.write(`  ${k.label}: ${k.request.body.length} bytes\n`);
    const url = `${server.baseUrl}/v2/models/${encodeURIComponent(model.name)}/infer`;

    const imageRow = photos.names.indexOf(basename(args.image));
    const checks = await checkAnswers(url, kinds, output.name, imageRow >= 0 && dirname(args.image) === PHOTOS ? imageRow : undefined);
    for (const c of checks) process.stdout.write(`  check ${c.what}: max |Δ| ${c.maxAbsDifference.toExponential(2)} (largest logit ${f2(c.maxAbsLogit)})\n`);

    for (const connections of args.concurrency) {
      for (let round = 1; round <= args.rounds; round++) {
        const order = round % 2 === 1 ? kinds : [...kinds].reverse();
        for (const kind of order) {
          if (!(await waitUntilIdle(server.pid))) process.stdout.write('  warning: the server did not go idle within 30 s\n');
          process.stdout.write(`${connections} client${connections === 1 ? '' : 's'}, round ${round}, ${kind.label} (load ${loadavg()[0]!.toFixed(2)}) ... `);
          const run = await runOne(url, server.pid, kind, connections, round, args, output.name, config.requestTimeoutMs);
          runs.push(run);
          const errors = Object.values(run.load.errors).reduce((a, b) => a + b, 0);
          process.stdout.write(
            `${run.load.ok} answers in ${f1(run.load.windowSeconds)} s (warm-up ${f1(run.load.warmupSeconds)} s): ${f2(run.load.ok / run.load.windowSeconds)} requests/s, ` +
              `p50 ${f1(quantile(run.latenciesMs, 0.5))} ms, errors ${errors}; server CPU ${f1((run.server.totalSeconds * 1000) / run.load.ok)} ms/request, ` +
              `inference ${f1((run.server.inferenceSeconds * 1000) / run.load.ok)}, outside ${f1(runOutside(run))} ` +
              `[${run.server.groups
                .filter((g) => g.seconds >= 0.005)
                .map((g) => `${g.group}×${g.threads} ${f2(g.seconds)} s`)
                .join(', ')}]\n`,
          );
        }
      }
    }

    const figures = args.concurrency.flatMap((c) =>
      kinds.map((k) =>
        figuresOf(
          runs.filter((r) => r.connections === c && r.kind === k.id),
          k,
        ),
      ),
    );
    report = {
      date,
      command,
      machine,
      versions: `node ${process.version}, onnxruntime-node ${versionOf(ROOT, 'onnxruntime-node')}, fastify ${versionOf(ROOT, 'fastify')}, sharp ${versions.sharp} (libvips ${versions.libvips})`,
      revision: revisionAtStart,
      settings: describeSettings(config),
      loadBefore,
      model: model.dir === DEFAULT_MODEL_DIR ? 'resnet50 from the model builder' : model.dir,
      workload:
        `FP32 tensor = ${photos.names.join(', ')} from ../shared/images/photos preprocessed here as the model's config says; JPEG = ${relative(resolve(ROOT, '..'), args.image)} (${jpeg.length} bytes); ` +
        `closed loop, one keep-alive connection per client, every answer read and checked; ${args.rounds} round${args.rounds === 1 ? '' : 's'} per client count, ` +
        `each run ${args.warmupSeconds} s warm-up (longer until every client had an answer) then ${args.durationSeconds} s measured, the server idle between runs`,
      kinds: kinds.map((k) => ({ id: k.id, label: k.label, bodyBytes: k.request.body.length })),
      checks,
      figures,
      runs,
      args,
    };
  } finally {
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
  process.stderr.write(`bench:protocol failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * The serving benchmark: the real server under real load, against the limit of this machine.
 *
 *   npm run bench [-- --duration 20 --warmup 5 --concurrency 1,8,32 --model <folder> --no-write]
 *
 * Also: --workloads mixed,photos,repeated (the default: all three), --photo-concurrency 1,32,
 * --repeated-concurrency 32, --cache-bytes N (the response cache of the repeated level's second
 * run, default 64 MiB), --photos-dir DIR (default test-output/phone-photos, made there by
 * scripts/fixtures/phone-photos.py when empty), --out <file> (default BENCHMARKS.md),
 * --json <file> (every figure, for tools), --preprocess-iterations N, --direct-rounds N,
 * --server-node-args="<node options>" (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile
 * the server's threads).
 *
 * Workloads, each with a server of its own and a section of its own:
 * - mixed: the photos and CIFAR-10 images of ../shared/images in rotation, at --concurrency;
 * - photos: the phone-photo set (1.7–12 MP camera-sized photos), at --photo-concurrency, where
 *   decoding costs as much as inference;
 * - repeated: half the requests repeat one of 20 images, half send an image no request sent
 *   before (bench/lib/unique-images.ts), at --repeated-concurrency, once with the response
 *   cache off and once on: throughput beyond the no-cache limit is what the cache buys.
 *
 * 1. Measures, in this process, what no server can beat: onnxruntime alone at every batch size
 *    from 1 to 16 with the server's intra-op threads (ms per image at each), and for each
 *    workload sharp's preprocessing cost per image on its images (CPU summed over every
 *    thread, and wall time one at a time) with the model's own preprocessing, decode path
 *    included. Nothing else of the benchmark runs meanwhile.
 * 2. Starts `node dist/src/server.js` on a free loopback port with a model repository that
 *    holds only the model (by default a resnet50 from the model builder, cached in .bench/),
 *    and drives it with autocannon at each concurrency: raw image bodies with their
 *    Content-Type, in rotation, while probing /v2/health/live every 100 ms from a thread of
 *    its own (bench/lib/prober.ts).
 *    Before and after each level, with the server idle, batch 1, the best batch size and
 *    preprocessing are measured again: this shared machine's speed drifts (up to 2× within
 *    minutes), so each level is compared with the mean of the two measurements around it.
 * 3. Prints, and appends to BENCHMARKS.md, images/s, p50/p99 latency, errors and probe p99 at
 *    each concurrency beside the perfect-pipeline limit
 *      1000 / (best_ms_per_image + preprocess_cpu_ms_per_image / cores)
 *    (inference at its best batch size on every core, preprocessing spread over the same
 *    cores), with the batch sizes the server formed, its stage means from /metrics, cache hits
 *    and coalesced requests, and where the machine's CPU went (the server's threads, this
 *    process, other processes).
 *
 * Server settings come from the environment, as for the server itself (e.g.
 * `BATCH_MAX_SIZE=16 npm run bench`); the ones that are set are printed with the command.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ENV_VARS, loadConfig, type Config } from '../src/config.js';
import { DEFAULT_BATCH_MAX_SIZE } from '../src/inference/execution-provider.js';
import { decoderVersions } from '../src/preprocess/sharp-pipeline.js';
import { type ResolvedModelInput } from '../src/serving/model-config.js';
import { availableCpus, cgroupCpuLimit } from '../src/system/cpu-quota.js';
import { ensureModel, prepareRepository, readModelInput } from './lib/bench-model.js';
import { ownCpuSeconds, readMachineTimes, readThreadTimes, threadGroupDelta, type MachineTimes, type ThreadTimes } from './lib/cpu-usage.js';
import { httpGet } from './lib/http-get.js';
import { runLoad, type LoadResult, type Upload } from './lib/load.js';
import { commandLine, positive } from './lib/cli.js';
import { measureDirectInference, type BatchTiming } from './lib/onnx-direct.js';
import { measurePairedLatency, type PairedLatency } from './lib/paired-latency.js';
import { bucketShares, histogramDelta, histogramOf, parsePrometheusText, sumOf, type HistogramSnapshot, type Sample } from './lib/prometheus-text.js';
import { canMakeUnique } from './lib/unique-images.js';
import { ensurePhonePhotos, loadPhoneManifest, phonePhotosDir } from './lib/phone-photos.js';
import { findRepoRoot, versionOf } from './lib/repo-root.js';
import { startServer } from './lib/server-process.js';
import { median, quantile } from './lib/stats.js';
import { measurePreprocessCost } from './preprocess.js';

const ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
const CACHE = join(ROOT, '.bench');
const IMAGES = resolve(ROOT, '..', 'shared', 'images');
const DEFAULT_MODEL_DIR = join(CACHE, 'models', 'resnet50');
const REPOSITORY = join(CACHE, 'serve-repository');
const SERVER_LOG = join(CACHE, 'serve-server.log');
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
};
const PHONE_PHOTOS_SCRIPT = 'scripts/fixtures/phone-photos.py';
/** Images whose wall time one at a time is measured for the median (all of them in the mixed set's 55). */
const WALL_SAMPLE = 60;
/** The response cache's counters in /metrics (src/metrics.ts). */
const CACHE_HITS_METRIC = 'inference_response_cache_hits_total';
const COALESCED_METRIC = 'inference_coalesced_images_total';
/** Distinct images the repeated-images level repeats (the issue's figure). */
const REPEATED_IMAGES = 20;
/** Largest batch size measured directly (the issue's range). */
const DIRECT_MAX_BATCH = 16;
/**
 * prom-client samples the event loop's delay with a timer of this period (its default
 * `eventLoopMonitoringPrecision`, which the server keeps) and reports whole intervals.
 */
const LOOP_SAMPLE_INTERVAL_MS = 10;
/** Environment variables besides the server's own that change its performance. */
/**
 * Set for the server whatever the environment says: the benchmark measures the data plane,
 * so no keys and no rate limit (and keys are never printed with the command).
 */
const FORCED_SERVER_ENV: Readonly<Record<string, string>> = { API_KEYS: '', API_KEYS_FILE: '', RATE_LIMIT_MAX: '0' };
/** Set by the benchmark itself, so not part of the command that reproduces it. */
const OWN_SERVER_ENV = ['HOST', 'PORT', 'MODEL_REPOSITORY', 'DEFAULT_MODEL', 'SEED_DEFAULT_MODEL'];

// ---------------------------------------------------------------------------------------------
// Arguments

interface Args {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: number[];
  readonly modelDir: string | undefined;
  readonly write: boolean;
  readonly out: string;
  readonly preprocessIterations: number;
  readonly directRounds: number;
  readonly serverNodeArgs: string[];
  readonly json: string | undefined;
  readonly workloads: WorkloadKind[];
  readonly photoConcurrency: number[];
  readonly repeatedConcurrency: number[];
  readonly cacheBytes: number;
  readonly photosDir: string;
}

function parseCliArgs(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,8,32' },
      model: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      out: { type: 'string', default: 'BENCHMARKS.md' },
      'preprocess-iterations': { type: 'string', default: '5' },
      'direct-rounds': { type: 'string', default: '7' },
      'server-node-args': { type: 'string', default: '' },
      json: { type: 'string' },
      workloads: { type: 'string', default: WORKLOAD_KINDS.join(',') },
      'photo-concurrency': { type: 'string', default: '1,32' },
      'repeated-concurrency': { type: 'string', default: '32' },
      'cache-bytes': { type: 'string', default: String(64 * 2 ** 20) },
      'photos-dir': { type: 'string', default: phonePhotosDir() },
    },
  });
  const list = (name: string, text: string) => text.split(',').map((c) => positive(name, c.trim(), { integer: true }));
  const workloads = values.workloads.split(',').map((w) => w.trim());
  for (const w of workloads) {
    if (!(WORKLOAD_KINDS as readonly string[]).includes(w)) throw new Error(`--workloads: expected some of ${WORKLOAD_KINDS.join(', ')}, got \`${w}\``);
  }
  return {
    durationSeconds: positive('duration', values.duration),
    warmupSeconds: positive('warmup', values.warmup, { zero: true }),
    concurrency: list('concurrency', values.concurrency),
    modelDir: values.model === undefined ? undefined : resolve(values.model),
    write: !values['no-write'],
    out: resolve(ROOT, values.out),
    preprocessIterations: positive('preprocess-iterations', values['preprocess-iterations'], { integer: true }),
    directRounds: positive('direct-rounds', values['direct-rounds'], { integer: true }),
    serverNodeArgs: values['server-node-args'].split(/\s+/).filter(Boolean),
    json: values.json === undefined ? undefined : resolve(values.json),
    workloads: [...new Set(workloads)] as WorkloadKind[],
    photoConcurrency: list('photo-concurrency', values['photo-concurrency']),
    repeatedConcurrency: list('repeated-concurrency', values['repeated-concurrency']),
    cacheBytes: positive('cache-bytes', values['cache-bytes'], { integer: true }),
    photosDir: resolve(values['photos-dir']),
  };
}

// ---------------------------------------------------------------------------------------------
// Model, repository, images

function listImages(): ImageFile[] {
  const found = ['photos', 'cifar10'].flatMap((sub) => imagesIn(join(IMAGES, sub)));
  if (found.length === 0) throw new Error(`no images found in ${IMAGES}/{photos,cifar10}`);
  // Photos spread among the small CIFAR images, so every stretch of the rotation has the same mix.
  const photos = found.filter((f) => f.path.includes('/photos/'));
  const small = found.filter((f) => !f.path.includes('/photos/'));
  const every = Math.max(1, Math.floor(found.length / Math.max(1, photos.length)));
  const mixed: typeof found = [];
  for (let i = 0, p = 0, s = 0; i < found.length; i++) {
    if (i % every === 0 && p < photos.length) mixed.push(photos[p++]!);
    else if (s < small.length) mixed.push(small[s++]!);
    else mixed.push(photos[p++]!);
  }
  return mixed;
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** Runs `work` and tells how many cores other processes kept busy meanwhile (machine minus this process). */
async function withOtherLoad<T>(work: () => Promise<T>): Promise<{ value: T; otherCores: number }> {
  const machine = readMachineTimes();
  const own = ownCpuSeconds();
  const started = performance.now();
  const value = await work();
  const seconds = (performance.now() - started) / 1000;
  const busy = readMachineTimes().busySeconds - machine.busySeconds;
  return { value, otherCores: Math.max(0, (busy - (ownCpuSeconds() - own)) / seconds) };
}

interface PreprocessFigures {
  /** CPU ms per image over the whole rotation, all threads. */
  readonly cpuMsPerImage: number;
  /** Wall ms per image over the whole rotation, one image at a time. */
  readonly wallMsMean: number;
  /** Median over the images of each one's wall time: what a lone request typically pays. */
  readonly wallMsMedian: number;
}

async function measurePreprocessing(spec: ResolvedModelInput['preprocess'], paths: string[], iterations: number): Promise<PreprocessFigures> {
  const all = await measurePreprocessCost(spec, paths, { iterations });
  const perImage: number[] = [];
  // Over at most WALL_SAMPLE images (evenly spread), so a set of a hundred phone photos is not decoded 300 times more per reference.
  for (const path of spread(paths, WALL_SAMPLE)) perImage.push((await measurePreprocessCost(spec, [path], { iterations: 3 })).msPerImageWall);
  return { cpuMsPerImage: all.cpuMsPerImage, wallMsMean: all.msPerImageWall, wallMsMedian: median(perImage) };
}

/**
 * What the machine can do right now, measured with the server idle next to a load level: the
 * machine's speed drifts on a shared VM (by up to 2× within minutes here), so each level is
 * compared with a limit measured around it rather than with one from minutes earlier.
 */
interface Reference {
  readonly batch1Ms: number;
  readonly bestBatch: number;
  readonly bestMsPerImage: number;
  readonly preprocessCpuMs: number;
  readonly preprocessWallMedianMs: number;
  readonly limit: number;
  /** Cores other processes kept busy meanwhile. */
  readonly otherCores: number;
}

function limitOf(bestMsPerImage: number, preprocessCpuMs: number, cores: number): number {
  return 1000 / (bestMsPerImage + preprocessCpuMs / cores);
}

/** A level's reference: the mean of the measurements just before and just after it. */
interface Bracket extends Reference {
  readonly before: Reference;
  readonly after: Reference;
}

function bracket(before: Reference, after: Reference, cores: number): Bracket {
  const mean = (f: (r: Reference) => number) => (f(before) + f(after)) / 2;
  const bestMsPerImage = mean((r) => r.bestMsPerImage);
  const preprocessCpuMs = mean((r) => r.preprocessCpuMs);
  return {
    batch1Ms: mean((r) => r.batch1Ms),
    bestBatch: before.bestBatch,
    bestMsPerImage,
    preprocessCpuMs,
    preprocessWallMedianMs: mean((r) => r.preprocessWallMedianMs),
    limit: limitOf(bestMsPerImage, preprocessCpuMs, cores),
    otherCores: mean((r) => r.otherCores),
    before,
    after,
  };
}

async function measureReference(
  modelPath: string,
  input: ResolvedModelInput,
  imagePaths: string[],
  intraOpThreads: number,
  bestBatch: number,
  cores: number,
): Promise<Reference> {
  const { value, otherCores } = await withOtherLoad(async () => {
    const preprocess = await measurePreprocessing(input.preprocess, imagePaths, 1);
    const sizes = bestBatch === 1 ? [1] : [1, bestBatch];
    const timings = await measureDirectInference({ modelPath, intraOpThreads, batchSizes: sizes, itemDims: input.shape.slice(1), rounds: 5 });
    return { preprocess, timings };
  });
  const batch1 = value.timings[0]!;
  const best = value.timings[value.timings.length - 1]!;
  return {
    batch1Ms: batch1.msPerBatch,
    bestBatch,
    bestMsPerImage: best.msPerImage,
    preprocessCpuMs: value.preprocess.cpuMsPerImage,
    preprocessWallMedianMs: value.preprocess.wallMsMedian,
    limit: limitOf(best.msPerImage, value.preprocess.cpuMsPerImage, cores),
    otherCores,
  };
}

/**
 * Waits until process `pid` uses under 0.05 cores over 250 ms (the batch running when a load
 * level ends finishes on its own, and would slow a reference measured meanwhile). Resolves
 * false after `timeoutMs`.
 */
async function waitUntilIdle(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let previous = readThreadTimes(pid);
  while (performance.now() < deadline) {
    await sleep(250);
    const now = readThreadTimes(pid);
    const seconds = threadGroupDelta(pid, previous, now).reduce((a, g) => a + g.seconds, 0);
    if (seconds / 0.25 < 0.05) return true;
    previous = now;
  }
  return false;
}

interface LevelResult {
  readonly connections: number;
  readonly load: LoadResult;
  readonly metrics: { readonly before: Sample[]; readonly after: Sample[] };
  readonly serverThreads: Array<{ group: string; threads: number; seconds: number }>;
  readonly machineBusySeconds: number;
  readonly machineStealSeconds: number;
  readonly benchCpuSeconds: number;
  readonly loadAverage: number;
}

async function scrape(baseUrl: string): Promise<Sample[]> {
  const r = await httpGet(`${baseUrl}/metrics`, { timeoutMs: 10_000 });
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}`);
  return parsePrometheusText(r.body);
}

async function checkEveryImage(baseUrl: string, path: string, uploads: readonly Upload[]): Promise<void> {
  for (const u of uploads) {
    const response = await fetch(`${baseUrl}${path}`, { method: 'POST', headers: { 'content-type': u.contentType }, body: u.body });
    const text = await response.text();
    if (response.status !== 200 || !Array.isArray((JSON.parse(text) as { predictions?: unknown }).predictions)) {
      throw new Error(`${u.name}: the server answered ${response.status}: ${text.slice(0, 300)}`);
    }
  }
}

async function runLevel(baseUrl: string, pid: number, path: string, uploads: readonly Upload[], connections: number, args: Args): Promise<LevelResult> {
  let threadsBefore: ThreadTimes | undefined;
  let threadsAfter: ThreadTimes | undefined;
  let machineBefore: MachineTimes | undefined;
  let machineAfter: MachineTimes | undefined;
  let benchBefore = 0;
  let benchAfter = 0;
  let before: Sample[] = [];
  let after: Sample[] = [];
  const load = await runLoad({
    baseUrl,
    path,
    uploads,
    connections,
    warmupSeconds: args.warmupSeconds,
    durationSeconds: args.durationSeconds,
    probePath: '/v2/health/live',
    onWindowStart: async () => {
      threadsBefore = readThreadTimes(pid);
      machineBefore = readMachineTimes();
      benchBefore = ownCpuSeconds();
      before = await scrape(baseUrl);
    },
    onWindowEnd: async () => {
      threadsAfter = readThreadTimes(pid);
      machineAfter = readMachineTimes();
      benchAfter = ownCpuSeconds();
      after = await scrape(baseUrl);
    },
  });
  return {
    connections,
    load,
    metrics: { before, after },
    serverThreads: threadGroupDelta(pid, threadsBefore!, threadsAfter!),
    machineBusySeconds: machineAfter!.busySeconds - machineBefore!.busySeconds,
    machineStealSeconds: machineAfter!.stealSeconds - machineBefore!.stealSeconds,
    benchCpuSeconds: benchAfter - benchBefore,
    loadAverage: loadavg()[0]!,
  };
}

// ---------------------------------------------------------------------------------------------
// Figures

interface LevelFigures {
  readonly connections: number;
  readonly reference: Bracket;
  readonly imagesPerSecond: number;
  readonly ratio: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly errorDetail: string;
  readonly probeP50: number;
  readonly probeP99: number;
  readonly probeMax: number;
  readonly probeFailures: number;
  /**
   * The server's event-loop delay over the window, in ms: how late prom-client's sampling
   * timer fired, from nodejs_eventloop_lag_*_seconds (reset by each scrape). Those gauges hold
   * the whole interval between samples, so the nominal interval is taken off.
   */
  readonly loopDelayP99: number;
  readonly loopDelayMax: number;
  readonly batchSizes: HistogramSnapshot;
  readonly meanBatch: number;
  readonly preprocessMs: number;
  readonly queueMs: number;
  readonly computeMsPerBatch: number;
  readonly computeMsPerImage: number;
  readonly serverCores: number;
  readonly threadCores: Array<{ group: string; threads: number; cores: number }>;
  readonly benchCores: number;
  readonly otherCores: number;
  readonly stealCores: number;
  readonly loadAverage: number;
  /** 2xx answers completed in the window. */
  readonly answered: number;
  /** Images answered from the response cache, and requests that joined an identical one in flight, in the window. */
  readonly cacheHits: number;
  readonly coalesced: number;
}

/** A gauge's value, or NaN when the server does not export it. */
function gaugeOf(samples: readonly Sample[], name: string): number {
  return samples.find((s) => s.name === name)?.value ?? Number.NaN;
}

function figuresOf(level: LevelResult, model: string, reference: Bracket): LevelFigures {
  const limit = reference.limit;
  const { load } = level;
  const seconds = load.windowSeconds;
  let ok = 0;
  let bad = 0;
  const detail: string[] = [];
  for (const [status, count] of [...load.statuses].sort((a, b) => a[0] - b[0])) {
    if (status >= 200 && status < 300) ok += count;
    else {
      bad += count;
      detail.push(`${count}×${status}`);
    }
  }
  if (load.transportErrors > 0) detail.push(`${load.transportErrors} transport`);
  const filter = { model };
  const delta = (name: string) => histogramDelta(histogramOf(level.metrics.before, name, filter), histogramOf(level.metrics.after, name, filter));
  const batchSizes = delta('inference_batch_size');
  const pre = delta('inference_preprocess_duration_seconds');
  const queue = delta('inference_queue_duration_seconds');
  const compute = delta('inference_compute_duration_seconds');
  const counterDelta = (name: string) => sumOf(level.metrics.after, name, filter) - sumOf(level.metrics.before, name, filter);
  const serverSeconds = level.serverThreads.reduce((a, g) => a + g.seconds, 0);
  const imagesPerSecond = ok / seconds;
  return {
    connections: level.connections,
    reference,
    imagesPerSecond,
    ratio: imagesPerSecond / limit,
    p50: quantile(load.latenciesMs, 0.5),
    p99: quantile(load.latenciesMs, 0.99),
    errors: bad + load.transportErrors,
    errorDetail: detail.join(', '),
    probeP50: quantile(load.probeLatenciesMs, 0.5),
    probeP99: quantile(load.probeLatenciesMs, 0.99),
    probeMax: Math.max(...load.probeLatenciesMs),
    probeFailures: load.probeFailures,
    loopDelayP99: Math.max(0, gaugeOf(level.metrics.after, 'nodejs_eventloop_lag_p99_seconds') * 1000 - LOOP_SAMPLE_INTERVAL_MS),
    loopDelayMax: Math.max(0, gaugeOf(level.metrics.after, 'nodejs_eventloop_lag_max_seconds') * 1000 - LOOP_SAMPLE_INTERVAL_MS),
    batchSizes,
    meanBatch: batchSizes.sum / batchSizes.count,
    preprocessMs: (pre.sum / pre.count) * 1000,
    queueMs: (queue.sum / queue.count) * 1000,
    computeMsPerBatch: (compute.sum / compute.count) * 1000,
    computeMsPerImage: (compute.sum / batchSizes.sum) * 1000,
    serverCores: serverSeconds / seconds,
    threadCores: level.serverThreads
      .filter((g) => g.seconds / seconds >= 0.005)
      .map((g) => ({ group: g.group, threads: g.threads, cores: g.seconds / seconds })),
    benchCores: level.benchCpuSeconds / seconds,
    otherCores: Math.max(0, (level.machineBusySeconds - serverSeconds - level.benchCpuSeconds) / seconds),
    stealCores: level.machineStealSeconds / seconds,
    loadAverage: level.loadAverage,
    answered: ok,
    cacheHits: counterDelta(CACHE_HITS_METRIC),
    coalesced: counterDelta(COALESCED_METRIC),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  readonly workload: Pick<Workload, 'kind' | 'label'>;
  readonly date: string;
  readonly command: string;
  readonly machine: string;
  readonly versions: string;
  readonly settings: string;
  readonly model: string;
  readonly images: string;
  readonly cores: number;
  readonly preprocess: PreprocessFigures;
  readonly direct: BatchTiming[];
  readonly best: BatchTiming;
  readonly batch1: BatchTiming;
  readonly limit: number;
  readonly levels: LevelFigures[];
  /** Where a lone request's time goes (when 1 client is among the levels). */
  readonly paired: PairedLatency | undefined;
  readonly loadBefore: string;
  readonly otherDuringPreprocess: number;
  readonly otherDuringDirect: number;
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---:').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** The goals of each workload (issue 16 for the phone photos and the repeated images). */
function targets(r: Report, all: readonly Report[]): string[] {
  if (r.workload.kind === 'photos') return photoTargets(r);
  if (r.workload.kind === 'repeated') return repeatedTargets(r, all);
  return mixedTargets(r);
}

function photoTargets(r: Report): string[] {
  const lines: string[] = [];
  const at32 = r.levels.find((l) => l.connections === 32);
  if (at32 === undefined) return ['- 32 clients: not run (add 32 to --photo-concurrency)'];
  const pass = at32.ratio >= 0.95 && at32.errors === 0;
  lines.push(
    `- 32 clients ≥ 0.95 × the limit computed with the same decode path, no errors: ${f1(at32.imagesPerSecond)} images/s = ${f2(at32.ratio)} × ${f1(at32.reference.limit)}, ${at32.errors} errors → **${pass ? 'met' : 'not met'}**`,
    `- live probe p99 ≤ 10 ms at 32 clients (moonshot 5): ${f1(at32.probeP99)} ms (max ${f1(at32.probeMax)}), ${at32.probeFailures} failed → **${at32.probeP99 <= 10 && at32.probeFailures === 0 ? 'met' : 'not met'}**${at32.probeP99 <= 5 ? ' (moonshot met)' : ''}`,
  );
  const one = r.levels.find((l) => l.connections === 1);
  if (one !== undefined) {
    const expected = one.reference.batch1Ms + one.reference.preprocessWallMedianMs;
    lines.push(
      `- 1 client (no goal; for scale): p50 ${f1(one.p50)} ms vs batch-1 inference + median preprocessing ${f1(one.reference.batch1Ms)} + ${f1(one.reference.preprocessWallMedianMs)} = ${f1(expected)} ms`,
    );
  }
  return lines;
}

function repeatedTargets(r: Report, all: readonly Report[]): string[] {
  const cacheOn = !r.settings.includes('RESPONSE_CACHE_MAX_BYTES 0');
  const off = all.find((o) => o.workload.kind === 'repeated' && o.settings.includes('RESPONSE_CACHE_MAX_BYTES 0'));
  return r.levels.map((l) => {
    const base = off?.levels.find((o) => o.connections === l.connections);
    const hits = `${l.cacheHits} of the window's ${l.answered} images answered from the cache (${f1((100 * l.cacheHits) / Math.max(1, l.answered))}%), ${l.coalesced} requests coalesced`;
    if (!cacheOn)
      return `- ${l.connections} clients, cache off (the no-cache run): ${f1(l.imagesPerSecond)} images/s = ${f2(l.ratio)} × the limit ${f1(l.reference.limit)}; ${hits}`;
    const versusOff = base === undefined ? '' : `, ${f2(l.imagesPerSecond / base.imagesPerSecond)} × the cache-off run's ${f1(base.imagesPerSecond)}`;
    return (
      `- ${l.connections} clients, cache on, throughput beyond the no-cache limit: ${f1(l.imagesPerSecond)} images/s = ${f2(l.ratio)} × ${f1(l.reference.limit)}${versusOff}, ${l.errors} errors; ${hits} ` +
      `→ **${l.ratio > 1 && l.errors === 0 ? 'met' : 'not met'}**`
    );
  });
}

function mixedTargets(r: Report): string[] {
  const lines: string[] = [];
  const saturated = [...r.levels].sort((a, b) => b.connections - a.connections)[0];
  const at32 = r.levels.find((l) => l.connections === 32);
  if (at32) {
    const pass = at32.ratio >= 0.9 && at32.errors === 0;
    lines.push(
      `- 32 clients ≥ 0.9 × limit with no errors: ${f1(at32.imagesPerSecond)} images/s = ${f2(at32.ratio)} × ${f1(at32.reference.limit)} (the limit measured around it), ${at32.errors} errors → **${pass ? 'met' : 'not met'}**`,
    );
  } else {
    lines.push('- 32 clients ≥ 0.9 × limit: not run (add 32 to --concurrency)');
  }
  const one = r.levels.find((l) => l.connections === 1);
  if (one) {
    const { batch1Ms, preprocessWallMedianMs } = one.reference;
    const expected = batch1Ms + preprocessWallMedianMs;
    const pass = one.p50 <= expected + 3;
    lines.push(
      `- 1 client p50 within 3 ms of batch-1 inference + preprocessing (both measured around the level; preprocessing as the median over the images, since p50 is a median over them): ` +
        `${f1(one.p50)} ms vs ${f1(batch1Ms)} + ${f1(preprocessWallMedianMs)} = ${f1(expected)} ms (${one.p50 >= expected ? '+' : ''}${f1(one.p50 - expected)}) → **${pass ? 'met' : 'not met'}**`,
    );
    if (r.paired !== undefined) {
      // Not the issue's reference (that is the line above): the same work done directly in
      // alternation with the requests, which no drift of the machine's speed can tilt, but
      // whose preprocessing and runs are not repeated with warm caches.
      lines.push(
        `  - the same with the paired blocks (reference: the same images preprocessed and run at batch 1 directly, alternating with the requests): serving adds ${f2(r.paired.overheadMs)} ms → ${r.paired.overheadMs <= 3 ? 'within' : 'beyond'} 3 ms`,
      );
    }
  } else {
    lines.push('- 1 client p50: not run (add 1 to --concurrency)');
  }
  if (saturated) {
    const pass = saturated.probeP99 <= 20 && saturated.probeFailures === 0;
    lines.push(
      `- live probe p99 ≤ 20 ms while saturated (${saturated.connections} clients): ${f1(saturated.probeP99)} ms, ${saturated.probeFailures} failed → **${pass ? 'met' : 'not met'}**`,
    );
  }
  return lines;
}

function renderMarkdown(r: Report, all: readonly Report[]): string {
  const main = table(
    [
      'clients',
      'images/s',
      'limit',
      '× limit',
      'p50 ms',
      'p99 ms',
      'errors',
      'probe p50 ms',
      'probe p99 ms',
      'probe max ms',
      'server event-loop delay p99 / max ms',
    ],
    r.levels.map((l) => [
      String(l.connections),
      f1(l.imagesPerSecond),
      f1(l.reference.limit),
      f2(l.ratio),
      f1(l.p50),
      f1(l.p99),
      l.errors === 0 ? '0' : `${l.errors} (${l.errorDetail})`,
      f1(l.probeP50),
      f1(l.probeP99),
      `${f1(l.probeMax)}${l.probeFailures > 0 ? ` (${l.probeFailures} failed)` : ''}`,
      `${f1(l.loopDelayP99)} / ${f1(l.loopDelayMax)}`,
    ]),
  );
  const ranges = [...new Set(r.levels.flatMap((l) => bucketShares(l.batchSizes).map((b) => b.range)))];
  const stages = table(
    ['clients', 'mean batch', ...ranges.map((g) => `batches of ${g}`), 'preprocess ms/image', 'queue ms/image', 'compute ms/batch', 'compute ms/image'],
    r.levels.map((l) => {
      const shares = new Map(bucketShares(l.batchSizes).map((b) => [b.range, b.count]));
      return [
        String(l.connections),
        f2(l.meanBatch),
        ...ranges.map((g) => {
          const n = shares.get(g) ?? 0;
          return l.batchSizes.count > 0 ? `${((n / l.batchSizes.count) * 100).toFixed(0)}%` : '–';
        }),
        f1(l.preprocessMs),
        f1(l.queueMs),
        f1(l.computeMsPerBatch),
        f1(l.computeMsPerImage),
      ];
    }),
  );
  const groups = [...new Set(r.levels.flatMap((l) => l.threadCores.map((g) => g.group)))];
  const cpu = table(
    ['clients', 'server', 'server CPU ms/image', ...groups.map((g) => `server: ${g}`), 'bench process', 'other processes', 'steal', 'load avg (1 min)'],
    r.levels.map((l) => {
      const byGroup = new Map(l.threadCores.map((g) => [g.group, g]));
      return [
        String(l.connections),
        f2(l.serverCores),
        f1((l.serverCores * 1000) / l.imagesPerSecond),
        ...groups.map((g) => {
          const t = byGroup.get(g);
          return t ? `${f2(t.cores)} (${t.threads})` : '–';
        }),
        f2(l.benchCores),
        f2(l.otherCores),
        f2(l.stealCores),
        f2(l.loadAverage),
      ];
    }),
  );
  const direct = table(
    ['batch', ...r.direct.map((d) => String(d.batchSize))],
    [
      ['ms/batch', ...r.direct.map((d) => f1(d.msPerBatch))],
      ['ms/image', ...r.direct.map((d) => f1(d.msPerImage))],
    ],
  );
  return [
    `## ${r.date} — serving benchmark: ${r.workload.label} (${r.model})`,
    '',
    `- command: \`${r.command}\``,
    `- machine: ${r.machine}`,
    `- versions: ${r.versions}`,
    `- server settings: ${r.settings}`,
    `- images: ${r.images}`,
    `- load average before the run: ${r.loadBefore}`,
    '',
    `onnxruntime alone (this process, same session options as the server, ${r.direct.reduce((a, d) => a + d.runs, 0)} timed runs in interleaved rounds, median per batch size; other processes used ${f2(r.otherDuringDirect)} cores meanwhile):`,
    '',
    direct,
    '',
    `Batch 1: ${f1(r.batch1.msPerBatch)} ms. Best: ${f1(r.best.msPerImage)} ms/image at batch ${r.best.batchSize}. ` +
      `Preprocessing (sharp + tensor write): ${f2(r.preprocess.cpuMsPerImage)} CPU ms/image; wall ${f2(r.preprocess.wallMsMean)} ms/image mean, ${f2(r.preprocess.wallMsMedian)} ms median over the images (one at a time; other processes used ${f2(r.otherDuringPreprocess)} cores meanwhile).`,
    '',
    `Perfect-pipeline limit: 1000 / (${f2(r.best.msPerImage)} + ${f2(r.preprocess.cpuMsPerImage)} / ${r.cores}) = **${f1(r.limit)} images/s**.`,
    '',
    `Because this machine's speed drifts, the reference is measured again with the server idle just before and just after each load level (batch 1 and batch ${r.best.batchSize}, 5 interleaved rounds; preprocessing one pass), and each level is compared with the mean of the two:`,
    '',
    table(
      [
        'clients',
        'batch 1 ms (before / after)',
        `batch ${r.best.batchSize} ms/image`,
        'preprocessing CPU ms/image',
        'median preprocessing wall ms',
        'limit images/s',
        'other processes (cores)',
      ],
      r.levels.map((l) => {
        const { before: b, after: a } = l.reference;
        return [
          String(l.connections),
          `${f1(b.batch1Ms)} / ${f1(a.batch1Ms)}`,
          `${f1(b.bestMsPerImage)} / ${f1(a.bestMsPerImage)}`,
          `${f2(b.preprocessCpuMs)} / ${f2(a.preprocessCpuMs)}`,
          `${f2(b.preprocessWallMedianMs)} / ${f2(a.preprocessWallMedianMs)}`,
          `${f1(b.limit)} / ${f1(a.limit)} → **${f1(l.reference.limit)}**`,
          `${f2(b.otherCores)} / ${f2(a.otherCores)}`,
        ];
      }),
    ),
    '',
    'The service (closed loop, one image per request; probe = GET /v2/health/live every 100 ms on a new connection, sent from its own thread so that the event loop of the load generator is not part of its latency):',
    '',
    main,
    '',
    "Batches formed and stage means, from the server's /metrics over the same window (preprocess is wall time under load; compute is time inside session.run):",
    '',
    stages,
    '',
    'CPU used during the window, in cores (server threads grouped by name, with their count):',
    '',
    cpu,
    '',
    ...pairedSection(r.paired),
    'Targets:',
    '',
    ...targets(r, all),
    '',
  ].join('\n');
}

function pairedSection(p: PairedLatency | undefined): string[] {
  if (p === undefined) return [];
  return [
    `Where a lone request's time goes, with the server idle after the levels: ${p.blocks} blocks of ${p.perBlock} sequential requests (one client, keep-alive, all images in rotation), ` +
      'each followed by the same images preprocessed and run at batch 1 directly in the benchmark process, one after the other as the server does them; medians of the block medians, in ms:',
    '',
    table(
      [
        'client p50',
        'direct preprocessing',
        'direct batch 1',
        'serving adds',
        'server total',
        'server preprocess',
        'server infer',
        'server other (routing, body, batching, worker messages, reply)',
        'outside the server clock (connection, HTTP parsing, client)',
      ],
      [
        [
          f1(p.clientMs),
          f2(p.directPreprocessMs),
          f1(p.directInferMs),
          `**${f2(p.overheadMs)}**`,
          f1(p.serverTotalMs),
          f2(p.serverPreprocessMs),
          f1(p.serverInferMs),
          f2(p.serverOtherMs),
          f2(p.outsideServerMs),
        ],
      ],
    ),
    '',
  ];
}

// ---------------------------------------------------------------------------------------------

function describeSettings(config: Config, maxBatchSize: number): string {
  return [
    `BATCH_MAX_SIZE ${maxBatchSize}${config.batchMaxSize === undefined ? ' (default)' : ''}`,
    `BATCH_MAX_DELAY_MS ${config.batchMaxDelayMs}`,
    `INFERENCE_WORKERS ${config.inferenceWorkers}`,
    `INTRA_OP_THREADS ${config.intraOpThreads}`,
    `INFERENCE_NICE ${config.inferenceNice}`,
    `DECODE_NICE ${config.decodeNice}`,
    `QUEUE_MAX_SIZE ${config.queueMaxSize}`,
    `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
    `LOG_LEVEL ${config.logLevel}`,
  ].join(', ');
}

// ---------------------------------------------------------------------------------------------
// Workloads

type WorkloadKind = 'mixed' | 'photos' | 'repeated';
const WORKLOAD_KINDS: readonly WorkloadKind[] = ['mixed', 'photos', 'repeated'];

interface ImageFile {
  readonly path: string;
  readonly contentType: string;
}

/** What one server run is driven with, and how it is reported. */
interface Workload {
  readonly kind: WorkloadKind;
  /** Names the section, e.g. "phone photos" or "repeated images, cache on". */
  readonly label: string;
  /** The distinct source images, over which preprocessing is measured for the limit. */
  readonly images: readonly ImageFile[];
  /** What the clients send, each starting at a different place in the rotation. */
  readonly uploads: readonly Upload[];
  readonly concurrency: readonly number[];
  /** Server settings of this workload on top of the operator's. */
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly description: string;
  readonly preprocessIterations: number;
}

/**
 * One image to send. `unique`: under new bytes every time (the same pixels), so that the server
 * neither coalesces it with an identical request in flight nor finds it in its cache: those
 * levels measure decoding and inference. Only the repeated-images level sends images as they are.
 */
function uploadOf(image: ImageFile, unique: boolean): Upload {
  const body = readFileSync(image.path);
  if (unique && !canMakeUnique(body)) throw new Error(`${image.path}: cannot be made unique (JPEG, PNG and WebP can)`);
  return { name: basename(image.path), contentType: image.contentType, body, unique };
}

/** Every file of `dir` this benchmark can send, sorted by name. */
function imagesIn(dir: string): ImageFile[] {
  const found: ImageFile[] = [];
  for (const file of readdirSync(dir).sort()) {
    const contentType = CONTENT_TYPES[extname(file).toLowerCase()];
    if (contentType !== undefined) found.push({ path: join(dir, file), contentType });
  }
  return found;
}

/** At most `n` of `items`, evenly spaced, in order. */
function spread<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]!);
}

function mixedWorkload(args: Args): Workload {
  const images = listImages();
  const photos = images.filter((i) => i.path.includes('/photos/')).length;
  return {
    kind: 'mixed',
    label: 'shared photos and CIFAR-10 images',
    images,
    uploads: images.map((i) => uploadOf(i, true)),
    concurrency: args.concurrency,
    serverEnv: {},
    description: `${images.length} from ../shared/images (${photos} photos, ${images.length - photos} CIFAR-10 32×32 JPEGs), raw bodies made unique per request (bench/lib/unique-images.ts), each client rotating through all of them`,
    preprocessIterations: args.preprocessIterations,
  };
}

/** The phone-photo set in `dir`, made (or checked against its manifest) there first. */
function phonePhotos(dir: string): ImageFile[] {
  process.stdout.write(`The phone-photo set in ${dir} (made or checked by ${PHONE_PHOTOS_SCRIPT}) ...\n`);
  ensurePhonePhotos({ ...process.env, PHONE_PHOTOS_DIR: dir });
  const images = imagesIn(dir);
  const expected = loadPhoneManifest().images.length;
  if (images.length !== expected) throw new Error(`${dir} holds ${images.length} images; the manifest lists ${expected}`);
  return images;
}

function photoWorkload(args: Args): Workload {
  const images = phonePhotos(args.photosDir);
  const sizes = images.map((i) => statSync(i.path).size);
  return {
    kind: 'photos',
    label: 'phone photos',
    images,
    uploads: images.map((i) => uploadOf(i, true)),
    concurrency: args.photoConcurrency,
    serverEnv: {},
    description:
      `the phone-photo set (${images.length} files, ${(sizes.reduce((a, b) => a + b, 0) / 2 ** 20).toFixed(0)} MiB, ${(Math.min(...sizes) / 2 ** 20).toFixed(1)}–${(Math.max(...sizes) / 2 ** 20).toFixed(1)} MiB each, ` +
      `from ${relative(ROOT, args.photosDir) || args.photosDir}; see ${PHONE_PHOTOS_SCRIPT}), raw bodies made unique per request, each client rotating through all of them`,
    preprocessIterations: 1,
  };
}

/**
 * Half the requests repeat one of REPEATED_IMAGES images, half send an image no request sent
 * before (unique-images.ts), run twice: the response cache off, then on. Coalescing is on in
 * both (it cannot be turned off), so "off" is what a server without a cache does.
 */
function repeatedWorkloads(args: Args): Workload[] {
  const all = listImages();
  const repeated = all.slice(0, REPEATED_IMAGES);
  const fresh = all.slice(REPEATED_IMAGES).filter((i) => canMakeUnique(readFileSync(i.path)));
  if (repeated.length < REPEATED_IMAGES || fresh.length === 0) throw new Error(`the repeated-images level needs over ${REPEATED_IMAGES} images in ${IMAGES}`);
  const uploads: Upload[] = [];
  for (let i = 0; i < REPEATED_IMAGES; i++) uploads.push(uploadOf(repeated[i]!, false), uploadOf(fresh[i % fresh.length]!, true));
  const sources = [...repeated, ...fresh.slice(0, REPEATED_IMAGES)];
  const description =
    `${uploads.length} requests in rotation, alternating: one of ${REPEATED_IMAGES} images from ../shared/images sent as they are, ` +
    `then one of ${Math.min(fresh.length, REPEATED_IMAGES)} others made unique for every request (a new JPEG comment or PNG text chunk, the same pixels)`;
  return [
    { kind: 'repeated', label: 'repeated images, cache off', serverEnv: { RESPONSE_CACHE_MAX_BYTES: '0' } },
    { kind: 'repeated', label: 'repeated images, cache on', serverEnv: { RESPONSE_CACHE_MAX_BYTES: String(args.cacheBytes) } },
  ].map((w) => ({
    ...w,
    kind: 'repeated' as const,
    images: sources,
    uploads,
    concurrency: args.repeatedConcurrency,
    description: `${description}; RESPONSE_CACHE_MAX_BYTES ${w.serverEnv.RESPONSE_CACHE_MAX_BYTES}`,
    preprocessIterations: args.preprocessIterations,
  }));
}

/** What every workload's report shares: measured once, before any server runs. */
interface Common {
  readonly args: Args;
  readonly config: Config;
  readonly model: { readonly dir: string; readonly name: string };
  readonly input: ResolvedModelInput;
  /** The report's fields common to every workload (machine, versions, onnxruntime alone, ...). */
  readonly header: Omit<Report, 'workload' | 'images' | 'preprocess' | 'limit' | 'levels' | 'paired' | 'otherDuringPreprocess' | 'settings' | 'date'>;
}

async function runWorkload(w: Workload, c: Common): Promise<Report> {
  const { args, config, model, input } = c;
  const { cores, best } = c.header;
  const date = new Date().toISOString();
  const paths = w.images.map((i) => i.path);
  process.stdout.write(`\n== ${w.label}: ${w.description}\nPreprocessing cost over ${paths.length} images (${w.preprocessIterations} passes) ...\n`);
  const { value: preprocess, otherCores: otherDuringPreprocess } = await withOtherLoad(() =>
    measurePreprocessing(input.preprocess, paths, w.preprocessIterations),
  );
  const limit = limitOf(best.msPerImage, preprocess.cpuMsPerImage, cores);
  process.stdout.write(
    `  CPU ${f2(preprocess.cpuMsPerImage)} ms/image; wall ${f2(preprocess.wallMsMean)} mean, ${f2(preprocess.wallMsMedian)} median → limit ${f1(limit)} images/s (other processes: ${f2(otherDuringPreprocess)} cores)\n`,
  );

  await prepareRepository(model, REPOSITORY);
  process.stdout.write(`Starting the server (log: ${SERVER_LOG}) ...\n`);
  const server = await startServer({
    entry: join(ROOT, 'dist', 'src', 'server.js'),
    env: { ...FORCED_SERVER_ENV, ...w.serverEnv, MODEL_REPOSITORY: REPOSITORY, DEFAULT_MODEL: model.name, SEED_DEFAULT_MODEL: 'false' },
    logPath: SERVER_LOG,
    nodeArgs: args.serverNodeArgs,
  });
  const path = `/v1/models/${encodeURIComponent(model.name)}:predict`;
  const levels: LevelFigures[] = [];
  let paired: PairedLatency | undefined;
  try {
    await checkEveryImage(
      server.baseUrl,
      path,
      w.images.map((i) => uploadOf(i, false)),
    );
    const measureNow = async () => {
      const idle = await waitUntilIdle(server.pid);
      if (!idle) process.stdout.write('  warning: the server did not become idle within 15 s; the reference may be low\n');
      const r = await measureReference(join(model.dir, 'model.onnx'), input, paths, config.intraOpThreads, best.batchSize, cores);
      process.stdout.write(
        `reference (server idle): batch 1 ${f1(r.batch1Ms)} ms, batch ${r.bestBatch} ${f1(r.bestMsPerImage)} ms/image, ` +
          `preprocessing ${f2(r.preprocessCpuMs)} CPU ms/image → limit ${f1(r.limit)} images/s (other processes ${f2(r.otherCores)} cores)\n`,
      );
      return r;
    };
    let before = await measureNow();
    for (const connections of w.concurrency) {
      process.stdout.write(
        `${connections} clients: ${args.warmupSeconds} s warm-up, ${args.durationSeconds} s measured (load ${loadavg()[0]!.toFixed(2)}) ...\n`,
      );
      const result = await runLevel(server.baseUrl, server.pid, path, w.uploads, connections, args);
      const after = await measureNow();
      const level = figuresOf(result, model.name, bracket(before, after, cores));
      before = after;
      levels.push(level);
      process.stdout.write(
        `  ${f1(level.imagesPerSecond)} images/s (${f2(level.ratio)} × limit ${f1(level.reference.limit)}), p50 ${f1(level.p50)} ms, p99 ${f1(level.p99)} ms, errors ${level.errors}, ` +
          `probe p99 ${f1(level.probeP99)} ms (event-loop delay p99 ${f1(level.loopDelayP99)} ms); mean batch ${f2(level.meanBatch)}, compute ${f1(level.computeMsPerImage)} ms/image; ` +
          `cache hits ${level.cacheHits}, coalesced ${level.coalesced}; CPU: server ${f2(level.serverCores)}, others ${f2(level.otherCores)} cores\n`,
      );
    }
    if (w.kind === 'mixed' && w.concurrency.includes(1)) {
      process.stdout.write("Where a lone request's time goes: blocks of requests alternating with the same work done directly ...\n");
      await waitUntilIdle(server.pid);
      paired = await measurePairedLatency({
        baseUrl: server.baseUrl,
        path,
        uploads: w.uploads,
        modelPath: join(model.dir, 'model.onnx'),
        inputName: input.name,
        itemDims: input.shape.slice(1),
        spec: input.preprocess,
        intraOpThreads: config.intraOpThreads,
      });
      process.stdout.write(
        `  client p50 ${f1(paired.clientMs)} ms = direct preprocessing ${f1(paired.directPreprocessMs)} + direct batch 1 ${f1(paired.directInferMs)} + ${f1(paired.overheadMs)} ms\n`,
      );
    }
  } finally {
    const code = await server.stop();
    if (code !== 0) process.stderr.write(`warning: the server exited with code ${code}; see ${SERVER_LOG}\n`);
  }
  const serverEnvText = Object.entries(w.serverEnv)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return {
    ...c.header,
    date,
    workload: { kind: w.kind, label: w.label },
    settings: `${describeSettings(config, config.batchMaxSize ?? DEFAULT_BATCH_MAX_SIZE.cpu)}${serverEnvText === '' ? '' : `; set by this level: ${serverEnvText}`}`,
    images: `${w.description}; ${args.warmupSeconds} s warm-up then ${args.durationSeconds} s measured per level`,
    preprocess,
    limit,
    levels,
    paired,
    otherDuringPreprocess,
  };
}

async function main(): Promise<void> {
  const args = parseCliArgs(process.argv.slice(2));
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const cores = availableCpus();
  const cgroup = cgroupCpuLimit();
  const config = loadConfig({ ...process.env, ...FORCED_SERVER_ENV }, { availableCpus: cores });
  if (config.executionProvider !== 'cpu') throw new Error('This benchmark measures the CPU execution provider; unset EXECUTION_PROVIDER');
  const allConcurrency = [
    ...(args.workloads.includes('mixed') ? args.concurrency : []),
    ...(args.workloads.includes('photos') ? args.photoConcurrency : []),
    ...(args.workloads.includes('repeated') ? args.repeatedConcurrency : []),
  ];
  if (Math.max(...allConcurrency) > config.queueMaxSize) {
    throw new Error(`${Math.max(...allConcurrency)} clients exceed QUEUE_MAX_SIZE ${config.queueMaxSize}: requests would be refused by design`);
  }

  await mkdir(CACHE, { recursive: true });
  const model = await ensureModel(args.modelDir, join(CACHE, 'models'));
  const input = await readModelInput(model.dir);
  const workloads: Workload[] = [];
  // Every workload's images are read (and the phone photos made) before anything is timed.
  for (const kind of args.workloads) {
    if (kind === 'mixed') workloads.push(mixedWorkload(args));
    else if (kind === 'photos') workloads.push(photoWorkload(args));
    else workloads.push(...repeatedWorkloads(args));
  }
  const versions = decoderVersions();
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  const command = commandLine({ serverEnv: ENV_VARS, forced: FORCED_SERVER_ENV, own: OWN_SERVER_ENV, npmScript: 'bench', direct: 'node dist/bench/serve.js' });

  process.stdout.write(
    `serving benchmark ${new Date().toISOString()}\n${command}\n` +
      `machine: ${cpuModel}, ${cpus().length} logical cores, ${availableParallelism()} schedulable, cgroup CPU limit ${cgroup ?? 'none'} → ${cores} cores used; load ${loadBefore}\n` +
      `model: ${model.dir} (input ${input.name} [${input.shape.join(', ')}]); workloads: ${workloads.map((w) => w.label).join('; ')}\n\n`,
  );

  const batchSizes = input.fixedBatchSize !== undefined ? [input.fixedBatchSize] : Array.from({ length: DIRECT_MAX_BATCH }, (_, i) => i + 1);
  process.stdout.write(`onnxruntime alone, ${config.intraOpThreads} intra-op threads, batch ${batchSizes.join(',')} ...\n`);
  const { value: direct, otherCores: otherDuringDirect } = await withOtherLoad(() =>
    measureDirectInference({
      modelPath: join(model.dir, 'model.onnx'),
      intraOpThreads: config.intraOpThreads,
      batchSizes,
      itemDims: input.shape.slice(1),
      rounds: args.directRounds,
      onRound: (round) => process.stdout.write(`  round ${round}/${args.directRounds} (load ${loadavg()[0]!.toFixed(2)})\n`),
    }),
  );
  process.stdout.write(`  other processes used ${f2(otherDuringDirect)} cores meanwhile\n`);
  for (const d of direct)
    process.stdout.write(`  batch ${String(d.batchSize).padStart(2)}: ${f1(d.msPerBatch).padStart(7)} ms, ${f1(d.msPerImage)} ms/image (${d.runs} runs)\n`);
  const best = direct.reduce((a, b) => (b.msPerImage < a.msPerImage ? b : a));
  const batch1 = direct.find((d) => d.batchSize === 1) ?? direct[0]!;

  const common: Common = {
    args,
    config,
    model,
    input,
    header: {
      command,
      machine: `${cpuModel}, ${cpus().length} logical cores, cgroup CPU limit ${cgroup ?? 'none'}, ${cores} cores available to the server`,
      versions: `node ${process.version}, onnxruntime-node ${versionOf(ROOT, 'onnxruntime-node')}, sharp ${versions.sharp} (libvips ${versions.libvips}), fastify ${versionOf(ROOT, 'fastify')}, autocannon ${versionOf(ROOT, 'autocannon')}`,
      model: model.dir === DEFAULT_MODEL_DIR ? 'resnet50 from the model builder' : model.dir,
      cores,
      direct,
      best,
      batch1,
      loadBefore,
      otherDuringDirect,
    },
  };
  const reports: Report[] = [];
  for (const w of workloads) reports.push(await runWorkload(w, common));

  if (args.json !== undefined) await writeFile(args.json, `${JSON.stringify(reports, null, 2)}\n`);
  const markdown = reports.map((r) => renderMarkdown(r, reports)).join('\n');
  process.stdout.write(`\n${markdown}\n`);
  if (args.write) {
    if (!existsSync(args.out)) {
      await writeFile(
        args.out,
        '# Benchmarks\n\nSections are appended by `npm run bench` (bench/serve.ts; see its header for what it measures) and by hand for notes on what was tried; earlier sections are kept. Each states its machine, date and command.\n\n',
      );
    }
    await appendFile(args.out, `\n${markdown}`);
    process.stdout.write(`Appended to ${args.out}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * Overload: the real server (a child process, as an operator starts it) driven at ~10× its
 * capacity for a fixed time. It should shed load with 503 + Retry-After (or 504 for requests
 * whose deadline passed in the queue), answer the requests it accepts within their deadline,
 * keep its liveness probe fast, keep its memory bounded, and serve at full speed again as soon
 * as the load drops.
 *
 *   npm run build && node dist/bench/overload.js [--model resnet20|resnet50] [--model-dir DIR]
 *       [--capacity-seconds 15] [--overload-seconds 30] [--recovery-seconds 60] [--factor 10]
 *       [--deadline-ms 2000] [--connections 8] [--overload-connections 512]
 *
 * Phases: capacity (closed loop, `--connections` clients, after a short warm-up) → overload
 * (`--factor` × capacity offered at a fixed rate by up to `--overload-connections` clients, a
 * liveness probe every 100 ms on a new connection each time) → recovery (the capacity load
 * again, for `--recovery-seconds`). The server's RSS (/proc/<pid>/status VmRSS: main thread,
 * libvips and the inference workers together) is sampled throughout.
 *
 * The default model is the shared trained ResNet-20 (fast, so the server's own overhead shows);
 * `--model resnet50` serves a ResNet-50 from `--model-dir` (default models/resnet50, built with
 * untrained weights there first if it holds no model.onnx), where inference dominates.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { buildModelFiles } from '../src/model-tools/build.js';
import { readProcMemory, sampleProcMemory } from './lib/proc-memory.js';
import { positive } from './lib/cli.js';
import { httpGet } from './lib/http-get.js';
import { findRepoRoot } from './lib/repo-root.js';
import { startServer, type ServerProcess } from './lib/server-process.js';
import { quantile } from './lib/stats.js';

export const REPO = findRepoRoot(fileURLToPath(new URL('.', import.meta.url)));
const SHARED = resolve(REPO, '..', 'shared');

export type ModelChoice = 'resnet20' | 'resnet50';

export function readModelChoice(value: string): ModelChoice {
  if (value !== 'resnet20' && value !== 'resnet50') throw new RangeError(`--model must be resnet20 or resnet50, got ${value}`);
  return value;
}

export interface Workload {
  /** Temporary model repository holding the one model (remove it when done). */
  readonly repository: string;
  readonly model: ModelChoice;
  /** Raw image bodies sent in rotation. */
  readonly images: ReadonlyArray<{ readonly name: string; readonly contentType: string; readonly body: Buffer }>;
}

/**
 * A repository with the chosen model and the images to send it: the shared trained ResNet-20
 * with CIFAR-10 JPEGs, or a ResNet-50 (built untrained into `modelDir` if absent) with photos.
 */
export async function prepareWorkload(model: ModelChoice, modelDir: string): Promise<Workload> {
  const repository = await mkdtemp(join(tmpdir(), 'resnet-serve-bench-'));
  const target = join(repository, model);
  if (model === 'resnet20') {
    const source = join(SHARED, 'models', 'resnet20-cifar10');
    await mkdir(target);
    await cp(join(source, 'model.onnx'), join(target, 'model.onnx'));
    await cp(join(source, 'labels.txt'), join(target, 'labels.txt'));
    await writeFile(join(target, 'config.json'), JSON.stringify({ preprocess: { resize: 32, crop: 32 } }));
    const names = ['cat_0000.jpg', 'dog_0001.jpg', 'ship_0002.jpg', 'truck_0003.jpg', 'frog_0004.jpg', 'horse_0000.jpg', 'airplane_0001.jpg', 'bird_0002.jpg'];
    const images = await Promise.all(
      names.map(async (name) => ({ name, contentType: 'image/jpeg', body: await readFile(join(SHARED, 'images', 'cifar10', name)) })),
    );
    return { repository, model, images };
  }
  if (!existsSync(join(modelDir, 'model.onnx'))) {
    process.stderr.write(`building an untrained resnet50 into ${modelDir} (one time) ...\n`);
    await buildModelFiles({ arch: 'resnet50', outDir: modelDir });
  }
  await cp(modelDir, target, { recursive: true });
  const names: Array<[string, string]> = [
    ['chelsea.png', 'image/png'],
    ['coffee.png', 'image/png'],
    ['rocket.jpg', 'image/jpeg'],
    ['camera.png', 'image/png'],
  ];
  const images = await Promise.all(
    names.map(async ([name, contentType]) => ({ name, contentType, body: await readFile(join(SHARED, 'images', 'photos', name)) })),
  );
  return { repository, model, images };
}

/** The resident set of a process (all its threads), in bytes, from /proc; NaN off Linux. */
export function readRssBytes(pid: number): number {
  return readProcMemory(pid).rssBytes;
}

/** One line saying what ran where, printed first so a figure is never read without it. */
export function machineBanner(title: string, extra: string): string {
  const cpu = cpus();
  return (
    `# ${title} — ${new Date().toISOString()}\n` +
    `# machine: ${cpu.length}× ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} ` +
    `(shared and noisy: other jobs run beside this one); node ${process.version}\n# ${extra}`
  );
}

export const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

interface Tally {
  readonly statuses: Map<number, number>;
  /** Latency of every 200, in ms. */
  readonly okMs: number[];
  /** Finish times of 200s, ms since the phase began, for throughput over time. */
  readonly okAt: number[];
  retryAfterOn503: number;
  missingRetryAfterOn503: number;
  readonly codes: Map<string, number>;
  errors: number;
  seconds: number;
}

function newTally(): Tally {
  return { statuses: new Map(), okMs: [], okAt: [], retryAfterOn503: 0, missingRetryAfterOn503: 0, codes: new Map(), errors: 0, seconds: 0 };
}

interface Drive {
  readonly baseUrl: string;
  readonly workload: Workload;
  readonly seconds: number;
  readonly connections: number;
  /** Requests per second offered by all clients together; closed loop when absent. */
  readonly overallRate?: number;
}

/** Runs one autocannon phase, tallying every response by status, with Retry-After on 503s. */
function drive(options: Drive): Promise<Tally> {
  const tally = newTally();
  const started = performance.now();
  const requests = options.workload.images.map((image) => ({
    method: 'POST' as const,
    path: '/v1/predict',
    headers: { 'content-type': image.contentType },
    body: image.body,
    onResponse: (status: number, body: string, _context: object, headers: IncomingHttpHeaders | undefined) => {
      if (status === 503) {
        if (headers?.['retry-after'] !== undefined) tally.retryAfterOn503++;
        else tally.missingRetryAfterOn503++;
      }
      if (status !== 200) {
        const code = /"code":"([A-Z_]+)"/.exec(body)?.[1] ?? `HTTP ${status}`;
        tally.codes.set(code, (tally.codes.get(code) ?? 0) + 1);
      }
    },
  }));
  return new Promise((resolvePhase, reject) => {
    const instance = autocannon(
      {
        url: options.baseUrl,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        timeout: 60,
        requests,
        ...(options.overallRate !== undefined ? { overallRate: options.overallRate } : {}),
      },
      (err) => {
        tally.seconds = (performance.now() - started) / 1000;
        if (err) reject(err instanceof Error ? err : new Error(String(err)));
        else resolvePhase(tally);
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      tally.statuses.set(statusCode, (tally.statuses.get(statusCode) ?? 0) + 1);
      if (statusCode === 200) {
        tally.okMs.push(responseTime);
        tally.okAt.push(performance.now() - started);
      }
    });
    instance.on('reqError', () => tally.errors++);
  });
}

const count = (t: Tally, status: number) => t.statuses.get(status) ?? 0;
const total = (t: Tally) => [...t.statuses.values()].reduce((a, b) => a + b, 0) + t.errors;
const okRate = (t: Tally) => count(t, 200) / t.seconds;
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');

/** Throughput of 200s in consecutive windows of `seconds`, req/s. */
function throughputSeries(t: Tally, seconds: number): number[] {
  const buckets = new Array<number>(Math.max(1, Math.floor(t.seconds / seconds))).fill(0);
  for (const at of t.okAt) {
    const i = Math.floor(at / 1000 / seconds);
    if (i < buckets.length) buckets[i]!++;
  }
  return buckets.map((n) => n / seconds);
}

/** A liveness probe on a new connection every `everyMs`, as a kubelet does. */
function probeLive(baseUrl: string, everyMs: number) {
  const latencies: number[] = [];
  let failures = 0;
  const pending: Array<Promise<void>> = [];
  const timer = setInterval(() => {
    pending.push(
      httpGet(`${baseUrl}/v2/health/live`, { timeoutMs: 1_000 }).then(
        (r) => (r.status === 200 ? void latencies.push(r.ms) : void failures++),
        () => void failures++,
      ),
    );
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return { latencies, failures };
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'resnet20' },
      'model-dir': { type: 'string', default: join(REPO, 'models', 'resnet50') },
      'capacity-seconds': { type: 'string', default: '15' },
      'overload-seconds': { type: 'string', default: '30' },
      'recovery-seconds': { type: 'string', default: '60' },
      factor: { type: 'string', default: '10' },
      'deadline-ms': { type: 'string', default: '2000' },
      connections: { type: 'string', default: '8' },
      'overload-connections': { type: 'string', default: '512' },
    },
  });
  const model = readModelChoice(values.model!);
  const num = (name: keyof typeof values) => positive(name, String(values[name]));
  const deadlineMs = num('deadline-ms');
  const factor = num('factor');
  const connections = num('connections');

  const workload = await prepareWorkload(model, resolve(values['model-dir']!));
  const env = { MODEL_REPOSITORY: workload.repository, SEED_DEFAULT_MODEL: 'false', LOG_LEVEL: 'warn', REQUEST_TIMEOUT_MS: String(deadlineMs) };
  console.log(
    machineBanner('Overload benchmark', `model ${model}; REQUEST_TIMEOUT_MS=${deadlineMs}; other settings from the environment (defaults otherwise)`),
  );
  let server: ServerProcess | undefined;
  try {
    server = await startServer({ entry: join(REPO, 'dist', 'src', 'server.js'), env, logPath: join(workload.repository, 'server.log') });
    const rss = sampleProcMemory(server.pid, 250);
    const base = { baseUrl: server.baseUrl, workload, connections };

    await drive({ ...base, seconds: 3 }); // warm-up: first batches, JIT, connection setup
    const capacity = await drive({ ...base, seconds: num('capacity-seconds') });
    const capacityRate = okRate(capacity);
    const rssBeforeOverload = readRssBytes(server.pid);
    console.log(
      `\ncapacity: ${capacityRate.toFixed(1)} req/s (200s) with ${connections} clients in closed loop; p50 ${ms(quantile(capacity.okMs, 0.5))} ms, p99 ${ms(quantile(capacity.okMs, 0.99))} ms`,
    );

    const offered = factor * capacityRate;
    const probe = probeLive(server.baseUrl, 100);
    const overloadStartRssIndex = rss.samples.length;
    const overload = await drive({ ...base, seconds: num('overload-seconds'), connections: num('overload-connections'), overallRate: Math.ceil(offered) });
    const live = await probe.stop();
    const overloadRss = rss.samples.slice(overloadStartRssIndex).map((m) => m.rssBytes);

    const recovery = await drive({ ...base, seconds: num('recovery-seconds') });
    rss.stop();

    const sent = total(overload);
    const over = overload.okMs.filter((v) => v > deadlineMs).length;
    console.log(
      `\n## Overload: ${factor}× capacity = ${offered.toFixed(0)} req/s offered for ${overload.seconds.toFixed(0)} s by up to ${values['overload-connections']} clients`,
    );
    console.log(`achieved offered rate: ${(sent / overload.seconds).toFixed(0)} req/s (${sent} requests)`);
    console.log('| status | count | share |');
    console.log('| --- | ---: | ---: |');
    for (const [status, n] of [...overload.statuses].sort((a, b) => a[0] - b[0])) console.log(`| ${status} | ${n} | ${((100 * n) / sent).toFixed(1)} % |`);
    if (overload.errors > 0) console.log(`| transport error / timeout | ${overload.errors} | ${((100 * overload.errors) / sent).toFixed(1)} % |`);
    console.log(`error codes: ${JSON.stringify(Object.fromEntries(overload.codes))}`);
    console.log(`503 with Retry-After: ${overload.retryAfterOn503} of ${overload.retryAfterOn503 + overload.missingRetryAfterOn503}`);
    console.log(
      `accepted (200) throughput under overload: ${okRate(overload).toFixed(1)} req/s (${((100 * okRate(overload)) / capacityRate).toFixed(0)} % of capacity)`,
    );
    console.log(
      `accepted (200) latency vs the ${deadlineMs} ms deadline: p50 ${ms(quantile(overload.okMs, 0.5))}, p99 ${ms(quantile(overload.okMs, 0.99))}, max ${ms(Math.max(...overload.okMs))} ms; ${over} of ${overload.okMs.length} over the deadline`,
    );
    console.log(
      `live probe (new connection every 100 ms): ${live.latencies.length} ok, ${live.failures} failed; p50 ${ms(quantile(live.latencies, 0.5))} ms, p99 ${ms(quantile(live.latencies, 0.99))} ms, max ${ms(Math.max(...live.latencies))} ms`,
    );
    console.log(
      `server RSS: ${mb(rssBeforeOverload)} before overload; during it min ${mb(Math.min(...overloadRss))}, max ${mb(Math.max(...overloadRss))}; after recovery ${mb(rss.samples.at(-1)!.rssBytes)}`,
    );
    const every5 = rss.samples.filter((_, i) => i % 20 === 0).map((m) => `${(m.atMs / 1000).toFixed(0)}s:${(m.rssBytes / 2 ** 20).toFixed(0)}`);
    console.log(`RSS over the run (s:MB, every 5 s): ${every5.join(' ')}`);

    const series = throughputSeries(recovery, 5);
    console.log(`\n## Recovery: the capacity load again for ${recovery.seconds.toFixed(0)} s`);
    console.log(
      `throughput ${okRate(recovery).toFixed(1)} req/s vs ${capacityRate.toFixed(1)} before (${((100 * okRate(recovery)) / capacityRate).toFixed(0)} %); non-200: ${total(recovery) - count(recovery, 200)}`,
    );
    console.log(`per 5 s from the moment load dropped: ${series.map((r) => r.toFixed(0)).join(', ')} req/s`);
    console.log(
      `latency p50 ${ms(quantile(recovery.okMs, 0.5))} ms, p99 ${ms(quantile(recovery.okMs, 0.99))} ms (before: ${ms(quantile(capacity.okMs, 0.5))} / ${ms(quantile(capacity.okMs, 0.99))})`,
    );
  } finally {
    const code = await server?.stop();
    if (code !== undefined && code !== 0) console.log(`server exited with code ${code}`);
    await rm(workload.repository, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

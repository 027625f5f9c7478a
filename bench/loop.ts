/**
 * Event-loop responsiveness: the real server under a closed-loop load of large photos (or a
 * refusal flood), comparing server settings interleaved in one run (A B, B A, A B …, a fresh
 * server per measurement), each with the live probe from its own thread, the same probe sent to
 * an idle server process (the floor this machine's scheduler sets; floor-server.ts), the server's event-loop delay
 * and where its CPU went, against the perfect-pipeline limit measured with the same images and
 * the same decode path between rounds.
 *
 *   npm run bench:loop -- --images test-output/phone-photos \
 *     [--model .bench/models/resnet50] [--concurrency 32] [--rounds 3] [--warmup 5] [--duration 20] \
 *     [--variant "uv4:UV_THREADPOOL_SIZE=4" --variant "uv2:UV_THREADPOOL_SIZE=2" ...] [--no-limit]
 *     [--server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"]
 *
 * A variant is `name:VAR=value,VAR=value` (server environment, added to this process's), plus
 * three keys of the benchmark's own: `ENTRY=<path>/dist/src/server.js` runs another build (before
 * and after a change), `NODE_ARGS=--flag --flag=value` gives its server Node options (V8 flags
 * that NODE_OPTIONS refuses), `RENICE_DECODE=n` renices the server's libvips threads (an experiment).
 *
 * `--flood`: a refusal flood instead of autocannon's closed loop, from clients that honour
 * `Connection: close` (bench/lib/flood.ts; autocannon does not, and counts the closed
 * connection's next request as an error), e.g.
 *   --flood --no-limit --concurrency 256 --images .bench/small-photos \
 *     --variant "q8:QUEUE_MAX_SIZE=8,MAX_IMAGES_PER_REQUEST=8"
 * Answers are counted by status, failures by error code, with the connections opened.
 *
 * The limit is 1000 / (best ms/image of onnxruntime alone at `--batch` + preprocessing CPU
 * ms/image / cores), as in bench/serve.ts, measured in this process with no server running.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { cpus, getPriority, loadavg, setPriority } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { availableCpus } from '../src/system/cpu-quota.js';
import { ensureModel, prepareRepository, readModelInput } from './lib/bench-model.js';
import { positive } from './lib/cli.js';
import { ownCpuSeconds, readThreadTimes, threadGroupDelta } from './lib/cpu-usage.js';
import { startFloorServer } from './lib/floor-server.js';
import { httpGet } from './lib/http-get.js';
import { runFlood } from './lib/flood.js';
import { runLoad, type Upload } from './lib/load.js';
import { canMakeUnique } from './lib/unique-images.js';
import { measureDirectInference } from './lib/onnx-direct.js';
import { parsePrometheusText, type Sample } from './lib/prometheus-text.js';
import { startProber, type Prober } from './lib/prober.js';
import { findRepoRoot } from './lib/repo-root.js';
import { startServer } from './lib/server-process.js';
import { median, quantile } from './lib/stats.js';
import { measurePreprocessCost } from './preprocess.js';

const ROOT = findRepoRoot(fileURLToPath(new URL('.', import.meta.url)));
const CACHE = join(ROOT, '.bench');
const TYPES: Readonly<Record<string, string>> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
/** prom-client's event-loop sampling period, in ms; its gauges hold whole intervals (see serve.ts). */
const LOOP_SAMPLE_INTERVAL_MS = 10;

interface Variant {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
  /**
   * An experiment, not a server setting: nice value the benchmark gives the server's libvips
   * worker threads (found by name in /proc every 100 ms, as libvips starts them on demand), to
   * see what decoding at a lower priority than the event loop would change. Set with a
   * `RENICE_DECODE=n` pair in the variant.
   */
  readonly reniceDecode?: number;
  /** Another build's entry (`ENTRY=/path/dist/src/server.js` in the variant), to compare before and after. */
  readonly entry?: string;
  /** Node options of this variant's server (`NODE_ARGS=--flag --flag=value`), after `--server-node-args`. */
  readonly nodeArgs?: readonly string[];
}

export function parseVariant(text: string): Variant {
  const colon = text.indexOf(':');
  const name = colon < 0 ? text : text.slice(0, colon);
  const env: Record<string, string> = {};
  for (const pair of (colon < 0 ? '' : text.slice(colon + 1)).split(',').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`--variant ${text}: expected name:VAR=value,VAR=value`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const { RENICE_DECODE: renice, ENTRY: entry, NODE_ARGS: nodeArgs, ...server } = env;
  return {
    name,
    env: server,
    ...(renice === undefined ? {} : { reniceDecode: Number(renice) }),
    ...(entry === undefined ? {} : { entry: resolve(entry) }),
    ...(nodeArgs === undefined ? {} : { nodeArgs: nodeArgs.split(/\s+/).filter(Boolean) }),
  };
}

interface Measurement {
  readonly variant: string;
  readonly imagesPerSecond: number;
  /** Answers of any status per second (refusals included). */
  readonly answersPerSecond: number;
  readonly statuses: string;
  readonly p50: number;
  readonly p99: number;
  readonly probeP50: number;
  readonly probeP99: number;
  readonly probeMax: number;
  readonly probeFailures: number;
  readonly loopDelayP99: number;
  readonly loopDelayMax: number;
  readonly cores: Record<string, number>;
  readonly loadAverage: number;
  /**
   * The main thread's time runnable but waiting for a CPU (schedstat's run delay), in ms per
   * second of the window and per time slice it ran, and how often it was preempted, per second:
   * a loop delay with little CPU used and much waiting is the scheduler's, not the loop's work.
   */
  readonly mainWaitMsPerSecond: number;
  readonly mainWaitMsPerSlice: number;
  readonly mainPreemptedPerSecond: number;
  /** The event loop's CPU time per answer of any status, in µs: what each request cost the main thread. */
  readonly mainCpuUsPerAnswer: number;
  /** CPU of the inference threads per image answered: the model's cost, which drifts with the machine. */
  readonly inferenceCpuMsPerImage: number;
  /** p99 of the same probes sent to an idle server process in the same window (floor-server.ts). */
  readonly floorProbeP99: number;
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const gauge = (samples: readonly Sample[], name: string) => samples.find((s) => s.name === name)?.value ?? Number.NaN;

/** The flood (flood.ts) in runLoad's terms, with its failures as transport errors. */
async function floodLoad(
  baseUrl: string,
  path: string,
  uploads: readonly Upload[],
  connections: number,
  warmupSeconds: number,
  durationSeconds: number,
  window: { onWindowStart: () => Promise<void>; onWindowEnd: () => Promise<void> },
) {
  const r = await runFlood({
    url: `${baseUrl}${path}`,
    probeUrl: `${baseUrl}/v2/health/live`,
    uploads,
    connections,
    warmupSeconds,
    durationSeconds,
    ...window,
  });
  return { ...r, transportErrors: 0 };
}

interface SchedStat {
  /** CPU time, waiting time on a run queue, in ns, and time slices run, from /proc/<pid>/schedstat (the main thread). */
  readonly cpuNs: number;
  readonly waitNs: number;
  readonly slices: number;
  /** Times the thread was preempted (nonvoluntary_ctxt_switches). */
  readonly preempted: number;
}

function readSchedStat(pid: number): SchedStat {
  try {
    const [cpuNs, waitNs, slices] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    const preempted = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return { cpuNs: cpuNs!, waitNs: waitNs!, slices: slices!, preempted };
  } catch {
    return { cpuNs: Number.NaN, waitNs: Number.NaN, slices: Number.NaN, preempted: Number.NaN };
  }
}

/** Sets the nice value of process `pid`'s threads whose name matches (Linux: setpriority on a thread id). */
function reniceThreads(pid: number, name: RegExp, nice: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    try {
      if (name.test(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8')) && getPriority(Number(tid)) !== nice) setPriority(Number(tid), nice);
    } catch {
      // The thread ended meanwhile.
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      images: { type: 'string' },
      model: { type: 'string' },
      concurrency: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '5' },
      duration: { type: 'string', default: '20' },
      batch: { type: 'string', default: '8' },
      variant: { type: 'string', multiple: true, default: [] },
      'no-limit': { type: 'boolean', default: false },
      'server-node-args': { type: 'string', default: '' },
      flood: { type: 'boolean', default: false },
    },
  });
  if (values.images === undefined) throw new Error('--images <folder of photos> is required');
  const imageDir = resolve(values.images);
  const files = readdirSync(imageDir)
    .filter((f) => TYPES[extname(f).toLowerCase()] !== undefined)
    .sort();
  if (files.length === 0) throw new Error(`no images in ${imageDir}`);
  // Unique bytes per request where the format allows (the same pixels): identical images in
  // flight would be coalesced into one inference, which this benchmark does not measure.
  const uploads: Upload[] = files.map((f) => {
    const body = readFileSync(join(imageDir, f));
    return { name: f, contentType: TYPES[extname(f).toLowerCase()]!, body, unique: canMakeUnique(body) };
  });
  const variants = (values.variant.length > 0 ? values.variant : ['default:']).map(parseVariant);
  const connections = positive('concurrency', values.concurrency, { integer: true });
  const rounds = positive('rounds', values.rounds, { integer: true });
  const warmupSeconds = positive('warmup', values.warmup, { zero: true });
  const durationSeconds = positive('duration', values.duration);
  const batch = positive('batch', values.batch, { integer: true });
  const flood = values.flood;
  const cores = availableCpus();

  await mkdir(CACHE, { recursive: true });
  const model = await ensureModel(values.model === undefined ? undefined : resolve(values.model), join(CACHE, 'models'));
  const input = await readModelInput(model.dir);
  const repository = join(CACHE, 'loop-repository');
  await prepareRepository(model, repository);
  const path = `/v1/models/${encodeURIComponent(model.name)}:predict`;
  process.stdout.write(
    `# event-loop benchmark ${new Date().toISOString()}\n# ${process.argv.slice(2).join(' ')}\n` +
      `# machine: ${cpus()[0]?.model ?? '?'}, nproc ${cpus().length}, ${cores} cores available; load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}; node ${process.version}\n` +
      `# model ${model.dir}; ${files.length} images from ${imageDir} (${(uploads.reduce((a, u) => a + u.body.length, 0) / uploads.length / 2 ** 20).toFixed(2)} MB mean); ${connections} clients\n`,
  );

  const limits: number[] = [];
  const measureLimit = async () => {
    const pre = await measurePreprocessCost(
      input.preprocess,
      files.map((f) => join(imageDir, f)),
      { iterations: 1 },
    );
    const [timing] = await measureDirectInference({
      modelPath: join(model.dir, 'model.onnx'),
      intraOpThreads: cores,
      batchSizes: [input.fixedBatchSize ?? batch],
      itemDims: input.shape.slice(1),
      rounds: 3,
    });
    const limit = 1000 / (timing!.msPerImage + pre.cpuMsPerImage / cores);
    limits.push(limit);
    process.stdout.write(
      `limit: 1000 / (${f2(timing!.msPerImage)} ms/image at batch ${timing!.batchSize} + ${f2(pre.cpuMsPerImage)} preprocessing CPU ms / ${cores}) = ${f1(limit)} images/s\n`,
    );
  };

  const results: Measurement[] = [];
  const floor = await startFloorServer();
  try {
    for (let round = 1; round <= rounds; round++) {
      if (!values['no-limit']) await measureLimit();
      // Every other round runs the variants in reverse order, so a machine that speeds up or slows
      // down across a round favours none of them.
      for (const variant of round % 2 === 1 ? variants : [...variants].reverse()) {
        const server = await startServer({
          entry: variant.entry ?? join(ROOT, 'dist', 'src', 'server.js'),
          env: {
            API_KEYS: '',
            RATE_LIMIT_MAX: '0',
            LOG_LEVEL: 'info',
            MODEL_REPOSITORY: repository,
            DEFAULT_MODEL: model.name,
            SEED_DEFAULT_MODEL: 'false',
            ...variant.env,
          },
          logPath: join(CACHE, `loop-server-${variant.name}.log`),
          nodeArgs: [...values['server-node-args'].split(/\s+/).filter(Boolean), ...(variant.nodeArgs ?? [])],
        });
        const renicer =
          variant.reniceDecode === undefined ? undefined : setInterval(() => reniceThreads(server.pid, /^libvips worker/, variant.reniceDecode!), 100);
        try {
          let before: ReturnType<typeof readThreadTimes> | undefined;
          let after: ReturnType<typeof readThreadTimes> | undefined;
          let metrics: Sample[] = [];
          // A server drowned by a flood may not answer in time: its loop delay is then unknown (–).
          const scrape = async () =>
            httpGet(`${server.baseUrl}/metrics`, { timeoutMs: 10_000 }).then(
              (r) => parsePrometheusText(r.body),
              () => [] as Sample[],
            );
          let benchCpu = 0;
          let schedBefore: SchedStat | undefined;
          let schedAfter: SchedStat | undefined;
          let floorProber: Prober | undefined;
          let floorLatencies: number[] = [];
          const window = {
            onWindowStart: async () => {
              floorProber = startProber(`${floor.url}/`, 100);
              await scrape(); // resets prom-client's event-loop histogram
              before = readThreadTimes(server.pid);
              schedBefore = readSchedStat(server.pid);
              benchCpu = ownCpuSeconds();
            },
            onWindowEnd: async () => {
              after = readThreadTimes(server.pid);
              schedAfter = readSchedStat(server.pid);
              benchCpu = ownCpuSeconds() - benchCpu;
              floorLatencies = (await floorProber!.stop()).latenciesMs;
              metrics = await scrape();
            },
          };
          const load = flood
            ? await floodLoad(server.baseUrl, path, uploads, connections, warmupSeconds, durationSeconds, window)
            : await runLoad({ baseUrl: server.baseUrl, path, uploads, connections, warmupSeconds, durationSeconds, probePath: '/v2/health/live', ...window });
          const ok = [...load.statuses].filter(([s]) => s >= 200 && s < 300).reduce((a, [, n]) => a + n, 0);
          const threads = threadGroupDelta(server.pid, before!, after!);
          const m: Measurement = {
            variant: variant.name,
            imagesPerSecond: ok / load.windowSeconds,
            answersPerSecond: [...load.statuses.values()].reduce((a, b) => a + b, 0) / load.windowSeconds,
            statuses: [...load.statuses]
              .sort((a, b) => a[0] - b[0])
              .map(([s, n]) => `${s}:${n}`)
              .concat(load.transportErrors > 0 ? [`transport:${load.transportErrors}`] : [])
              .concat('connectionsOpened' in load ? [`connections-opened:${load.connectionsOpened}`] : [])
              .concat('failures' in load ? [...load.failures].map(([code, n]) => `${code}:${n}`) : [])
              .join(' '),
            p50: quantile(load.latenciesMs, 0.5),
            p99: quantile(load.latenciesMs, 0.99),
            probeP50: quantile(load.probeLatenciesMs, 0.5),
            probeP99: quantile(load.probeLatenciesMs, 0.99),
            probeMax: Math.max(...load.probeLatenciesMs),
            probeFailures: load.probeFailures,
            loopDelayP99: Math.max(0, gauge(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000 - LOOP_SAMPLE_INTERVAL_MS),
            loopDelayMax: Math.max(0, gauge(metrics, 'nodejs_eventloop_lag_max_seconds') * 1000 - LOOP_SAMPLE_INTERVAL_MS),
            cores: {
              ...Object.fromEntries(threads.filter((g) => g.seconds > 0.05).map((g) => [`${g.group}(${g.threads})`, g.seconds / load.windowSeconds])),
              'bench process': benchCpu / load.windowSeconds,
            },
            loadAverage: loadavg()[0]!,
            mainWaitMsPerSecond: (schedAfter!.waitNs - schedBefore!.waitNs) / 1e6 / load.windowSeconds,
            mainWaitMsPerSlice: (schedAfter!.waitNs - schedBefore!.waitNs) / 1e6 / (schedAfter!.slices - schedBefore!.slices),
            mainPreemptedPerSecond: (schedAfter!.preempted - schedBefore!.preempted) / load.windowSeconds,
            mainCpuUsPerAnswer:
              ((threads.find((g) => g.group === 'main')?.seconds ?? Number.NaN) * 1e6) / [...load.statuses.values()].reduce((a, b) => a + b, 0),
            inferenceCpuMsPerImage: ((threads.find((g) => g.group === 'ort-inference')?.seconds ?? Number.NaN) * 1e3) / ok,
            floorProbeP99: quantile(floorLatencies, 0.99),
          };
          results.push(m);
          process.stdout.write(
            `round ${round} ${variant.name}: ${f1(m.imagesPerSecond)} images/s [${m.statuses}], p50 ${f1(m.p50)} p99 ${f1(m.p99)} ms; ` +
              `inference ${f1(m.inferenceCpuMsPerImage)} CPU ms/image; main thread ${f1(m.mainCpuUsPerAnswer)} CPU µs/answer, waited for a CPU ${f1(m.mainWaitMsPerSecond)} ms/s (${f2(m.mainWaitMsPerSlice)} ms per slice, preempted ${f1(m.mainPreemptedPerSecond)}/s); probe p50 ${f1(m.probeP50)} p99 ${f1(m.probeP99)} max ${f1(m.probeMax)} ms (${m.probeFailures} failed; an idle server's p99 ${f1(m.floorProbeP99)}); loop delay p99 ${f1(m.loopDelayP99)} max ${f1(m.loopDelayMax)} ms; ` +
              `cores ${Object.entries(m.cores)
                .map(([g, c]) => `${g} ${f2(c)}`)
                .join(', ')}; load ${f2(m.loadAverage)}\n`,
          );
        } finally {
          clearInterval(renicer);
          await server.stop();
        }
      }
    }
  } finally {
    await floor.stop();
  }
  if (!values['no-limit']) await measureLimit();

  const limit = median(limits);
  process.stdout.write(
    `\nMedians over ${rounds} rounds (limit: median of ${limits.length} measurements between rounds = ${f1(limit)} images/s):\n\n` +
      '| variant | images/s | × limit | inference CPU ms/image | p50 ms | p99 ms | answers/s | main-thread CPU µs/answer | main thread waiting for a CPU ms/s | probe p50 ms | probe p99 ms | probe max ms | idle server probe p99 ms | loop delay p99 / max ms |\n' +
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n',
  );
  for (const v of variants) {
    const mine = results.filter((r) => r.variant === v.name);
    const med = (f: (r: Measurement) => number) => median(mine.map(f));
    process.stdout.write(
      `| ${v.name} (${Object.entries(v.env)
        .map(([k, x]) => `${k}=${x}`)
        .join(
          ' ',
        )}) | ${f1(med((r) => r.imagesPerSecond))} | ${values['no-limit'] ? '–' : f2(med((r) => r.imagesPerSecond) / limit)} | ${f1(med((r) => r.inferenceCpuMsPerImage))} | ${f1(med((r) => r.p50))} | ${f1(
        med((r) => r.p99),
      )} | ${f1(med((r) => r.answersPerSecond))} | ${f1(med((r) => r.mainCpuUsPerAnswer))} | ${f1(med((r) => r.mainWaitMsPerSecond))} | ${f1(med((r) => r.probeP50))} | ${f1(med((r) => r.probeP99))} | ${f1(med((r) => r.probeMax))} | ${f1(med((r) => r.floorProbeP99))} | ${f1(med((r) => r.loopDelayP99))} / ${f1(
        med((r) => r.loopDelayMax),
      )} |\n`,
    );
  }
  process.stdout.write(`\n(${basename(imageDir)}; every measurement is listed above with its round.)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * Hostile input: the security issue's three attacks, each against a fresh real server process
 * (as an operator starts it) serving the shared trained ResNet-20, while a liveness probe and a
 * normal client measure what the server's other users see and the server's memory is sampled.
 *
 *   npm run build && node dist/bench/hostile.js [--server dist/src/server.js] [--seconds 20]
 *       [--phases baseline,json,scan,decode] [--clients 4] [--size 6324] [--timeout-ms 10000]
 *       [--probe-interval-ms 100] [--probe-timeout-ms 1000] [--sample-ms 50]
 *
 * Phases (each `--seconds` long, on its own server process, after a short warm-up):
 * - `baseline`: no attack, for comparison;
 * - `json`: `{"inputs":` + n `[` + n `]` + `}`, 16 MiB less one byte (n = 8 Mi − 6, the most
 *   that fits JSON_BODY_MAX_BYTES' default), to `/v2/models/resnet20/infer`, `--clients` at once;
 * - `scan`: a progressive CMYK JPEG of `--size`² pixels with the most scans a valid progression
 *   allows (3,529: bench/lib/hostile-images.ts), raw `image/jpeg` to
 *   `/v1/models/resnet20:predict`, `--clients` at once;
 * - `decode`: a 16-bit RGBA Adam7-interlaced PNG of `--size`² pixels (~320 MB of samples to
 *   decode), as multipart to `/v1/models/resnet20:predict` by three clients at once: one
 *   sending 4 copies a request, two sending 8.
 * Each attack client sends again as soon as it is answered, each request on a new connection,
 * until the phase ends; requests still unanswered then are aborted and counted as such.
 *
 * Meanwhile, on threads of their own: a liveness probe (GET /v2/health/live on a new
 * connection every `--probe-interval-ms`, failing past `--probe-timeout-ms`, as a kubelet's
 * with `timeoutSeconds: 1`), and a normal client sending a CIFAR-10 cat JPEG in a closed loop
 * over one keep-alive connection. The server's VmRSS is sampled every `--sample-ms` and its
 * VmHWM (the kernel's own peak) read at the phase's end, set beside the memory limit of the
 * Deployment in deploy/base/deployment.yaml. The server is stopped after each phase (SIGKILL
 * if it has not exited 5 s after SIGTERM).
 *
 * `--server` runs another build of the server (e.g. a worktree of an older commit) with the same
 * settings: the model repository, SEED_DEFAULT_MODEL=false, LOG_LEVEL=warn, and the rest from
 * the environment (each server's defaults otherwise).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { positive } from './lib/cli.js';
import { startClosedLoopClient, type ClosedLoopResult } from './lib/closed-loop.js';
import { ownCpuSeconds, readMachineTimes, readProcessCpuSeconds, readThreadTimes, threadGroupDelta } from './lib/cpu-usage.js';
import { readDeploymentMemoryLimit, type MemoryLimit } from './lib/deployment-limits.js';
import { interlacedPng16Rgba, maxValidScans, nestedJsonBomb, progressiveJpegScanBomb } from './lib/hostile-images.js';
import { failureName, httpPost, type PostResult } from './lib/http-post.js';
import { readProcMemory, sampleProcMemory } from './lib/proc-memory.js';
import { startProber, type ProbeResult } from './lib/prober.js';
import { startServer, type ServerProcess } from './lib/server-process.js';
import { quantile } from './lib/stats.js';
import { findRepoRoot } from './lib/repo-root.js';
import { REPO, machineBanner, mb, prepareWorkload, type Workload } from './overload.js';

const PHASES = ['baseline', 'json', 'scan', 'decode'] as const;
type PhaseName = (typeof PHASES)[number];

const MODEL = 'resnet20';
const NORMAL_IMAGE = 'cat_0000.jpg';
/** `[` pairs of the JSON attack: the body is then 16 MiB less one byte, within the default JSON_BODY_MAX_BYTES. */
const JSON_NESTING = 8 * 2 ** 20 - 6;
/** Copies of the PNG bomb in each decode-attack client's requests (the issue's 4, 8 and 8). */
const DECODE_COPIES = [4, 8, 8] as const;
/** Grace after SIGTERM before the server is killed, in ms. */
const STOP_TIMEOUT_MS = 5_000;

/** One attack client's request, sent again and again. */
interface AttackRequest {
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
}

interface Attack {
  readonly description: string;
  readonly expected: string;
  readonly clients: readonly AttackRequest[];
}

function multipart(boundary: string, file: Buffer, copies: number, contentType: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < copies; i++) {
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="bomb-${i}.png"\r\nContent-Type: ${contentType}\r\n\r\n`),
      file,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

async function buildAttack(phase: Exclude<PhaseName, 'baseline'>, clients: number, size: number): Promise<Attack> {
  const predict = `/v1/models/${MODEL}:predict`;
  if (phase === 'json') {
    const body = nestedJsonBomb(JSON_NESTING);
    return {
      description: `nested JSON (${body.length} bytes, ${JSON_NESTING} arrays deep) to /v2/models/${MODEL}/infer, ${clients} at once`,
      expected: '400 INVALID_JSON',
      clients: Array.from({ length: clients }, () => ({ path: `/v2/models/${MODEL}/infer`, contentType: 'application/json', body })),
    };
  }
  if (phase === 'scan') {
    const scans = maxValidScans(4);
    const body = progressiveJpegScanBomb({ width: size, height: size, scans, components: 4 });
    return {
      description: `progressive CMYK JPEG scan bomb (${size}×${size}, ${scans} scans, ${body.length} bytes) as image/jpeg to ${predict}, ${clients} at once`,
      expected: '400 INVALID_IMAGE',
      clients: Array.from({ length: clients }, () => ({ path: predict, contentType: 'image/jpeg', body })),
    };
  }
  const png = await interlacedPng16Rgba(size, size);
  const boundary = 'hostile-bench-boundary';
  return {
    description:
      `16-bit RGBA interlaced PNG (${size}×${size}, ${png.length} bytes, ${mb(size * size * 8)} of samples) as multipart to ${predict}: ` +
      `${DECODE_COPIES.length} clients at once sending ${DECODE_COPIES.join(', ')} copies a request`,
    expected: '413 IMAGE_TOO_LARGE',
    clients: DECODE_COPIES.map((copies) => ({
      path: predict,
      contentType: `multipart/form-data; boundary=${boundary}`,
      body: multipart(boundary, png, copies, 'image/png'),
    })),
  };
}

interface AttackTally {
  sent: number;
  /** Answers by `status code`, e.g. `400 INVALID_JSON`. */
  readonly answers: Map<string, number>;
  readonly answerMs: number[];
  /** Requests that failed before the phase's end without an answer, by reason. */
  readonly failures: Map<string, number>;
  /** Requests still unanswered at the phase's end (aborted then). */
  unansweredAtEnd: number;
}

const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

function answerLabel(r: PostResult): string {
  const code = /"code"\s*:\s*"([A-Z_]+)"/.exec(r.body)?.[1];
  return code === undefined ? `${r.status}` : `${r.status} ${code}`;
}

/** Sends `request` again and again, each on a new connection, until `signal` aborts. */
async function attackLoop(baseUrl: string, request: AttackRequest, signal: AbortSignal, timeoutMs: number, tally: AttackTally): Promise<void> {
  while (!signal.aborted) {
    tally.sent++;
    try {
      const r = await httpPost(`${baseUrl}${request.path}`, request.body, { headers: { 'content-type': request.contentType }, timeoutMs, signal });
      bump(tally.answers, answerLabel(r));
      tally.answerMs.push(r.ms);
    } catch (err) {
      if (signal.aborted) {
        tally.unansweredAtEnd++;
      } else {
        bump(tally.failures, failureName(err));
        await sleep(50); // no tight loop against a server that refuses connections
      }
    }
  }
}

interface PhaseResult {
  readonly name: PhaseName;
  readonly seconds: number;
  readonly loadBefore: readonly number[];
  readonly attack: Attack | undefined;
  readonly tally: AttackTally;
  readonly probe: ProbeResult;
  readonly normal: ClosedLoopResult;
  readonly startRssBytes: number;
  readonly sampledMaxRssBytes: number;
  readonly samples: number;
  readonly peakRssBytes: number;
  readonly serverAliveAtEnd: boolean;
  readonly exitCode: number | null;
  /** CPU the server process used (all its threads), in cores. */
  readonly serverCores: number;
  /** CPU the server's main thread (its event loop) used, in cores: 1 is a saturated loop. */
  readonly serverMainThreadCores: number;
  /** CPU this process used (attack clients, prober and normal client threads), in cores. */
  readonly benchCores: number;
  /** CPU the whole machine used, in cores. */
  readonly busyCores: number;
  readonly stealSeconds: number;
}

interface Settings {
  readonly entry: string;
  readonly workload: Workload;
  readonly seconds: number;
  readonly clients: number;
  readonly size: number;
  readonly timeoutMs: number;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly sampleMs: number;
}

/** The first inference of a fresh server is slow (session warm-up); one 200 proves the path works. */
async function warmUp(server: ServerProcess, image: Buffer): Promise<void> {
  let ok = 0;
  for (let i = 0; i < 10; i++) {
    const r = await httpPost(`${server.baseUrl}/v1/models/${MODEL}:predict`, image, { headers: { 'content-type': 'image/jpeg' }, timeoutMs: 30_000 });
    if (r.status === 200) ok++;
  }
  if (ok === 0) throw new Error('the warm-up got no 200 from the server');
}

async function runPhase(name: PhaseName, settings: Settings): Promise<PhaseResult> {
  const attack = name === 'baseline' ? undefined : await buildAttack(name, settings.clients, settings.size);
  const image = settings.workload.images.find((i) => i.name === NORMAL_IMAGE)!.body;
  const server = await startServer({
    entry: settings.entry,
    env: { MODEL_REPOSITORY: settings.workload.repository, SEED_DEFAULT_MODEL: 'false', LOG_LEVEL: 'warn' },
    logPath: join(settings.workload.repository, `server-${name}.log`),
  });
  let measured: Omit<PhaseResult, 'exitCode'>;
  let exitCode: number | null;
  try {
    await warmUp(server, image);
    const loadBefore = loadavg();
    const machineBefore = readMachineTimes();
    const serverCpuBefore = readProcessCpuSeconds(server.pid);
    const serverThreadsBefore = readThreadTimes(server.pid);
    const benchCpuBefore = ownCpuSeconds();
    const startRssBytes = readProcMemory(server.pid).rssBytes;
    const memory = sampleProcMemory(server.pid, settings.sampleMs);
    const prober = startProber(`${server.baseUrl}/v2/health/live`, settings.probeIntervalMs, settings.probeTimeoutMs);
    const normal = startClosedLoopClient({
      url: `${server.baseUrl}/v1/models/${MODEL}:predict`,
      body: image,
      contentType: 'image/jpeg',
      timeoutMs: settings.timeoutMs,
    });
    const tally: AttackTally = { sent: 0, answers: new Map(), answerMs: [], failures: new Map(), unansweredAtEnd: 0 };
    const end = new AbortController();
    const started = performance.now();
    // Attack requests are bounded by the phase's end (they are aborted then); the timeout is a backstop.
    const loops = (attack?.clients ?? []).map((request) => attackLoop(server.baseUrl, request, end.signal, settings.seconds * 1000 + 5_000, tally));

    await sleep(settings.seconds * 1000);
    const seconds = (performance.now() - started) / 1000;
    const peakRssBytes = readProcMemory(server.pid).peakRssBytes;
    const samples = memory.stop();
    const machineAfter = readMachineTimes();
    const serverCpuSeconds = readProcessCpuSeconds(server.pid) - serverCpuBefore;
    const mainThreadSeconds =
      threadGroupDelta(server.pid, serverThreadsBefore, readThreadTimes(server.pid)).find((g) => g.group === 'main')?.seconds ?? Number.NaN;
    const benchCpuSeconds = ownCpuSeconds() - benchCpuBefore;
    end.abort();
    const [probe, normalResult] = await Promise.all([prober.stop(), normal.stop()]);
    await Promise.all(loops);
    const rss = samples.map((s) => s.rssBytes).filter(Number.isFinite);
    measured = {
      name,
      seconds,
      loadBefore,
      attack,
      tally,
      probe,
      normal: normalResult,
      startRssBytes,
      sampledMaxRssBytes: rss.length > 0 ? Math.max(...rss) : Number.NaN,
      samples: samples.length,
      peakRssBytes,
      serverAliveAtEnd: Number.isFinite(peakRssBytes),
      serverCores: serverCpuSeconds / seconds,
      serverMainThreadCores: mainThreadSeconds / seconds,
      benchCores: benchCpuSeconds / seconds,
      busyCores: (machineAfter.busySeconds - machineBefore.busySeconds) / seconds,
      stealSeconds: machineAfter.stealSeconds - machineBefore.stealSeconds,
    };
  } finally {
    exitCode = await server.stop(STOP_TIMEOUT_MS);
  }
  return { ...measured, exitCode };
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
const maxOf = (values: readonly number[]) => (values.length === 0 ? Number.NaN : Math.max(...values));
const tallyText = (entries: Iterable<[string, number]>) =>
  [...entries]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ×${n}`)
    .join(', ') || 'none';

function attackSummary(r: PhaseResult): string {
  if (r.attack === undefined) return 'no attack';
  const parts = [`${r.tally.sent} sent`, `answered: ${tallyText(r.tally.answers)}`];
  if (r.tally.failures.size > 0) parts.push(`no answer: ${tallyText(r.tally.failures)}`);
  parts.push(`unanswered at the end: ${r.tally.unansweredAtEnd}`);
  return parts.join('; ');
}

function report(r: PhaseResult, limit: MemoryLimit, settings: Settings): void {
  const { probe, normal, tally } = r;
  console.log(`\n## ${r.name}: ${r.attack?.description ?? 'no attack (probe and normal client only)'}`);
  console.log(
    `${r.seconds.toFixed(1)} s; load average before ${r.loadBefore.map((l) => l.toFixed(2)).join(' ')}; CPU in cores: server ${r.serverCores.toFixed(2)} ` +
      `(its main thread ${r.serverMainThreadCores.toFixed(2)}), ` +
      `this benchmark (attack, probe, normal client) ${r.benchCores.toFixed(2)}, whole machine ${r.busyCores.toFixed(2)}; steal ${r.stealSeconds.toFixed(1)} CPU-s`,
  );
  if (r.attack !== undefined) {
    console.log(`attack: ${attackSummary(r)} (expected: ${r.attack.expected})`);
    console.log(`attack answer time: p50 ${ms(quantile(tally.answerMs, 0.5))} ms, max ${ms(maxOf(tally.answerMs))} ms`);
  }
  const probeMet = probe.failures === 0 ? 'met' : 'NOT met';
  console.log(
    `live probe (new connection every ${settings.probeIntervalMs} ms, ${settings.probeTimeoutMs} ms timeout): ${probe.latenciesMs.length} ok, ${probe.failures} failed; ` +
      `p50 ${ms(quantile(probe.latenciesMs, 0.5))} ms, p99 ${ms(quantile(probe.latenciesMs, 0.99))} ms, max ${ms(maxOf(probe.latenciesMs))} ms — goal (no probe fails): ${probeMet}`,
  );
  const others = Object.entries(normal.statuses).filter(([s]) => s !== '200');
  console.log(
    `normal client (${NORMAL_IMAGE}, closed loop, one keep-alive connection, ${settings.timeoutMs} ms timeout): ${normal.statuses['200'] ?? 0} × 200 ` +
      `(${((normal.statuses['200'] ?? 0) / r.seconds).toFixed(1)}/s); other statuses: ${tallyText(others)}; no answer: ${tallyText(Object.entries(normal.failures))}; ` +
      `in flight at the end: ${normal.inFlightAtStop}; 200 latency p50 ${ms(quantile(normal.okMs, 0.5))} ms, p99 ${ms(quantile(normal.okMs, 0.99))} ms, max ${ms(maxOf(normal.okMs))} ms`,
  );
  const share = (100 * r.peakRssBytes) / limit.bytes;
  console.log(
    `server memory: VmRSS ${mb(r.startRssBytes)} at the start; sampled max ${mb(r.sampledMaxRssBytes)} (${r.samples} samples, every ${settings.sampleMs} ms); ` +
      `peak (VmHWM at the end) ${r.serverAliveAtEnd ? `${mb(r.peakRssBytes)} = ${share.toFixed(0)} % of the Deployment's memory limit ${limit.quantity} (${mb(limit.bytes)})` : 'unknown: the server process was gone'}`,
  );
  if (r.exitCode !== 0) {
    console.log(
      `server exit: ${r.exitCode === null ? `killed by a signal (SIGKILL if still running ${STOP_TIMEOUT_MS} ms after SIGTERM)` : `code ${r.exitCode}`}`,
    );
  }
}

function summaryTable(results: readonly PhaseResult[], limit: MemoryLimit): string {
  const rows = [
    `| phase | attack answers (in the phase) | probes ok / failed | probe p50 / p99 / max (ms) | normal 200s (/s) | normal other / no answer | normal p50 / p99 (ms) | VmRSS start | peak RSS (VmHWM) | of the ${limit.quantity} limit | CPU server (main thread) / bench, cores |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const ok = r.normal.statuses['200'] ?? 0;
    const other = Object.entries(r.normal.statuses)
      .filter(([s]) => s !== '200')
      .reduce((a, [, n]) => a + n, 0);
    const failed = Object.values(r.normal.failures).reduce((a, n) => a + n, 0);
    const answers =
      r.attack === undefined
        ? '–'
        : `${tallyText(r.tally.answers)}${r.tally.failures.size > 0 ? `; no answer ${tallyText(r.tally.failures)}` : ''}; unanswered ${r.tally.unansweredAtEnd}`;
    rows.push(
      `| ${r.name} | ${answers} | ${r.probe.latenciesMs.length} / ${r.probe.failures} | ${ms(quantile(r.probe.latenciesMs, 0.5))} / ${ms(quantile(r.probe.latenciesMs, 0.99))} / ${ms(maxOf(r.probe.latenciesMs))} ` +
        `| ${ok} (${(ok / r.seconds).toFixed(1)}) | ${other} / ${failed} | ${ms(quantile(r.normal.okMs, 0.5))} / ${ms(quantile(r.normal.okMs, 0.99))} ` +
        `| ${mb(r.startRssBytes)} | ${r.serverAliveAtEnd ? mb(r.peakRssBytes) : 'gone'} | ${r.serverAliveAtEnd ? `${((100 * r.peakRssBytes) / limit.bytes).toFixed(0)} %` : '–'} ` +
        `| ${r.serverCores.toFixed(2)} (${r.serverMainThreadCores.toFixed(2)}) / ${r.benchCores.toFixed(2)} |`,
    );
  }
  return rows.join('\n');
}

/** The commit the server under test was built from, and whether its tracked files differ from it. */
function describeBuild(entry: string): string {
  try {
    const root = findRepoRoot(dirname(entry));
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const changed = git('status', '--porcelain', '--untracked-files=no')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => l.slice(3));
    return `${root} at ${git('log', '-1', '--format=%h %cI').trim()}; ${changed.length > 0 ? `tracked files changed since: ${changed.join(', ')}` : 'no tracked file changed'}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function readPhases(value: string): PhaseName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bad = names.find((n) => !(PHASES as readonly string[]).includes(n));
  if (names.length === 0 || bad !== undefined) throw new RangeError(`--phases must be a comma-separated list of ${PHASES.join(', ')}, got "${value}"`);
  return names as PhaseName[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'string', default: join(REPO, 'dist', 'src', 'server.js') },
      seconds: { type: 'string', default: '20' },
      phases: { type: 'string', default: PHASES.join(',') },
      clients: { type: 'string', default: '4' },
      size: { type: 'string', default: '6324' },
      'timeout-ms': { type: 'string', default: '10000' },
      'probe-interval-ms': { type: 'string', default: '100' },
      'probe-timeout-ms': { type: 'string', default: '1000' },
      'sample-ms': { type: 'string', default: '50' },
    },
  });
  const num = (name: keyof typeof values, integer = false) => positive(name, String(values[name]), { integer });
  const entry = resolve(values.server!);
  if (!existsSync(entry)) throw new Error(`--server: ${entry} does not exist (run \`npm run build\` there first)`);
  const phases = readPhases(values.phases!);
  const size = num('size', true);
  if (size > 65_535) throw new RangeError(`--size must be at most 65535 (a JPEG's limit), got ${size}`);
  const limit = readDeploymentMemoryLimit(join(REPO, 'deploy', 'base', 'deployment.yaml'));

  const workload = await prepareWorkload(MODEL, '');
  const settings: Settings = {
    entry,
    workload,
    seconds: num('seconds'),
    clients: num('clients', true),
    size,
    timeoutMs: num('timeout-ms'),
    probeIntervalMs: num('probe-interval-ms'),
    probeTimeoutMs: num('probe-timeout-ms'),
    sampleMs: num('sample-ms'),
  };
  console.log(
    machineBanner(
      'Hostile input benchmark',
      `server ${entry}; model ${MODEL} (shared, trained); phases ${phases.join(', ')}, ${settings.seconds} s each on a fresh server process; SEED_DEFAULT_MODEL=false LOG_LEVEL=warn, other settings from the environment (the server's defaults otherwise)`,
    ),
  );
  console.log(`# server build: ${describeBuild(entry)}`);
  console.log(
    `# command: node ${process.argv
      .slice(1)
      .map((a) => a.replace(REPO + '/', ''))
      .join(' ')}`,
  );
  console.log(`# Deployment memory limit (deploy/base/deployment.yaml, container server): ${limit.quantity} = ${mb(limit.bytes)}`);

  const results: PhaseResult[] = [];
  try {
    for (const phase of phases) {
      const r = await runPhase(phase, settings);
      report(r, limit, settings);
      results.push(r);
    }
  } finally {
    await rm(workload.repository, { recursive: true, force: true });
  }
  console.log(`\n## Summary (${entry})\n`);
  console.log(summaryTable(results, limit));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

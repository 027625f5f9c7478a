/**
 * Load/unload cycles: what taking a model in and out of service leaves behind in the server
 * process (issue 15: "20 load/unload cycles of ResNet-50: no growth in threads or open file
 * descriptors, RSS back within 50 MB of the first cycle").
 *
 *   npm run bench:cycles [-- --cycles 20 --model <folder> --out BENCHMARKS.md --no-write]
 *
 * The real server (`node dist/src/server.js`) in explicit model control with no model loaded
 * at start, on a repository holding only the model (default: ResNet-50 from the model builder,
 * cached in .bench/models). Each cycle POSTs /v2/repository/models/<name>/load (answered once
 * the version is loaded and warmed up) then .../unload (answered once its workers have ended),
 * one after the other on one kept-alive connection, so the server holds the same socket at
 * every count. After each call it reads /proc/<pid>/task (threads), /proc/<pid>/fd (open
 * descriptors) and VmRSS from /proc/<pid>/status. No inference besides the load's warm-up.
 *
 * Verdict, against the first cycle (not startup: libuv's thread pool and onnxruntime's own
 * process-wide thread start on first use and stay): after the last unload the same threads and
 * descriptors as after the first, and RSS within 50 MB of it.
 *
 * The server inherits this process's environment, so glibc's malloc settings (the image sets
 * MALLOC_MMAP_THRESHOLD_, see the Dockerfile) apply when given, and the command shows them.
 */
import { mkdir, appendFile } from 'node:fs/promises';
import http from 'node:http';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ENV_VARS } from '../src/config.js';
import { ensureModel, prepareRepository } from './lib/bench-model.js';
import { commandLine, positive } from './lib/cli.js';
import { httpPost } from './lib/http-post.js';
import { fdCount, threadCount } from './lib/proc-counts.js';
import { readProcMemory } from './lib/proc-memory.js';
import { findRepoRoot, revision, versionOf } from './lib/repo-root.js';
import { startServer } from './lib/server-process.js';

const ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** The bound on RSS after the last cycle against the first, in bytes. */
const RSS_TOLERANCE_BYTES = 50 * 2 ** 20;
/** Set by the benchmark whatever the environment says. */
const FORCED_SERVER_ENV: Readonly<Record<string, string>> = { MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '', API_KEYS: '', API_KEYS_FILE: '' };
const OWN_SERVER_ENV = ['HOST', 'PORT', 'GRPC_PORT', 'MODEL_REPOSITORY', 'DEFAULT_MODEL', 'SEED_DEFAULT_MODEL'];

interface Sample {
  readonly threads: number;
  readonly fds: number;
  readonly rssBytes: number;
}

interface Cycle {
  readonly loadMs: number;
  readonly unloadMs: number;
  readonly loaded: Sample;
  readonly unloaded: Sample;
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string', default: '20' },
      model: { type: 'string' },
      out: { type: 'string', default: 'BENCHMARKS.md' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const cycles = positive('cycles', values.cycles, { integer: true });
  const model = await ensureModel(values.model, join(ROOT, '.bench', 'models'));
  const repository = join(ROOT, '.bench', 'cycles-repository');
  await prepareRepository(model, repository);
  await mkdir(join(ROOT, '.bench'), { recursive: true });

  const date = new Date().toISOString();
  const command = commandLine({
    serverEnv: ENV_VARS,
    forced: FORCED_SERVER_ENV,
    own: OWN_SERVER_ENV,
    npmScript: 'bench:cycles',
    direct: `node ${relative(ROOT, fileURLToPath(import.meta.url))}`,
  });
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores (nproc ${availableParallelism()}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory; node ${process.version}, onnxruntime-node ${versionOf(ROOT, 'onnxruntime-node')}`;
  const code = revision(ROOT, ['src']);
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  process.stdout.write(`Model load/unload cycles ${date}\n${command}\nmachine: ${machine}\ncode: ${code}\nmodel: ${model.dir}\n`);

  const server = await startServer({
    entry: join(ROOT, 'dist', 'src', 'server.js'),
    env: { ...FORCED_SERVER_ENV, MODEL_REPOSITORY: repository, SEED_DEFAULT_MODEL: 'false' },
    logPath: join(ROOT, '.bench', 'cycles-server.log'),
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sample = (): Sample => ({ threads: threadCount(server.pid), fds: fdCount(server.pid), rssBytes: readProcMemory(server.pid).rssBytes });
  const control = async (action: 'load' | 'unload') => {
    const started = performance.now();
    const res = await httpPost(`${server.baseUrl}/v2/repository/models/${model.name}/${action}`, '{}', {
      agent,
      headers: { 'content-type': 'application/json' },
      timeoutMs: 600_000,
    });
    if (res.status !== 200) throw new Error(`${action} answered ${res.status}: ${res.body}`);
    return performance.now() - started;
  };

  const atStart = sample();
  const results: Cycle[] = [];
  try {
    for (let i = 1; i <= cycles; i++) {
      const loadMs = await control('load');
      const loaded = sample();
      const unloadMs = await control('unload');
      const unloaded = sample();
      results.push({ loadMs, unloadMs, loaded, unloaded });
      process.stdout.write(
        `cycle ${i}: load ${loadMs.toFixed(0)} ms, loaded ${loaded.threads} threads ${loaded.fds} fds ${mb(loaded.rssBytes)} MB; unloaded ${unloaded.threads} threads ${unloaded.fds} fds ${mb(unloaded.rssBytes)} MB\n`,
      );
    }
  } finally {
    agent.destroy();
    await server.stop();
  }

  const first = results[0]!.unloaded;
  const last = results.at(-1)!.unloaded;
  const rssGrowth = last.rssBytes - first.rssBytes;
  const checks = [
    { what: 'threads after the last unload = after the first', ok: last.threads === first.threads, detail: `${first.threads} → ${last.threads}` },
    { what: 'open descriptors after the last unload = after the first', ok: last.fds === first.fds, detail: `${first.fds} → ${last.fds}` },
    {
      what: 'RSS after the last unload within 50 MB of the first',
      ok: Math.abs(rssGrowth) <= RSS_TOLERANCE_BYTES,
      detail: `${mb(first.rssBytes)} → ${mb(last.rssBytes)} MB (${rssGrowth >= 0 ? '+' : ''}${mb(rssGrowth)} MB)`,
    },
  ];
  const verdict = checks.every((c) => c.ok) ? 'met' : 'NOT met';
  const markdown = [
    `## ${date} — model load/unload cycles (${model.name}${values.model === undefined ? ' from the model builder' : ''})`,
    '',
    `- command: \`${command}\` (bench/model-cycles.ts; see its header for what it measures)`,
    `- machine: ${machine}`,
    `- code: ${code}`,
    `- load average before the run: ${loadBefore}`,
    `- at start (explicit mode, nothing loaded): ${atStart.threads} threads, ${atStart.fds} fds, RSS ${mb(atStart.rssBytes)} MB`,
    '',
    '| cycle | load ms | unload ms | loaded: threads | fds | RSS MB | unloaded: threads | fds | RSS MB |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (c, i) =>
        `| ${i + 1} | ${c.loadMs.toFixed(0)} | ${c.unloadMs.toFixed(0)} | ${c.loaded.threads} | ${c.loaded.fds} | ${mb(c.loaded.rssBytes)} | ${c.unloaded.threads} | ${c.unloaded.fds} | ${mb(c.unloaded.rssBytes)} |`,
    ),
    '',
    `Verdict (no growth in threads or descriptors, RSS within 50 MB of the first cycle): **${verdict}**.`,
    '',
    ...checks.map((c) => `- ${c.ok ? 'yes' : 'NO'}: ${c.what}: ${c.detail}`),
    '',
  ].join('\n');
  process.stdout.write(`\n${markdown}`);
  if (!values['no-write']) {
    await appendFile(values.out, `\n${markdown}`);
    process.stdout.write(`\nappended to ${values.out}\n`);
  }
}

await main();

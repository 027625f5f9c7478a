/**
 * Soak: sustained load on the real server (a child process) for a long time, to find what a
 * short benchmark cannot: memory that creeps. Every input form and some refused inputs are in
 * the mix, so error paths are soaked too. The server's own /metrics give the resident set
 * (process_resident_memory_bytes: main thread, libvips and the inference workers together) and
 * the main isolate's heap (nodejs_heap_size_used_bytes; the workers' heaps are inside the RSS),
 * sampled throughout; the report gives both at the start and the end and the drift, and the
 * trend over the second half (where warm-up no longer counts).
 *
 *   npm run build && node dist/bench/soak.js [--duration 600] [--connections 8]
 *       [--model resnet20|resnet50] [--model-dir DIR] [--sample-seconds 10] [--warmup-seconds 20]
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deflateSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { httpGet } from './lib/http-get.js';
import { parsePrometheusText, sumOf } from './lib/prometheus-text.js';
import { startServer, type ServerProcess } from './lib/server-process.js';
import { positive } from './lib/cli.js';
import { pngChunk, PNG_SIGNATURE } from './lib/png.js';
import { REPO, machineBanner, mb, prepareWorkload, readModelChoice, readRssBytes, type Workload } from './overload.js';

interface Sample {
  /** Seconds since the measured load began. */
  readonly t: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  /** VmRSS from /proc, as a cross-check of the server's own figure. */
  readonly procRssBytes: number;
}

async function sample(server: ServerProcess, t: number): Promise<Sample> {
  const { body } = await httpGet(`${server.baseUrl}/metrics`, { timeoutMs: 10_000 });
  const s = parsePrometheusText(body);
  return {
    t,
    rssBytes: sumOf(s, 'process_resident_memory_bytes'),
    heapUsedBytes: sumOf(s, 'nodejs_heap_size_used_bytes'),
    heapTotalBytes: sumOf(s, 'nodejs_heap_size_total_bytes'),
    externalBytes: sumOf(s, 'nodejs_external_memory_bytes'),
    procRssBytes: readRssBytes(server.pid),
  };
}

/** Least-squares slope of `y` over `x`. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxy / sxx;
}

/** A small PNG whose header claims 60000×60000 pixels: refused (413) from its header. */
function forgedPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(60_000, 0);
  ihdr.writeUInt32BE(60_000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(1024))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** The request mix: each image by raw body, multipart and base64 JSON, and one refused input in ten. */
function requestMix(workload: Workload) {
  const boundary = 'soak-boundary';
  const good = workload.images.flatMap((image) => [
    { method: 'POST' as const, path: '/v1/predict', headers: { 'content-type': image.contentType }, body: image.body },
    {
      method: 'POST' as const,
      path: `/v1/models/${workload.model}:predict`,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${image.name}"\r\nContent-Type: ${image.contentType}\r\n\r\n`),
        image.body,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]),
    },
    {
      method: 'POST' as const,
      path: `/v2/models/${workload.model}/infer`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [image.body.toString('base64')] }] }),
    },
  ]);
  const first = workload.images[0]!.body;
  const refused = [
    { what: 'truncated', body: first.subarray(0, Math.floor(first.length / 2)) },
    { what: 'svg', body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="http://127.0.0.1:9/x"/></svg>') },
    { what: 'forged size', body: forgedPng() },
  ].map((r) => ({ method: 'POST' as const, path: '/v1/predict', headers: { 'content-type': 'image/png' }, body: r.body }));
  // About one in ten is refused.
  const mix = [...good];
  refused.forEach((r, i) => mix.splice(Math.floor(((i + 1) * good.length) / (refused.length + 1)), 0, r));
  while (mix.length < 10 * refused.length) mix.push(...good.slice(0, 10 * refused.length - mix.length));
  return mix;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '600' },
      connections: { type: 'string', default: '8' },
      model: { type: 'string', default: 'resnet20' },
      'model-dir': { type: 'string', default: join(REPO, 'models', 'resnet50') },
      'sample-seconds': { type: 'string', default: '10' },
      'warmup-seconds': { type: 'string', default: '20' },
    },
  });
  const model = readModelChoice(values.model!);
  const num = (name: keyof typeof values) => positive(name, String(values[name]));
  const duration = num('duration');
  const workload = await prepareWorkload(model, resolve(values['model-dir']!));
  const requests = requestMix(workload);
  console.log(
    machineBanner(
      'Soak benchmark',
      `model ${model}; ${num('connections')} clients in closed loop for ${duration} s after a ${num('warmup-seconds')} s warm-up; ${requests.length} requests in rotation (raw, multipart, v2 BYTES; 3 refused inputs)`,
    ),
  );

  let server: ServerProcess | undefined;
  try {
    server = await startServer({
      entry: join(REPO, 'dist', 'src', 'server.js'),
      env: { MODEL_REPOSITORY: workload.repository, SEED_DEFAULT_MODEL: 'false', LOG_LEVEL: 'warn' },
      logPath: join(workload.repository, 'server.log'),
    });
    const running = server;
    const statuses = new Map<number, number>();
    let errors = 0;
    const samples: Sample[] = [];
    let loadStart = 0;
    let sampling: NodeJS.Timeout | undefined;
    const pending: Array<Promise<void>> = [];

    await new Promise<void>((resolveRun, reject) => {
      const instance = autocannon(
        { url: running.baseUrl, connections: num('connections'), pipelining: 1, duration: num('warmup-seconds') + duration, timeout: 60, requests },
        (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolveRun()),
      );
      instance.on('response', (_c, status) => {
        if (loadStart > 0) statuses.set(status, (statuses.get(status) ?? 0) + 1);
      });
      instance.on('reqError', () => {
        if (loadStart > 0) errors++;
      });
      setTimeout(
        () => {
          loadStart = performance.now();
          const take = () =>
            pending.push(
              sample(running, (performance.now() - loadStart) / 1000).then(
                (s) => void samples.push(s),
                () => undefined,
              ),
            );
          take();
          sampling = setInterval(take, num('sample-seconds') * 1000);
        },
        num('warmup-seconds') * 1000,
      );
    });
    clearInterval(sampling);
    const seconds = (performance.now() - loadStart) / 1000;
    await Promise.all(pending);
    samples.push(await sample(running, seconds));
    samples.sort((a, b) => a.t - b.t);

    const first = samples[0]!;
    const last = samples.at(-1)!;
    const secondHalf = samples.filter((s) => s.t >= seconds / 2);
    const perHour = (pick: (s: Sample) => number) => (slope(secondHalf.map((s) => [s.t, pick(s)])) * 3600) / 2 ** 20;
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\n${total} responses in ${seconds.toFixed(0)} s (${(total / seconds).toFixed(1)}/s): ${JSON.stringify(Object.fromEntries(statuses))}; transport errors ${errors}`,
    );
    console.log('| t (s) | RSS | heap used | heap total | external | VmRSS (/proc) |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
    const every = Math.max(1, Math.round(60 / num('sample-seconds')));
    for (const s of samples.filter((_, i) => i % every === 0 || i === samples.length - 1)) {
      console.log(
        `| ${s.t.toFixed(0)} | ${mb(s.rssBytes)} | ${mb(s.heapUsedBytes)} | ${mb(s.heapTotalBytes)} | ${mb(s.externalBytes)} | ${mb(s.procRssBytes)} |`,
      );
    }
    console.log(
      `\nRSS: ${mb(first.rssBytes)} at the start, ${mb(last.rssBytes)} at the end: drift ${mb(last.rssBytes - first.rssBytes)}; max ${mb(Math.max(...samples.map((s) => s.rssBytes)))}`,
    );
    console.log(
      `heap used: ${mb(first.heapUsedBytes)} at the start, ${mb(last.heapUsedBytes)} at the end: drift ${mb(last.heapUsedBytes - first.heapUsedBytes)}; max ${mb(Math.max(...samples.map((s) => s.heapUsedBytes)))}`,
    );
    console.log(
      `trend over the second half (${secondHalf.length} samples, least squares): RSS ${perHour((s) => s.rssBytes).toFixed(1)} MB/h, heap used ${perHour((s) => s.heapUsedBytes).toFixed(1)} MB/h`,
    );
  } finally {
    const code = await server?.stop();
    if (code !== undefined && code !== 0) console.log(`server exited with code ${code}`);
    await rm(workload.repository, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

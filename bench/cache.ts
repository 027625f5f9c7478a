/**
 * What the response cache saves and costs, per request, in one process (no network):
 *
 *   npm run bench:cache [-- --rounds 5 --requests 200 --image <file>]
 *
 * Two apps on the shared trained ResNet-20 (../shared/models/resnet20-cifar10), one with the
 * cache off (the default) and one with RESPONSE_CACHE_MAX_BYTES=64 MiB, answer sequential
 * `POST /v1/models/resnet20:predict` requests (raw JPEG bodies, `app.inject`) in three
 * variants, interleaved round by round (off-miss, on-miss, on-hit, off-miss, …) so that the
 * shared machine's drift hits them alike:
 *
 * - off-miss: cache off, a new image each request (the image with a counter appended, which
 *   decoders ignore): the path every request took before the cache, plus its SHA-256.
 * - on-miss: cache on, a new image each request: a lookup that misses and an entry stored.
 * - on-hit: cache on, the same image every request: answered from the cache.
 *
 * Prints the machine, then per variant the median over rounds of each round's median and p99
 * latency, in ms.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { positive } from './lib/cli.js';
import { findRepoRoot } from './lib/repo-root.js';
import { median, quantile } from './lib/stats.js';

const ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
const SHARED = resolve(ROOT, '..', 'shared');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '200' },
    image: { type: 'string', default: join(SHARED, 'images', 'cifar10', 'cat_0000.jpg') },
  },
});
const rounds = positive('--rounds', values.rounds!, { integer: true });
const requests = positive('--requests', values.requests!, { integer: true });

async function repository(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'resnet-serve-bench-cache-'));
  const dir = join(root, 'resnet20');
  await mkdir(dir);
  const from = join(SHARED, 'models', 'resnet20-cifar10');
  await copyFile(join(from, 'model.onnx'), join(dir, 'model.onnx'));
  await copyFile(join(from, 'labels.txt'), join(dir, 'labels.txt'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ preprocess: { resize: 32, crop: 32 } }));
  return root;
}

async function app(repo: string, cacheBytes: number): Promise<FastifyInstance> {
  const config = loadConfig(
    { LOG_LEVEL: 'silent', MODEL_REPOSITORY: repo, SEED_DEFAULT_MODEL: 'false', GRPC_PORT: '0', RESPONSE_CACHE_MAX_BYTES: String(cacheBytes) },
    { availableCpus: availableParallelism() },
  );
  const built = await buildApp(config, { defaultMetrics: false });
  await built.ready();
  await built.serving.registry.load();
  return built;
}

let counter = 0;
/** The image with a counter appended after its end: new bytes, the same pixels. */
const fresh = (image: Buffer) => {
  const tag = Buffer.alloc(4);
  tag.writeUInt32BE(counter++);
  return Buffer.concat([image, tag]);
};

async function round(target: FastifyInstance, body: () => Buffer): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < requests; i++) {
    const payload = body();
    const t0 = performance.now();
    const res = await target.inject({ method: 'POST', url: '/v1/models/resnet20:predict', headers: { 'content-type': 'image/jpeg' }, payload });
    latencies.push(performance.now() - t0);
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${res.body}`);
  }
  return latencies;
}

const image = await readFile(values.image!);
const repo = await repository();
const off = await app(repo, 0);
const on = await app(repo, 64 * 1024 * 1024);
const variants = [
  { name: 'off-miss', target: off, body: () => fresh(image) },
  { name: 'on-miss', target: on, body: () => fresh(image) },
  { name: 'on-hit', target: on, body: () => image },
];
await on.inject({ method: 'POST', url: '/v1/models/resnet20:predict', headers: { 'content-type': 'image/jpeg' }, payload: image });
// One unmeasured round each, to warm up.
for (const v of variants) await round(v.target, v.body);
const figures = new Map<string, { p50: number[]; p99: number[] }>(variants.map((v) => [v.name, { p50: [], p99: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const v of variants) {
    const latencies = await round(v.target, v.body);
    figures.get(v.name)!.p50.push(median(latencies));
    figures.get(v.name)!.p99.push(quantile(latencies, 0.99));
  }
}
await Promise.all([off.close(), on.close()]);
await rm(repo, { recursive: true, force: true });

console.log(`node dist/bench/cache.js --rounds ${rounds} --requests ${requests} --image ${values.image}`);
console.log(
  `${new Date().toISOString()}  nproc ${availableParallelism()}  ${cpus()[0]?.model ?? ''}  load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(`image ${image.length} bytes; medians over ${rounds} rounds of ${requests} sequential requests`);
for (const [name, f] of figures) console.log(`${name.padEnd(9)} p50 ${median(f.p50).toFixed(3)} ms   p99 ${median(f.p99).toFixed(3)} ms`);

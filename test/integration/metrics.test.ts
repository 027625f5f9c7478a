/**
 * `/metrics` after real traffic through the HTTP API with the trained ResNet-20: every
 * histogram and counter equals what was sent, the exposition passes `promtool check metrics`,
 * route labels are templates, OpenMetrics on request, `Server-Timing` and `X-Request-Id` on
 * answers, and `METRICS_PORT` moving `/metrics` to its own app.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { buildMetricsApp } from '../../src/app.js';
import { CIFAR_DIR, photo, resnet20App, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository, testConfig } from '../helpers.js';

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Samples of a Prometheus text (or OpenMetrics) exposition. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`Unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

const matching = (samples: readonly Sample[], name: string, labels: Record<string, string | number>) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === String(v)));

/** The one sample called `name` whose labels include `labels`. */
function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string | number> = {}): number {
  const found = matching(samples, name, labels);
  assert.equal(found.length, 1, `exactly one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

async function scrape(app: FastifyInstance, accept?: string): Promise<{ text: string; samples: Sample[]; contentType: string }> {
  let req = request(app.server).get('/metrics');
  if (accept !== undefined) req = req.set('Accept', accept);
  const res = await req;
  assert.equal(res.status, 200, res.text);
  return { text: res.text, samples: parseExposition(res.text), contentType: res.headers['content-type'] ?? '' };
}

/**
 * Runs `promtool check metrics` on `exposition`. Skips the test when promtool is not
 * installed, except in CI (`CI` set), where its absence is a failure.
 */
async function promtoolCheckMetrics(t: TestContext, exposition: string): Promise<{ code: number; output: string } | undefined> {
  const result = await new Promise<{ code: number; output: string } | 'absent'>((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve('absent') : reject(err)));
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(exposition);
  });
  if (result === 'absent') {
    if (process.env.CI) assert.fail('promtool is not installed (Debian package `prometheus`); CI must install it');
    t.skip('promtool is not installed (Debian package `prometheus`): cannot check the exposition');
    return undefined;
  }
  return result;
}

/** What a sequence of requests should leave in the metrics of model `resnet20`. */
interface Expected {
  okRequests: number;
  badInputRequests: number;
  okImages: number;
  badInputImages: number;
  preprocessed: number;
  queued: number;
  postprocessed: number;
  batchSizes: number[];
  http: Map<string, number>;
}

const MAX_BATCH = 4;
const b64 = (bytes: Buffer) => ({ b64: bytes.toString('base64') });

/**
 * A mix of requests, sent one after another so that the batches they form are known: with
 * one worker and no batching delay, a request's n images run as ⌈n / 4⌉ batches of their own.
 */
async function sendTraffic(app: FastifyInstance): Promise<Expected> {
  const s = app.server;
  const cifar = (await readdir(CIFAR_DIR)).filter((f) => f.endsWith('.jpg')).sort();
  const image = (i: number) => readFile(join(CIFAR_DIR, cifar[i]!));
  const e: Expected = {
    okRequests: 0,
    badInputRequests: 0,
    okImages: 0,
    badInputImages: 0,
    preprocessed: 0,
    queued: 0,
    postprocessed: 0,
    batchSizes: [],
    http: new Map(),
  };
  const http = (method: string, route: string, status: number) => {
    const key = `${method} ${route} ${status}`;
    e.http.set(key, (e.http.get(key) ?? 0) + 1);
  };
  const ok = (images: number, { decoded, postprocessed }: { decoded: boolean; postprocessed: boolean }) => {
    e.okRequests++;
    e.okImages += images;
    e.queued += images;
    if (decoded) e.preprocessed += images;
    if (postprocessed) e.postprocessed++;
    for (let left = images; left > 0; left -= MAX_BATCH) e.batchSizes.push(Math.min(left, MAX_BATCH));
  };
  const expectStatus = (res: request.Response, status: number) => assert.equal(res.status, status, res.text);

  // Single images: raw PNG, raw JPEG on the default-model route, base64 JSON.
  expectStatus(
    await request(s)
      .post('/v1/models/resnet20:predict')
      .set('Content-Type', 'image/png')
      .send(await photo('chelsea.png')),
    200,
  );
  ok(1, { decoded: true, postprocessed: true });
  http('POST', '/v1/models/{name}:predict', 200);
  expectStatus(
    await request(s)
      .post('/v1/predict')
      .set('Content-Type', 'image/jpeg')
      .send(await image(0)),
    200,
  );
  ok(1, { decoded: true, postprocessed: true });
  http('POST', '/v1/predict', 200);
  expectStatus(
    await request(s)
      .post('/v1/models/resnet20:predict')
      .send({ instances: [b64(await image(1))] }),
    200,
  );
  ok(1, { decoded: true, postprocessed: true });
  http('POST', '/v1/models/{name}:predict', 200);

  // Three images in one multipart request: one batch of 3.
  let multi = request(s).post('/v1/models/resnet20:predict');
  for (let i = 2; i < 5; i++) multi = multi.attach(`image${i}`, await image(i), cifar[i]!);
  expectStatus(await multi, 200);
  ok(3, { decoded: true, postprocessed: true });
  http('POST', '/v1/models/{name}:predict', 200);

  // Six images: more than a batch holds, so batches of 4 and 2.
  const six = await Promise.all([5, 6, 7, 8, 9, 10].map(async (i) => b64(await image(i))));
  expectStatus(await request(s).post('/v1/models/resnet20:predict').send({ instances: six }), 200);
  ok(6, { decoded: true, postprocessed: true });
  http('POST', '/v1/models/{name}:predict', 200);

  // v2 with two encoded images (decoded, no postprocessing: raw logits are the answer).
  const bytes = await Promise.all([11, 12].map(async (i) => (await image(i)).toString('base64')));
  expectStatus(
    await request(s)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: bytes }] }),
    200,
  );
  ok(2, { decoded: true, postprocessed: false });
  http('POST', '/v2/models/{name}/infer', 200);

  // v2 with a ready FP32 tensor of two items: nothing to decode.
  const data = Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i) * 0.5);
  expectStatus(
    await request(s)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'input', shape: [2, 3, 32, 32], datatype: 'FP32', data }] }),
    200,
  );
  ok(2, { decoded: false, postprocessed: false });
  http('POST', '/v2/models/{name}/infer', 200);

  // Undecodable images reach the model's data plane and end as bad_input, never queued.
  const truncated = (await photo('chelsea.png')).subarray(0, 400);
  for (let i = 0; i < 2; i++) {
    expectStatus(await request(s).post('/v1/models/resnet20:predict').set('Content-Type', 'image/png').send(truncated), 400);
    e.badInputRequests++;
    e.badInputImages++;
    http('POST', '/v1/models/{name}:predict', 400);
  }

  // Refused by the HTTP layer before any model sees them: only the HTTP histogram counts them.
  expectStatus(
    await request(s)
      .post('/v1/models/resnet20:predict')
      .send({ instances: [{ b64: 'not*base64!' }] }),
    400,
  );
  http('POST', '/v1/models/{name}:predict', 400);
  expectStatus(
    await request(s)
      .post('/v1/models/nope-model:predict')
      .set('Content-Type', 'image/png')
      .send(await photo('chelsea.png')),
    404,
  );
  http('POST', '/v1/models/{name}:predict', 404);
  expectStatus(await request(s).get('/v1/models/nope-model'), 404);
  http('GET', '/v1/models/{name}', 404);
  expectStatus(await request(s).get('/v1/models/resnet20'), 200);
  http('GET', '/v1/models/{name}', 200);
  expectStatus(await request(s).get('/no/such/route-4711'), 404);
  http('GET', 'unmatched', 404);
  return e;
}

describe('metrics after real traffic', () => {
  it('counts every request, image, stage and batch that was sent', async (t) => {
    const app = await resnet20App(t);
    const e = await sendTraffic(app);
    // Sanity of the plan itself, so that a mistake in it cannot hide one in the server.
    assert.equal(e.okImages, 16);
    assert.deepEqual(e.batchSizes, [1, 1, 1, 3, 4, 2, 2, 2]);

    const { samples } = await scrape(app);
    const model = { model: 'resnet20' };
    const count = (family: string, labels: Record<string, string> = {}) => valueOf(samples, `${family}_count`, { ...model, ...labels });

    assert.equal(valueOf(samples, 'inference_requests_total', { ...model, outcome: 'ok' }), e.okRequests);
    assert.equal(valueOf(samples, 'inference_requests_total', { ...model, outcome: 'bad_input' }), e.badInputRequests);
    for (const outcome of ['rejected', 'timeout', 'cancelled', 'error'])
      assert.equal(valueOf(samples, 'inference_requests_total', { ...model, outcome }), 0, outcome);
    assert.equal(valueOf(samples, 'inference_images_total', model), e.okImages);

    // End to end: one observation per image, by outcome.
    assert.equal(count('inference_request_duration_seconds', { outcome: 'ok' }), e.okImages);
    assert.equal(count('inference_request_duration_seconds', { outcome: 'bad_input' }), e.badInputImages);
    assert.equal(count('inference_request_duration_seconds', { outcome: 'error' }), 0);

    // Stages: images decoded, images queued, batches computed, requests postprocessed.
    assert.equal(count('inference_preprocess_duration_seconds'), e.preprocessed);
    assert.equal(count('inference_queue_duration_seconds'), e.queued);
    assert.equal(count('inference_compute_duration_seconds'), e.batchSizes.length);
    assert.equal(count('inference_postprocess_duration_seconds'), e.postprocessed);

    // Batches: as many as run, their sizes summing to the images inferred, in the right buckets.
    assert.equal(valueOf(samples, 'inference_batches_total', model), e.batchSizes.length);
    assert.equal(count('inference_batch_size'), e.batchSizes.length);
    assert.equal(valueOf(samples, 'inference_batch_size_sum', model), e.okImages);
    for (const le of [1, 2, 4]) {
      assert.equal(valueOf(samples, 'inference_batch_size_bucket', { ...model, le }), e.batchSizes.filter((b) => b <= le).length, `le=${le}`);
    }

    // Every histogram's +Inf bucket equals its count, and durations are positive.
    for (const family of [
      'inference_request_duration_seconds',
      'inference_preprocess_duration_seconds',
      'inference_queue_duration_seconds',
      'inference_compute_duration_seconds',
      'inference_postprocess_duration_seconds',
    ]) {
      const labels = family === 'inference_request_duration_seconds' ? { ...model, outcome: 'ok' } : model;
      assert.equal(valueOf(samples, `${family}_bucket`, { ...labels, le: '+Inf' }), valueOf(samples, `${family}_count`, labels), family);
      assert.ok(valueOf(samples, `${family}_sum`, labels) > 0, `${family}_sum > 0`);
    }

    // Nothing left in flight; model_info describes the served model.
    assert.equal(valueOf(samples, 'inference_queue_depth', model), 0);
    assert.equal(valueOf(samples, 'inference_inflight_batches', model), 0);
    assert.equal(valueOf(samples, 'inference_inflight_requests', model), 0);
    assert.equal(
      valueOf(samples, 'model_info', {
        ...model,
        version: '1',
        execution_provider: 'cpu',
        sha256: 'ac146e6ebcfc55d69cbab6bdb7d21748f2ac0fcc35378f0fc7a0b1937d488a95',
      }),
      1,
    );
    assert.ok(valueOf(samples, 'model_load_duration_seconds', model) > 0);
  });

  it('labels HTTP requests with route templates, never raw URLs, model names or request data', async (t) => {
    const app = await resnet20App(t);
    const e = await sendTraffic(app);
    const { text, samples } = await scrape(app);
    const counts = new Map<string, number>();
    for (const s of samples.filter((x) => x.name === 'http_request_duration_seconds_count')) {
      counts.set(`${s.labels.method} ${s.labels.route} ${s.labels.status_code}`, s.value);
    }
    assert.deepEqual(Object.fromEntries([...counts].sort()), Object.fromEntries([...e.http].sort()));
    const templates = new Set(app.serving.routes.map((r) => r.path));
    for (const route of new Set(samples.filter((s) => s.name.startsWith('http_request_duration_seconds')).map((s) => s.labels.route!))) {
      assert.ok(route === 'unmatched' || templates.has(route), `route label ${route} is a route template`);
    }
    // Request data never becomes a label value.
    assert.doesNotMatch(text, /nope-model|route-4711|chelsea|\.jpg|resnet20:predict/);
    assert.deepEqual([...new Set(samples.filter((s) => s.labels.model !== undefined).map((s) => s.labels.model))], ['resnet20']);
  });

  it('passes promtool check metrics, before and after an OpenMetrics scrape', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const app = await startApp(t, repo, {}, { defaultMetrics: true });
    await sendTraffic(app);
    const first = await scrape(app);
    // Process metrics are part of what is checked.
    for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'process_cpu_seconds_total', 'process_resident_memory_bytes']) {
      assert.ok(
        first.samples.some((s) => s.name === name),
        `${name} is exported`,
      );
    }
    assert.match(first.text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
    const before = await promtoolCheckMetrics(t, first.text);
    if (!before) return;
    assert.deepEqual(before, { code: 0, output: '' }, `promtool check metrics:\n${before.output}`);

    // A scraper asking for OpenMetrics must not change what the next text scrape sees.
    await scrape(app, 'application/openmetrics-text; version=1.0.0');
    const after = await promtoolCheckMetrics(t, (await scrape(app)).text);
    assert.deepEqual(after, { code: 0, output: '' }, `promtool check metrics after OpenMetrics:\n${after?.output}`);
  });

  it('fails promtool check metrics on a broken exposition (the check is not vacuous)', async (t) => {
    const result = await promtoolCheckMetrics(t, '# TYPE my_requests counter\nmy_requests 3\n');
    if (!result) return;
    assert.notEqual(result.output, '', 'promtool reports the counter without _total');
  });

  it('speaks OpenMetrics when the Accept header asks for it', async (t) => {
    const app = await resnet20App(t);
    const res = await request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/png')
      .send(await photo('coffee.png'));
    assert.equal(res.status, 200, res.text);
    const open = await scrape(app, 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    assert.equal(open.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.ok(open.text.endsWith('# EOF\n'));
    assert.match(open.text, /^# TYPE inference_requests counter$/m);
    assert.equal(valueOf(open.samples, 'inference_requests_total', { model: 'resnet20', outcome: 'ok' }), 1);
    const plain = await scrape(app);
    assert.equal(plain.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(valueOf(plain.samples, 'inference_requests_total', { model: 'resnet20', outcome: 'ok' }), 1);
    // q=0 means "not acceptable".
    assert.equal((await scrape(app, 'application/openmetrics-text;q=0, text/plain')).contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });
});

/** `Server-Timing` entries as name → dur (ms). */
function serverTiming(header: string | undefined): Map<string, number> {
  const timings = new Map<string, number>();
  for (const entry of (header ?? '').split(',')) {
    const m = /^\s*([\w-]+);dur=([\d.]+)\s*$/.exec(entry);
    assert.ok(m, `Server-Timing entry ${JSON.stringify(entry)}`);
    timings.set(m[1]!, Number(m[2]));
  }
  return timings;
}

describe('Server-Timing and X-Request-Id', () => {
  it('breaks an answer down by stage, the stages fitting in the total', async (t) => {
    const app = await resnet20App(t);
    const res = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .attach('a', await photo('chelsea.png'), 'a.png')
      .attach('b', await photo('rocket.jpg'), 'b.jpg');
    assert.equal(res.status, 200, res.text);
    const timing = serverTiming(res.headers['server-timing']);
    assert.deepEqual([...timing.keys()], ['preprocess', 'queue', 'infer', 'postprocess', 'total']);
    for (const [name, ms] of timing) assert.ok(Number.isFinite(ms) && ms >= 0, `${name}: ${ms}`);
    assert.ok(timing.get('preprocess')! > 0 && timing.get('infer')! > 0, res.headers['server-timing']);
    // The stages follow one another within the request (each value is rounded to 0.1 ms).
    const stages = timing.get('preprocess')! + timing.get('queue')! + timing.get('infer')! + timing.get('postprocess')!;
    assert.ok(stages <= timing.get('total')! + 0.25, `stages ${stages} ms within total ${timing.get('total')} ms`);

    // A ready tensor has nothing to decode.
    const data = new Array(3 * 32 * 32).fill(0.1);
    const v2 = await request(app.server)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data }] });
    assert.equal(v2.status, 200, v2.text);
    const v2Timing = serverTiming(v2.headers['server-timing']);
    assert.equal(v2Timing.get('preprocess'), 0);
    assert.ok(v2Timing.get('infer')! > 0);
  });

  it("echoes the client's request id, on errors too, and generates one otherwise", async (t) => {
    const app = await resnet20App(t);
    const s = app.server;
    const mine = await request(s)
      .post('/v1/predict')
      .set('X-Request-Id', 'client-req:42.a_b')
      .set('Content-Type', 'image/png')
      .send(await photo('camera.png'));
    assert.equal(mine.status, 200, mine.text);
    assert.equal(mine.headers['x-request-id'], 'client-req:42.a_b');
    const failed = await request(s).post('/v1/models/nope:predict').set('X-Request-Id', 'client-404').set('Content-Type', 'image/png').send(Buffer.from('x'));
    assert.equal(failed.status, 404);
    assert.equal(failed.headers['x-request-id'], 'client-404');

    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const a = await request(s).get('/v2/health/live');
    const b = await request(s).get('/v2/health/live');
    assert.match(a.headers['x-request-id'] ?? '', uuid);
    assert.match(b.headers['x-request-id'] ?? '', uuid);
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
    // An id that could smuggle text into logs or headers is replaced, not echoed.
    for (const bad of ['has space', 'x'.repeat(129), 'semi;colon']) {
      const res = await request(s).get('/v2/health/live').set('X-Request-Id', bad);
      assert.match(res.headers['x-request-id'] ?? '', uuid, JSON.stringify(bad));
    }
  });

  it('also times answers that are not predictions (total only)', async (t) => {
    const app = await resnet20App(t);
    const res = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .set('Content-Type', 'image/png')
      .send((await photo('chelsea.png')).subarray(0, 400));
    assert.equal(res.status, 400, res.text);
    assert.ok(serverTiming(res.headers['server-timing']).has('total'), 'Server-Timing total on an error answer');
  });
});

describe('METRICS_PORT', () => {
  it('serves /metrics from a separate app, and the main app has none', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const app = await startApp(t, repo, { METRICS_PORT: '9464' });
    const metricsApp = await buildMetricsApp(testConfig(repo, { METRICS_PORT: '9464' }), app.serving.metrics);
    t.after(() => metricsApp.close());
    await metricsApp.ready();

    const main404 = await request(app.server).get('/metrics');
    assert.equal(main404.status, 404);
    assert.equal(main404.body.code, 'NOT_FOUND');
    assert.ok(!app.serving.routes.some((r) => r.path === '/metrics'), 'no /metrics route on the main app');

    const res = await request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/png')
      .send(await photo('chelsea.png'));
    assert.equal(res.status, 200, res.text);
    const { samples } = await scrape(metricsApp);
    // The same registry: the main app's traffic shows on the metrics port.
    assert.equal(valueOf(samples, 'inference_requests_total', { model: 'resnet20', outcome: 'ok' }), 1);
    assert.equal(valueOf(samples, 'http_request_duration_seconds_count', { method: 'POST', route: '/v1/predict', status_code: 200 }), 1);
    assert.equal(valueOf(samples, 'http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status_code: 404 }), 1);
    // The metrics app serves nothing else.
    assert.equal((await request(metricsApp.server).post('/v1/predict').set('Content-Type', 'image/png').send(Buffer.from('x'))).status, 404);
    assert.equal((await request(metricsApp.server).get('/v2/health/ready')).status, 404);
  });
});

/**
 * Triton's statistics extension through HTTP with the trained ResNet-20: after a few v1
 * predictions and one undecodable image, `/v2/models/{name}/stats` counts exactly what was sent
 * and agrees with `/metrics`; the all-models and per-version routes answer the same; unknown
 * models and versions are 404 MODEL_NOT_FOUND; with API keys every statistics route needs one.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import type { TritonModelStats } from '../../src/serving/statistics.js';
import { CIFAR_DIR, photo, resnet20App } from '../helpers.js';

const MAX_BATCH = 4; // testConfig's BATCH_MAX_SIZE

/** The value of `name{model="resnet20",version="1"...}` in the app's Prometheus exposition. */
async function metric(app: FastifyInstance, name: string, labels = ''): Promise<number> {
  const res = await request(app.server).get('/metrics');
  assert.equal(res.status, 200, res.text);
  const line = res.text.split('\n').find((l) => l.startsWith(`${name}{model="resnet20",version="1"${labels}}`));
  assert.ok(line, `${name} is exposed`);
  return Number(line.split(' ').at(-1));
}

async function stats(app: FastifyInstance, path: string): Promise<TritonModelStats[]> {
  const res = await request(app.server).get(path);
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.body), ['model_stats']);
  return res.body.model_stats as TritonModelStats[];
}

describe('statistics after real traffic', () => {
  it('count exactly the requests, images and batches sent, as the metrics do', async (t) => {
    const app = await resnet20App(t);
    const s = app.server;
    const cifar = (await readdir(CIFAR_DIR)).filter((f) => f.endsWith('.jpg')).sort();
    const image = (i: number) => readFile(join(CIFAR_DIR, cifar[i]!));
    const b64 = async (i: number) => ({ b64: (await image(i)).toString('base64') });
    const before = Date.now();

    // Sent one after another, so each request's images run as batches of their own (≤ 4).
    const sent = [1, 1, 3, 6];
    assert.equal(
      (
        await request(s)
          .post('/v1/models/resnet20:predict')
          .set('Content-Type', 'image/png')
          .send(await photo('chelsea.png'))
      ).status,
      200,
    );
    assert.equal(
      (
        await request(s)
          .post('/v1/models/resnet20:predict')
          .send({ instances: [await b64(0)] })
      ).status,
      200,
    );
    let multi = request(s).post('/v1/models/resnet20:predict');
    for (let i = 1; i < 4; i++) multi = multi.attach(`image${i}`, await image(i), cifar[i]!);
    assert.equal((await multi).status, 200);
    const six = await Promise.all([4, 5, 6, 7, 8, 9].map(b64));
    assert.equal((await request(s).post('/v1/models/resnet20:predict').send({ instances: six })).status, 200);
    // An image that does not decode: admitted, then failed while preprocessing.
    const truncated = (await photo('chelsea.png')).subarray(0, 400);
    const bad = await request(s).post('/v1/models/resnet20:predict').set('Content-Type', 'image/png').send(truncated);
    assert.equal(bad.status, 400, bad.text);
    const after = Date.now();

    const images = sent.reduce((a, b) => a + b, 0);
    const batchSizes = sent.flatMap((n) => Array.from({ length: Math.ceil(n / MAX_BATCH) }, (_, i) => Math.min(MAX_BATCH, n - i * MAX_BATCH)));
    assert.deepEqual(batchSizes, [1, 1, 3, 4, 2], 'the plan itself');

    const [model, ...others] = await stats(app, '/v2/models/resnet20/stats');
    assert.equal(others.length, 0);
    const m = model!;
    assert.deepEqual(Object.keys(m), [
      'name',
      'version',
      'last_inference',
      'inference_count',
      'execution_count',
      'inference_stats',
      'response_stats',
      'batch_stats',
      'memory_usage',
    ]);
    assert.deepEqual(Object.keys(m.inference_stats), [
      'success',
      'fail',
      'queue',
      'compute_input',
      'compute_infer',
      'compute_output',
      'cache_hit',
      'cache_miss',
    ]);
    assert.equal(m.name, 'resnet20');
    assert.equal(m.version, app.serving.registry.get('resnet20').version);

    const i = m.inference_stats;
    assert.equal(i.success.count, sent.length);
    assert.equal(i.fail.count, 1);
    assert.equal(m.inference_count, images);
    assert.equal(i.compute_input.count, images, 'one per decoded image; the bad one never finished decoding');
    assert.equal(i.queue.count, images, 'one per queued image');
    assert.equal(i.compute_output.count, sent.length, 'one per answered v1 request');
    assert.equal(i.compute_infer.count, batchSizes.length);
    assert.deepEqual(i.cache_hit, { count: 0, ns: 0 });
    assert.deepEqual(i.cache_miss, { count: 0, ns: 0 });
    for (const [field, stat] of Object.entries(i)) assert.ok(Number.isSafeInteger(stat.ns) && stat.ns >= 0, `${field}.ns is a whole number of ns`);
    assert.ok(i.success.ns > 0 && i.compute_infer.ns > 0);

    // Executions: one per batch, each under its size.
    assert.equal(m.execution_count, batchSizes.length);
    assert.equal(
      m.execution_count,
      m.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0),
    );
    const bySize = Object.fromEntries(m.batch_stats.map((b) => [b.batch_size, b.compute_infer.count]));
    assert.deepEqual(bySize, { 1: 2, 2: 1, 3: 1, 4: 1 });
    assert.equal(
      m.batch_stats.reduce((n, b) => n + b.compute_infer.ns, 0),
      i.compute_infer.ns,
    );
    assert.ok(m.last_inference >= before && m.last_inference <= after, `${m.last_inference} within [${before}, ${after}]`);
    assert.deepEqual(m.response_stats, {});
    assert.deepEqual(m.memory_usage, []);

    // The same reports feed /metrics.
    assert.equal(m.inference_count, await metric(app, 'inference_images_total'));
    assert.equal(m.execution_count, await metric(app, 'inference_batches_total'));
    assert.equal(i.success.count, await metric(app, 'inference_requests_total', ',outcome="ok",protocol="http"'));
    assert.equal(i.fail.count, await metric(app, 'inference_requests_total', ',outcome="bad_input",protocol="http"'));

    // Every route answers the same while no traffic runs.
    assert.deepEqual(await stats(app, '/v2/models/stats'), [m]);
    assert.deepEqual(await stats(app, `/v2/models/resnet20/versions/${m.version}/stats`), [m]);
  });

  it('starts at zero, and lists the extension in server metadata', async (t) => {
    const app = await resnet20App(t);
    const [m] = await stats(app, '/v2/models/stats');
    assert.equal(m!.name, 'resnet20');
    assert.equal(m!.last_inference, 0);
    assert.equal(m!.inference_count, 0);
    assert.equal(m!.execution_count, 0, 'warm-up batches are not traffic');
    assert.deepEqual(m!.batch_stats, []);
    const meta = await request(app.server).get('/v2');
    assert.ok(meta.body.extensions.includes('statistics'), JSON.stringify(meta.body));
  });

  it('answers 404 MODEL_NOT_FOUND for an unknown model or version', async (t) => {
    const app = await resnet20App(t);
    const version = app.serving.registry.get('resnet20').version;
    for (const path of ['/v2/models/nope/stats', '/v2/models/nope/versions/1/stats', `/v2/models/resnet20/versions/${version}0/stats`]) {
      const res = await request(app.server).get(path);
      assert.equal(res.status, 404, `${path}: ${res.text}`);
      assert.equal(res.body.code, 'MODEL_NOT_FOUND', path);
    }
  });

  it('needs an API key on every statistics route when keys are set', async (t) => {
    const key = 'stats-key-5d1e8a';
    const app = await resnet20App(t, { API_KEYS: key });
    for (const path of ['/v2/models/stats', '/v2/models/resnet20/stats', '/v2/models/resnet20/versions/1/stats']) {
      const refused = await request(app.server).get(path);
      assert.equal(refused.status, 401, `${path}: ${refused.text}`);
      assert.equal(refused.body.code, 'UNAUTHORIZED');
      assert.match(refused.headers['www-authenticate'] ?? '', /^Bearer /);
      const wrong = await request(app.server).get(path).set('Authorization', 'Bearer not-the-key');
      assert.equal(wrong.status, 401, path);
      const allowed = await request(app.server).get(path).set('Authorization', `Bearer ${key}`);
      assert.equal(allowed.status, 200, `${path}: ${allowed.text}`);
    }
  });
});

/**
 * Back-pressure through HTTP: queue full → 503 QUEUE_FULL with Retry-After; a passed
 * deadline → 504 DEADLINE_EXCEEDED; a client that goes away has its queued images removed;
 * a crashed worker fails only its batch with 500.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { crashGatedWorkers } from '../fixtures/workers/gated-worker.js';
import { gatedApp, until } from './gated-app.js';
import { CIFAR_DIR, resnet20App } from '../helpers.js';

const image = (name = 'cat_0002.jpg') => readFile(join(CIFAR_DIR, name));
/** Distinct images (identical ones in flight together would be coalesced into one inference). */
const distinctImages = (names: readonly string[]) => Promise.all(names.map((name) => image(name)));
const metricValue = async (app: FastifyInstance, pattern: RegExp) => {
  const m = pattern.exec((await app.serving.metrics.render(undefined)).body);
  return m ? Number(m[1]) : undefined;
};

describe('back-pressure through HTTP', () => {
  it('refuses at once with 503 QUEUE_FULL and Retry-After when the queue is full', async (t) => {
    const { app, gate, model } = await gatedApp(t, { QUEUE_MAX_SIZE: '4', MAX_IMAGES_PER_REQUEST: '4', BATCH_MAX_SIZE: '1' });
    await gate('close');
    const firstImages = await distinctImages(['cat_0000.jpg', 'cat_0001.jpg', 'cat_0002.jpg', 'cat_0003.jpg']);
    const refusedImages = await distinctImages(['dog_0000.jpg', 'dog_0001.jpg']);
    const first = request(app.server)
      .post('/v1/predict')
      .send({ instances: firstImages.map((img) => ({ b64: img.toString('base64') })) });
    const firstDone = first.then((r) => r);
    await until(() => model.batcher.queueDepth === 3 && model.batcher.inflightBatches === 1, 'one image running, three queued');
    const refused = await request(app.server)
      .post('/v1/predict')
      .send({ instances: refusedImages.map((img) => ({ b64: img.toString('base64') })) });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.code, 'QUEUE_FULL');
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(model.batcher.queueDepth, 3, 'the refused request left nothing in the queue');
    await gate('open');
    const ok = await firstDone;
    assert.equal(ok.status, 200);
    assert.equal(ok.body.predictions.length, 4);
    assert.equal(await metricValue(app, /^inference_requests_total\{model="m",version="1",outcome="rejected",protocol="http"\} (\d+)/m), 1);
  });

  it('answers 504 DEADLINE_EXCEEDED when X-Request-Timeout-Ms passes while queued, and never runs it', async (t) => {
    const { app, gate, events, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1' });
    await gate('close');
    const img = await image();
    const blocker = request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/jpeg')
      .send(img)
      .then((r) => r);
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const late = await request(app.server).post('/v1/predict').set('Content-Type', 'image/jpeg').set('X-Request-Timeout-Ms', '50').send(img);
    assert.equal(late.status, 504);
    assert.equal(late.body.code, 'DEADLINE_EXCEEDED');
    assert.equal(model.batcher.queueDepth, 0, 'the expired image left the queue');
    await gate('open');
    assert.equal((await blocker).status, 200);
    assert.deepEqual(
      events.filter((e) => e.event === 'run').map((e) => e.batch),
      [1],
      'only the blocker ran',
    );
    assert.equal(await metricValue(app, /^inference_requests_total\{model="m",version="1",outcome="timeout",protocol="http"\} (\d+)/m), 1);
  });

  it('never lets X-Request-Timeout-Ms raise the deadline above REQUEST_TIMEOUT_MS', async (t) => {
    const { app, gate, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1', REQUEST_TIMEOUT_MS: '50' });
    await gate('close');
    const img = await image();
    const res = await request(app.server).post('/v1/predict').set('Content-Type', 'image/jpeg').set('X-Request-Timeout-Ms', '600000').send(img);
    assert.equal(res.status, 504);
    assert.equal(res.body.code, 'DEADLINE_EXCEEDED');
    await gate('open');
    assert.equal(model.batcher.queueDepth, 0);
  });

  it('refuses a malformed X-Request-Timeout-Ms with 400', async (t) => {
    const app = await resnet20App(t);
    const res = await request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/jpeg')
      .set('X-Request-Timeout-Ms', 'soon')
      .send(await image());
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'INVALID_REQUEST');
  });

  it('removes the queued images of a client that disconnects, before they run', async (t) => {
    const { app, gate, events, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    await gate('close');
    const img = await image();
    const blocker = request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/jpeg')
      .send(img)
      .then((r) => r);
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const others = await distinctImages(['dog_0000.jpg', 'dog_0001.jpg']);
    const body = JSON.stringify({ instances: others.map((other) => ({ b64: other.toString('base64') })) });
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/predict',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', () => undefined);
    req.end(body);
    await until(() => model.batcher.queueDepth === 2, 'the second request is queued');
    req.destroy();
    await until(() => model.batcher.queueDepth === 0, 'its images left the queue');
    await gate('open');
    assert.equal((await blocker).status, 200);
    assert.deepEqual(
      events.filter((e) => e.event === 'run').map((e) => e.batch),
      [1],
      'the abandoned images never ran',
    );
    assert.equal(await metricValue(app, /^inference_requests_total\{model="m",version="1",outcome="cancelled",protocol="http"\} (\d+)/m), 1);
  });

  it('fails only the batch of a worker that crashes with 500, then serves again', async (t) => {
    const { app, gate, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1' });
    await gate('close');
    const img = await image();
    const running = request(app.server)
      .post('/v1/predict')
      .set('Content-Type', 'image/jpeg')
      .send(img)
      .then((r) => r);
    await until(() => model.batcher.inflightBatches === 1, 'the request is running on the worker');
    crashGatedWorkers();
    const failed = await running;
    assert.equal(failed.status, 500);
    assert.equal(failed.body.code, 'INFERENCE_FAILED');
    assert.doesNotMatch(failed.text, /exit code|worker\.js|\/work\//, 'no internals in the answer');
    // The replacement worker starts with its gate open.
    const next = await request(app.server).post('/v1/predict').set('Content-Type', 'image/jpeg').send(img);
    assert.equal(next.status, 200, next.text);
    assert.equal(next.body.predictions.length, 1);
  });
});

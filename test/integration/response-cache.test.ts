/**
 * The response cache and request coalescing through HTTP, with the trained ResNet-20 (and the
 * gated stand-in worker where a batch must be held in flight): hits answer like the miss did,
 * per request; identical images in flight run once; a reload never serves an earlier answer;
 * the byte bound holds under a flood of unique images.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { CIFAR_DIR, distinctCopies, photo, RESNET20_CONFIG, RESNET20_DIR, resnet20App, startApp, tempRepository } from '../helpers.js';
import { gatedApp, until } from './gated-app.js';
import { listen } from './hostile-support.js';

const cifar = (name: string) => readFile(join(CIFAR_DIR, name));

/** Sums the samples of `name` whose labels include `has`, in the app's exposition. */
async function metric(app: FastifyInstance, name: string, has = ''): Promise<number> {
  const { body } = await app.serving.metrics.render(undefined);
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(has))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const predict = (app: FastifyInstance, image: Buffer, query = '', path = '/v1/models/resnet20:predict') =>
  request(app.server).post(`${path}${query}`).set('Content-Type', 'image/jpeg').send(image);

const cacheOf = (res: { headers: Record<string, string | string[] | undefined> }) => /cache;desc=(\w+)/.exec(String(res.headers['server-timing'] ?? ''))?.[1];

/** POSTs `body` to `path` in `pieces` writes, a pause between them, so it arrives in several chunks. */
function postInPieces(port: number, path: string, body: Buffer, type: string | undefined, pieces: number) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }>((resolve, reject) => {
    const headers = { 'Content-Length': body.length, ...(type === undefined ? {} : { 'Content-Type': type }) };
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    void (async () => {
      const size = Math.ceil(body.length / pieces);
      for (let at = 0; at < body.length; at += size) {
        req.write(body.subarray(at, at + size));
        await sleep(15);
      }
      req.end();
    })();
  });
}

describe('response cache', () => {
  it('answers a repeated image from the cache, as the miss did, with cache;desc=hit and no batch run', async (t) => {
    const app = await resnet20App(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const image = await cifar('cat_0000.jpg');
    const miss = await predict(app, image);
    assert.equal(miss.status, 200, miss.text);
    assert.equal(cacheOf(miss), 'miss');
    const batches = await metric(app, 'inference_batches_total');
    const hit = await predict(app, image);
    assert.equal(hit.status, 200, hit.text);
    assert.equal(cacheOf(hit), 'hit');
    assert.match(hit.headers['server-timing'] ?? '', /preprocess;dur=0\.0, queue;dur=0\.0, infer;dur=0\.0, postprocess;dur=[\d.]+, cache;desc=hit, total;dur=/);
    assert.deepEqual(hit.body, miss.body, 'the same answer');
    assert.equal(hit.body.predictions[0].label, 'cat');
    assert.equal(await metric(app, 'inference_batches_total'), batches, 'the hit ran no batch');
    assert.equal(await metric(app, 'inference_response_cache_hits_total', 'model="resnet20"'), 1);
    assert.equal(await metric(app, 'inference_response_cache_misses_total', 'model="resnet20"'), 1);
    assert.equal(await metric(app, 'inference_response_cache_entries', 'model="resnet20"'), 1);
    assert.ok((await metric(app, 'inference_response_cache_bytes', 'model="resnet20"')) > 40);
    assert.equal(await metric(app, 'inference_images_total'), 2, 'both answered images count');

    const stats = await request(app.server).get('/v2/models/resnet20/stats');
    const inference = stats.body.model_stats[0].inference_stats;
    assert.equal(inference.cache_hit.count, 1);
    assert.equal(inference.cache_miss.count, 1);
    assert.equal(inference.success.count, 2);
  });

  it('derives each request its own top_k, and v2 outputs, from one cached entry', async (t) => {
    const app = await resnet20App(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const image = await cifar('dog_0001.jpg');
    const one = await predict(app, image, '?top_k=1');
    const five = await predict(app, image, '?top_k=5');
    assert.equal(cacheOf(one), 'miss');
    assert.equal(cacheOf(five), 'hit');
    assert.equal(one.body.predictions[0].top_k.length, 1);
    assert.equal(five.body.predictions[0].top_k.length, 5);
    assert.deepEqual(five.body.predictions[0].top_k[0], one.body.predictions[0].top_k[0]);

    const v2 = (outputs?: unknown) =>
      request(app.server)
        .post('/v2/models/resnet20/infer')
        .send({
          inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [image.toString('base64')] }],
          ...(outputs ? { outputs } : {}),
        });
    const raw = await v2();
    assert.equal(raw.status, 200, raw.text);
    assert.equal(cacheOf(raw), 'hit');
    assert.equal(raw.body.outputs[0].data.length, 10);
    const classified = await v2([{ name: raw.body.outputs[0].name, parameters: { classification: 2 } }]);
    assert.equal(classified.status, 200, classified.text);
    assert.equal(cacheOf(classified), 'hit');
    assert.equal(classified.body.outputs[0].data.length, 2);
    assert.match(classified.body.outputs[0].data[0], new RegExp(`:${one.body.predictions[0].index}:`));
    assert.equal(await metric(app, 'inference_batches_total'), 1, 'one inference answered all four');
  });

  it('mixes hits and misses in one request; only the misses run', async (t) => {
    const app = await resnet20App(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const [a, b] = await Promise.all([cifar('bird_0000.jpg'), cifar('deer_0000.jpg')]);
    await predict(app, a);
    const both = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .send({ instances: [{ b64: a.toString('base64') }, { b64: b.toString('base64') }] });
    assert.equal(both.status, 200, both.text);
    assert.equal(cacheOf(both), 'miss');
    assert.equal(await metric(app, 'inference_batch_size_sum'), 2, 'a once, then b alone');
    assert.equal(await metric(app, 'inference_response_cache_hits_total'), 1);
  });

  it('keys a raw body hashed as it arrives, in pieces, under every raw type, as the same image sent in base64', async (t) => {
    const app = await resnet20App(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const port = await listen(app);
    const png = await photo('astronaut.png'); // 790 kB: many chunks
    const base64 = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .send({ instances: [{ b64: png.toString('base64') }] });
    assert.equal(base64.status, 200, base64.text);
    assert.equal(cacheOf(base64), 'miss');
    for (const type of ['image/png', 'application/octet-stream', 'application/x-www-form-urlencoded', undefined]) {
      const raw = await postInPieces(port, '/v1/models/resnet20:predict', png, type, 5);
      assert.equal(raw.status, 200, raw.text);
      assert.equal(cacheOf(raw), 'hit', `${type ?? 'no Content-Type'}: the digest taken on arrival is the image's SHA-256`);
      assert.deepEqual(JSON.parse(raw.text), base64.body);
    }
    // The same pixels in other bytes: another digest, so the answer is computed again.
    const [changed] = distinctCopies(png, 1);
    const other = await postInPieces(port, '/v1/models/resnet20:predict', changed!, 'image/png', 5);
    assert.equal(other.status, 200, other.text);
    assert.equal(cacheOf(other), 'miss');
    assert.equal(await metric(app, 'inference_batches_total'), 2, 'the base64 miss and the changed image ran; the raw bodies hit');
  });

  it('is off by default: a repeated image runs again, and answers carry no cache entry', async (t) => {
    const app = await resnet20App(t);
    const image = await cifar('cat_0001.jpg');
    const first = await predict(app, image);
    const second = await predict(app, image);
    assert.equal(first.status, 200);
    assert.equal(cacheOf(first), undefined);
    assert.equal(cacheOf(second), undefined);
    assert.equal(await metric(app, 'inference_batches_total'), 2);
    assert.equal(await metric(app, 'inference_response_cache_misses_total'), 0, 'no lookups when off');
    assert.equal(await metric(app, 'inference_response_cache_entries'), 0);
  });

  it('never answers a reload of the same version from the earlier load', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG, versions: ['1'] }]);
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: 'resnet20', RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const image = await cifar('horse_0000.jpg');
    const before = await predict(app, image);
    assert.equal(cacheOf(before), 'miss');
    assert.equal(cacheOf(await predict(app, image)), 'hit');
    // Same version number, other preprocessing: other outputs for the same bytes.
    const reloaded = await request(app.server)
      .post('/v2/repository/models/resnet20/load')
      .send({ parameters: { config: JSON.stringify({ preprocess: { resize: 40, crop: 32 } }) } });
    assert.equal(reloaded.status, 200, reloaded.text);
    const after = await predict(app, image);
    assert.equal(after.status, 200, after.text);
    assert.equal(after.body.model_version, '1');
    assert.equal(cacheOf(after), 'miss', 'the new load has no entry yet');
    assert.notEqual(after.body.predictions[0].score, before.body.predictions[0].score, 'a fresh answer');
    assert.equal(cacheOf(await predict(app, image)), 'hit');
  });

  it('holds at most RESPONSE_CACHE_MAX_BYTES under a flood of unique images: they only churn the LRU', async (t) => {
    const maxBytes = 2048;
    const app = await resnet20App(t, { RESPONSE_CACHE_MAX_BYTES: String(maxBytes), MAX_IMAGES_PER_REQUEST: '8' });
    const image = await cifar('frog_0000.jpg');
    for (let round = 0; round < 4; round++) {
      const res = await request(app.server)
        .post('/v1/models/resnet20:predict')
        .send({ instances: distinctCopies(image, 8, 8 * round).map((copy) => ({ b64: copy.toString('base64') })) });
      assert.equal(res.status, 200, res.text);
      const bytes = await metric(app, 'inference_response_cache_bytes');
      assert.ok(bytes > 0 && bytes <= maxBytes, `${bytes} bytes held, bound ${maxBytes}`);
    }
    const entries = await metric(app, 'inference_response_cache_entries');
    assert.ok(entries >= 1 && entries < 8, `${entries} entries`);
    assert.equal(await metric(app, 'inference_response_cache_evictions_total'), 32 - entries);
    assert.equal(await metric(app, 'inference_response_cache_misses_total'), 32);
  });
});

describe('request coalescing', () => {
  it('runs identical images in flight together once, even with the cache off; each joiner gets the answer', async (t) => {
    const { app, gate, events, model } = await gatedApp(t, { BATCH_MAX_SIZE: '4' });
    await gate('close');
    const image = await cifar('ship_0000.jpg');
    const send = () =>
      request(app.server)
        .post('/v1/models/m:predict')
        .set('Content-Type', 'image/jpeg')
        .send(image)
        .then((r) => r);
    const leader = send();
    await until(() => model.batcher.inflightBatches === 1, 'the first request is running');
    const followers = [send(), send()];
    await until(async () => (await metric(app, 'inference_coalesced_images_total')) === 2, 'both joined');
    assert.equal(model.batcher.queueDepth, 0, 'the joiners took no room in the queue');
    await gate('open');
    const answers = await Promise.all([leader, ...followers]);
    for (const a of answers) assert.equal(a.status, 200, a.text);
    assert.deepEqual(answers[1]!.body, answers[0]!.body);
    assert.equal(cacheOf(answers[0]!), undefined);
    assert.equal(cacheOf(answers[1]!), 'coalesced');
    assert.equal(events.filter((e) => e.event === 'run').length, 1, 'one inference');
    assert.equal(await metric(app, 'inference_requests_total', 'outcome="ok"'), 3);
  });

  it('lets a joiner time out alone, and drops the shared work once every waiter has gone', async (t) => {
    const { app, gate, events, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1' });
    await gate('close');
    const [blockerImage, image] = await Promise.all([cifar('truck_0000.jpg'), cifar('truck_0001.jpg')]);
    const post = (img: Buffer, timeoutMs?: string) => {
      const r = request(app.server).post('/v1/models/m:predict').set('Content-Type', 'image/jpeg');
      if (timeoutMs) void r.set('X-Request-Timeout-Ms', timeoutMs);
      return r.send(img).then((res) => res);
    };
    const blocker = post(blockerImage);
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const patient = post(image);
    await until(() => model.batcher.queueDepth === 1, 'its image is queued');
    const hasty = await post(image, '50');
    assert.equal(hasty.status, 504, 'the joiner times out on its own deadline');
    assert.equal(hasty.body.code, 'DEADLINE_EXCEEDED');
    assert.equal(model.batcher.queueDepth, 1, 'the shared work is still queued for the other waiter');
    await gate('open');
    assert.equal((await patient).status, 200);
    assert.equal((await blocker).status, 200);
    assert.deepEqual(
      events.filter((e) => e.event === 'run').map((e) => e.batch),
      [1, 1],
    );

    // Now every waiter goes: the queued work is dropped, never run.
    await gate('close');
    const blocker2 = post(blockerImage);
    await until(() => model.batcher.inflightBatches === 1, 'the second blocker is running');
    const [x, y] = [post(image, '60'), post(image, '60')];
    assert.equal((await x).status, 504);
    assert.equal((await y).status, 504);
    await until(() => model.batcher.queueDepth === 0, 'the abandoned image left the queue');
    await gate('open');
    assert.equal((await blocker2).status, 200);
    assert.deepEqual(
      events.filter((e) => e.event === 'run').map((e) => e.batch),
      [1],
      'only the blocker ran',
    );
  });

  it('gives every waiter an undecodable image its error, and keeps none', async (t) => {
    const { app, gate, model } = await gatedApp(t, { BATCH_MAX_SIZE: '1', RESPONSE_CACHE_MAX_BYTES: '1048576' });
    await gate('close');
    const blocker = request(app.server)
      .post('/v1/models/m:predict')
      .set('Content-Type', 'image/jpeg')
      .send(await cifar('cat_0004.jpg'))
      .then((r) => r);
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const broken = (await cifar('cat_0003.jpg')).subarray(0, 300);
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        request(app.server)
          .post('/v1/models/m:predict')
          .send({ instances: [{ b64: broken.toString('base64') }] })
          .then((r) => r),
      ),
    );
    await gate('open');
    assert.equal((await blocker).status, 200);
    for (const r of [a, b]) assert.equal(r!.body.code, 'INVALID_IMAGE', r!.text);
    const again = await request(app.server)
      .post('/v1/models/m:predict')
      .send({ instances: [{ b64: broken.toString('base64') }] });
    assert.equal(again.body.code, 'INVALID_IMAGE', 'decoded again, not answered from a kept error');
    assert.equal(await metric(app, 'inference_response_cache_entries'), 1, 'only the blocker is cached');
  });

  it('counts every image once: inferred in a batch or joined, with the real model under concurrent identical requests', async (t) => {
    const app = await resnet20App(t);
    const image = await cifar('airplane_0000.jpg');
    const answers = await Promise.all(Array.from({ length: 12 }, () => predict(app, image)));
    for (const a of answers) assert.equal(a.status, 200, a.text);
    for (const a of answers) assert.deepEqual(a.body, answers[0]!.body);
    const inferred = await metric(app, 'inference_batch_size_sum');
    const joined = await metric(app, 'inference_coalesced_images_total');
    assert.equal(inferred + joined, 12, `${inferred} inferred + ${joined} joined`);
  });
});

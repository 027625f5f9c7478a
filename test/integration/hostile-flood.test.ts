/**
 * Admission under hostile traffic. A model admits at most QUEUE_MAX_SIZE requests into the data
 * plane at once, counted from when a request's body has arrived until its answer is computed:
 * - with no room, a request is refused at once with 503 QUEUE_FULL and Retry-After on its
 *   headers alone, its body unread, and counted as rejected;
 * - clients that send their bodies slowly hold no slot, so they cannot starve the others;
 * - pipelined requests on a connection that never reads and then closes give their slots back
 *   (Node emits no 'close' for answers queued behind an unsent one, which once leaked them).
 * Driven deterministically: a gated stand-in worker holds admitted requests for as long as the
 * test wants, and waits are on events and metrics, never on time.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { CIFAR_DIR, resnet20App } from '../helpers.js';
import { gatedApp, until } from './gated-app.js';
import { assertCatalogError, exchange, listen, parseResponse } from './hostile-support.js';

const cat = () => readFile(join(CIFAR_DIR, 'cat_0000.jpg'));

const rawPredictHead = (path: string, length: number, close = false) =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: ${length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

/** The sum of a counter's samples whose labels match `labels` (a regex over the label set). */
async function counterSum(app: FastifyInstance, name: string, labels: RegExp): Promise<number> {
  const text = (await app.serving.metrics.render(undefined)).body;
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) if (labels.test(m[1]!)) sum += Number(m[2]);
  return sum;
}

/** Reads a whole answer from a socket the server will close. */
async function answerOf(socket: Socket) {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'close');
  return parseResponse(Buffer.concat(chunks));
}

describe('admission under hostile traffic', () => {
  it('refuses a request for a model with no room on its headers alone, and admits again once one ends', async (t) => {
    const { app, gate } = await gatedApp(t, { QUEUE_MAX_SIZE: '2', MAX_IMAGES_PER_REQUEST: '2' });
    const port = await listen(app);
    const image = await cat();
    await gate('close');
    // Two whole requests are admitted and held by the closed gate.
    const held = [0, 1].map(() =>
      request(app.server)
        .post('/v1/models/m:predict')
        .set('Content-Type', 'image/jpeg')
        .send(image)
        .then((r) => r),
    );
    await until(async () => (await counterSum(app, 'inference_inflight_requests', /model="m"/)) === 2, 'both requests admitted');

    // A third is refused at once, on its headers alone: the client has not sent its body, and
    // the server closes the connection rather than wait for a megabyte it would only discard
    // (a flood of refusals must not read the bodies it turns away: see mustClose).
    const third = await exchange(port, [
      'POST /v2/models/m/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n',
    ]);
    assert.ok(third.closed, 'the server kept the connection open, waiting for the body');
    assert.ok(third.answer, 'no answer to the third request');
    assertCatalogError(third.answer, { status: 503, code: 'QUEUE_FULL' }, 'third');
    assert.equal(third.answer.headers['retry-after'], '1');
    assert.equal(third.answer.headers.connection, 'close');
    // A small body (up to 64 KiB) costs less to read than a new connection: it is drained and
    // the connection kept.
    const small = await exchange(port, [rawPredictHead('/v1/models/m:predict', image.length), image], { untilAnswer: true });
    assert.ok(small.answer, 'no answer to the small request');
    assertCatalogError(small.answer, { status: 503, code: 'QUEUE_FULL' }, 'small');
    assert.equal(small.answer.headers.connection, 'keep-alive');
    assert.equal(await counterSum(app, 'inference_requests_total', /outcome="rejected"/), 2);

    await gate('open');
    for (const answer of await Promise.all(held)) assert.equal(answer.status, 200, answer.text);
    const after = await request(app.server).post('/v1/predict').set('Content-Type', 'image/jpeg').send(image);
    assert.equal(after.status, 200, after.text);
  });

  it("lets slow senders hold no slot: with every slot's worth of bodies dripping, a whole request is served", async (t) => {
    const app = await resnet20App(t, { QUEUE_MAX_SIZE: '2', MAX_IMAGES_PER_REQUEST: '2' });
    const port = await listen(app);
    const image = await cat();
    let requests = 0;
    app.server.on('request', () => requests++);
    // Four uploads (twice the limit) send their headers and half their body, then stall.
    const slow: Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const socket = connect(port, '127.0.0.1');
        slow.push(socket);
        await once(socket, 'connect');
        socket.write(rawPredictHead('/v1/models/resnet20:predict', image.length, true));
        socket.write(image.subarray(0, image.length >> 1));
      }
      await until(() => requests === 4, 'the slow uploads reached the server');

      const fast = await request(app.server).post('/v1/models/resnet20:predict').set('Content-Type', 'image/jpeg').send(image);
      assert.equal(fast.status, 200, fast.text);

      // Each slow upload, once its body is all there, is admitted and served.
      for (const socket of slow) {
        const answer = answerOf(socket);
        socket.write(image.subarray(image.length >> 1));
        const a = await answer;
        assert.equal(a?.status, 200, a?.text);
      }
    } finally {
      // Before the app closes (it would wait for these connections), also when an assertion failed.
      for (const socket of slow) socket.destroy();
    }
  });

  it('gives back the slots of pipelined requests on a connection that never reads and closes', async (t) => {
    const app = await resnet20App(t, { QUEUE_MAX_SIZE: '4', MAX_IMAGES_PER_REQUEST: '4' });
    const port = await listen(app);
    const image = await cat();
    let requests = 0;
    app.server.on('request', () => requests++);
    // Enough /metrics answers (tens of KB each) to fill the socket buffers of a client that does
    // not read, so the image answers behind them stay queued in Node; three such connections
    // once took every slot for good.
    const scrapes = 300;
    const posts = 8;
    const pipelined = 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(scrapes);
    const batch = Buffer.concat([
      Buffer.from(pipelined),
      ...Array.from({ length: posts }, () => [Buffer.from(rawPredictHead('/v1/models/resnet20:predict', image.length)), image]).flat(),
    ]);
    for (let round = 1; round <= 3; round++) {
      const seen = requests;
      const settled = await counterSum(app, 'inference_requests_total', /model="resnet20"/);
      const socket = connect(port, '127.0.0.1');
      socket.pause();
      await once(socket, 'connect');
      socket.write(batch);
      await until(() => requests === seen + scrapes + posts, `round ${round}: every pipelined request reached the server`);
      await until(
        async () => (await counterSum(app, 'inference_requests_total', /model="resnet20"/)) === settled + posts,
        `round ${round}: every image request settled`,
      );
      socket.destroy();
    }
    await until(async () => (await counterSum(app, 'inference_inflight_requests', /model="resnet20"/)) === 0, 'nothing in flight');
    const after = await request(app.server).post('/v1/models/resnet20:predict').set('Content-Type', 'image/jpeg').send(image);
    assert.equal(after.status, 200, after.text);
    assert.equal(after.body.predictions[0].label, 'cat');
  });
});

/**
 * Shedding at the door: a model admits at most QUEUE_MAX_SIZE inference requests at a time,
 * counted from before the body is read; one more is refused at once with 503 QUEUE_FULL and
 * Retry-After, without its body being read, and counted as rejected. Driven deterministically:
 * requests whose bodies the client holds back occupy the slots for as long as the test wants.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CIFAR_DIR, resnet20App } from '../helpers.js';
import { assertCatalogError, exchange, listen, parseResponse } from './hostile-support.js';

/** Resolves once `predicate` holds, checking on every turn of the event loop (bounded). */
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}

describe('load shedding at the door', () => {
  it('refuses a request past QUEUE_MAX_SIZE in flight with 503 before reading its body, and admits again once one ends', async (t) => {
    const app = await resnet20App(t, { QUEUE_MAX_SIZE: '2', MAX_IMAGES_PER_REQUEST: '2' });
    const port = await listen(app);
    const image = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    let requests = 0;
    app.server.on('request', () => requests++);
    const held: Socket[] = [];
    try {
      await flood(port, image, held, () => requests, app.serving.metrics.render.bind(app.serving.metrics));
    } finally {
      // Before the app closes, also when an assertion failed: Node stops its request timeouts
      // on close, so a held connection would keep close() waiting for ever.
      for (const socket of held) socket.destroy();
    }
  });
});

async function flood(port: number, image: Buffer, held: Socket[], requests: () => number, renderMetrics: (accept: undefined) => Promise<{ body: string }>): Promise<void> {
  // Two requests whose headers are sent and whose bodies are held back: both are admitted
  // (the door is passed before the body is read) and stay in flight.
  for (let i = 0; i < 2; i++) {
    const socket = connect(port, '127.0.0.1');
    held.push(socket);
    await once(socket, 'connect');
    socket.write(`POST /v1/models/resnet20:predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: ${image.length}\r\nConnection: close\r\n\r\n`);
  }
  await until(() => requests() === 2, 'both held requests reached the server');
  // Their hooks run within the turn that received them; one more turn and both are admitted.
  await new Promise((r) => setImmediate(r));

  // A third is refused at once, on its headers alone: the client has not sent its body. (The
  // connection stays open so that a client still sending reads its answer: see mustClose.)
  const third = await exchange(port, ['POST /v2/models/resnet20/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n'], { untilAnswer: true });
  assert.ok(third.answer, 'no answer to the third request');
  assertCatalogError(third.answer, { status: 503, code: 'QUEUE_FULL' }, 'third');
  assert.equal(third.answer.headers['retry-after'], '1');
  assert.match((await renderMetrics(undefined)).body, /^inference_requests_total\{model="resnet20",outcome="rejected"\} 1$/m);

  // The held requests are served once their bodies come, and free their slots.
  const answers = held.map(async (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    return parseResponse(Buffer.concat(chunks));
  });
  for (const socket of held) socket.write(image);
  for (const answer of await Promise.all(answers)) {
    assert.equal(answer?.status, 200, answer?.text);
    assert.equal((JSON.parse(answer!.text) as { predictions: Array<{ label: string }> }).predictions.length, 1);
  }
  const after = await exchange(port, [`POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: ${image.length}\r\nConnection: close\r\n\r\n`, image]);
  assert.equal(after.answer?.status, 200, after.answer?.text);
}

/**
 * The body budget through real sockets: bytes of bodies still arriving are counted against
 * BODY_MEMORY_BUDGET_BYTES as they come (not as declared), a chunk past it fails its request
 * with 503 QUEUE_FULL, a spent budget refuses new bodies on their headers, and bytes come back
 * when a body completes or its client goes away. Synchronised on the budget's own gauge.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { CIFAR_DIR, resnet20App } from '../helpers.js';
import { until } from './gated-app.js';
import { assertCatalogError, exchange, listen, send } from './hostile-support.js';

const BUDGET = 100_000;

async function arrivingBytes(app: FastifyInstance): Promise<number> {
  const text = (await app.serving.metrics.render(undefined)).body;
  return Number(/^http_request_body_arriving_bytes (\d+)$/m.exec(text)?.[1]);
}

const head = (length: number) =>
  `POST /v1/models/resnet20:predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: ${length}\r\n\r\n`;

/** A client that sends its headers and `sent` bytes of a `declared`-byte body, then stalls. */
async function stalled(port: number, declared: number, sent: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(head(declared));
  socket.write(randomBytes(sent));
  return socket;
}

/** The head of the first answer on `socket`, once it has arrived. */
async function statusLine(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of socket) {
    chunks.push(c as Buffer);
    if (Buffer.concat(chunks).includes('\r\n\r\n')) break;
  }
  return Buffer.concat(chunks).toString('latin1');
}

describe('body budget', () => {
  it('counts what arrives, refuses past the budget with 503, and gives bytes back when a client goes away', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: String(BUDGET), JSON_BODY_MAX_BYTES: String(BUDGET), BODY_MEMORY_BUDGET_BYTES: String(BUDGET) });
    const port = await listen(app);
    const cat = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    const sockets: Socket[] = [];
    try {
      // A declares 90,000 bytes and sends 60,000: 60,000 are counted, not 90,000.
      sockets.push(await stalled(port, 90_000, 60_000));
      await until(async () => (await arrivingBytes(app)) === 60_000, 'the first 60,000 bytes counted');

      // B's 60,000 would take the count to 120,000: B is refused, A keeps its place.
      const b = await exchange(port, [head(90_000), randomBytes(60_000)], { untilAnswer: true });
      assert.ok(b.answer, 'B got no answer');
      assertCatalogError(b.answer, { status: 503, code: 'QUEUE_FULL' }, 'B');
      assert.equal(b.answer.headers['retry-after'], '1');
      await until(async () => (await arrivingBytes(app)) === 60_000, 'B gave its bytes back');

      // A whole small image still fits beside A's 60,000, and is served.
      const ok = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/jpeg' }, body: cat });
      assert.equal(ok.status, 200, ok.text);

      // A goes away: its bytes come back.
      sockets[0]!.destroy();
      await until(async () => (await arrivingBytes(app)) === 0, 'A gave its bytes back');

      // C and E fill the budget exactly; a new body is then refused on its headers alone.
      sockets.push(await stalled(port, 90_000, 60_000));
      await until(async () => (await arrivingBytes(app)) === 60_000, 'C counted');
      sockets.push(await stalled(port, 90_000, BUDGET - 60_000));
      await until(async () => (await arrivingBytes(app)) === BUDGET, 'C and E filled the budget');
      const d = await exchange(port, [head(cat.length)], { untilAnswer: true });
      assert.ok(d.answer, 'D got no answer');
      assertCatalogError(d.answer, { status: 503, code: 'QUEUE_FULL' }, 'D');
      // Requests without a body are not concerned.
      assert.equal((await send(port, { path: '/v2/models/resnet20' })).status, 200);
      sockets[1]!.destroy();
      sockets[2]!.destroy();
      await until(async () => (await arrivingBytes(app)) === 0, 'C and E gave their bytes back');
      const after = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/jpeg' }, body: cat });
      assert.equal(after.status, 200, after.text);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('makes room for the oldest body by failing the youngest, so large uploads cannot refuse each other for ever', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: String(BUDGET), JSON_BODY_MAX_BYTES: String(BUDGET), BODY_MEMORY_BUDGET_BYTES: String(BUDGET) });
    const port = await listen(app);
    const sockets: Socket[] = [];
    try {
      // A arrives first and has sent 10,000; B, younger, 60,000.
      const a = await stalled(port, 90_000, 10_000);
      sockets.push(a);
      await until(async () => (await arrivingBytes(app)) === 10_000, 'A counted');
      const b = await stalled(port, 90_000, 60_000);
      sockets.push(b);
      await until(async () => (await arrivingBytes(app)) === 70_000, 'B counted');
      const bAnswer = statusLine(b);
      // A's next 40,000 do not fit beside B's: B, the youngest, is failed to make room.
      a.write(randomBytes(40_000));
      assert.match(await bAnswer, /^HTTP\/1\.1 503 /);
      await until(async () => (await arrivingBytes(app)) === 50_000, 'only A is counted');
      // A completes: its body is answered on its merits (random bytes are no image), not 503.
      const aAnswer = statusLine(a);
      a.write(randomBytes(40_000));
      assert.match(await aAnswer, /^HTTP\/1\.1 4(00|15) /);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('counts raw images sent as application/x-www-form-urlencoded or with no Content-Type like any other body', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: String(BUDGET), JSON_BODY_MAX_BYTES: String(BUDGET), BODY_MEMORY_BUDGET_BYTES: String(BUDGET) });
    const port = await listen(app);
    for (const type of ['application/x-www-form-urlencoded', undefined]) {
      const socket = connect(port, '127.0.0.1');
      try {
        await once(socket, 'connect');
        socket.write(`POST /v1/predict HTTP/1.1\r\nHost: localhost\r\n${type === undefined ? '' : `Content-Type: ${type}\r\n`}Content-Length: 90000\r\n\r\n`);
        socket.write(randomBytes(60_000));
        await until(async () => (await arrivingBytes(app)) === 60_000, `60,000 bytes counted (${type ?? 'no Content-Type'})`);
        const refused = await exchange(port, [head(90_000), randomBytes(60_000)], { untilAnswer: true });
        assert.ok(refused.answer, 'no answer');
        assertCatalogError(refused.answer, { status: 503, code: 'QUEUE_FULL' }, `beside ${type ?? 'no Content-Type'}`);
      } finally {
        socket.destroy();
      }
      await until(async () => (await arrivingBytes(app)) === 0, `bytes given back (${type ?? 'no Content-Type'})`);
    }
  });

  it('counts multipart file bytes too, and gives them back once the body is read', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: String(BUDGET), JSON_BODY_MAX_BYTES: String(BUDGET), BODY_MEMORY_BUDGET_BYTES: String(BUDGET) });
    const port = await listen(app);
    const boundary = 'budget-boundary';
    const partHead = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
    const socket = connect(port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      socket.write(
        `POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 95000\r\n\r\n${partHead}`,
      );
      socket.write(randomBytes(70_000).map((b) => (b === 0x2d ? 0x2e : b))); // no '-' so no boundary by chance
      await until(async () => (await arrivingBytes(app)) >= 60_000, 'the file bytes counted');
      const refused = await exchange(port, [head(90_000), randomBytes(60_000)], { untilAnswer: true });
      assert.ok(refused.answer, 'no answer');
      assertCatalogError(refused.answer, { status: 503, code: 'QUEUE_FULL' }, 'beside the multipart upload');
    } finally {
      socket.destroy();
    }
    await until(async () => (await arrivingBytes(app)) === 0, 'the multipart bytes given back');
  });
});

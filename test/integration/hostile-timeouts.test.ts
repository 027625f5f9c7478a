/**
 * Slow clients against a real listening server with small configured timeouts: headers that
 * never finish, headers or a body dripped a byte at a time, a body that never comes, an idle
 * keep-alive connection. Each connection is closed by the server; meanwhile everyone else is
 * served. Nothing here measures time: the only clock is a generous client-side guard that turns
 * a connection the server never closes into a failure.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CIFAR_DIR, resnet20App } from '../helpers.js';
import { GUARD_MS, assertCatalogError, listen, parseResponse, rawPost, exchange } from './hostile-support.js';

const TIMEOUTS = { HTTP_HEADERS_TIMEOUT_MS: '500', HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '300' };

interface Outcome {
  readonly closedByServer: boolean;
  readonly received: Buffer;
}

/**
 * Opens a connection, writes `head`, then `drip` one byte at a time (every `everyMs`) while the
 * connection lasts. Resolves when the server closes it, or when the guard gives up.
 */
function slowClient(port: number, head: string, drip = '', everyMs = 50): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let i = 0;
    const dripper = setInterval(() => {
      if (drip.length > 0 && !socket.destroyed) socket.write(drip[i++ % drip.length]!);
    }, everyMs);
    const done = (closedByServer: boolean) => {
      clearInterval(dripper);
      clearTimeout(guard);
      socket.destroy();
      resolve({ closedByServer, received: Buffer.concat(received) });
    };
    const guard = setTimeout(() => done(false), GUARD_MS);
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('close', () => done(true));
    socket.on('error', () => undefined);
    socket.write(head);
  });
}

/** If the server said something before closing, it is the catalog's refusal. */
function assertRefusal(outcome: Outcome, what: string): void {
  assert.equal(outcome.closedByServer, true, `${what}: the server kept the connection open`);
  if (outcome.received.length === 0) return;
  const answer = parseResponse(outcome.received);
  assert.ok(answer, `${what}: unparseable answer ${outcome.received.toString('latin1').slice(0, 200)}`);
  assertCatalogError(answer, { status: 408, code: 'REQUEST_TIMEOUT' }, what);
}

describe('slow clients', () => {
  it('are disconnected by the header, request and keep-alive timeouts while others are served', async (t) => {
    const app = await resnet20App(t, TIMEOUTS);
    const port = await listen(app);
    const image = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));

    const slow: Array<[string, Promise<Outcome>]> = [
      ['headers that never finish', slowClient(port, 'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\n')],
      ['headers dripped a byte at a time', slowClient(port, 'POST /v1/predict HTTP/1.1\r\n', 'X-Slow: aaaaaaaaaaaaaaaaaaaa\r\n')],
      [
        'a body that never comes',
        slowClient(port, 'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\nabc'),
      ],
      [
        'a body dripped a byte at a time',
        slowClient(port, 'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n', 'x'),
      ],
      [
        'a chunked body that never ends',
        slowClient(port, 'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n', ''),
      ],
      [
        'a multipart body that never ends',
        slowClient(
          port,
          'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\n',
          'y',
        ),
      ],
      ...Array.from({ length: 20 }, (_, i): [string, Promise<Outcome>] => [`idle connection ${i} that sends nothing`, slowClient(port, '')]),
    ];

    // While they hang, a normal request is answered.
    const served = await exchange(port, [rawPost('/v1/predict', 'image/jpeg', image)]);
    assert.equal(served.answer?.status, 200, served.received.toString('latin1').slice(0, 300));

    for (const [what, outcome] of slow) assertRefusal(await outcome, what);
  });

  it('closes an idle keep-alive connection after answering on it', async (t) => {
    const app = await resnet20App(t, TIMEOUTS);
    const port = await listen(app);
    const outcome = await slowClient(port, 'GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal(outcome.closedByServer, true, 'the idle connection stayed open');
    const answer = parseResponse(outcome.received);
    assert.equal(answer?.status, 200);
    assert.match(String(answer?.headers.connection), /keep-alive/i, 'the connection was kept alive at first');
  });
});

/**
 * The access log: one JSON line per answered request, with the inference details on the line
 * of an inference, probes at `debug` only, and the request id of the answer.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';
import { createLogSampler } from '../../src/http/access-log.js';
import { CIFAR_DIR, RESNET20_CONFIG, RESNET20_DIR, photo, startApp, tempRepository } from '../helpers.js';
import { gatedApp, until } from './gated-app.js';
import { listen } from './hostile-support.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly reqId?: string;
  readonly req?: { method: string; url: string; remoteAddress?: string };
  readonly res?: { statusCode: number };
  readonly responseTime?: number;
  readonly model?: string;
  readonly images?: number;
  readonly batchSize?: number;
  readonly timings?: Record<string, number>;
  readonly code?: string;
  readonly suppressedRefusals?: number;
}

/** pino's numeric levels. */
const DEBUG = 20;
const INFO = 30;

async function appWithLog(t: TestContext, level: string) {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const lines: string[] = [];
  const app = await startApp(t, repo, { LOG_LEVEL: level }, { logStream: { write: (line: string) => void lines.push(line) } });
  const parsed = () => lines.map((l) => JSON.parse(l) as LogLine);
  return { app, parsed };
}

describe('access log', () => {
  it('writes one line per answered request, with the model, images, batch size and stage timings of an inference', async (t) => {
    const { app, parsed } = await appWithLog(t, 'info');
    const chelsea = await photo('chelsea.png');
    const before = parsed().length;
    const predict = await app.inject({
      method: 'POST',
      url: '/v1/models/resnet20:predict',
      headers: { 'content-type': 'image/png', 'x-request-id': 'access-log-1' },
      payload: chelsea,
    });
    assert.equal(predict.statusCode, 200);
    const v2 = await app.inject({
      method: 'POST',
      url: '/v2/models/resnet20/infer',
      headers: { 'x-request-id': 'access-log-2' },
      payload: { inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [chelsea.toString('base64'), chelsea.toString('base64')] }] },
    });
    assert.equal(v2.statusCode, 200);
    const missing = await app.inject({ method: 'GET', url: '/v2/models/nope', headers: { 'x-request-id': 'access-log-3' } });
    assert.equal(missing.statusCode, 404);

    const lines = parsed().slice(before);
    const completed = lines.filter((l) => l.msg === 'request completed');
    assert.deepEqual(
      completed.map((l) => [l.reqId, l.req?.method, l.req?.url, l.res?.statusCode]),
      [
        ['access-log-1', 'POST', '/v1/models/resnet20:predict', 200],
        ['access-log-2', 'POST', '/v2/models/resnet20/infer', 200],
        ['access-log-3', 'GET', '/v2/models/nope', 404],
      ],
    );
    const [one, two, notFound] = completed as [LogLine, LogLine, LogLine];
    assert.equal(one.level, INFO);
    assert.deepEqual([one.model, one.images, one.batchSize], ['resnet20', 1, 1]);
    assert.deepEqual([two.model, two.images], ['resnet20', 2]);
    assert.ok(two.batchSize === 1 || two.batchSize === 2, `batch size ${two.batchSize}`);
    for (const l of [one, two]) {
      assert.deepEqual(Object.keys(l.timings ?? {}).sort(), ['batchSize', 'inferMs', 'postprocessMs', 'preprocessMs', 'queueMs']);
      assert.ok(l.timings!.inferMs! > 0, `inferMs ${l.timings!.inferMs}`);
      assert.ok(l.responseTime! >= l.timings!.inferMs!, `responseTime ${l.responseTime} < inferMs ${l.timings!.inferMs}`);
    }
    assert.equal(notFound.model, undefined, 'no inference fields on other answers');
    // Besides the access lines, only the refused request's own line (with its code).
    assert.deepEqual(
      lines.filter((l) => l.msg !== 'request completed').map((l) => [l.reqId, l.code]),
      [['access-log-3', 'MODEL_NOT_FOUND']],
    );
  });

  it('gives a request whose client goes away a "request aborted" line, and a request refused while routing its URL', async (t) => {
    const { app, parsed } = await appWithLog(t, 'info');
    const port = await listen(app);
    // Headers and part of the body of an upload, then the client hangs up.
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      'POST /v1/models/resnet20:predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\nX-Request-Id: access-log-abort\r\n\r\n',
    );
    socket.write(Buffer.alloc(1000));
    await sleep(100);
    socket.destroy();
    const deadline = Date.now() + 5_000;
    while (!parsed().some((l) => l.reqId === 'access-log-abort' && l.msg === 'request aborted') && Date.now() < deadline) await sleep(20);
    const aborted = parsed().filter((l) => l.reqId === 'access-log-abort');
    // Besides the line of the error the cut body raises, if any: no completion, one abort.
    assert.deepEqual(
      aborted.filter((l) => l.msg.startsWith('request ')).map((l) => [l.msg, l.req?.url]),
      [['request aborted', '/v1/models/resnet20:predict']],
      JSON.stringify(aborted),
    );

    // Malformed percent-encoding: refused by the router, before Fastify tracks the answer.
    const bad = await app.inject({ method: 'GET', url: '/v2/models/%E0%A4%A', headers: { 'x-request-id': 'access-log-bad-url' } });
    assert.equal(bad.statusCode, 400);
    const lines = parsed().filter((l) => l.reqId === 'access-log-bad-url');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.req?.url, '/v2/models/%E0%A4%A');
    assert.equal(lines[0]!.code, 'INVALID_REQUEST');
  });

  it('logs probes and scrapes at debug, so an info log holds only traffic', async (t) => {
    for (const level of ['info', 'debug']) {
      const { app, parsed } = await appWithLog(t, level);
      const before = parsed().length;
      for (const url of ['/livez', '/readyz', '/v2/health/live', '/v2/health/ready', '/metrics', '/v2']) {
        assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
      }
      const urls = parsed()
        .slice(before)
        .filter((l) => l.msg === 'request completed')
        .map((l) => [l.req?.url, l.level]);
      const probes: Array<[string, number]> = ['/livez', '/readyz', '/v2/health/live', '/v2/health/ready', '/metrics'].map((u) => [u, DEBUG]);
      assert.deepEqual(urls, level === 'info' ? [['/v2', INFO]] : [...probes, ['/v2', INFO]]);
    }
  });

  it('samples the lines of shed requests: the first, then one a second with the count of those left out', async (t) => {
    let now = 0;
    const lines: string[] = [];
    const { app, gate } = await gatedApp(
      t,
      { QUEUE_MAX_SIZE: '1', MAX_IMAGES_PER_REQUEST: '1', LOG_LEVEL: 'info' },
      { logStream: { write: (line: string) => void lines.push(line) }, logClock: () => now },
    );
    const image = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    const predict = () => app.inject({ method: 'POST', url: '/v1/models/m:predict', headers: { 'content-type': 'image/jpeg' }, payload: image });
    await gate('close');
    const held = predict();
    await until(() => app.serving.dataPlane.service.hasRoom(app.serving.registry.get('m')!) === false, 'the one slot is taken');
    const shedLines = () =>
      lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.res?.statusCode === 503 || l.code === 'QUEUE_FULL' || l.msg.includes('no room'));

    const FLOOD = 200;
    for (let i = 0; i < FLOOD; i++) assert.equal((await predict()).statusCode, 503);
    assert.deepEqual(
      shedLines().map((l) => [l.msg, l.suppressedRefusals]),
      [['request completed', 0]],
      'one line for the first refusal, none of its own from the error handler',
    );
    now = 999;
    assert.equal((await predict()).statusCode, 503);
    assert.equal(shedLines().length, 1, 'still within the second');
    now = 1_000;
    assert.equal((await predict()).statusCode, 503);
    assert.deepEqual(
      shedLines().map((l) => [l.level, l.suppressedRefusals]),
      [
        [INFO, 0],
        [INFO, FLOOD],
      ],
    );
    await gate('open');
    assert.equal((await held).statusCode, 200);
    assert.equal(lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.res?.statusCode === 200).length, 1, 'other answers are all logged');
  });
});

describe('createLogSampler', () => {
  it('passes the first event, then the first after each interval, counting those it held back', () => {
    let now = 5;
    const sampler = createLogSampler({ intervalMs: 10, now: () => now });
    const taken: Array<number | undefined> = [];
    for (const t of [5, 6, 14, 15, 15, 40, 49, 50]) {
      now = t;
      taken.push(sampler.take());
    }
    assert.deepEqual(taken, [0, undefined, undefined, 2, undefined, 1, undefined, 1]);
    assert.throws(() => createLogSampler({ intervalMs: -1 }), /`intervalMs` to be a number from 0 and up, got `-1`/);
  });
});

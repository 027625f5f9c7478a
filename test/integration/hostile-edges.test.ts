/**
 * The edges of the HTTP layer, through real sockets with the trained ResNet-20: v2 `name` and
 * `datatype` that are not strings are 400 (never a 500 with a stack in the log); `Expect:
 * 100-continue` gets its 100 only once the key and the declared size are accepted, any other
 * expectation a catalog 417; HTTP/1.1 without `Host` a catalog 400; image media types with
 * parameters are images; the `METRICS_PORT` server refuses in the catalog's format, cuts slow
 * headers and needs no key; multipart errors are in our words; and `/metrics` on the main port
 * takes a key when keys are set.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { buildMetricsApp } from '../../src/app.js';
import { createMetrics } from '../../src/metrics.js';
import { CIFAR_DIR, RESNET20_CONFIG, RESNET20_DIR, photo, resnet20App, startApp, tempRepository, testConfig } from '../helpers.js';
import { GUARD_MS, assertCatalogError, exchange, listen, multipartBody, parseResponse, send, type Answer } from './hostile-support.js';

const KEY = 'rs-edge-3d8b1f0c6a2e9d4b7f15';
const bearer = { Authorization: `Bearer ${KEY}` };
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

interface Prediction {
  readonly label: string;
  readonly index: number;
  readonly score: number;
}

const predictionsOf = (answer: Answer) => (JSON.parse(answer.text) as { predictions: Prediction[] }).predictions;

/** A request head written by hand (`Connection: close`, so the server ends the exchange). */
function head(method: string, path: string, headers: Record<string, string | number>): string {
  const all = { Host: 'localhost', Connection: 'close', ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
}

interface ContinueOutcome {
  /** Everything the server sent, interim responses included. */
  readonly received: Buffer;
  /** Whether the server closed the connection before the guard expired. */
  readonly closed: boolean;
  /** Whether `100 Continue` came, and so the body was sent. */
  readonly bodySent: boolean;
}

/**
 * Behaves as a client sending `Expect: 100-continue` should: writes the head alone, writes the
 * body only once `100 Continue` has come, and collects everything until the server closes.
 */
function withContinue(port: number, requestHead: string, body: Buffer): Promise<ContinueOutcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let bodySent = false;
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed, bodySent });
    };
    const guard = setTimeout(() => finish(false), GUARD_MS);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (!bodySent && Buffer.concat(chunks).toString('latin1').startsWith(CONTINUE)) {
        bodySent = true;
        socket.write(body);
      }
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(requestHead);
  });
}

/** The request was refused on its headers: no 100, the refusal first, then the connection closed. */
function assertRefusedBeforeContinue(outcome: ContinueOutcome, expected: { status: number; code: string }, what: string): void {
  const text = outcome.received.toString('latin1');
  assert.ok(text.startsWith(`HTTP/1.1 ${expected.status} `), `${what}: the answer begins ${JSON.stringify(text.slice(0, 60))}`);
  assert.ok(!text.includes('100 Continue'), `${what}: 100 Continue was sent`);
  assert.equal(outcome.bodySent, false, what);
  assert.equal(outcome.closed, true, `${what}: the connection stayed open`);
  const answer = parseResponse(outcome.received);
  assert.ok(answer, what);
  assertCatalogError(answer, expected, what);
}

/** `100 Continue`, then (once the body was sent) the final answer, which is returned. */
function assertContinuedThenAnswered(outcome: ContinueOutcome, what: string): Answer {
  const text = outcome.received.toString('latin1');
  assert.ok(text.startsWith(CONTINUE), `${what}: the answer begins ${JSON.stringify(text.slice(0, 60))}`);
  assert.equal(outcome.closed, true, `${what}: no answer within the guard`);
  const answer = parseResponse(outcome.received.subarray(CONTINUE.length));
  assert.ok(answer, `${what}: no final answer after the 100: ${JSON.stringify(text.slice(0, 200))}`);
  assert.equal(answer.status, 200, `${what}: ${answer.text.slice(0, 300)}`);
  return answer;
}

/** Every log line the app writes. */
function logCapture() {
  const lines: string[] = [];
  return { stream: { write: (line: string) => void lines.push(line) }, lines };
}

describe('v2 name and datatype of the wrong type', () => {
  it('are 400 INVALID_TENSOR, never a 500, and log no error', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const log = logCapture();
    const app = await startApp(t, repo, { LOG_LEVEL: 'info' }, { logStream: log.stream });
    const port = await listen(app);
    const tensorShape = [1, 3, 32, 32];

    const inputs: Array<[string, unknown]> = [
      ['datatype {"toString":1}', { name: 'input', shape: [1], datatype: { toString: 1 }, data: [] }],
      ['datatype {"valueOf":1}', { name: 'input', shape: [1], datatype: { valueOf: 1 }, data: [] }],
      ['datatype {"toString":1,"valueOf":1}', { name: 'input', shape: [1], datatype: { toString: 1, valueOf: 1 }, data: [] }],
      ['datatype ["FP32"]', { name: 'input', shape: tensorShape, datatype: ['FP32'], data: [] }],
      ['name {"toString":1}', { name: { toString: 1 }, shape: tensorShape, datatype: 'FP32', data: [] }],
      ['name [{"toString":1}]', { name: [{ toString: 1 }], shape: tensorShape, datatype: 'FP32', data: [] }],
      ['name ["input"]', { name: ['input'], shape: tensorShape, datatype: 'FP32', data: [] }],
    ];
    for (const [what, input] of inputs) {
      const answer = await send(port, {
        method: 'POST',
        path: '/v2/models/resnet20/infer',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ inputs: [input] }),
      });
      assertCatalogError(answer, { status: 400, code: 'INVALID_TENSOR' }, what);
    }

    const lines = log.lines.map((l) => JSON.parse(l) as { level: number; msg?: string });
    assert.ok(lines.length > 0, 'the log captured nothing');
    const failures = lines.filter((l) => l.level >= 50 || l.msg === 'request failed');
    assert.deepEqual(failures, [], 'error-level lines were logged');
  });
});

describe('Expect: 100-continue', () => {
  const env = { API_KEYS: KEY, UPLOAD_MAX_BYTES: '1000000', JSON_BODY_MAX_BYTES: '2000000' };

  it('refuses a request without a key with 401 and never sends 100 Continue', async (t) => {
    const port = await listen(await resnet20App(t, env));
    const chelsea = await photo('chelsea.png');
    const form = multipartBody([{ bytes: chelsea, type: 'image/png' }]);
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [chelsea.toString('base64')] }] }));
    const requests: Array<[string, string, string, Buffer]> = [
      ['raw image', '/v1/models/resnet20:predict', 'image/png', chelsea],
      ['multipart', '/v1/predict', 'multipart/form-data; boundary=hostile-boundary-7', form],
      ['v2 JSON', '/v2/models/resnet20/infer', 'application/json', json],
    ];
    for (const [what, path, type, body] of requests) {
      const outcome = await withContinue(port, head('POST', path, { 'Content-Type': type, 'Content-Length': body.length, Expect: '100-continue' }), body);
      assertRefusedBeforeContinue(outcome, { status: 401, code: 'UNAUTHORIZED' }, `${what} without a key`);
    }
  });

  it('refuses a declared size over the limit with 413 and never sends 100 Continue', async (t) => {
    const port = await listen(await resnet20App(t, env));
    const requests: Array<[string, string, string, number]> = [
      ['raw image over UPLOAD_MAX_BYTES', '/v1/models/resnet20:predict', 'image/png', 1_000_001],
      ['multipart far over UPLOAD_MAX_BYTES', '/v1/predict', 'multipart/form-data; boundary=hostile-boundary-7', 100_000_000],
      ['v2 JSON over JSON_BODY_MAX_BYTES', '/v2/models/resnet20/infer', 'application/json', 2_000_001],
    ];
    for (const [what, path, type, length] of requests) {
      const outcome = await withContinue(
        port,
        head('POST', path, { ...bearer, 'Content-Type': type, 'Content-Length': length, Expect: '100-continue' }),
        Buffer.alloc(0),
      );
      assertRefusedBeforeContinue(outcome, { status: 413, code: 'PAYLOAD_TOO_LARGE' }, what);
    }
  });

  it('sends 100 Continue to an acceptable request, then answers its body: raw image, multipart and v2 JSON', async (t) => {
    const port = await listen(await resnet20App(t, env));
    const chelsea = await photo('chelsea.png');

    const raw = assertContinuedThenAnswered(
      await withContinue(
        port,
        head('POST', '/v1/models/resnet20:predict', { ...bearer, 'Content-Type': 'image/png', 'Content-Length': chelsea.length, Expect: '100-continue' }),
        chelsea,
      ),
      'raw image',
    );
    assert.equal(predictionsOf(raw)[0]!.label, 'cat');

    const form = multipartBody([{ bytes: chelsea, type: 'image/png', filename: 'chelsea.png' }]);
    const multipart = assertContinuedThenAnswered(
      await withContinue(
        port,
        head('POST', '/v1/predict', {
          ...bearer,
          'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7',
          'Content-Length': form.length,
          Expect: '100-continue',
        }),
        form,
      ),
      'multipart',
    );
    assert.equal(predictionsOf(multipart)[0]!.label, 'cat');

    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [chelsea.toString('base64')] }] }));
    const v2 = assertContinuedThenAnswered(
      await withContinue(
        port,
        head('POST', '/v2/models/resnet20/infer', { ...bearer, 'Content-Type': 'application/json', 'Content-Length': json.length, Expect: '100-continue' }),
        json,
      ),
      'v2 JSON',
    );
    const output = (JSON.parse(v2.text) as { outputs: Array<{ shape: number[]; data: number[] }> }).outputs[0]!;
    assert.deepEqual(output.shape, [1, 10]);
    assert.equal(output.data.indexOf(Math.max(...output.data)), 3, 'CIFAR-10 class 3 (cat) scores highest');
  });
});

describe('Expect other than 100-continue', () => {
  it('is 417 EXPECTATION_FAILED in the catalog format', async (t) => {
    const port = await listen(await resnet20App(t));
    for (const expect of ['foo', '200-ok']) {
      const { answer, closed } = await exchange(port, [head('GET', '/v2/health/live', { Expect: expect })]);
      assert.ok(answer, `Expect: ${expect}: no parseable answer`);
      assertCatalogError(answer, { status: 417, code: 'EXPECTATION_FAILED' }, `Expect: ${expect}`);
      assert.equal(closed, true, `Expect: ${expect}: the connection stayed open`);
    }
  });
});

describe('requests without Host', () => {
  it('are 400 INVALID_REQUEST in the catalog format over HTTP/1.1, and served over HTTP/1.0', async (t) => {
    const port = await listen(await resnet20App(t));
    for (const request of [
      'GET /v2/health/live HTTP/1.1\r\n\r\n',
      'GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n',
      'POST /v1/predict HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nabc',
    ]) {
      const { answer } = await exchange(port, [request], { untilAnswer: true });
      assert.ok(answer, `${JSON.stringify(request)}: no parseable answer`);
      assertCatalogError(answer, { status: 400, code: 'INVALID_REQUEST' }, JSON.stringify(request));
    }
    const old = await exchange(port, ['GET /v2/health/live HTTP/1.0\r\n\r\n']);
    assert.equal(old.answer?.status, 200, old.received.toString('latin1').slice(0, 300));
  });
});

describe('image media types with parameters', () => {
  it('are images: the same answer as without parameters', async (t) => {
    const port = await listen(await resnet20App(t));
    const predict = async (type: string, body: Buffer) => {
      const answer = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': type }, body });
      assert.equal(answer.status, 200, `${type}: ${answer.text.slice(0, 300)}`);
      return predictionsOf(answer);
    };

    const chelsea = await photo('chelsea.png');
    const png = await predict('image/png', chelsea);
    assert.equal(png[0]!.label, 'cat');
    for (const type of ['image/png ; foo=bar', 'IMAGE/PNG', 'image/png; charset=binary', 'Image/Png;q=1']) {
      assert.deepEqual(await predict(type, chelsea), png, type);
    }

    const cat = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    const jpeg = await predict('image/jpeg', cat);
    assert.deepEqual(await predict('image/jpeg; charset=binary', cat), jpeg, 'image/jpeg; charset=binary');
  });
});

describe('the METRICS_PORT server', () => {
  async function startMetricsApp(t: TestContext, env: Record<string, string> = {}): Promise<number> {
    const repo = await tempRepository(t, []);
    const config = testConfig(repo, { METRICS_PORT: '9464', API_KEYS: KEY, ...env });
    const metricsApp = await buildMetricsApp(config, createMetrics({ maxBatchSize: 4, defaultMetrics: false }));
    t.after(() => metricsApp.close());
    await metricsApp.listen({ host: '127.0.0.1', port: 0 });
    return (metricsApp.server.address() as { port: number }).port;
  }

  it('answers what the HTTP parser and edge refuse in the catalog format, and /metrics without a key', async (t) => {
    const port = await startMetricsApp(t);
    const refused: Array<[string, string, number, string]> = [
      ['garbage', 'GARBAGE\r\n\r\n', 400, 'INVALID_REQUEST'],
      ['a bad Content-Length', 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n', 400, 'INVALID_REQUEST'],
      ['a header without a colon', 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n', 400, 'INVALID_REQUEST'],
      ['no Host', 'GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n', 400, 'INVALID_REQUEST'],
      ['Expect: foo', 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nExpect: foo\r\n\r\n', 417, 'EXPECTATION_FAILED'],
    ];
    for (const [what, request, status, code] of refused) {
      const { answer, received } = await exchange(port, [request]);
      assert.ok(answer, `${what}: no parseable answer: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`);
      assertCatalogError(answer, { status, code }, what);
    }

    const scrape = await send(port, { path: '/metrics' });
    assert.equal(scrape.status, 200, scrape.text.slice(0, 300));
    assert.match(String(scrape.headers['content-type']), /^text\/plain/);
  });

  it('closes a connection whose headers never finish after HTTP_HEADERS_TIMEOUT_MS', async (t) => {
    const port = await startMetricsApp(t, { HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '1000' });
    // The guard only turns a connection the server never closes into a failure.
    const outcome = await exchange(port, ['GET /metrics HTTP/1.1\r\nHost: localhost\r\n']);
    assert.equal(outcome.closed, true, 'the server kept the connection open');
    if (outcome.received.length > 0) {
      const answer = parseResponse(outcome.received);
      assert.ok(answer, `unparseable answer ${JSON.stringify(outcome.received.toString('latin1').slice(0, 200))}`);
      assertCatalogError(answer, { status: 408, code: 'REQUEST_TIMEOUT' }, 'slow headers');
    }
  });
});

describe('malformed multipart bodies', () => {
  it("are 400 INVALID_REQUEST with one message of ours, not the parser library's", async (t) => {
    const port = await listen(await resnet20App(t));
    const upload = (type: string, body: string | Buffer) => send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': type }, body });

    // busboy: "The needle cannot have a length bigger than 256".
    const long = 'b'.repeat(300);
    const needle = assertCatalogError(
      await upload(`multipart/form-data; boundary=${long}`, multipartBody([{ bytes: Buffer.from('abc') }], long)),
      { status: 400, code: 'INVALID_REQUEST' },
      '300-character boundary',
    );
    assert.doesNotMatch(needle.error, /needle/i);
    assert.match(needle.error, /multipart/i);

    const part = '--b\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n';
    const malformed: Array<[string, string, string]> = [
      ['no boundary', 'multipart/form-data', `${part}\r\nabc\r\n--b--\r\n`],
      ['an empty boundary', 'multipart/form-data; boundary=', '--\r\n\r\n'],
      ['a body that ends inside a part', 'multipart/form-data; boundary=b', `${part}\r\nabc`],
      ['a body that ends inside part headers', 'multipart/form-data; boundary=b', part],
      ['no boundary line at all', 'multipart/form-data; boundary=b', 'hello world'],
    ];
    for (const [what, type, body] of malformed) {
      const { error } = assertCatalogError(await upload(type, body), { status: 400, code: 'INVALID_REQUEST' }, what);
      assert.equal(error, needle.error, what);
    }
  });
});

describe('/metrics on the main port with API_KEYS', () => {
  it('is 401 without a key and 200 with one', async (t) => {
    const port = await listen(await resnet20App(t, { API_KEYS: KEY }));
    assertCatalogError(await send(port, { path: '/metrics' }), { status: 401, code: 'UNAUTHORIZED' }, 'without a key');
    assertCatalogError(
      await send(port, { path: '/metrics', headers: { Authorization: 'Bearer not-the-key' } }),
      { status: 401, code: 'UNAUTHORIZED' },
      'with a wrong key',
    );
    const scrape = await send(port, { path: '/metrics', headers: bearer });
    assert.equal(scrape.status, 200, scrape.text.slice(0, 300));
    assert.match(scrape.text, /^# HELP /m);
  });
});

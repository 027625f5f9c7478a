/**
 * API keys and rate limiting through HTTP with the trained ResNet-20: with `API_KEYS` or
 * `API_KEYS_FILE`, inference and model routes need `Authorization: Bearer <key>` (401 with
 * `WWW-Authenticate` otherwise, decided before the body is read), probes and metrics stay
 * open, and no key ever reaches the log; `RATE_LIMIT_MAX` answers 429 RATE_LIMITED with
 * `Retry-After` and spares the probes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { RESNET20_CONFIG, RESNET20_DIR, photo, tempRepository } from '../helpers.js';
import { assertCatalogError, exchange, listen, send, type Answer } from './hostile-support.js';

const KEY = 'rs-live-7f3c2a9e4b1d8f6a0c5e';
const FILE_KEY = 'rs-file-0b9d7e1f2a3c4d5e6f70';
const WRONG_KEY = 'rs-live-7f3c2a9e4b1d8f6a0c5X'; // one character off: a typo of a real key

/** Every log line the app writes, as parsed JSON. */
function logCapture() {
  const lines: string[] = [];
  return { stream: { write: (line: string) => void lines.push(line) }, lines };
}

async function startAuthApp(t: TestContext, env: Record<string, string>) {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const config = loadConfig(
    { MODEL_REPOSITORY: repo, SEED_DEFAULT_MODEL: 'false', INTRA_OP_THREADS: '1', BATCH_MAX_SIZE: '4', LOG_LEVEL: 'trace', ...env },
    { availableCpus: 1, readFile: (path) => readFileSync(path, 'utf8') },
  );
  const log = logCapture();
  const app = await buildApp(config, { defaultMetrics: true, logStream: log.stream });
  t.after(() => app.close());
  await app.ready();
  await app.serving.registry.load();
  return { port: await listen(app), log };
}

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

describe('API keys', () => {
  it('guard every inference and model route and /metrics, leave probes open, and never log a key', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'resnet-serve-keys-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'keys'), `${FILE_KEY}\n`);
    const { port, log } = await startAuthApp(t, { API_KEYS: `${KEY},another-key`, API_KEYS_FILE: join(dir, 'keys') });
    const chelsea = await photo('chelsea.png');
    const b64 = chelsea.toString('base64');

    const guarded: Array<[string, (headers: Record<string, string>) => Promise<Answer>]> = [
      ['POST /v1/predict', (h) => send(port, { method: 'POST', path: '/v1/predict', headers: { ...h, 'Content-Type': 'image/png' }, body: chelsea })],
      [
        'POST /v1/models/resnet20:predict',
        (h) =>
          send(port, {
            method: 'POST',
            path: '/v1/models/resnet20:predict',
            headers: { ...h, 'Content-Type': 'application/json' },
            body: JSON.stringify({ instances: [{ b64 }] }),
          }),
      ],
      ['GET /v1/models/resnet20', (h) => send(port, { path: '/v1/models/resnet20', headers: h })],
      ['GET /v2', (h) => send(port, { path: '/v2', headers: h })],
      ['GET /v2/models/resnet20', (h) => send(port, { path: '/v2/models/resnet20', headers: h })],
      ['GET /v2/models/resnet20/versions/1', (h) => send(port, { path: '/v2/models/resnet20/versions/1', headers: h })],
      ['GET /v2/models/resnet20/ready', (h) => send(port, { path: '/v2/models/resnet20/ready', headers: h })],
      [
        'POST /v2/models/resnet20/infer',
        (h) =>
          send(port, {
            method: 'POST',
            path: '/v2/models/resnet20/infer',
            headers: { ...h, 'Content-Type': 'application/json' },
            body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [b64] }] }),
          }),
      ],
      // Its series name the models and their files' sha256 (model_info).
      ['GET /metrics', (h) => send(port, { path: '/metrics', headers: h })],
    ];
    for (const [route, call] of guarded) {
      const none = await call({});
      assertCatalogError(none, { status: 401, code: 'UNAUTHORIZED' }, `${route} without a key`);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="inference"', route);
      for (const headers of [
        bearer(WRONG_KEY),
        { Authorization: `Basic ${Buffer.from(`user:${KEY}`).toString('base64')}` },
        { Authorization: KEY },
        bearer(`${KEY} extra`),
      ]) {
        const bad = await call(headers);
        assertCatalogError(bad, { status: 401, code: 'UNAUTHORIZED' }, `${route} with ${headers.Authorization.slice(0, 12)}…`);
        assert.match(String(bad.headers['www-authenticate']), /^Bearer realm="inference"/, route);
      }
      for (const headers of [bearer(KEY), bearer(FILE_KEY), { Authorization: `bearer ${KEY}` }]) {
        const ok = await call(headers);
        assert.equal(ok.status, 200, `${route}: ${ok.text}`);
      }
    }
    const predicted = await guarded[0]![1](bearer(KEY));
    assert.equal((JSON.parse(predicted.text) as { predictions: Array<{ label: string }> }).predictions[0]!.label, 'cat');

    // Model names are not disclosed to strangers: an unknown model is 401 too, not 404.
    assertCatalogError(await send(port, { path: '/v2/models/secret-model' }), { status: 401, code: 'UNAUTHORIZED' });
    assertCatalogError(await send(port, { path: '/v2/models/secret-model', headers: bearer(KEY) }), { status: 404, code: 'MODEL_NOT_FOUND' });

    // The key is checked before the body is read: headers alone get the 401.
    const { answer } = await exchange(port, ['POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: 5000000\r\n\r\n'], {
      untilAnswer: true,
    });
    assert.ok(answer, 'no answer before the body');
    assertCatalogError(answer, { status: 401, code: 'UNAUTHORIZED' }, 'headers only');

    for (const path of ['/v2/health/live', '/v2/health/ready', '/livez', '/readyz']) {
      const open = await send(port, { path });
      assert.equal(open.status, 200, `${path}: ${open.text.slice(0, 200)}`);
    }

    // The log saw every request above (at trace level), and no key in any form.
    const text = log.lines.join('');
    assert.ok(log.lines.length > 50, `only ${log.lines.length} log lines`);
    assert.match(text, /"url":"\/v1\/predict"/);
    for (const secret of [KEY, FILE_KEY, WRONG_KEY, Buffer.from(`user:${KEY}`).toString('base64')]) {
      assert.ok(!text.includes(secret), `the log holds ${secret.slice(0, 8)}…`);
      assert.ok(!text.includes(secret.slice(4, 20)), `the log holds part of ${secret.slice(0, 8)}…`);
    }
  });
});

describe('rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After past RATE_LIMIT_MAX, before checking keys, and spares probes but not the guarded /metrics', async (t) => {
    const { port } = await startAuthApp(t, { LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000', API_KEYS: KEY });
    const meta = (key: string) => send(port, { path: '/v2/models/resnet20', headers: bearer(key) });
    for (let i = 0; i < 3; i++) assert.equal((await meta(KEY)).status, 200);
    for (const key of [KEY, WRONG_KEY]) {
      const limited = await meta(key);
      assertCatalogError(limited, { status: 429, code: 'RATE_LIMITED' }, key === KEY ? 'valid key' : 'guessing keys');
      const retryAfter = Number(limited.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${limited.headers['retry-after']}`);
    }
    for (let i = 0; i < 10; i++) {
      for (const path of ['/v2/health/live', '/v2/health/ready', '/livez', '/readyz']) {
        assert.equal((await send(port, { path })).status, 200, `${path} was rate limited`);
      }
    }
    // With keys set, /metrics takes a key, so it is limited like every guarded route: else it
    // would be a free place to guess keys.
    assertCatalogError(await send(port, { path: '/metrics', headers: bearer(WRONG_KEY) }), { status: 429, code: 'RATE_LIMITED' }, '/metrics');
  });

  it('counts each client behind a trusted proxy (TRUST_PROXY) on its own, and ignores X-Forwarded-For from anyone else', async (t) => {
    const from = (port: number, client: string) => send(port, { path: '/v2/models/resnet20', headers: { 'X-Forwarded-For': client } });
    // The test's connections come from 127.0.0.1: as the trusted proxy, its X-Forwarded-For names the client.
    const behind = await startAuthApp(t, { LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '2', TRUST_PROXY: '127.0.0.1' });
    for (const client of ['203.0.113.7', '198.51.100.9']) {
      for (let i = 0; i < 2; i++) assert.equal((await from(behind.port, client)).status, 200, `${client} request ${i + 1}`);
      assertCatalogError(await from(behind.port, client), { status: 429, code: 'RATE_LIMITED' }, `${client} past its own limit`);
    }
    // Without TRUST_PROXY the header is the client's word only: every request counts against the peer.
    const direct = await startAuthApp(t, { LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '2' });
    assert.equal((await from(direct.port, '203.0.113.7')).status, 200);
    assert.equal((await from(direct.port, '198.51.100.9')).status, 200);
    assertCatalogError(await from(direct.port, '192.0.2.1'), { status: 429, code: 'RATE_LIMITED' }, 'a third claimed address');
    // Nor is a proxy trusted that is not the peer.
    const elsewhere = await startAuthApp(t, { LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '2', TRUST_PROXY: '10.0.0.0/8' });
    assert.equal((await from(elsewhere.port, '203.0.113.7')).status, 200);
    assert.equal((await from(elsewhere.port, '198.51.100.9')).status, 200);
    assertCatalogError(await from(elsewhere.port, '192.0.2.1'), { status: 429, code: 'RATE_LIMITED' }, 'untrusted peer');
  });

  it('logs the forwarded client as remoteAddress only behind a trusted proxy', async (t) => {
    const { port, log } = await startAuthApp(t, { TRUST_PROXY: '127.0.0.0/8' });
    await send(port, { path: '/v2/models/resnet20', headers: { 'X-Forwarded-For': '203.0.113.7' } });
    const line = log.lines
      .map((l) => JSON.parse(l) as { msg: string; req?: { url: string; remoteAddress: string } })
      .find((l) => l.msg === 'request completed' && l.req?.url === '/v2/models/resnet20');
    assert.equal(line?.req?.remoteAddress, '203.0.113.7');
  });
});

/**
 * Limits and odd requests through HTTP, with the trained ResNet-20: path traversal and odd model
 * names only ever select loaded models; oversize bodies are refused with 413 without being
 * read in full (a Content-Length over the limit is answered before the body is sent); too many
 * images or parts are refused with 413; requests the HTTP parser refuses are answered in the
 * catalog's format.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { CIFAR_DIR, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository } from '../helpers.js';
import { GUARD_MS, assertCatalogError, exchange, listen, multipartBody, parseResponse, rawPost, send } from './hostile-support.js';

const cifar = (name: string) => readFile(join(CIFAR_DIR, name));

describe('model names in paths', () => {
  it('select only loaded models: traversal, encodings, odd and long names are 404, and folders added later or beside the repository are never served', async (t) => {
    // A second model sits beside the repository (reachable as ../outside) and a third is added
    // to the repository after loading: neither may ever be served.
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const outsideDir = `${repo}-outside`;
    await cp(join(repo, 'resnet20'), outsideDir, { recursive: true });
    t.after(() => rm(outsideDir, { recursive: true, force: true }));
    const app = await startApp(t, repo);
    await cp(join(repo, 'resnet20'), join(repo, 'late'), { recursive: true });
    const port = await listen(app);
    const outside = encodeURIComponent(`../${basename(outsideDir)}`);
    const image = await cifar('cat_0000.jpg');

    const modelNotFound = [
      '..',
      '.',
      '%2e%2e',
      '%2E%2E',
      '..%2f..%2f..%2fetc%2fpasswd',
      '%2fetc%2fpasswd',
      '..%5c..%5cwindows',
      outside,
      'late',
      '%ef%bc%8e%ef%bc%8e', // fullwidth dots
      'r%C3%A9snet%E2%98%83',
      '%F0%9F%90%88',
      '%E2%80%AEresnet20', // unicode, emoji, right-to-left override
      'resnet20%00',
      '%00',
      'resnet20%00.onnx', // null bytes
      'RESNET20',
      'resnet20%20',
      '%20resnet20',
      'resnet20.',
      'resnet20%0a',
      '__proto__',
      'constructor',
      'hasOwnProperty',
      'toString',
      'a'.repeat(300),
    ];
    for (const name of modelNotFound) {
      assertCatalogError(await send(port, { path: `/v2/models/${name}` }), { status: 404, code: 'MODEL_NOT_FOUND' }, `GET /v2/models/${name.slice(0, 40)}`);
      assertCatalogError(
        await send(port, { method: 'POST', path: `/v1/models/${name}:predict`, headers: { 'Content-Type': 'image/jpeg' }, body: image }),
        { status: 404, code: 'MODEL_NOT_FOUND' },
        `predict ${name.slice(0, 40)}`,
      );
      assertCatalogError(
        await send(port, {
          method: 'POST',
          path: `/v2/models/${name}/infer`,
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [image.toString('base64')] }] }),
        }),
        { status: 404, code: 'MODEL_NOT_FOUND' },
        `infer ${name.slice(0, 40)}`,
      );
    }
    assertCatalogError(await send(port, { path: '/v2/models/resnet20/versions/..%2f1' }), { status: 404, code: 'MODEL_NOT_FOUND' });
    assertCatalogError(
      await send(port, { method: 'POST', path: '/v1/models/resnet20:predict:predict', headers: { 'Content-Type': 'image/jpeg' }, body: image }),
      { status: 404, code: 'MODEL_NOT_FOUND' },
    );

    // Paths the router itself does not match: unnormalised dot segments, an over-long segment.
    const noRoute = [
      '/v2/models/../../etc/passwd',
      '/v2/models/resnet20/../../../etc/passwd',
      '/v1/models/..%2f..%2fetc/passwd:predict',
      `/v2/models/${'a'.repeat(5000)}`,
      '/v2/models/resnet20/',
      '//v2/models/resnet20',
    ];
    for (const path of noRoute) assertCatalogError(await send(port, { path }), { status: 404, code: 'NOT_FOUND' }, path.slice(0, 60));

    // Percent-encoding that is not UTF-8 is a malformed request, not a name.
    for (const path of ['/v2/models/%zz', '/v2/models/%c3%28', '/v2/models/%']) {
      assertCatalogError(await send(port, { path }), { status: 400, code: 'INVALID_REQUEST' }, path);
    }

    // The loaded model still answers, under its own name only.
    const ok = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/jpeg' }, body: image });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(
      app.serving.registry.list().map((m) => m.name),
      ['resnet20'],
    );
  });
});

describe('oversize bodies', () => {
  const LIMIT = 64 * 1024;
  const env = { UPLOAD_MAX_BYTES: String(LIMIT), JSON_BODY_MAX_BYTES: String(256 * 1024), MAX_IMAGES_PER_REQUEST: '4' };
  const startLimited = async (t: Parameters<typeof startApp>[0]) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    return listen(await startApp(t, repo, env));
  };

  it('answers a Content-Length over the limit with 413 before the body is sent, and closes', async (t) => {
    const port = await startLimited(t);
    const heads: Array<[string, string, number]> = [
      ['raw image', 'image/png', LIMIT + 1],
      ['raw octet-stream', 'application/octet-stream', 10 * 1024 ** 3],
      ['JSON', 'application/json', 256 * 1024 + 1],
      ['multipart', 'multipart/form-data; boundary=x', 1024 ** 3],
    ];
    for (const [what, type, length] of heads) {
      // Headers only: the client never sends a byte of body, so any answer came without it.
      const { answer, closed } = await exchange(port, [
        `POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n\r\n`,
      ]);
      assert.ok(answer, `${what}: no answer`);
      assertCatalogError(answer, { status: 413, code: 'PAYLOAD_TOO_LARGE' }, what);
      assert.equal(closed, true, `${what}: the connection stays open`);
      assert.match(String(answer.headers.connection), /close/i, what);
    }
  });

  it('stops reading a chunked body once it passes the limit', async (t) => {
    const port = await startLimited(t);
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    let closed = false;
    const gone = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    void gone.then(() => (closed = true));
    // The server closes mid-upload: writes then fail with EPIPE or ECONNRESET, as they should.
    socket.on('error', () => undefined);
    socket.write('POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n');
    // Offer 256 MiB, 64 KiB at a time, honouring back-pressure; the server must stop taking it.
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    const offered = 4096 * frame.length;
    let written = 0;
    const guard = setTimeout(() => socket.destroy(), GUARD_MS);
    try {
      while (written < offered && !closed && !socket.destroyed) {
        written += frame.length;
        if (!socket.write(frame)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), gone]);
      }
      await gone;
    } finally {
      clearTimeout(guard);
    }
    const answer = parseResponse(Buffer.concat(received));
    assert.ok(answer, 'no answer');
    assertCatalogError(answer, { status: 413, code: 'PAYLOAD_TOO_LARGE' });
    assert.ok(written < offered / 4, `the server read ${written} of ${offered} bytes`);
    t.diagnostic(`client got ${written} bytes into the socket before it closed (limit ${LIMIT})`);
  });

  it('refuses multipart files over the limit, alone and together, and fields past their limit', async (t) => {
    const port = await startLimited(t);
    const post = (body: Buffer) =>
      send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' }, body });
    const cat = await cifar('cat_0000.jpg');
    const padded = (size: number) => Buffer.concat([cat, Buffer.alloc(size - cat.length)]);
    assertCatalogError(await post(multipartBody([{ bytes: padded(LIMIT + 1) }])), { status: 413, code: 'PAYLOAD_TOO_LARGE' }, 'one file over');
    const together = assertCatalogError(
      await post(multipartBody([{ bytes: padded(LIMIT / 2) }, { bytes: padded(LIMIT / 2) }, { bytes: padded(LIMIT / 2) }])),
      { status: 413, code: 'PAYLOAD_TOO_LARGE' },
      'three halves',
    );
    assert.match(together.error, /in all/);
    // Within the limit, the same files are fine: the limit is what refused them.
    const fine = await post(multipartBody([{ bytes: cat }, { bytes: cat }]));
    assert.equal(fine.status, 200, fine.text);
  });

  it('refuses base64 images over the limit, alone and together, in v1 and v2', async (t) => {
    const port = await startLimited(t);
    const json = (path: string, body: unknown) =>
      send(port, { method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const big = Buffer.alloc(LIMIT + 3, 1).toString('base64');
    const half = Buffer.alloc(LIMIT / 2 + 10, 1).toString('base64');
    assertCatalogError(await json('/v1/predict', { instances: [{ b64: big }] }), { status: 413, code: 'PAYLOAD_TOO_LARGE' }, 'v1 one');
    assertCatalogError(await json('/v1/predict', { instances: [{ b64: half }, { b64: half }] }), { status: 413, code: 'PAYLOAD_TOO_LARGE' }, 'v1 together');
    assertCatalogError(
      await json('/v2/models/resnet20/infer', { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [big] }] }),
      { status: 413, code: 'PAYLOAD_TOO_LARGE' },
      'v2 one',
    );
    assertCatalogError(
      await json('/v2/models/resnet20/infer', { inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [half, half] }] }),
      { status: 413, code: 'PAYLOAD_TOO_LARGE' },
      'v2 together',
    );
    // A JSON body over JSON_BODY_MAX_BYTES, sent whole.
    assertCatalogError(await json('/v1/predict', { instances: [{ b64: 'A'.repeat(300 * 1024) }] }), { status: 413, code: 'PAYLOAD_TOO_LARGE' }, 'JSON body');
  });

  it('refuses more images or parts than allowed with 413 TOO_MANY_IMAGES', async (t) => {
    const port = await startLimited(t);
    const cat = await cifar('cat_0000.jpg');
    const five = Array.from({ length: 5 }, () => ({ bytes: cat }));
    const mp = (body: Buffer) =>
      send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' }, body });
    const json = (path: string, body: unknown) =>
      send(port, { method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assertCatalogError(await mp(multipartBody(five)), { status: 413, code: 'TOO_MANY_IMAGES' }, 'multipart files');
    assertCatalogError(
      await json('/v1/predict', { instances: five.map((f) => ({ b64: f.bytes.toString('base64') })) }),
      { status: 413, code: 'TOO_MANY_IMAGES' },
      'v1 instances',
    );
    assertCatalogError(await json('/v1/predict', { instances: new Array(10_000).fill({}) }), { status: 413, code: 'TOO_MANY_IMAGES' }, 'v1 10000 instances');
    assertCatalogError(
      await json('/v2/models/resnet20/infer', {
        inputs: [{ name: 'image', shape: [5], datatype: 'BYTES', data: five.map((f) => f.bytes.toString('base64')) }],
      }),
      { status: 413, code: 'TOO_MANY_IMAGES' },
      'v2 BYTES',
    );
    assertCatalogError(
      await json('/v2/models/resnet20/infer', { inputs: [{ name: 'input', shape: [5, 3, 32, 32], datatype: 'FP32', data: [0] }] }),
      { status: 413, code: 'TOO_MANY_IMAGES' },
      'v2 FP32',
    );
    // Parts: files plus fields beyond what any upload needs.
    const fields = Buffer.concat([
      ...Array.from({ length: 60 }, (_, i) => Buffer.from(`--hostile-boundary-7\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`)),
      multipartBody([{ bytes: cat }]),
    ]);
    const parts = assertCatalogError(await mp(fields), undefined, 'many fields');
    assert.equal(parts.code === 'TOO_MANY_IMAGES' || parts.code === 'PAYLOAD_TOO_LARGE', true, parts.code);
    // Exactly the limit is fine.
    const four = await mp(multipartBody(five.slice(0, 4)));
    assert.equal(four.status, 200, four.text);
    assert.equal((JSON.parse(four.text) as { predictions: unknown[] }).predictions.length, 4);
  });
});

describe('requests the HTTP parser refuses', () => {
  it('are answered as catalog errors and the connection closed', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const port = await listen(await startApp(t, repo));
    const cases: Array<[string, string | Buffer]> = [
      ['a garbage request line', 'GARBAGE\r\n\r\n'],
      ['a header without a colon', 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n'],
      ['a request line over 16 KiB', `GET /v2/models/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ['headers over 16 KiB', `GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`],
      ['both Content-Length and chunked', 'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc'],
      ['two different Content-Lengths', 'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
      ['a bad chunk size', 'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
      ['a NUL in a header value', Buffer.from('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n')],
    ];
    for (const [what, request] of cases) {
      const { answer, closed } = await exchange(port, [request]);
      assert.ok(answer, `${what}: no answer`);
      const tooLarge = what.includes('over 16 KiB');
      assertCatalogError(answer, tooLarge ? { status: 431, code: 'HEADERS_TOO_LARGE' } : { status: 400, code: 'INVALID_REQUEST' }, what);
      assert.equal(closed, true, what);
    }
    // And a request sent after them on a new connection is served.
    const live = await exchange(port, [rawPost('/v1/predict', 'image/jpeg', await cifar('cat_0000.jpg'))]);
    assert.equal(live.answer?.status, 200, live.received.toString().slice(0, 300));
  });
});

/**
 * Bombs through HTTP, each refused before it costs what it is built to cost, while the memory of
 * this process (which hosts the server and its inference workers) barely moves. The bounds are
 * on memory and on answers, never on time.
 * - a real, valid PNG of more than 100 megapixels (over 300 MB decoded) of about a megabyte:
 *   413 IMAGE_TOO_LARGE from its header, in every input form;
 * - a 16-bit RGBA interlaced PNG under MAX_IMAGE_PIXELS whose decode would take 320 MB:
 *   413 IMAGE_TOO_LARGE from the decode memory bound, several in one request;
 * - a progressive JPEG of thousands of scans (each a pass over the whole image): 400
 *   INVALID_IMAGE before libvips sees it;
 * - 16 MiB of nested JSON brackets: 400 INVALID_JSON before JSON.parse sees them (it took
 *   seconds and over 800 MB).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { interlacedPng, interlacedPng16Rgba, nestedJsonBomb, progressiveJpegScanBomb } from '../../bench/lib/hostile-images.js';
import { photo, resnet20App } from '../helpers.js';
import { assertCatalogError, listen, multipartBody, send, type Answer } from './hostile-support.js';

const WIDTH = 10_240;
const HEIGHT = 10_240; // 104.9 megapixels, 315 MB as 8-bit RGB
const NOISE_ROWS = 40; // incompressible rows that bring the file to about a megabyte
const GROWTH_BOUND_BYTES = 50 * 1024 * 1024;

/**
 * A valid 8-bit RGB PNG, black but for a few rows of seeded noise, compressed row by row so
 * the 315 MB of raw pixels never exist in this process. It is Adam7-interlaced, the worst case
 * for a server: libvips streams a plain PNG through a resize in little memory, but must hold an
 * interlaced one whole (315 MB) to decode it, so decoding it by mistake would show plainly.
 */
function bombPng(): Promise<Buffer> {
  return interlacedPng({ width: WIDTH, height: HEIGHT, bitDepth: 8, colourType: 2, pixel: new Uint8Array(3), noiseRows: NOISE_ROWS, seed: 7 });
}

/** V8's collector, so that garbage from the requests themselves does not count as growth. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/**
 * Runs `attack` while sampling this process's RSS every 2 ms, and asserts it peaked less than
 * `bound` bytes above where it started (after a collection).
 */
async function withinMemory(t: { diagnostic(message: string): void }, bound: number, attack: () => Promise<void>): Promise<void> {
  const gc = collector();
  gc();
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2);
  try {
    await attack();
  } finally {
    clearInterval(sampler);
  }
  t.diagnostic(`rss ${mb(before)}, peak ${mb(peak)} (+${mb(peak - before)})`);
  assert.ok(peak - before < bound, `RSS peaked ${mb(peak - before)} above its start`);
}

describe('decompression bombs', () => {
  it('refuses an interlaced 105-megapixel PNG of about a megabyte with 413 in every form, and memory barely moves', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const bomb = await bombPng();
    assert.ok(bomb.length > 700_000 && bomb.length < 1_500_000, `bomb is ${bomb.length} bytes`);
    const b64 = bomb.toString('base64');
    const forms: Array<[string, () => Promise<Answer>]> = [
      ['raw', () => send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/png' }, body: bomb })],
      [
        'multipart',
        () =>
          send(port, {
            method: 'POST',
            path: '/v1/predict',
            headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' },
            body: multipartBody([{ bytes: bomb }]),
          }),
      ],
      [
        'v1 JSON',
        () =>
          send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instances: [{ b64 }] }) }),
      ],
      [
        'v2 BYTES',
        () =>
          send(port, {
            method: 'POST',
            path: '/v2/models/resnet20/infer',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [b64] }] }),
          }),
      ],
    ];
    const refuse = async () => {
      for (const [form, post] of forms) {
        const answer = await post();
        const { error } = assertCatalogError(answer, { status: 413, code: 'IMAGE_TOO_LARGE' }, form);
        assert.match(error, /10240×10240/);
      }
    };

    // Warm up every path once (parsers, buffers, the worker's first batch) before measuring.
    await refuse();
    const ok = await send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'image/png' }, body: await photo('chelsea.png') });
    assert.equal(ok.status, 200, ok.text);
    const gc = collector();
    gc();
    const before = process.memoryUsage();

    // Sample RSS while the bombs arrive, so a transient decode would show even if freed after.
    let peakRss = before.rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 2);
    try {
      for (let round = 0; round < 5; round++) await refuse();
    } finally {
      clearInterval(sampler);
    }
    gc();
    const after = process.memoryUsage();
    t.diagnostic(
      `bomb ${bomb.length} bytes; rss ${mb(before.rss)} → ${mb(after.rss)} (peak ${mb(peakRss)}); ` +
        `arrayBuffers ${mb(before.arrayBuffers)} → ${mb(after.arrayBuffers)}; external ${mb(before.external)} → ${mb(after.external)}`,
    );
    assert.ok(peakRss - before.rss < GROWTH_BOUND_BYTES, `RSS peaked ${mb(peakRss - before.rss)} above its start`);
    assert.ok(after.rss - before.rss < GROWTH_BOUND_BYTES, `RSS grew ${mb(after.rss - before.rss)}`);
    assert.ok(after.arrayBuffers - before.arrayBuffers < GROWTH_BOUND_BYTES, `arrayBuffers grew ${mb(after.arrayBuffers - before.arrayBuffers)}`);
  });
});

describe('decode memory, scan and nesting bombs', () => {
  it('refuses 16-bit RGBA interlaced PNGs whose decode would take 320 MB, four in one request, and memory barely moves', async (t) => {
    const app = await resnet20App(t, { MAX_IMAGES_PER_REQUEST: '8' });
    const port = await listen(app);
    // 6324² is 39.99 megapixels, under MAX_IMAGE_PIXELS: only its bit depth and bands make it dear.
    const bomb = await interlacedPng16Rgba(6324, 6324);
    const multipart = multipartBody(Array.from({ length: 4 }, () => ({ bytes: bomb })));
    const post = () =>
      send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' }, body: multipart });
    const { error } = assertCatalogError(await post(), { status: 413, code: 'IMAGE_TOO_LARGE' }, 'warm-up');
    assert.match(error, /MiB/);
    await withinMemory(t, GROWTH_BOUND_BYTES, async () => {
      const answers = await Promise.all([
        post(),
        post(),
        send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/png' }, body: bomb }),
      ]);
      for (const answer of answers) assertCatalogError(answer, { status: 413, code: 'IMAGE_TOO_LARGE' }, 'decode memory bomb');
    });
    const ok = await send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'image/png' }, body: await photo('chelsea.png') });
    assert.equal(ok.status, 200, ok.text);
  });

  it('serves images that fit the decode memory budget only one at a time, all of them', async (t) => {
    // chelsea.png is 451×300 RGB (405,900 bytes decoded); the budget holds one such decode.
    const app = await resnet20App(t, { MAX_IMAGES_PER_REQUEST: '8', MAX_IMAGE_DECODE_BYTES: '500000', DECODE_MEMORY_BUDGET_BYTES: '500000' });
    const port = await listen(app);
    const chelsea = await photo('chelsea.png');
    const answers = await Promise.all(
      Array.from({ length: 3 }, () =>
        send(port, {
          method: 'POST',
          path: '/v1/predict',
          headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' },
          body: multipartBody(Array.from({ length: 4 }, () => ({ bytes: chelsea }))),
        }),
      ),
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.text);
      const { predictions } = JSON.parse(answer.text) as { predictions: Array<{ label: string }> };
      assert.deepEqual(
        predictions.map((p) => p.label),
        ['cat', 'cat', 'cat', 'cat'],
      );
    }
  });

  it('refuses a progressive JPEG of thousands of scans with 400 before decoding it, in every form', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    // A valid progression (no decoder warning), which the old server decoded for about a second.
    const bomb = progressiveJpegScanBomb({ width: 2048, height: 2048, scans: 2647 });
    const b64 = bomb.toString('base64');
    const forms: Array<[string, () => Promise<Answer>]> = [
      ['raw', () => send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/jpeg' }, body: bomb })],
      [
        'multipart',
        () =>
          send(port, {
            method: 'POST',
            path: '/v1/predict',
            headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' },
            body: multipartBody([{ bytes: bomb }]),
          }),
      ],
      [
        'v2 BYTES',
        () =>
          send(port, {
            method: 'POST',
            path: '/v2/models/resnet20/infer',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [b64] }] }),
          }),
      ],
    ];
    for (const [form, post] of forms) {
      const { error } = assertCatalogError(await post(), { status: 400, code: 'INVALID_IMAGE' }, form);
      assert.match(error, /more than 100 scans/);
    }
    // A real progressive JPEG (10 scans) is still served.
    const sharp = (await import('sharp')).default;
    const progressive = await sharp(await photo('chelsea.png'))
      .jpeg({ progressive: true, quality: 90 })
      .toBuffer();
    const ok = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/jpeg' }, body: progressive });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((JSON.parse(ok.text) as { predictions: Array<{ label: string }> }).predictions[0]!.label, 'cat');
  });

  it('refuses 16 MiB of nested brackets with 400 INVALID_JSON, four at once, and memory barely moves', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const body = nestedJsonBomb(8 * 1024 * 1024 - 6);
    assert.ok(body.length <= 16 * 1024 * 1024, `${body.length} bytes`);
    const post = () => send(port, { method: 'POST', path: '/v2/models/resnet20/infer', headers: { 'Content-Type': 'application/json' }, body });
    assertCatalogError(await post(), { status: 400, code: 'INVALID_JSON' }, 'warm-up');
    // Each 16 MiB body is held twice in the server (its chunks as they arrive, then joined), and
    // that is all: before the bound JSON.parse took over 800 MB for one.
    await withinMemory(t, 4 * 2 * 16 * 1024 * 1024 + GROWTH_BOUND_BYTES, async () => {
      for (const answer of await Promise.all([post(), post(), post(), post()])) {
        const { error } = assertCatalogError(answer, { status: 400, code: 'INVALID_JSON' }, 'nested');
        assert.match(error, /deeper than 32/);
      }
    });
    const live = await send(port, { path: '/v2/health/live' });
    assert.equal(live.status, 200);
  });
});

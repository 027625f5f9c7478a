/**
 * Decompression bombs through HTTP: a real, valid PNG of more than 100 megapixels (over 300 MB
 * once decoded to RGB) that compresses to about a megabyte is refused with 413 IMAGE_TOO_LARGE
 * in every input form, and the memory of this process, which hosts the server and its
 * inference workers, barely moves. The bound is on memory, not on time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { interlacedPng } from '../../bench/lib/hostile-images.js';
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

describe('decompression bombs', () => {
  it('refuses an interlaced 105-megapixel PNG of about a megabyte with 413 in every form, and memory barely moves', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const bomb = await bombPng();
    assert.ok(bomb.length > 700_000 && bomb.length < 1_500_000, `bomb is ${bomb.length} bytes`);
    const b64 = bomb.toString('base64');
    const forms: Array<[string, () => Promise<Answer>]> = [
      ['raw', () => send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/png' }, body: bomb })],
      ['multipart', () => send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' }, body: multipartBody([{ bytes: bomb }]) })],
      ['v1 JSON', () => send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instances: [{ b64 }] }) })],
      ['v2 BYTES', () => send(port, { method: 'POST', path: '/v2/models/resnet20/infer', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [b64] }] }) })],
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
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    t.diagnostic(
      `bomb ${bomb.length} bytes; rss ${mb(before.rss)} → ${mb(after.rss)} (peak ${mb(peakRss)}); ` +
        `arrayBuffers ${mb(before.arrayBuffers)} → ${mb(after.arrayBuffers)}; external ${mb(before.external)} → ${mb(after.external)}`,
    );
    assert.ok(peakRss - before.rss < GROWTH_BOUND_BYTES, `RSS peaked ${mb(peakRss - before.rss)} above its start`);
    assert.ok(after.rss - before.rss < GROWTH_BOUND_BYTES, `RSS grew ${mb(after.rss - before.rss)}`);
    assert.ok(after.arrayBuffers - before.arrayBuffers < GROWTH_BOUND_BYTES, `arrayBuffers grew ${mb(after.arrayBuffers - before.arrayBuffers)}`);
  });
});

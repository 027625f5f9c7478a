/**
 * Every way an upload can be refused, with its catalog code and status, and proof of where it
 * was refused: the decoder is wrapped to count calls, so "refused before decoding" is an
 * assertion, not a timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors, isServingError, type ServingError } from '../../../src/errors.js';
import { IMAGENET_PREPROCESS } from '../../../src/preprocess/index.js';
import { createImagePreprocessorWith } from '../../../src/preprocess/preprocessor.js';
import { createSharpDecoder, type ImageDecoder } from '../../../src/preprocess/sharp-pipeline.js';
import { bombPng, fixtureInput, forgeGifSize, forgeJpegSize, forgePngSize } from './support.js';

const MAX_PIXELS = 40_000_000;

function watchedPreprocessor() {
  const real = createSharpDecoder();
  const calls = { readHeader: 0, decode: 0 };
  const decoder: ImageDecoder = {
    readHeader: (bytes, name) => {
      calls.readHeader++;
      return real.readHeader(bytes, name);
    },
    decode: (request, name) => {
      calls.decode++;
      return real.decode(request, name);
    },
  };
  return { preprocessor: createImagePreprocessorWith(IMAGENET_PREPROCESS, { maxPixels: MAX_PIXELS }, decoder), calls };
}

async function refusal(bytes: Uint8Array): Promise<{ error: ServingError; calls: { readHeader: number; decode: number } }> {
  const { preprocessor, calls } = watchedPreprocessor();
  try {
    await preprocessor.preprocess(bytes);
  } catch (error) {
    assert.ok(isServingError(error), `expected a catalog error, got ${String(error)}`);
    // For humans: one line, no stack, no file system path.
    assert.doesNotMatch(error.message, /\n|[/\\]|\.[cm]?[jt]s\b|node_modules/);
    return { error, calls };
  }
  assert.fail('expected the image to be refused');
}

const text = (s: string) => new TextEncoder().encode(s);

describe('input policy: only JPEG, PNG, WebP, GIF, TIFF and AVIF/HEIF reach the decoder', () => {
  const refused: Array<[string, Uint8Array, RegExp]> = [
    ['SVG', text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="http://example.invalid/x.png"/></svg>'), /SVG is not accepted/],
    [
      'SVG behind an XML declaration',
      text('<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>'),
      /SVG is not accepted/,
    ],
    ['PDF', text('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'), /PDF is not accepted/],
    ['plain text', text('hello, this is not an image'), /not an image format/],
    ['JSON', text('{"instances": []}'), /not an image format/],
    ['BMP', Uint8Array.from([0x42, 0x4d, 0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0]), /BMP is not accepted/],
    ['an MP4 container', Uint8Array.from([0, 0, 0, 0x18, ...text('ftypisom'), 0, 0, 2, 0, ...text('isomiso2')]), /not an image format/],
    ['random bytes', Uint8Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) % 251), /not an image format/],
  ];
  for (const [what, bytes, message] of refused) {
    it(`refuses ${what} with 415 without calling libvips`, async () => {
      const { error, calls } = await refusal(bytes);
      assert.equal(error.code, errors.UNSUPPORTED_MEDIA_TYPE.code);
      assert.equal(error.statusCode, 415);
      assert.match(error.message, message);
      assert.deepEqual(calls, { readHeader: 0, decode: 0 });
    });
  }

  it('refuses zero bytes as an empty image (400)', async () => {
    const { error, calls } = await refusal(new Uint8Array(0));
    assert.equal(error.code, 'INVALID_IMAGE');
    assert.equal(error.statusCode, 400);
    assert.deepEqual(calls, { readHeader: 0, decode: 0 });
  });

  it('keeps the SVG loader blocked even if libvips is handed SVG directly', async () => {
    const svg = text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    await assert.rejects(createSharpDecoder().readHeader(svg, 'SVG'), (e: unknown) => isServingError(e) && e.code === 'INVALID_IMAGE');
  });

  it('refuses PNG magic numbers followed by SVG as a broken PNG (400), never rendering it', async () => {
    const polyglot = new Uint8Array([...fixtureInput('rgb.png').subarray(0, 8), ...text('<svg xmlns="http://www.w3.org/2000/svg"/>')]);
    const { error, calls } = await refusal(polyglot);
    assert.equal(error.code, 'INVALID_IMAGE');
    assert.equal(calls.decode, 0);
  });
});

describe('limits: images over maxPixels are refused from the header (413)', () => {
  const forged: Array<[string, () => Uint8Array]> = [
    ['a PNG whose IHDR claims 100000×100000', () => forgePngSize(fixtureInput('rgb.png'), 100_000, 100_000)],
    ['a JPEG whose frame header claims 60000×60000', () => forgeJpegSize(fixtureInput('rgb.jpg'), 60_000, 60_000)],
    ['a GIF whose screen and frame claim 65535×65535', () => forgeGifSize(fixtureInput('animated.gif'), 65_535, 65_535)],
    ['a real 12000×9000 PNG (108 megapixels) compressed to a few kilobytes', () => bombPng(12_000, 9_000)],
  ];
  for (const [what, make] of forged) {
    it(`refuses ${what} without decoding it`, async () => {
      const bytes = make();
      const { error, calls } = await refusal(bytes);
      assert.equal(error.code, errors.IMAGE_TOO_LARGE.code);
      assert.equal(error.statusCode, 413);
      assert.match(error.message, /at most 40000000 pixels/);
      assert.deepEqual(calls, { readHeader: 1, decode: 0 });
    });
  }

  it('the bomb is small on the wire', () => {
    assert.ok(bombPng(12_000, 9_000).length < 1_000_000);
  });

  it("libvips' own pixel limit backs up the header check", async () => {
    const bytes = fixtureInput('rgb.png'); // 200×150 = 30,000 pixels
    const decoder = createSharpDecoder();
    const header = await decoder.readHeader(bytes, 'PNG');
    await assert.rejects(
      decoder.decode(
        { bytes, header, maxPixels: 20_000, resizeTo: { width: 170, height: 128 }, region: { left: 0, top: 0, width: 111, height: 111 }, colour: 'srgb' },
        'PNG',
      ),
      (e: unknown) => isServingError(e) && e.code === 'IMAGE_TOO_LARGE' && e.statusCode === 413,
    );
  });

  it('accepts an image exactly at the limit', async () => {
    const bytes = fixtureInput('rgb.png');
    const preprocessor = createImagePreprocessorWith(IMAGENET_PREPROCESS, { maxPixels: 200 * 150 }, createSharpDecoder());
    const result = await preprocessor.preprocess(bytes);
    assert.equal(result.width * result.height, 200 * 150);
  });
});

describe('broken images are refused as INVALID_IMAGE (400)', () => {
  const broken: Array<[string, () => Uint8Array]> = [
    ['a JPEG cut at 60 %', () => fixtureInput('rgb.jpg').subarray(0, Math.floor(fixtureInput('rgb.jpg').length * 0.6))],
    ['a PNG cut at 60 %', () => fixtureInput('rgb.png').subarray(0, Math.floor(fixtureInput('rgb.png').length * 0.6))],
    ['a JPEG cut inside its header', () => fixtureInput('rgb.jpg').subarray(0, 40)],
    ['a PNG cut inside its header', () => fixtureInput('rgb.png').subarray(0, 20)],
    ['a WebP cut at 60 %', () => fixtureInput('lossy.webp').subarray(0, Math.floor(fixtureInput('lossy.webp').length * 0.6))],
    [
      'a PNG with a corrupted data chunk',
      () => {
        const png = Buffer.from(fixtureInput('rgb.png'));
        png[png.length >> 1] = (png[png.length >> 1] as number) ^ 0xff;
        return png;
      },
    ],
    ['three JPEG magic bytes and nothing else', () => Uint8Array.from([0xff, 0xd8, 0xff])],
  ];
  for (const [what, make] of broken) {
    it(`refuses ${what}`, async () => {
      const { error } = await refusal(make());
      assert.equal(error.code, errors.INVALID_IMAGE.code);
      assert.equal(error.statusCode, 400);
      assert.match(error.message, /(JPEG|PNG|WebP) image is truncated or corrupt/);
    });
  }
});

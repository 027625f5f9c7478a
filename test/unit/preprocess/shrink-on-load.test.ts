/**
 * When `decode: "fast"` shrinks on load, to which size, and that `"exact"` never does. How
 * close the result comes to torchvision is phone-fidelity.test.ts's business.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../../../src/preprocess/index.js';
import { createImagePreprocessorWith } from '../../../src/preprocess/preprocessor.js';
import { createSharpDecoder, type DecodeRequest, type ImageDecoder } from '../../../src/preprocess/sharp-pipeline.js';
import { MIN_FILTER_REDUCTION, planShrinkOnLoad } from '../../../src/preprocess/shrink-on-load.js';
import { fixtureInput } from './support.js';

describe('planShrinkOnLoad', () => {
  it('asks sharp for the image divided by k + 1, the largest k of 8, 4, 2 that leaves 2× to the filter', () => {
    // 3024 / 9 = 336 < 512; 3024 / 5 = 604 ≥ 512: 1/4 scale.
    assert.deepEqual(planShrinkOnLoad(4032, 3024, 256), { width: 806, height: 604 });
    assert.deepEqual(planShrinkOnLoad(3024, 4032, 256), { width: 604, height: 806 });
    assert.deepEqual(planShrinkOnLoad(4032, 3024, 32), { width: 448, height: 336 });
    assert.deepEqual(planShrinkOnLoad(1600, 1200, 256), undefined);
    assert.deepEqual(planShrinkOnLoad(2000, 1500, 256), undefined);
    assert.deepEqual(planShrinkOnLoad(1536, 1536, 256), { width: 512, height: 512 });
  });

  it('leaves at least MIN_FILTER_REDUCTION to the filter, and gets sharp to pick k (a reduction from k + 1, integer part not k)', () => {
    for (const [w, h] of [
      [4032, 3024],
      [4000, 3000],
      [3264, 2448],
      [2592, 1944],
      [1920, 1080],
      [12000, 9000],
    ] as const) {
      for (const resize of [32, 64, 224, 256, 384]) {
        const size = planShrinkOnLoad(w, h, resize);
        if (size === undefined) {
          assert.ok(Math.min(w, h) / 3 < MIN_FILTER_REDUCTION * resize, `${w}×${h} at ${resize}`);
          continue;
        }
        assert.ok(Math.min(size.width, size.height) >= MIN_FILTER_REDUCTION * resize, `${w}×${h} at ${resize}`);
        const shrink = Math.min(w / size.width, h / size.height);
        const k = shrink >= 8 ? 8 : shrink >= 4 ? 4 : 2;
        assert.ok(shrink >= k + 1 && Math.trunc(shrink) !== k, `${w}×${h} at ${resize}: shrink ${shrink}`);
      }
    }
  });
});

describe('decode: "fast" and "exact"', () => {
  function watched(): { decoder: ImageDecoder; requests: DecodeRequest[] } {
    const real = createSharpDecoder();
    const requests: DecodeRequest[] = [];
    return {
      requests,
      decoder: {
        readHeader: (bytes, name) => real.readHeader(bytes, name),
        decode: (request, name) => {
          requests.push(request);
          return real.decode(request, name);
        },
      },
    };
  }

  async function shrinkOnLoadTo(input: string, spec: PreprocessSpec) {
    const { decoder, requests } = watched();
    await createImagePreprocessorWith(spec, { maxPixels: 40_000_000 }, decoder).preprocess(fixtureInput(input));
    assert.equal(requests.length, 1);
    return requests[0]?.shrinkOnLoadTo;
  }

  const tiny = (decode: PreprocessSpec['decode']): PreprocessSpec => ({ ...IMAGENET_PREPROCESS, resize: 16, crop: 16, decode });

  it('shrinks a JPEG or WebP reduced 6× or more on load, EXIF-rotated or not, with "fast" only', async () => {
    assert.deepEqual(await shrinkOnLoadTo('large.jpg', { ...IMAGENET_PREPROCESS, resize: 32, crop: 32, decode: 'fast' }), { width: 222, height: 166 });
    assert.deepEqual(await shrinkOnLoadTo('lossy.webp', tiny('fast')), { width: 66, height: 50 });
    // Stored 150×200, shown 200×150: the size is the displayed one, sharp turns the pixels after.
    assert.deepEqual(await shrinkOnLoadTo('exif-orientation-6.jpg', tiny('fast')), { width: 66, height: 50 });
    for (const input of ['large.jpg', 'lossy.webp', 'exif-orientation-6.jpg']) assert.equal(await shrinkOnLoadTo(input, tiny('exact')), undefined, input);
  });

  it('decodes PNG, CMYK and alpha as before, and JPEGs reduced less than 6×', async () => {
    for (const input of ['rgb.png', 'cmyk.jpg', 'rgba.png']) assert.equal(await shrinkOnLoadTo(input, tiny('fast')), undefined, input);
    assert.equal(await shrinkOnLoadTo('large.jpg', { ...IMAGENET_PREPROCESS, decode: 'fast' }), undefined);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createImagePreprocessor, IMAGENET_PREPROCESS, type PreprocessSpec } from '../../../src/preprocess/index.js';

const limits = { maxPixels: 1000 };

describe('preprocess spec validation', () => {
  it('has torchvision ImageNet defaults, frozen', () => {
    assert.deepEqual(
      { ...IMAGENET_PREPROCESS },
      {
        resize: 256,
        crop: 224,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        scale: 255,
        channels: 'RGB',
        layout: 'NCHW',
        decode: 'fast',
      },
    );
    assert.ok(Object.isFrozen(IMAGENET_PREPROCESS) && Object.isFrozen(IMAGENET_PREPROCESS.mean));
  });

  const bad: Array<[Partial<Record<keyof PreprocessSpec, unknown>>, RegExp]> = [
    [{ resize: 0 }, /`resize` to be an integer from 1/],
    [{ resize: 2.5 }, /`resize`/],
    [{ crop: 300 }, /`crop` to be an integer from 1 to resize \(256\), got `300`/],
    [{ mean: [0.5, 0.5] }, /`mean` to be an array of 3 finite numbers/],
    [{ std: [0.2, 0, 0.2] }, /`std` to be an array of 3 finite numbers above 0/],
    [{ scale: Number.NaN }, /`scale`/],
    [{ channels: 'rgb' }, /`channels` to be "RGB" or "BGR", got `"rgb"`/],
    [{ layout: 'CHW' }, /`layout`/],
    [{ decode: 'thumbnail' }, /`decode` to be "fast" or "exact", got `"thumbnail"`/],
  ];
  for (const [override, message] of bad) {
    it(`refuses ${JSON.stringify(override)}`, () => {
      assert.throws(() => createImagePreprocessor({ ...IMAGENET_PREPROCESS, ...override } as PreprocessSpec, limits), message);
    });
  }

  it('refuses a non-positive or fractional pixel limit', () => {
    assert.throws(() => createImagePreprocessor(IMAGENET_PREPROCESS, { maxPixels: 0 }), /`maxPixels` to be a positive integer/);
    assert.throws(() => createImagePreprocessor(IMAGENET_PREPROCESS, { maxPixels: 1.5 }), /`maxPixels`/);
  });

  it('decodes "fast" when a spec leaves `decode` out', () => {
    const { decode: _, ...older } = IMAGENET_PREPROCESS;
    assert.equal(createImagePreprocessor(older as PreprocessSpec, limits).spec.decode, 'fast');
    assert.equal(createImagePreprocessor({ ...IMAGENET_PREPROCESS, decode: 'exact' }, limits).spec.decode, 'exact');
  });

  it('keeps a frozen copy of the spec', () => {
    const mean: [number, number, number] = [0.5, 0.5, 0.5];
    const preprocessor = createImagePreprocessor({ ...IMAGENET_PREPROCESS, mean }, limits);
    mean[0] = 9;
    assert.equal(preprocessor.spec.mean[0], 0.5);
    assert.ok(Object.isFrozen(preprocessor.spec));
  });
});

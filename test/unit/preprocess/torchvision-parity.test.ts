/**
 * Our tensors against torchvision's, element by element, for every fixture case: the shared
 * photos and CIFAR-10 images, and synthetic hard cases (EXIF orientation, CMYK, palette, 16-bit,
 * alpha, greyscale, transparent and animated GIF, animated WebP, TIFF, AVIF).
 *
 * Tolerances reached (normalized units; one 8-bit level is 1/(255 × std) ≈ 0.0175 here):
 * - no resize, or enlargement: identical (max 0), as the crop and Pillow's bilinear are
 *   reproduced exactly;
 * - reduction by at most 3× (e.g. 300–770 px photos at ImageNet's 256): max ≤ 3 levels
 *   (measured 2, 0.035), mean ≤ 0.006 (measured ≤ 0.0044): libvips and Pillow round their
 *   fixed-point bilinear sums differently;
 * - larger reductions: max 0.06 at 5.9× (a 2000×1500 JPEG to 256), up to 0.41 at 13–16×
 *   (photos to 32 px), mean ≤ 0.035 (measured ≤ 0.032). libvips box-filters by an integer
 *   factor before its bilinear step and JPEGs are shrunk in the DCT domain, where Pillow
 *   applies one wide triangle filter; the differences sit on fine detail.
 *
 * These are `decode: "exact"`'s figures (the path every image took before shrink-on-load).
 * With the default `"fast"`, every case is bit-identical to them except the two JPEGs reduced
 * 6× or more, which shrink on load: rocket.cifar (13×: max 0.40, mean 0.016) and
 * large-jpg.cifar (47×: max 0.28, mean 0.020); phone-fidelity.test.ts measures that path where
 * it matters, on phone photos, through the models.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createImagePreprocessor, type PreprocessSpec } from '../../../src/preprocess/index.js';
import { planShrinkOnLoad } from '../../../src/preprocess/shrink-on-load.js';
import { difference, haveShared, loadManifest, readInput, torchvisionTensor, type FixtureCase } from './support.js';

const manifest = loadManifest();
const LEVEL = 1 / (255 * 0.224); // one 8-bit level in the tightest channel (std 0.224)

function reductionFactor(c: FixtureCase): number {
  const spec = manifest.specs[c.spec];
  assert.ok(spec, `unknown spec ${c.spec}`);
  return Math.min(c.width, c.height) / spec.resize;
}

function tolerance(c: FixtureCase): { maxAbs: number; meanAbs: number } {
  const factor = reductionFactor(c);
  if (factor <= 1) return { maxAbs: 0, meanAbs: 0 };
  if (factor <= 3) return { maxAbs: 3 * LEVEL, meanAbs: 0.006 };
  return { maxAbs: 0.45, meanAbs: 0.035 };
}

function exactSpec(c: FixtureCase): PreprocessSpec {
  const spec = manifest.specs[c.spec];
  assert.ok(spec, `unknown spec ${c.spec}`);
  return { ...spec, decode: 'exact' };
}

describe('torchvision parity', () => {
  it('rebuilds torchvision float32 values exactly from the 8-bit references', () => {
    for (const c of manifest.cases) {
      const spec = manifest.specs[c.spec];
      assert.ok(spec);
      const tensor = torchvisionTensor(c, spec);
      for (const [index, value] of c.torchvision.samples) {
        assert.equal(tensor[index], Math.fround(value), `${c.name}[${index}]`);
      }
      let sum = 0;
      for (const v of tensor) sum += v;
      assert.ok(Math.abs(sum - c.torchvision.sum) < 1e-6 * tensor.length, `${c.name}: sum ${sum} vs ${c.torchvision.sum}`);
    }
  });

  for (const c of manifest.cases) {
    const needsShared = c.input.shared !== undefined;
    it(`${c.name} matches torchvision`, { skip: needsShared && !haveShared ? '../shared/images is not present' : false }, async (t) => {
      const spec = exactSpec(c);
      const preprocessor = createImagePreprocessor(spec, { maxPixels: 40_000_000 });
      const result = await preprocessor.preprocess(readInput(c));
      assert.equal(result.format, c.format);
      // torchvision's reference is upright (exif_transpose), so compare displayed sizes.
      const upright = c.name.startsWith('exif-orientation-5') || c.name.startsWith('exif-orientation-6') || c.name.startsWith('exif-orientation-8');
      assert.deepEqual([result.width, result.height], upright ? [c.height, c.width] : [c.width, c.height]);
      assert.equal(result.data.length, 3 * spec.crop * spec.crop);
      const diff = difference(result.data, torchvisionTensor(c, spec));
      const tol = tolerance(c);
      t.diagnostic(`reduction ${reductionFactor(c).toFixed(2)}×: max abs ${diff.maxAbs.toFixed(4)}, mean abs ${diff.meanAbs.toFixed(5)}`);
      assert.ok(diff.maxAbs <= tol.maxAbs, `max abs ${diff.maxAbs} > ${tol.maxAbs}`);
      assert.ok(diff.meanAbs <= tol.meanAbs, `mean abs ${diff.meanAbs} > ${tol.meanAbs}`);
    });
  }
});

describe('decode: "fast" leaves every other image as "exact" decodes it', () => {
  for (const c of manifest.cases) {
    const reducedOnLoad = (c.format === 'jpeg' || c.format === 'webp') && planShrinkOnLoad(c.width, c.height, exactSpec(c).resize) !== undefined;
    const skip = c.input.shared !== undefined && !haveShared ? '../shared/images is not present' : false;
    it(`${c.name}: ${reducedOnLoad ? 'shrinks on load (JPEG or WebP reduced 6× or more)' : 'bit-identical'}`, { skip }, async (t) => {
      const spec = exactSpec(c);
      const exact = await createImagePreprocessor(spec, { maxPixels: 40_000_000 }).preprocess(readInput(c));
      const fast = await createImagePreprocessor({ ...spec, decode: 'fast' }, { maxPixels: 40_000_000 }).preprocess(readInput(c));
      if (!reducedOnLoad) {
        assert.deepEqual(fast.data, exact.data);
        return;
      }
      const diff = difference(fast.data, torchvisionTensor(c, spec));
      t.diagnostic(
        `fast, reduction ${reductionFactor(c).toFixed(2)}×: max abs ${diff.maxAbs.toFixed(4)}, mean abs ${diff.meanAbs.toFixed(5)} from torchvision`,
      );
    });
  }
});

describe('preprocess into a given array', () => {
  const c = manifest.cases.find((x) => x.name === 'rgb-png.small');
  it('writes the same tensor into a slot of a larger buffer', async () => {
    assert.ok(c);
    const spec = manifest.specs[c.spec];
    assert.ok(spec);
    const preprocessor = createImagePreprocessor(spec, { maxPixels: 40_000_000 });
    const n = 3 * spec.crop * spec.crop;
    const batch = new Float32Array(2 * n);
    const result = await preprocessor.preprocess(readInput(c), batch.subarray(n));
    assert.equal(result.data.buffer, batch.buffer);
    assert.deepEqual(batch.subarray(n), (await preprocessor.preprocess(readInput(c))).data);
    await assert.rejects(preprocessor.preprocess(readInput(c), new Float32Array(n - 1)), RangeError);
  });
});

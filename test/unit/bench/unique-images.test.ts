/**
 * The benchmark's unique images (bench/lib/unique-images.ts) must differ in bytes and in
 * nothing a model sees: tagged copies of real photos preprocess to the very same tensor.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { canMakeUnique, withUniqueTag } from '../../../bench/lib/unique-images.js';
import { createImagePreprocessor } from '../../../src/preprocess/index.js';
import { IMAGENET_PREPROCESS } from '../../../src/preprocess/spec.js';
import { PHOTOS_DIR, REPO_ROOT } from '../../helpers.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const spec = { ...IMAGENET_PREPROCESS, resize: 64, crop: 56 };

describe('unique images for the benchmark', () => {
  const files = [
    join(PHOTOS_DIR, 'rocket.jpg'),
    join(PHOTOS_DIR, 'chelsea.png'),
    join(REPO_ROOT, 'test', 'fixtures', 'decode-verdicts', 'files', 'webp-lossy.intact.webp'),
  ];
  for (const file of files) {
    it(`${basename(file)}: tagged copies have new bytes and the same pixels`, async () => {
      const original = readFileSync(file);
      assert.ok(canMakeUnique(original));
      const a = withUniqueTag(original, 'request 1');
      const b = withUniqueTag(original, 'request 2');
      assert.equal(new Set([sha256(original), sha256(a), sha256(b)]).size, 3);
      const pre = createImagePreprocessor(spec, { maxPixels: 50_000_000 });
      const [t0, t1, t2] = await Promise.all([original, a, b].map((bytes) => pre.preprocess(bytes)));
      assert.deepEqual(t1!.data, t0!.data);
      assert.deepEqual(t2!.data, t0!.data);
    });
  }

  it('refuses formats it cannot tag', () => {
    const gif = Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1');
    assert.equal(canMakeUnique(gif), false);
    assert.throws(() => withUniqueTag(gif, 'x'), RangeError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { centreCrop, planResize, resizedSize, roundHalfEven } from '../../../src/preprocess/geometry.js';

describe('torchvision geometry', () => {
  it('rounds halves to even, like Python 3', () => {
    // Python: [round(x) for x in (0.5, 1.5, 2.5, 8.5, 29.5, 58.5, 3.2, 3.7)]
    assert.deepEqual([0.5, 1.5, 2.5, 8.5, 29.5, 58.5, 3.2, 3.7].map(roundHalfEven), [0, 2, 2, 8, 30, 58, 3, 4]);
  });

  it('resizes the shorter side and truncates the longer one like Resize(int)', () => {
    // Values from torchvision 0.14's _compute_resized_output_size.
    assert.deepEqual(resizedSize(451, 300, 256), { width: 384, height: 256 });
    assert.deepEqual(resizedSize(427, 640, 256), { width: 256, height: 383 });
    assert.deepEqual(resizedSize(333, 250, 128), { width: 170, height: 128 });
    assert.deepEqual(resizedSize(512, 512, 32), { width: 32, height: 32 });
    assert.deepEqual(resizedSize(32, 32, 256), { width: 256, height: 256 });
    assert.deepEqual(resizedSize(4032, 3024, 256), { width: 341, height: 256 });
  });

  it('centre-crops at int(round((size - crop) / 2))', () => {
    assert.deepEqual(centreCrop({ width: 170, height: 128 }, 111), { left: 30, top: 8, width: 111, height: 111 });
    assert.deepEqual(centreCrop({ width: 341, height: 256 }, 224), { left: 58, top: 16, width: 224, height: 224 });
    assert.deepEqual(centreCrop({ width: 32, height: 32 }, 32), { left: 0, top: 0, width: 32, height: 32 });
  });

  it('classifies the resize as a reduction, none, or an enlargement', () => {
    assert.equal(planResize(451, 300, 256, 224).kind, 'reduce');
    assert.equal(planResize(32, 40, 32, 32).kind, 'identity');
    assert.deepEqual(planResize(32, 40, 32, 32).resized, { width: 32, height: 40 });
    assert.equal(planResize(32, 32, 256, 224).kind, 'enlarge');
  });
});

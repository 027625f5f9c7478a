import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../../../src/preprocess/index.js';
import { createTensorWriter, normalizationTables } from '../../../src/preprocess/tensor.js';

const crop = 5;
const rgb = Uint8Array.from({ length: crop * crop * 3 }, (_, i) => (i * 37 + 11) % 256);
const spec = (over: Partial<PreprocessSpec>): PreprocessSpec => ({ ...IMAGENET_PREPROCESS, resize: crop, crop, ...over });

describe('tensor writer', () => {
  it("reproduces torchvision's float32 arithmetic", () => {
    // torch: (torch.tensor([0, 1, 128, 255]).float().div(255) - 0.485) / 0.229, in float32.
    const [red] = normalizationTables(IMAGENET_PREPROCESS);
    assert.equal(red[0], Math.fround(-2.1179039478302));
    assert.equal(red[255], Math.fround(2.248908281326294));
    assert.equal(red[1], Math.fround(-2.1007792949676514));
    assert.equal(red[128], Math.fround(0.07406462728977203));
  });

  it('writes NCHW RGB planes', () => {
    const s = spec({});
    const out = createTensorWriter(s)(rgb);
    const t = normalizationTables(s);
    const n = crop * crop;
    assert.equal(out.length, 3 * n);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) assert.equal(out[c * n + i], t[c as 0 | 1 | 2][rgb[i * 3 + c] as number]);
  });

  it('writes NHWC and BGR, with mean and std in the model channel order', () => {
    const s = spec({ channels: 'BGR', layout: 'NHWC', mean: [103.94, 116.78, 123.68], std: [1, 1, 1], scale: 1 });
    const out = createTensorWriter(s)(rgb);
    for (let i = 0; i < crop * crop; i++) {
      assert.equal(out[i * 3], Math.fround((rgb[i * 3 + 2] as number) - Math.fround(103.94)));
      assert.equal(out[i * 3 + 1], Math.fround((rgb[i * 3 + 1] as number) - Math.fround(116.78)));
      assert.equal(out[i * 3 + 2], Math.fround((rgb[i * 3] as number) - Math.fround(123.68)));
    }
  });

  it('refuses pixels of the wrong size', () => {
    assert.throws(() => createTensorWriter(spec({}))(new Uint8Array(10)), RangeError);
  });
});

describe('tensor writer into a given array', () => {
  it('writes into the slot it is given and returns it', () => {
    const s = spec({});
    const batch = new Float32Array(2 * 3 * crop * crop).fill(7);
    const slot = batch.subarray(3 * crop * crop);
    const out = createTensorWriter(s)(rgb, slot);
    assert.equal(out, slot);
    assert.deepEqual(out, createTensorWriter(s)(rgb));
    assert.ok(
      batch.subarray(0, 3 * crop * crop).every((v) => v === 7),
      'the other slot is untouched',
    );
  });

  it('refuses a slot of the wrong size', () => {
    assert.throws(() => createTensorWriter(spec({}))(rgb, new Float32Array(3)), /Expected a Float32Array of 75 elements/);
  });
});

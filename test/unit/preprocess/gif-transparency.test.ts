import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gifTransparentColour } from '../../../src/preprocess/gif-transparency.js';
import { fixtureInput } from './support.js';

describe('gifTransparentColour', () => {
  it("finds the first frame's transparent palette entry", () => {
    // Pillow: Image.open('transparent.gif').info['transparency'] == 5, getpalette()[15:18].
    assert.deepEqual(gifTransparentColour(fixtureInput('transparent.gif')), [219, 209, 205]);
  });

  it('returns undefined without transparency or for a cut stream', () => {
    assert.equal(gifTransparentColour(fixtureInput('animated.gif')), undefined);
    assert.equal(gifTransparentColour(fixtureInput('transparent.gif').subarray(0, 200)), undefined);
    assert.equal(gifTransparentColour(new Uint8Array(5)), undefined);
  });
});

/**
 * Image digests (image-digest.ts): the SHA-256 of the bytes, hashed here unless an edge that
 * hashed these very bytes on arrival remembered it, in which case they are not read again.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { imageDigest, rememberImageDigest } from '../../../src/serving/image-digest.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('base64');

describe('image digests', () => {
  it('are the SHA-256 of the bytes, small (hashed in place) and large (on libuv’s pool)', async () => {
    for (const size of [1, 1000, 256 * 1024, 256 * 1024 + 1, 3_000_000]) {
      const bytes = randomBytes(size);
      assert.equal(await imageDigest(bytes), sha256(bytes), `${size} bytes`);
    }
  });

  it('take a remembered digest for that very array without reading it, and for no other', async () => {
    const bytes = randomBytes(300_000);
    rememberImageDigest(bytes, 'remembered');
    assert.equal(await imageDigest(bytes), 'remembered', 'not hashed again');
    const copy = Buffer.from(bytes);
    assert.equal(await imageDigest(copy), sha256(bytes), 'an equal copy is hashed');
    assert.equal(await imageDigest(bytes.subarray(0)), sha256(bytes), 'so is a view of it');
  });
});

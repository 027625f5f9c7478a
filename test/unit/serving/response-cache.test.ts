import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createResponseCache, ENTRY_OVERHEAD_BYTES, entryBytes, responseCacheKey } from '../../../src/serving/response-cache.js';
import type { ModelKey } from '../../../src/serving/observer.js';

const M: ModelKey = { name: 'm', version: '1' };
const N: ModelKey = { name: 'n', version: '1' };
const row = (...values: number[]) => Float32Array.from(values);
const key = (i: number, model: ModelKey = M) => responseCacheKey(model, 0, `sha-${i}`);
/** A bound that holds exactly `n` entries of `key(i)` with a 10-class row. */
const boundFor = (n: number) => n * entryBytes(key(0), new Float32Array(10));

function recorder() {
  const evicted: string[] = [];
  const usage = new Map<string, { entries: number; bytes: number }>();
  return {
    evicted,
    usage,
    observer: {
      evicted: (model: ModelKey) => void evicted.push(`${model.name}/${model.version}`),
      usage: (model: ModelKey, entries: number, bytes: number) => void usage.set(`${model.name}/${model.version}`, { entries, bytes }),
    },
  };
}

describe('response cache', () => {
  it('validates its bound at once, with a precise message; 0 is off', () => {
    assert.throws(() => createResponseCache({ maxBytes: -1 }), /Expected `maxBytes` to be an integer from 0 and up, got `-1`/);
    assert.throws(() => createResponseCache({ maxBytes: 1.5 }), /got `1.5`/);
    const off = createResponseCache({ maxBytes: 0 });
    assert.equal(off.enabled, false);
    assert.equal(off.set(key(1), M, row(1, 2)), false);
    assert.equal(off.get(key(1)), undefined);
    assert.equal(off.bytes, 0);
  });

  it('keys apart model, version, load and image, whatever characters their names hold', () => {
    const keys = new Set([
      responseCacheKey({ name: 'a', version: '1' }, 0, 'x'),
      responseCacheKey({ name: 'a', version: '2' }, 0, 'x'),
      responseCacheKey({ name: 'a', version: '1' }, 1, 'x'),
      responseCacheKey({ name: 'a', version: '1' }, 0, 'y'),
      responseCacheKey({ name: 'a","1', version: '' }, 0, 'x'),
    ]);
    assert.equal(keys.size, 5);
  });

  it('returns a copy of the row stored, not a view of the buffer it came from', () => {
    const cache = createResponseCache({ maxBytes: 1 << 20 });
    const batch = new Float32Array([1, 2, 3, 4, 5, 6]);
    cache.set(key(1), M, batch.subarray(3, 6));
    batch.fill(0);
    const got = cache.get(key(1))!;
    assert.deepEqual([...got], [4, 5, 6]);
    assert.equal(got.buffer.byteLength, 12, 'the entry holds its own 3 floats only');
  });

  it('charges each entry its row, its key and the fixed overhead, and tells the usage per model version', () => {
    const { observer, usage } = recorder();
    const cache = createResponseCache({ maxBytes: 1 << 20, observer });
    cache.set(key(1), M, new Float32Array(10));
    cache.set(key(2, N), N, new Float32Array(10));
    const one = 40 + 2 * key(1).length + ENTRY_OVERHEAD_BYTES;
    assert.equal(entryBytes(key(1), new Float32Array(10)), one);
    assert.equal(cache.bytes, one + entryBytes(key(2, N), new Float32Array(10)));
    assert.deepEqual(usage.get('m/1'), { entries: 1, bytes: one });
    assert.equal(usage.get('n/1')?.entries, 1);
  });

  it('evicts the least recently used entries, a read counting as a use, and never passes its bound', () => {
    const { observer, evicted, usage } = recorder();
    const cache = createResponseCache({ maxBytes: boundFor(3), observer });
    for (const i of [1, 2, 3]) cache.set(key(i), M, new Float32Array(10).fill(i));
    assert.equal(cache.entries, 3);
    assert.ok(cache.get(key(1)), '1 is now the most recently used');
    cache.set(key(4), M, new Float32Array(10));
    assert.equal(cache.get(key(2)), undefined, '2 was the least recently used');
    assert.ok(cache.get(key(1)) && cache.get(key(3)) && cache.get(key(4)));
    assert.deepEqual(evicted, ['m/1']);
    assert.equal(cache.bytes, boundFor(3));
    assert.deepEqual(usage.get('m/1'), { entries: 3, bytes: boundFor(3) });
  });

  it('replaces an entry stored again under its key without counting it twice or as an eviction', () => {
    const { observer, evicted } = recorder();
    const cache = createResponseCache({ maxBytes: boundFor(2), observer });
    cache.set(key(1), M, new Float32Array(10).fill(1));
    cache.set(key(1), M, new Float32Array(10).fill(2));
    assert.equal(cache.entries, 1);
    assert.equal(cache.bytes, boundFor(1));
    assert.equal(cache.get(key(1))![0], 2);
    assert.deepEqual(evicted, []);
  });

  it('does not store an entry larger than the whole bound, and keeps what it holds', () => {
    const cache = createResponseCache({ maxBytes: boundFor(2) });
    cache.set(key(1), M, new Float32Array(10));
    assert.equal(cache.set(key(2), M, new Float32Array(1000)), false);
    assert.equal(cache.entries, 1);
    assert.ok(cache.get(key(1)));
  });

  it('holds at most its bound under a flood of unique images: they only churn the LRU', () => {
    const { observer, evicted } = recorder();
    const maxBytes = boundFor(16) + 100;
    const cache = createResponseCache({ maxBytes, observer });
    let most = 0;
    for (let i = 0; i < 5000; i++) {
      cache.set(key(i), M, new Float32Array(10).fill(i));
      most = Math.max(most, cache.bytes);
    }
    assert.ok(most <= maxBytes, `${most} bytes held, bound ${maxBytes}`);
    assert.equal(cache.entries, 16);
    assert.equal(evicted.length, 5000 - 16);
    assert.ok(cache.get(key(4999)), 'the newest entry is there');
    assert.equal(cache.get(key(0)), undefined);
  });

  it('forgets every entry of a model version without telling the observer', () => {
    const { observer, usage } = recorder();
    const cache = createResponseCache({ maxBytes: 1 << 20, observer });
    cache.set(responseCacheKey(M, 0, 'a'), M, new Float32Array(10));
    cache.set(responseCacheKey(M, 1, 'a'), M, new Float32Array(10));
    cache.set(key(1, N), N, new Float32Array(10));
    usage.clear();
    cache.forget(M);
    assert.equal(cache.entries, 1);
    assert.equal(cache.bytes, entryBytes(key(1, N), new Float32Array(10)));
    assert.equal(usage.size, 0);
    assert.ok(cache.get(key(1, N)));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { softmax, topK } from '../../../src/serving/postprocess.js';

describe('softmax', () => {
  it('matches the definition and sums to 1', () => {
    const p = softmax(new Float32Array([1, 2, 3]));
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const sum = e[0]! + e[1]! + e[2]!;
    e.forEach((v, i) => assert.ok(Math.abs(p[i]! - v / sum) < 1e-6));
  });

  it('is stable for large logits', () => {
    const p = softmax(new Float32Array([1000, 1001, 999]));
    assert.ok(p.every((v) => Number.isFinite(v)));
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    assert.ok(p[1]! > p[0]! && p[0]! > p[2]!);
  });
});

describe('topK', () => {
  it('returns the k best, best first, with labels or index strings', () => {
    const scores = new Float32Array([0.1, 0.5, 0.05, 0.3, 0.05]);
    assert.deepEqual(
      topK(scores, 3, ['a', 'b', 'c', 'd', 'e']).map((c) => [c.label, c.index]),
      [
        ['b', 1],
        ['d', 3],
        ['a', 0],
      ],
    );
    assert.deepEqual(
      topK(scores, 2, undefined).map((c) => c.label),
      ['1', '3'],
    );
  });

  it('keeps the lower index first on ties and caps k at the class count', () => {
    const scores = new Float32Array([0.25, 0.25, 0.25, 0.25]);
    assert.deepEqual(
      topK(scores, 10, undefined).map((c) => c.index),
      [0, 1, 2, 3],
    );
  });

  it('agrees with a full sort on random scores', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 20; trial++) {
      const scores = new Float32Array(1000).map(() => rand());
      const expected = [...scores.keys()].sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 5);
      assert.deepEqual(
        topK(scores, 5, undefined).map((c) => c.index),
        expected,
      );
    }
  });
});

/**
 * The decode memory budget: refusal of an image that could never fit, first come first served
 * waiting, and leaving the queue at a deadline or an abort, with time driven by mocked timers.
 */
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { createDecodeBudget, estimateDecodeBytes } from '../../../src/preprocess/decode-budget.js';
import { isServingError } from '../../../src/errors.js';

const codeOf = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (err) {
    assert.ok(isServingError(err), String(err));
    return err.code;
  }
  assert.fail('expected a rejection');
};

/** Lets settled promises run their callbacks. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('createDecodeBudget', () => {
  it('validates its options with precise messages', () => {
    assert.throws(() => createDecodeBudget({ capacityBytes: 0, maxImageBytes: 1 }), /`capacityBytes` to be a positive integer of bytes, got `0`/);
    assert.throws(() => createDecodeBudget({ capacityBytes: 10, maxImageBytes: 11 }), /`maxImageBytes` \(11\) to be at most `capacityBytes` \(10\)/);
  });

  it('refuses an image over maxImageBytes with IMAGE_TOO_LARGE, reserving nothing', async () => {
    const budget = createDecodeBudget({ capacityBytes: 100 * 2 ** 20, maxImageBytes: 50 * 2 ** 20 });
    assert.equal(await codeOf(budget.reserve(50 * 2 ** 20 + 1)), 'IMAGE_TOO_LARGE');
    assert.equal(budget.usedBytes, 0);
    const release = await budget.reserve(50 * 2 ** 20);
    assert.equal(budget.usedBytes, 50 * 2 ** 20);
    release();
    release();
    assert.equal(budget.usedBytes, 0, 'returning twice returns once');
  });

  it('makes decodes past the capacity wait, first come first served, and grants them as room returns', async () => {
    const budget = createDecodeBudget({ capacityBytes: 100, maxImageBytes: 100 });
    const first = await budget.reserve(60);
    const order: string[] = [];
    const big = budget.reserve(80).then((release) => (order.push('big'), release));
    // Fits beside the first, but must not overtake the big one waiting ahead of it.
    const small = budget.reserve(30).then((release) => (order.push('small'), release));
    await flush();
    assert.deepEqual(order, []);
    assert.equal(budget.waiting, 2);
    first();
    const releaseBig = await big;
    await flush();
    assert.deepEqual(order, ['big'], 'the small one still waits: 80 + 30 > 100');
    releaseBig();
    (await small)();
    assert.deepEqual(order, ['big', 'small']);
    assert.equal(budget.usedBytes, 0);
    assert.equal(budget.waiting, 0);
  });

  it('lets a waiting decode leave at its deadline (DEADLINE_EXCEEDED) or on abort (CANCELLED), and lets those behind it in', async (t) => {
    mock.timers.enable({ apis: ['setTimeout'] });
    t.after(() => mock.timers.reset());
    let clock = 0;
    const budget = createDecodeBudget({ capacityBytes: 100, maxImageBytes: 100, now: () => clock });
    const held = await budget.reserve(90);
    const timedOut = codeOf(budget.reserve(50, { deadline: 1_000 }));
    const controller = new AbortController();
    const aborted = codeOf(budget.reserve(50, { signal: controller.signal }));
    const small = budget.reserve(10);
    await flush();
    assert.equal(budget.waiting, 3);
    clock = 1_000;
    mock.timers.tick(1_000);
    assert.equal(await timedOut, 'DEADLINE_EXCEEDED');
    controller.abort();
    assert.equal(await aborted, 'CANCELLED');
    // With both ahead of it gone, the small one fits beside the held 90.
    (await small)();
    assert.equal(budget.waiting, 0);
    held();
    assert.equal(budget.usedBytes, 0);
    // Already past its deadline or aborted: refused at once, nothing reserved.
    assert.equal(await codeOf(budget.reserve(10, { deadline: 999 })), 'DEADLINE_EXCEEDED');
    assert.equal(await codeOf(budget.reserve(10, { signal: AbortSignal.abort() })), 'CANCELLED');
  });
});

describe('estimateDecodeBytes', () => {
  it('counts the frame at its bands and bit depth, plus a progressive JPEG’s coefficients', () => {
    assert.equal(estimateDecodeBytes({ width: 6324, height: 6324, channels: 4, bytesPerSample: 2 }), 6324 * 6324 * 8);
    assert.equal(estimateDecodeBytes({ width: 100, height: 50, channels: 3, bytesPerSample: 1 }), 15_000);
    const jpegFrame = { marker: 0xc2, precision: 8, width: 64, height: 64, components: 3, coefficientBlocks: 3 * 64 };
    assert.equal(estimateDecodeBytes({ width: 64, height: 64, channels: 3, bytesPerSample: 1, jpegFrame }), 64 * 64 * 3 + 3 * 64 * 128);
  });
});

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { createBatcher, type BatchRunner } from '../../../src/serving/batcher.js';
import { isServingError } from '../../../src/errors.js';

/** A runner whose batches finish only when the test says so. */
function manualRunner(concurrency = 1) {
  const calls: Array<{ items: number[]; resolve: (out: number[]) => void; reject: (err: Error) => void }> = [];
  const runner: BatchRunner<number, number> = {
    concurrency,
    run(items) {
      return new Promise((resolve, reject) => {
        calls.push({ items: [...items], resolve: (out) => resolve(out), reject });
      });
    },
  };
  const finish = (i: number) => calls[i]!.resolve(calls[i]!.items.map((x) => x * 10));
  return { runner, calls, finish };
}

function useFakeTime(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  return {
    now: () => Date.now(),
    tick: (ms: number) => t.mock.timers.tick(ms),
  };
}

async function settle() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function code(err: unknown): string {
  assert.ok(isServingError(err), `expected a ServingError, got ${String(err)}`);
  return err.code;
}

describe('createBatcher', () => {
  it('rejects invalid options with a precise message', () => {
    const { runner } = manualRunner();
    assert.throws(() => createBatcher({ maxBatchSize: 0, queueMaxSize: 1, runner }), /Expected `maxBatchSize` to be a number from 1 and up, got `0`/);
    assert.throws(() => createBatcher({ maxBatchSize: 1, queueMaxSize: 0, runner }), /queueMaxSize/);
    assert.throws(() => createBatcher({ maxBatchSize: 1, queueMaxSize: 1, maxDelayMs: -1, runner }), /maxDelayMs/);
  });

  it('runs a lone item at once when idle (no waiting with maxDelayMs 0)', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 8, queueMaxSize: 16, runner, now: time.now });
    const result = batcher.enqueue([7]);
    assert.equal(calls.length, 1, 'the batch started without any time passing');
    assert.deepEqual(calls[0]!.items, [7]);
    finish(0);
    const [r] = await result;
    assert.equal(r!.output, 70);
    assert.equal(r!.batchSize, 1);
    assert.equal(r!.queueMs, 0);
  });

  it('forms batches up to maxBatchSize from what queued while the worker was busy', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 3, queueMaxSize: 16, runner, now: time.now });
    const first = batcher.enqueue([1]);
    const waiting = [2, 3, 4, 5, 6].map((x) => batcher.enqueue([x]));
    assert.equal(calls.length, 1);
    assert.equal(batcher.queueDepth, 5);
    time.tick(4);
    finish(0);
    await first;
    await settle();
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1]!.items, [2, 3, 4], 'takes up to the maximum, oldest first');
    finish(1);
    await settle();
    assert.deepEqual(calls[2]!.items, [5, 6]);
    finish(2);
    const results = await Promise.all(waiting);
    assert.deepEqual(
      results.map((r) => r[0]!.output),
      [20, 30, 40, 50, 60],
    );
    assert.deepEqual(
      results.map((r) => r[0]!.batchSize),
      [3, 3, 3, 2, 2],
    );
    assert.equal(results[0]![0]!.queueMs, 4, 'queue time is measured on the injected clock');
  });

  it('holds a partial batch for maxDelayMs, and sends a full one at once', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 3, maxDelayMs: 10, queueMaxSize: 16, runner, now: time.now });
    const a = batcher.enqueue([1]);
    assert.equal(calls.length, 0, 'waits for more items');
    time.tick(5);
    const b = batcher.enqueue([2]);
    assert.equal(calls.length, 0);
    time.tick(4);
    assert.equal(calls.length, 0, '9 ms after the oldest item: still waiting');
    time.tick(1);
    assert.equal(calls.length, 1, 'sent when the oldest item has waited maxDelayMs');
    assert.deepEqual(calls[0]!.items, [1, 2]);
    finish(0);
    await Promise.all([a, b]);

    const full = batcher.enqueue([4, 5, 6]);
    assert.equal(calls.length, 2, 'a full batch does not wait');
    assert.deepEqual(calls[1]!.items, [4, 5, 6]);
    finish(1);
    assert.deepEqual(
      (await full).map((r) => r.output),
      [40, 50, 60],
    );
  });

  it("keeps each request's items in order and gives each its own result", async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 2, queueMaxSize: 16, runner, now: time.now });
    const blocker = batcher.enqueue([0]);
    const multi = batcher.enqueue([1, 2, 3]);
    const other = batcher.enqueue([4]);
    finish(0);
    await blocker;
    await settle();
    assert.deepEqual(calls[1]!.items, [1, 2], 'a multi-image request joins the queue image by image');
    finish(1);
    await settle();
    assert.deepEqual(calls[2]!.items, [3, 4], 'its last image shares a batch with another request');
    finish(2);
    assert.deepEqual(
      (await multi).map((r) => r.output),
      [10, 20, 30],
    );
    assert.deepEqual(
      (await other).map((r) => r.output),
      [40],
    );
  });

  it('refuses at once with QUEUE_FULL and Retry-After when the queue would overflow', async (t) => {
    const time = useFakeTime(t);
    const { runner, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 1, queueMaxSize: 3, runner, now: time.now, retryAfterSeconds: 2 });
    const running = batcher.enqueue([0]);
    const queued = batcher.enqueue([1, 2]);
    await assert.rejects(batcher.enqueue([3, 4]), (err) => {
      assert.equal(code(err), 'QUEUE_FULL');
      assert.equal((err as { statusCode: number }).statusCode, 503);
      assert.equal((err as { retryAfterSeconds: number }).retryAfterSeconds, 2);
      return true;
    });
    assert.equal(batcher.queueDepth, 2, 'a refused request leaves nothing behind');
    const fits = batcher.enqueue([5]);
    assert.equal(batcher.queueDepth, 3);
    for (let i = 0; i < 4; i++) {
      finish(i);
      await settle();
    }
    await running;
    assert.deepEqual(
      (await queued).map((r) => r.output),
      [10, 20],
    );
    assert.equal((await fits)[0]!.output, 50);
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes while queued, and never runs the item', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 4, queueMaxSize: 16, runner, now: time.now });
    const running = batcher.enqueue([0]);
    const late = batcher.enqueue([1], { deadline: time.now() + 50 });
    const patient = batcher.enqueue([2], { deadline: time.now() + 500 });
    let lateError: unknown;
    late.catch((err) => (lateError = err));
    time.tick(50);
    await settle();
    assert.equal(code(lateError), 'DEADLINE_EXCEEDED');
    assert.equal(batcher.queueDepth, 1, 'the expired item left the queue');
    finish(0);
    await running;
    await settle();
    assert.deepEqual(calls[1]!.items, [2], 'the expired item never ran');
    finish(1);
    assert.equal((await patient)[0]!.output, 20);
  });

  it('refuses a request whose deadline has already passed', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 4, queueMaxSize: 16, runner, now: time.now });
    await assert.rejects(batcher.enqueue([1], { deadline: time.now() }), (err) => code(err) === 'DEADLINE_EXCEEDED');
    assert.equal(calls.length, 0);
  });

  it('removes the queued items of a request whose client went away', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 4, queueMaxSize: 16, runner, now: time.now });
    const running = batcher.enqueue([0]);
    const controller = new AbortController();
    const gone = batcher.enqueue([1, 2], { signal: controller.signal });
    const stays = batcher.enqueue([3]);
    controller.abort();
    await assert.rejects(gone, (err) => code(err) === 'CANCELLED');
    assert.equal(batcher.queueDepth, 1);
    finish(0);
    await running;
    await settle();
    assert.deepEqual(calls[1]!.items, [3], 'cancelled items never ran');
    finish(1);
    await stays;
  });

  it('fails only the requests of a failed batch (a crashed worker)', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner(1);
    const batcher = createBatcher({ maxBatchSize: 2, queueMaxSize: 16, runner, now: time.now });
    const first = batcher.enqueue([0]);
    const inCrash = batcher.enqueue([1, 2]);
    const nextBatch = batcher.enqueue([3]);
    finish(0);
    await first;
    await settle();
    calls[1]!.reject(Object.assign(new Error('worker exited'), {}));
    await assert.rejects(inCrash, /worker exited/);
    await settle();
    assert.deepEqual(calls[2]!.items, [3], 'the queue carries on after a failed batch');
    finish(2);
    assert.equal((await nextBatch)[0]!.output, 30);
  });

  it('runs as many batches at once as the runner has workers', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls } = manualRunner(2);
    const batcher = createBatcher({ maxBatchSize: 2, queueMaxSize: 16, runner, now: time.now });
    void batcher.enqueue([1]);
    void batcher.enqueue([2]);
    void batcher.enqueue([3]);
    assert.equal(calls.length, 2);
    assert.equal(batcher.inflightBatches, 2);
    assert.equal(batcher.queueDepth, 1);
  });

  it('on stop refuses new work, flushes partial batches at once, and resolves when drained; every stop() gets the same promise', async (t) => {
    const time = useFakeTime(t);
    const { runner, calls, finish } = manualRunner();
    const batcher = createBatcher({ maxBatchSize: 4, maxDelayMs: 1000, queueMaxSize: 16, runner, now: time.now });
    const queued = batcher.enqueue([1, 2]);
    assert.equal(calls.length, 0, 'held for more items');
    let stopped = false;
    const first = batcher.stop();
    const stopping = first.then(() => (stopped = true));
    assert.equal(batcher.stop(), first, 'a second stop() gets the same promise');
    assert.equal(calls.length, 1, 'stop sends the partial batch without waiting out the delay');
    await assert.rejects(batcher.enqueue([3]), (err) => code(err) === 'SHUTTING_DOWN');
    await settle();
    assert.equal(stopped, false, 'not drained while a batch runs');
    finish(0);
    assert.deepEqual(
      (await queued).map((r) => r.output),
      [10, 20],
    );
    await stopping;
    assert.equal(stopped, true);
  });
});

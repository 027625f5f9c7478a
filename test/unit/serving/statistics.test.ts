/**
 * src/serving/statistics.ts driven by hand through its observer: exact counts and nanoseconds,
 * sums that do not drift, batch_stats per size, which outcomes count as success, fail or
 * neither, last_inference on an injected clock, models kept apart; and combineObservers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { combineObservers, nullObserver, OUTCOMES, type ServingObserver } from '../../../src/serving/observer.js';
import { createInferenceStatistics, type TritonModelStats } from '../../../src/serving/statistics.js';

const MODEL = { name: 'resnet20', version: '3' };

/** The one model's statistics. */
const statsOf = (statistics: ReturnType<typeof createInferenceStatistics>, model = MODEL): TritonModelStats => statistics.snapshot([model])[0]!;

/** A clock that reads what the test last set. */
function manualClock(startMs: number) {
  let ms = startMs;
  return { now: () => ms, set: (to: number) => void (ms = to) };
}

const zero = { count: 0, ns: 0 };

describe('statistics before any traffic', () => {
  it("has the extension's shape, every count zero", () => {
    const stats = statsOf(createInferenceStatistics());
    assert.deepEqual(stats, {
      name: 'resnet20',
      version: '3',
      last_inference: 0,
      inference_count: 0,
      execution_count: 0,
      inference_stats: {
        success: zero,
        fail: zero,
        queue: zero,
        compute_input: zero,
        compute_infer: zero,
        compute_output: zero,
        cache_hit: zero,
        cache_miss: zero,
      },
      response_stats: {},
      batch_stats: [],
      memory_usage: [],
    });
  });

  it('keeps each version of a model apart', () => {
    const statistics = createInferenceStatistics();
    statistics.observer.requestFinished({ name: 'm', version: '2' }, 'ok', 0.001, 3, 'http');
    statistics.observer.requestFinished({ name: 'm', version: '1' }, 'ok', 0.001, 1, 'http');
    const counts = statistics
      .snapshot([
        { name: 'm', version: '2' },
        { name: 'm', version: '1' },
        { name: 'm', version: '3' },
      ])
      .map((s) => [s.version, s.inference_count]);
    assert.deepEqual(counts, [
      ['2', 3],
      ['1', 1],
      ['3', 0],
    ]);
  });

  it('answers for the models asked, in the order asked', () => {
    const statistics = createInferenceStatistics();
    statistics.observer.requestFinished({ name: 'b', version: '1' }, 'ok', 0.001, 1, 'http');
    const names = statistics
      .snapshot([
        { name: 'b', version: '1' },
        { name: 'a', version: '2' },
      ])
      .map((s) => [s.name, s.version, s.inference_count]);
    assert.deepEqual(names, [
      ['b', '1', 1],
      ['a', '2', 0],
    ]);
    assert.deepEqual(statistics.snapshot([]), []);
  });

  it('refuses a clock that is not a function', () => {
    assert.throws(() => createInferenceStatistics({ now: 5 as unknown as () => number }), /Expected `now` to be a function, got `number`/);
  });
});

describe('statistics after traffic', () => {
  it('counts each stage exactly, in whole nanoseconds', () => {
    const statistics = createInferenceStatistics({ now: () => 1_000 });
    const o = statistics.observer;
    // One request of three images: decoded one by one, queued one by one, run as batches of 2 and 1.
    for (const s of [0.001, 0.002, 0.003]) o.preprocessed(MODEL, s);
    for (const s of [0.0004, 0.0005, 0.0006]) o.queued(MODEL, s);
    o.computed(MODEL, 2, 0.02);
    o.computed(MODEL, 1, 0.011);
    o.postprocessed(MODEL, 0.00025);
    o.requestStarted(MODEL);
    o.requestFinished(MODEL, 'ok', 0.0421, 3, 'http');

    const stats = statsOf(statistics);
    assert.equal(stats.inference_count, 3);
    assert.equal(stats.execution_count, 2);
    assert.deepEqual(stats.inference_stats.success, { count: 1, ns: 42_100_000 });
    assert.deepEqual(stats.inference_stats.fail, zero);
    assert.deepEqual(stats.inference_stats.compute_input, { count: 3, ns: 6_000_000 });
    assert.deepEqual(stats.inference_stats.queue, { count: 3, ns: 1_500_000 });
    assert.deepEqual(stats.inference_stats.compute_infer, { count: 2, ns: 31_000_000 });
    assert.deepEqual(stats.inference_stats.compute_output, { count: 1, ns: 250_000 });
    assert.deepEqual(stats.inference_stats.cache_hit, zero);
    assert.deepEqual(stats.inference_stats.cache_miss, zero);
  });

  it('counts response cache lookups per image as cache_hit and cache_miss, with their time', () => {
    const statistics = createInferenceStatistics({ now: () => 1_000 });
    const o = statistics.observer;
    o.cacheLookedUp(MODEL, true, 0.00001);
    o.cacheLookedUp(MODEL, true, 0.00002);
    o.cacheLookedUp(MODEL, false, 0.00004);
    const stats = statsOf(statistics);
    assert.deepEqual(stats.inference_stats.cache_hit, { count: 2, ns: 30_000 });
    assert.deepEqual(stats.inference_stats.cache_miss, { count: 1, ns: 40_000 });
    assert.equal(stats.execution_count, 0);
  });

  it('sums without drift: ten times 0.1 s is exactly 1e9 ns, and single nanoseconds count past 2^53', () => {
    const statistics = createInferenceStatistics();
    for (let i = 0; i < 10; i++) statistics.observer.queued(MODEL, 0.1);
    // The same durations summed as doubles in seconds lose the last digit.
    assert.notEqual(
      Array.from({ length: 10 }, () => 0.1).reduce((a, b) => a + b, 0),
      1,
    );
    assert.deepEqual(statsOf(statistics).inference_stats.queue, { count: 10, ns: 1_000_000_000 });

    // 1.8e16 ns is past 2^53, where a double cannot add 1; the BigInt sum still can.
    const big = createInferenceStatistics();
    big.observer.preprocessed(MODEL, 9_000_000);
    big.observer.preprocessed(MODEL, 9_000_000);
    for (let i = 0; i < 4; i++) big.observer.preprocessed(MODEL, 1e-9);
    assert.equal(18_000_000_000_000_000 + 1, 18_000_000_000_000_000, 'a double past 2^53 drops a single ns');
    assert.deepEqual(big.snapshot([MODEL])[0]!.inference_stats.compute_input, { count: 6, ns: 18_000_000_000_000_004 });
  });

  it('rounds each duration to the nearest nanosecond, and takes a duration that is not finite and positive as none', () => {
    const statistics = createInferenceStatistics();
    const o = statistics.observer;
    o.queued(MODEL, 1.4e-9);
    o.queued(MODEL, 1.6e-9);
    for (const bad of [Number.NaN, -0.5, Number.POSITIVE_INFINITY, 0]) assert.doesNotThrow(() => o.queued(MODEL, bad));
    assert.deepEqual(statsOf(statistics).inference_stats.queue, { count: 6, ns: 3 });
  });

  it('keeps compute_infer per batch size, ascending, and execution_count as their sum', () => {
    const statistics = createInferenceStatistics();
    const o = statistics.observer;
    o.computed(MODEL, 4, 0.04);
    o.computed(MODEL, 1, 0.01);
    o.computed(MODEL, 4, 0.042);
    o.computed(MODEL, 2, 0.02);
    o.computed(MODEL, 1, 0.011);

    const stats = statsOf(statistics);
    assert.deepEqual(stats.batch_stats, [
      { batch_size: 1, compute_input: zero, compute_infer: { count: 2, ns: 21_000_000 }, compute_output: zero },
      { batch_size: 2, compute_input: zero, compute_infer: { count: 1, ns: 20_000_000 }, compute_output: zero },
      { batch_size: 4, compute_input: zero, compute_infer: { count: 2, ns: 82_000_000 }, compute_output: zero },
    ]);
    assert.equal(stats.execution_count, 5);
    assert.equal(
      stats.execution_count,
      stats.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0),
    );
    assert.deepEqual(stats.inference_stats.compute_infer, { count: 5, ns: 123_000_000 });
  });

  it('counts ok as success; bad_input, timeout, cancelled and error as fail; rejected as neither', () => {
    const statistics = createInferenceStatistics();
    const o = statistics.observer;
    o.requestFinished(MODEL, 'ok', 0.01, 2, 'http');
    o.requestFinished(MODEL, 'ok', 0.02, 5, 'http');
    o.requestFinished(MODEL, 'bad_input', 0.001, 1, 'http');
    o.requestFinished(MODEL, 'timeout', 0.5, 3, 'http');
    o.requestFinished(MODEL, 'cancelled', 0.002, 1, 'http');
    o.requestFinished(MODEL, 'error', 0.003, 4, 'http');
    o.requestFinished(MODEL, 'rejected', 0, 8, 'http');

    const stats = statsOf(statistics);
    assert.deepEqual(stats.inference_stats.success, { count: 2, ns: 30_000_000 });
    assert.deepEqual(stats.inference_stats.fail, { count: 4, ns: 506_000_000 });
    // Items of successful requests only: failed and refused images were not inferred.
    assert.equal(stats.inference_count, 7);
    // A new outcome fails here, so that whoever adds it decides where the statistics count it.
    assert.deepEqual([...OUTCOMES].sort(), ['bad_input', 'cancelled', 'error', 'ok', 'rejected', 'timeout']);
  });

  it('sets last_inference, in whole ms since the epoch, when a request counted in success or fail ends', () => {
    const clock = manualClock(1_700_000_000_000.75);
    const statistics = createInferenceStatistics({ now: clock.now });
    const o = statistics.observer;
    o.computed(MODEL, 1, 0.01);
    o.requestStarted(MODEL);
    assert.equal(statsOf(statistics).last_inference, 0, 'no request has ended yet');

    o.requestFinished(MODEL, 'ok', 0.01, 1, 'http');
    assert.equal(statsOf(statistics).last_inference, 1_700_000_000_000);
    clock.set(1_700_000_005_000);
    o.requestFinished(MODEL, 'bad_input', 0.01, 1, 'http');
    assert.equal(statsOf(statistics).last_inference, 1_700_000_005_000);
    clock.set(1_700_000_009_000);
    o.requestFinished(MODEL, 'rejected', 0, 1, 'http');
    assert.equal(statsOf(statistics).last_inference, 1_700_000_005_000, 'a refusal is not an inference');
  });

  it('keeps each model apart', () => {
    const statistics = createInferenceStatistics({ now: () => 42 });
    statistics.observer.computed({ name: 'a', version: '1' }, 2, 0.002);
    statistics.observer.requestFinished({ name: 'a', version: '1' }, 'ok', 0.003, 2, 'http');
    statistics.observer.queued({ name: 'b', version: '1' }, 0.001);
    const [a, b] = statistics.snapshot([
      { name: 'a', version: '1' },
      { name: 'b', version: '1' },
    ]);
    assert.equal(a!.inference_count, 2);
    assert.equal(a!.execution_count, 1);
    assert.equal(a!.last_inference, 42);
    assert.deepEqual(a!.inference_stats.queue, zero);
    assert.equal(b!.inference_count, 0);
    assert.equal(b!.execution_count, 0);
    assert.equal(b!.last_inference, 0);
    assert.deepEqual(b!.inference_stats.queue, { count: 1, ns: 1_000_000 });
  });

  it('answers a snapshot that later traffic does not change', () => {
    const statistics = createInferenceStatistics();
    statistics.observer.computed(MODEL, 1, 0.001);
    const before = statsOf(statistics);
    statistics.observer.computed(MODEL, 1, 0.001);
    assert.equal(before.execution_count, 1);
    assert.deepEqual(before.batch_stats[0]!.compute_infer, { count: 1, ns: 1_000_000 });
    assert.equal(statsOf(statistics).execution_count, 2);
  });
});

describe('combineObservers', () => {
  /** An observer that records every call as `method(args)`. */
  function recorder(log: string[], tag: string): ServingObserver {
    const record =
      (method: string) =>
      (...args: unknown[]) =>
        void log.push(`${tag}.${method}(${args.map((a) => JSON.stringify(a)).join(',')})`);
    return {
      preprocessed: record('preprocessed'),
      queued: record('queued'),
      computed: record('computed'),
      postprocessed: record('postprocessed'),
      requestStarted: record('requestStarted'),
      requestFinished: record('requestFinished'),
      queueDepth: record('queueDepth'),
      inflightBatches: record('inflightBatches'),
      cacheLookedUp: record('cacheLookedUp'),
      cacheEvicted: record('cacheEvicted'),
      cacheUsage: record('cacheUsage'),
      coalesced: record('coalesced'),
      modelLoaded: record('modelLoaded'),
      modelUnloaded: record('modelUnloaded'),
      modelLoadFailed: record('modelLoadFailed'),
    };
  }

  it('tells every observer of every call, in the order given, with the same arguments', () => {
    const log: string[] = [];
    const combined = combineObservers(recorder(log, 'a'), recorder(log, 'b'));
    const M = { name: 'm', version: '1' };
    const info = { model: 'm', version: '1', executionProvider: 'cpu', sha256: 'ab', seconds: 0.5 };
    combined.preprocessed(M, 0.1);
    combined.queued(M, 0.2);
    combined.computed(M, 4, 0.3);
    combined.postprocessed(M, 0.4);
    combined.requestStarted(M);
    combined.requestFinished(M, 'timeout', 0.5, 2, 'http');
    combined.queueDepth(M, 7);
    combined.inflightBatches(M, 1);
    combined.cacheLookedUp(M, true, 0.001);
    combined.cacheEvicted(M);
    combined.cacheUsage(M, 2, 1000);
    combined.coalesced(M);
    combined.modelLoaded(info);
    combined.modelUnloaded(M);
    combined.modelLoadFailed('m', '2');
    const calls = [
      'preprocessed({"name":"m","version":"1"},0.1)',
      'queued({"name":"m","version":"1"},0.2)',
      'computed({"name":"m","version":"1"},4,0.3)',
      'postprocessed({"name":"m","version":"1"},0.4)',
      'requestStarted({"name":"m","version":"1"})',
      'requestFinished({"name":"m","version":"1"},"timeout",0.5,2,"http")',
      'queueDepth({"name":"m","version":"1"},7)',
      'inflightBatches({"name":"m","version":"1"},1)',
      'cacheLookedUp({"name":"m","version":"1"},true,0.001)',
      'cacheEvicted({"name":"m","version":"1"})',
      'cacheUsage({"name":"m","version":"1"},2,1000)',
      'coalesced({"name":"m","version":"1"})',
      `modelLoaded(${JSON.stringify(info)})`,
      'modelUnloaded({"name":"m","version":"1"})',
      'modelLoadFailed("m","2")',
    ];
    assert.deepEqual(
      log,
      calls.flatMap((c) => [`a.${c}`, `b.${c}`]),
    );
  });

  it('is the observer itself for one, and the null observer for none', () => {
    const one = recorder([], 'a');
    assert.equal(combineObservers(one), one);
    assert.equal(combineObservers(), nullObserver);
  });

  it('feeds the statistics beside another observer', () => {
    const statistics = createInferenceStatistics({ now: () => 7 });
    const log: string[] = [];
    const combined = combineObservers(recorder(log, 'metrics'), statistics.observer);
    combined.computed(MODEL, 3, 0.003);
    combined.requestFinished(MODEL, 'ok', 0.004, 3, 'http');
    assert.equal(log.length, 2);
    const stats = statsOf(statistics);
    assert.equal(stats.inference_count, 3);
    assert.equal(stats.execution_count, 1);
    assert.equal(stats.last_inference, 7);
  });
});

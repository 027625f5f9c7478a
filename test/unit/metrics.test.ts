/**
 * src/metrics.ts on its own: bucket layouts, option validation, one registry per instance,
 * what each observer call records, series initialised at model load,
 * default process metrics, and format negotiation.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import client from 'prom-client';
import { batchSizeBuckets, createMetrics, DROPPED_DEFAULT_METRICS, LATENCY_BUCKETS_SECONDS, wantsOpenMetrics, type Metrics } from '../../src/metrics.js';
import { OUTCOMES } from '../../src/serving/observer.js';
import { REPO_ROOT } from '../helpers.js';

type Labels = Record<string, string | number>;

/** The value of one sample (`name` as exposed, e.g. `foo_count`) whose labels include `labels`. */
async function sample(metrics: Metrics, family: string, name: string, labels: Labels = {}): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(family);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const found = values.filter(
    (v) => ((v as { metricName?: string }).metricName ?? family) === name && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === String(want)),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** The model version the observer calls here report on (the one `loadedModel` loads). */
const R20 = { name: 'resnet20', version: '3' };

const loadedModel = (metrics: Metrics, model = 'resnet20') =>
  metrics.observer.modelLoaded({ model, version: '3', executionProvider: 'cpu', sha256: 'ab'.repeat(32), seconds: 0.25 });

describe('bucket layouts', () => {
  it('spans latency from 1 ms to 10 s, strictly increasing', () => {
    assert.equal(LATENCY_BUCKETS_SECONDS[0], 0.001);
    assert.equal(LATENCY_BUCKETS_SECONDS.at(-1), 10);
    for (let i = 1; i < LATENCY_BUCKETS_SECONDS.length; i++) assert.ok(LATENCY_BUCKETS_SECONDS[i]! > LATENCY_BUCKETS_SECONDS[i - 1]!);
  });

  it('gives batch sizes 1, 2, 4, … up to and including the maximum', () => {
    assert.deepEqual(batchSizeBuckets(1), [1]);
    assert.deepEqual(batchSizeBuckets(2), [1, 2]);
    assert.deepEqual(batchSizeBuckets(4), [1, 2, 4]);
    assert.deepEqual(batchSizeBuckets(6), [1, 2, 4, 6]);
    assert.deepEqual(batchSizeBuckets(8), [1, 2, 4, 8]);
    assert.deepEqual(batchSizeBuckets(32), [1, 2, 4, 8, 16, 32]);
  });

  it('refuses a maximum batch size that is not a positive integer, naming it', () => {
    for (const bad of [0, -4, 2.5, Number.NaN]) {
      assert.throws(() => batchSizeBuckets(bad), { name: 'TypeError', message: `Expected \`maxBatchSize\` to be an integer from 1 and up, got \`${bad}\`` });
      assert.throws(() => createMetrics({ maxBatchSize: bad, defaultMetrics: false }), /`maxBatchSize`/);
    }
    assert.throws(() => createMetrics({ maxBatchSize: 4, queueMaxSize: 0, defaultMetrics: false }), {
      message: 'Expected `queueMaxSize` to be an integer from 1 and up, got `0`',
    });
  });

  it('uses those buckets in the exposition', async () => {
    const metrics = createMetrics({ maxBatchSize: 8, defaultMetrics: false });
    loadedModel(metrics);
    const { body } = await metrics.render(undefined);
    const les = (name: string) => [...body.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)",model="resnet20",version="3"\\}`, 'gm'))].map((m) => m[1]);
    assert.deepEqual(les('inference_batch_size'), ['1', '2', '4', '8', '+Inf']);
    assert.deepEqual(les('inference_queue_duration_seconds'), [...LATENCY_BUCKETS_SECONDS.map(String), '+Inf']);
  });
});

describe('registries', () => {
  it('gives every instance its own registry and leaves the global one alone', async () => {
    const globalBefore = await client.register.metrics();
    const a = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    const b = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    assert.notEqual(a.registry, b.registry);
    loadedModel(a);
    a.observer.requestStarted(R20);
    a.observer.requestFinished(R20, 'ok', 0.02, 3, 'http');
    assert.equal(await sample(a, 'inference_images_total', 'inference_images_total', { model: 'resnet20' }), 3);
    assert.equal(await sample(b, 'inference_images_total', 'inference_images_total', { model: 'resnet20' }), undefined);
    assert.equal(await client.register.metrics(), globalBefore);
  });
});

describe('observer', () => {
  it('starts every series of a loaded model at zero, with model_info and its load time', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, queueMaxSize: 64, defaultMetrics: false });
    loadedModel(metrics);
    const model = { model: 'resnet20' };
    assert.equal(await sample(metrics, 'model_info', 'model_info', { ...model, version: '3', execution_provider: 'cpu', sha256: 'ab'.repeat(32) }), 1);
    assert.equal(await sample(metrics, 'model_load_duration_seconds', 'model_load_duration_seconds', model), 0.25);
    for (const outcome of OUTCOMES) {
      assert.equal(await sample(metrics, 'inference_requests_total', 'inference_requests_total', { ...model, outcome }), 0, outcome);
      assert.equal(await sample(metrics, 'inference_request_duration_seconds', 'inference_request_duration_seconds_count', { ...model, outcome }), 0, outcome);
    }
    for (const stage of ['preprocess', 'queue', 'compute', 'postprocess']) {
      const family = `inference_${stage}_duration_seconds`;
      assert.equal(await sample(metrics, family, `${family}_count`, model), 0, stage);
    }
    assert.equal(await sample(metrics, 'inference_batch_size', 'inference_batch_size_count', model), 0);
    assert.equal(await sample(metrics, 'inference_queue_depth', 'inference_queue_depth', model), 0);
    assert.equal(await sample(metrics, 'inference_queue_capacity', 'inference_queue_capacity', model), 64);
    assert.equal(await sample(metrics, 'inference_inflight_batches', 'inference_inflight_batches', model), 0);
    assert.equal(await sample(metrics, 'inference_inflight_requests', 'inference_inflight_requests', model), 0);
    assert.equal(await sample(metrics, 'inference_images_total', 'inference_images_total', model), 0);
    assert.equal(await sample(metrics, 'inference_batches_total', 'inference_batches_total', model), 0);
  });

  it('gives each version of a model series of its own', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, queueMaxSize: 8, defaultMetrics: false });
    for (const version of ['1', '2'])
      metrics.observer.modelLoaded({ model: 'm', version, executionProvider: 'cpu', sha256: version.repeat(64), seconds: Number(version) });
    metrics.observer.computed({ name: 'm', version: '2' }, 3, 0.01);
    metrics.observer.queueDepth({ name: 'm', version: '1' }, 5);
    const of = (version: string) => ({ model: 'm', version });
    assert.equal(await sample(metrics, 'inference_batches_total', 'inference_batches_total', of('2')), 1);
    assert.equal(await sample(metrics, 'inference_batches_total', 'inference_batches_total', of('1')), 0);
    assert.equal(await sample(metrics, 'inference_queue_depth', 'inference_queue_depth', of('1')), 5);
    assert.equal(await sample(metrics, 'inference_queue_depth', 'inference_queue_depth', of('2')), 0);
    assert.equal(await sample(metrics, 'inference_queue_capacity', 'inference_queue_capacity', of('2')), 8);
    assert.equal(await sample(metrics, 'model_load_duration_seconds', 'model_load_duration_seconds', of('2')), 2);
    assert.equal(await sample(metrics, 'model_info', 'model_info', { ...of('1'), sha256: '1'.repeat(64) }), 1);
  });

  it('exports no queue capacity when it is not given', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    assert.equal(metrics.registry.getSingleMetric('inference_queue_capacity'), undefined);
  });

  it('records a finished request once, and its end-to-end time once per image', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    const o = metrics.observer;
    o.requestStarted(R20);
    o.requestStarted(R20);
    o.requestStarted(R20);
    assert.equal(await sample(metrics, 'inference_inflight_requests', 'inference_inflight_requests', { model: 'resnet20' }), 3);
    o.requestFinished(R20, 'ok', 0.03, 5, 'http');
    o.requestFinished(R20, 'bad_input', 0.004, 2, 'http');
    o.requestFinished(R20, 'timeout', 7, 1, 'http');
    const count = (outcome: string) =>
      sample(metrics, 'inference_request_duration_seconds', 'inference_request_duration_seconds_count', { model: 'resnet20', outcome });
    const requests = (outcome: string) => sample(metrics, 'inference_requests_total', 'inference_requests_total', { model: 'resnet20', outcome });
    assert.equal(await count('ok'), 5);
    assert.equal(await count('bad_input'), 2);
    assert.equal(await count('timeout'), 1);
    assert.equal(await requests('ok'), 1);
    assert.equal(await requests('bad_input'), 1);
    assert.equal(await requests('timeout'), 1);
    assert.equal(await requests('error'), 0);
    // Only successful images count as inferred.
    assert.equal(await sample(metrics, 'inference_images_total', 'inference_images_total', { model: 'resnet20' }), 5);
    assert.equal(await sample(metrics, 'inference_inflight_requests', 'inference_inflight_requests', { model: 'resnet20' }), 0);
    const okSum = await sample(metrics, 'inference_request_duration_seconds', 'inference_request_duration_seconds_sum', { model: 'resnet20', outcome: 'ok' });
    assert.ok(Math.abs(okSum! - 0.15) < 1e-12, `ok sum ${okSum}`);
    // 7 s lands between the 5 s and 10 s buckets.
    assert.equal(
      await sample(metrics, 'inference_request_duration_seconds', 'inference_request_duration_seconds_bucket', {
        model: 'resnet20',
        outcome: 'timeout',
        le: 5,
      }),
      0,
    );
    assert.equal(
      await sample(metrics, 'inference_request_duration_seconds', 'inference_request_duration_seconds_bucket', {
        model: 'resnet20',
        outcome: 'timeout',
        le: 10,
      }),
      1,
    );
  });

  it('records each stage, queue depth, in-flight batches and HTTP requests', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    const o = metrics.observer;
    o.preprocessed(R20, 0.012);
    o.preprocessed(R20, 0.013);
    o.queued(R20, 0.0005);
    o.postprocessed(R20, 0.0002);
    o.queueDepth(R20, 7);
    o.inflightBatches(R20, 1);
    metrics.observeHttp('POST', '/v1/models/{name}:predict', 200, 0.05);
    metrics.observeHttp('POST', '/v1/models/{name}:predict', 200, 0.07);
    metrics.observeHttp('GET', 'unmatched', 404, 0.001);
    assert.equal(await sample(metrics, 'inference_preprocess_duration_seconds', 'inference_preprocess_duration_seconds_count', { model: 'resnet20' }), 2);
    assert.equal(
      await sample(metrics, 'inference_preprocess_duration_seconds', 'inference_preprocess_duration_seconds_bucket', { model: 'resnet20', le: 0.01 }),
      0,
    );
    assert.equal(
      await sample(metrics, 'inference_preprocess_duration_seconds', 'inference_preprocess_duration_seconds_bucket', { model: 'resnet20', le: 0.025 }),
      2,
    );
    assert.equal(await sample(metrics, 'inference_queue_duration_seconds', 'inference_queue_duration_seconds_bucket', { model: 'resnet20', le: 0.001 }), 1);
    assert.equal(await sample(metrics, 'inference_postprocess_duration_seconds', 'inference_postprocess_duration_seconds_count', { model: 'resnet20' }), 1);
    assert.equal(await sample(metrics, 'inference_queue_depth', 'inference_queue_depth', { model: 'resnet20' }), 7);
    assert.equal(await sample(metrics, 'inference_inflight_batches', 'inference_inflight_batches', { model: 'resnet20' }), 1);
    const http = { method: 'POST', route: '/v1/models/{name}:predict', status_code: '200' };
    assert.equal(await sample(metrics, 'http_request_duration_seconds', 'http_request_duration_seconds_count', http), 2);
    assert.equal(
      await sample(metrics, 'http_request_duration_seconds', 'http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status_code: '404' }),
      1,
    );
  });
});

describe('response cache and coalescing series', () => {
  const CACHE_SERIES = [
    'inference_response_cache_hits_total',
    'inference_response_cache_misses_total',
    'inference_response_cache_evictions_total',
    'inference_response_cache_bytes',
    'inference_response_cache_entries',
    'inference_coalesced_images_total',
  ];

  it('start at zero for a loaded version, count lookups, evictions and joins, and gauge usage', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    const model = { model: 'resnet20', version: '3' };
    for (const name of CACHE_SERIES) assert.equal(await sample(metrics, name, name, model), 0, name);
    const o = metrics.observer;
    o.cacheLookedUp(R20, true, 0.0001);
    o.cacheLookedUp(R20, true, 0.0001);
    o.cacheLookedUp(R20, false, 0.0001);
    o.cacheEvicted(R20);
    o.cacheUsage(R20, 3, 1260);
    o.coalesced(R20);
    assert.equal(await sample(metrics, 'inference_response_cache_hits_total', 'inference_response_cache_hits_total', model), 2);
    assert.equal(await sample(metrics, 'inference_response_cache_misses_total', 'inference_response_cache_misses_total', model), 1);
    assert.equal(await sample(metrics, 'inference_response_cache_evictions_total', 'inference_response_cache_evictions_total', model), 1);
    assert.equal(await sample(metrics, 'inference_response_cache_entries', 'inference_response_cache_entries', model), 3);
    assert.equal(await sample(metrics, 'inference_response_cache_bytes', 'inference_response_cache_bytes', model), 1260);
    assert.equal(await sample(metrics, 'inference_coalesced_images_total', 'inference_coalesced_images_total', model), 1);
  });

  it("keep a reloaded version's cache usage (its earlier load's entries are still held), and go with the version", async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    metrics.observer.cacheUsage(R20, 2, 840);
    loadedModel(metrics);
    const model = { model: 'resnet20', version: '3' };
    assert.equal(await sample(metrics, 'inference_response_cache_bytes', 'inference_response_cache_bytes', model), 840);
    metrics.observer.modelUnloaded(R20);
    for (const name of CACHE_SERIES) assert.equal(await sample(metrics, name, name, model), undefined, name);
    loadedModel(metrics);
    assert.equal(await sample(metrics, 'inference_response_cache_bytes', 'inference_response_cache_bytes', model), 0, 'a load after the unload starts at zero');
  });
});

describe('docs/metrics.md', () => {
  it('describes every series this file defines', async () => {
    const metrics = createMetrics({
      maxBatchSize: 4,
      queueMaxSize: 8,
      defaultMetrics: false,
      memoryBudgets: { body: { usedBytes: 0, capacityBytes: 1 }, decode: { usedBytes: 0, capacityBytes: 1, waiting: 0 } },
    });
    const doc = await readFile(join(REPO_ROOT, 'docs', 'metrics.md'), 'utf8');
    for (const metric of metrics.registry.getMetricsAsArray()) assert.ok(doc.includes(`| \`${metric.name}\` |`), `${metric.name} has a row in docs/metrics.md`);
  });
});

describe('default process metrics', () => {
  const processMetrics = [
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_heap_size_used_bytes',
    'nodejs_gc_duration_seconds',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
  ];

  it('exports event-loop lag, heap, GC, CPU and memory, without the `_total` gauges', async () => {
    const metrics = createMetrics({ maxBatchSize: 4 });
    for (const name of processMetrics) assert.ok(metrics.registry.getSingleMetric(name), `${name} is exported`);
    for (const name of DROPPED_DEFAULT_METRICS) {
      assert.equal(metrics.registry.getSingleMetric(name), undefined, `${name} is left out`);
      // The per-type gauge it summed stays.
      assert.ok(metrics.registry.getSingleMetric(name.replace(/_total$/, '')) || name === 'nodejs_active_resources_total', `${name} without _total`);
    }
    const { body } = await metrics.render(undefined);
    assert.match(body, /^nodejs_eventloop_lag_p99_seconds \d/m);
    assert.match(body, /^process_resident_memory_bytes \d/m);
  });

  it('exports none of them when asked not to', () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    for (const name of processMetrics) assert.equal(metrics.registry.getSingleMetric(name), undefined, name);
  });
});

describe('format negotiation', () => {
  it('chooses OpenMetrics only when Accept lists it with a quality above zero', () => {
    assert.equal(wantsOpenMetrics(undefined), false);
    assert.equal(wantsOpenMetrics('*/*'), false);
    assert.equal(wantsOpenMetrics('text/plain;version=0.0.4'), false);
    assert.equal(wantsOpenMetrics('application/openmetrics-text; version=1.0.0'), true);
    // What Prometheus 2.x sends.
    assert.equal(
      wantsOpenMetrics('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'),
      true,
    );
    assert.equal(wantsOpenMetrics('Application/OpenMetrics-Text;q=0.3, text/plain'), true);
    assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0, text/plain'), false);
    assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0.0'), false);
  });

  it('keeps counter names in the text format after an OpenMetrics render (prom-client renames them in place)', async () => {
    const metrics = createMetrics({ maxBatchSize: 4 });
    loadedModel(metrics);
    const before = (await metrics.render('text/plain')).body;
    const open = (await metrics.render('application/openmetrics-text')).body;
    assert.match(open, /^inference_requests_total\{model="resnet20",version="3",outcome="ok",protocol="http"\} 0$/m);
    const after = (await metrics.render('text/plain')).body;
    for (const body of [before, after]) {
      assert.match(body, /^# TYPE inference_requests_total counter$/m);
      assert.match(body, /^inference_requests_total\{model="resnet20",version="3",outcome="ok",protocol="http"\} 0$/m);
      assert.match(body, /^process_cpu_seconds_total \d/m);
      assert.doesNotMatch(body, /^inference_requests\{/m);
    }
    assert.ok(metrics.registry.getSingleMetric('inference_images_total'));
  });

  it('renders each format with its content type, even when scrapes overlap', async () => {
    const metrics = createMetrics({ maxBatchSize: 4, defaultMetrics: false });
    loadedModel(metrics);
    const accepts = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'application/openmetrics-text; version=1.0.0' : 'text/plain'));
    const results = await Promise.all(accepts.map((accept) => metrics.render(accept)));
    results.forEach(({ contentType, body }, i) => {
      if (i % 2 === 0) {
        assert.equal(contentType, client.Registry.OPENMETRICS_CONTENT_TYPE);
        assert.ok(body.endsWith('# EOF\n'), 'OpenMetrics ends with # EOF');
        // OpenMetrics names the counter family without its _total suffix.
        assert.match(body, /^# TYPE inference_requests counter$/m);
      } else {
        assert.equal(contentType, client.Registry.PROMETHEUS_CONTENT_TYPE);
        assert.doesNotMatch(body, /# EOF/);
        assert.match(body, /^# TYPE inference_requests_total counter$/m);
      }
      assert.match(body, /^inference_requests_total\{model="resnet20",version="3",outcome="ok",protocol="http"\} 0$/m);
    });
  });
});

/**
 * Every Prometheus metric of the service, in one prom-client Registry per app instance (no
 * global registry: tests build many apps). Labels take values from small fixed sets only:
 * model names and versions (the loaded model versions), route templates, methods, status codes,
 * outcomes. Every model-level series carries both `model` and `version`.
 * Durations are in seconds (Prometheus convention). docs/metrics.md describes every series;
 * keep it in step with this file.
 */
import client from 'prom-client';
import { OUTCOMES, type ModelKey, type Protocol, type ServingObserver } from './serving/observer.js';

/** 1 ms to 10 s: CPU ResNets take tens of ms per batch, GPUs a few, overloads seconds. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10];

/**
 * prom-client default metrics left out of the exposition. Each is a gauge named `_total`
 * (which `promtool check metrics` rejects: `_total` is for counters) and is only the sum of
 * a kept series: `sum(nodejs_active_handles)` etc. give the same number.
 */
export const DROPPED_DEFAULT_METRICS: readonly string[] = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** 1, 2, 4, … up to and including `max`. */
export function batchSizeBuckets(max: number): number[] {
  validateCount('maxBatchSize', max);
  const buckets: number[] = [];
  for (let b = 1; b < max; b *= 2) buckets.push(b);
  buckets.push(max);
  return buckets;
}

function validateCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be an integer from 1 and up, got \`${value}\``);
}

/** Chooses OpenMetrics when the `Accept` header lists it with a quality above zero. */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    if (type !== 'application/openmetrics-text') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

export interface Metrics {
  readonly registry: client.Registry<client.RegistryContentType>;
  readonly observer: ServingObserver;
  /** Records one HTTP request; `route` is the route template, never the raw URL. */
  observeHttp(method: string, route: string, statusCode: number, seconds: number): void;
  /** The exposition in the format `accept` asks for (OpenMetrics or Prometheus text). */
  render(accept: string | undefined): Promise<{ contentType: string; body: string }>;
}

export interface MetricsOptions {
  /** Largest batch any model forms; the batch-size histogram's buckets reach it. */
  readonly maxBatchSize: number;
  /**
   * Images one model's queue may hold (`QUEUE_MAX_SIZE`), exported as
   * `inference_queue_capacity` so that queue saturation can be alerted on as a ratio.
   * Left out, that gauge is not exported.
   */
  readonly queueMaxSize?: number;
  /** The edges requests come in by, whose series start at zero. @default ['http'] */
  readonly protocols?: readonly Protocol[];
  /** Collect prom-client's default Node.js process metrics. @default true */
  readonly defaultMetrics?: boolean;
  /**
   * The process's memory budgets, read at each scrape: bytes of request bodies still arriving
   * (body-budget.ts) and of image decodes in flight (decode-budget.ts). Left out, not exported.
   */
  readonly memoryBudgets?: {
    readonly body: MemoryBudgetView;
    readonly decode: MemoryBudgetView & { readonly waiting: number };
  };
}

/** What a gauge reads of a memory budget. */
export interface MemoryBudgetView {
  readonly usedBytes: number;
  readonly capacityBytes: number;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const batchBuckets = batchSizeBuckets(options.maxBatchSize);
  const protocols = options.protocols ?? ['http'];
  if (options.queueMaxSize !== undefined) validateCount('queueMaxSize', options.queueMaxSize);
  const registry = new client.Registry<client.RegistryContentType>();
  if (options.defaultMetrics ?? true) {
    client.collectDefaultMetrics({ register: registry });
    for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  const registers = [registry];
  const buckets = [...LATENCY_BUCKETS_SECONDS];

  const http = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status code, from arrival to response sent.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets,
    registers,
  });
  const stage = (name: string, help: string) => new client.Histogram({ name, help, labelNames: ['model', 'version'] as const, buckets, registers });
  const requestDuration = new client.Histogram({
    name: 'inference_request_duration_seconds',
    help: 'Inference per image, end to end (decode to answer), by outcome and protocol.',
    labelNames: ['model', 'version', 'outcome', 'protocol'] as const,
    buckets,
    registers,
  });
  const preprocess = stage('inference_preprocess_duration_seconds', 'Decoding and preprocessing of one image.');
  const queue = stage('inference_queue_duration_seconds', 'Time one image waited in the batch queue.');
  const compute = stage('inference_compute_duration_seconds', 'Time one batch ran inside the inference session.');
  const postprocess = stage('inference_postprocess_duration_seconds', "Turning one request's outputs into its answer.");
  const batchSize = new client.Histogram({
    name: 'inference_batch_size',
    help: 'Images per batch run.',
    labelNames: ['model', 'version'] as const,
    buckets: batchBuckets,
    registers,
  });
  const requests = new client.Counter({
    name: 'inference_requests_total',
    help: 'Inference requests by outcome (ok, bad_input, rejected, timeout, cancelled, error) and protocol (http, grpc).',
    labelNames: ['model', 'version', 'outcome', 'protocol'] as const,
    registers,
  });
  const images = new client.Counter({
    name: 'inference_images_total',
    help: 'Images (or tensor items) inferred successfully.',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const batches = new client.Counter({
    name: 'inference_batches_total',
    help: 'Batches run to completion.',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const queueDepth = new client.Gauge({
    name: 'inference_queue_depth',
    help: 'Images waiting in the batch queue.',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const queueCapacity =
    options.queueMaxSize === undefined
      ? undefined
      : new client.Gauge({
          name: 'inference_queue_capacity',
          help: 'Images the batch queue holds before it refuses requests (QUEUE_MAX_SIZE).',
          labelNames: ['model', 'version'] as const,
          registers,
        });
  const inflightRequests = new client.Gauge({
    name: 'inference_inflight_requests',
    help: 'Inference requests admitted and not yet answered (preprocessing, queued or running).',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const inflight = new client.Gauge({ name: 'inference_inflight_batches', help: 'Batches running now.', labelNames: ['model', 'version'] as const, registers });
  const budgets = options.memoryBudgets;
  if (budgets !== undefined) {
    const gauge = (name: string, help: string, read: () => number) =>
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge(
      'http_request_body_arriving_bytes',
      'Bytes received of request bodies not yet complete (BODY_MEMORY_BUDGET_BYTES bounds them).',
      () => budgets.body.usedBytes,
    );
    gauge('http_request_body_budget_bytes', 'BODY_MEMORY_BUDGET_BYTES.', () => budgets.body.capacityBytes);
    gauge('image_decode_reserved_bytes', 'Memory reserved by image decodes running now, as estimated from their headers.', () => budgets.decode.usedBytes);
    gauge('image_decode_budget_bytes', 'DECODE_MEMORY_BUDGET_BYTES.', () => budgets.decode.capacityBytes);
    gauge('image_decode_waiting', 'Images waiting for decoding memory.', () => budgets.decode.waiting);
  }
  const modelInfo = new client.Gauge({
    name: 'model_info',
    help: 'A loaded model; always 1.',
    labelNames: ['model', 'version', 'execution_provider', 'sha256'] as const,
    registers,
  });
  const loadDuration = new client.Gauge({
    name: 'model_load_duration_seconds',
    help: 'Time to load and warm up the model version.',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const loadFailures = new client.Counter({
    name: 'model_load_failures_total',
    help: 'Loads of a model (version, when one version failed) that failed, leaving what served before serving.',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  /** model_info's labels of each loaded version, to remove its series when it is retired. */
  const infoLabels = new Map<string, { execution_provider: string; sha256: string }>();
  /** The labels of a model version's series. */
  const of = (model: ModelKey) => ({ model: model.name, version: model.version });

  const observer: ServingObserver = {
    preprocessed: (model, seconds) => preprocess.observe(of(model), seconds),
    queued: (model, seconds) => queue.observe(of(model), seconds),
    computed(model, size, seconds) {
      const labels = of(model);
      compute.observe(labels, seconds);
      batchSize.observe(labels, size);
      batches.inc(labels);
    },
    postprocessed: (model, seconds) => postprocess.observe(of(model), seconds),
    requestStarted: (model) => inflightRequests.inc(of(model)),
    requestFinished(model, outcome, seconds, count, protocol) {
      const labels = of(model);
      inflightRequests.dec(labels);
      requests.inc({ ...labels, outcome, protocol });
      if (outcome === 'ok') images.inc(labels, count);
      for (let i = 0; i < count; i++) requestDuration.observe({ ...labels, outcome, protocol }, seconds);
    },
    queueDepth: (model, depth) => queueDepth.set(of(model), depth),
    inflightBatches: (model, count) => inflight.set(of(model), count),
    modelLoaded({ model, version, executionProvider, sha256, seconds }) {
      const labels = { model, version };
      const key = JSON.stringify([model, version]);
      const previous = infoLabels.get(key);
      if (previous) modelInfo.remove({ ...labels, ...previous });
      infoLabels.set(key, { execution_provider: executionProvider, sha256 });
      modelInfo.set({ ...labels, execution_provider: executionProvider, sha256 }, 1);
      loadDuration.set(labels, seconds);
      // Every series starts at zero, so that rate() sees the first request and alerts see the
      // model before any traffic (a series that appears with its first sample has no increase).
      for (const protocol of protocols) {
        for (const outcome of OUTCOMES) {
          requests.inc({ ...labels, outcome, protocol }, 0);
          requestDuration.zero({ ...labels, outcome, protocol });
        }
      }
      for (const histogram of [preprocess, queue, compute, postprocess, batchSize]) histogram.zero(labels);
      images.inc(labels, 0);
      batches.inc(labels, 0);
      queueDepth.set(labels, 0);
      queueCapacity?.set(labels, options.queueMaxSize!);
      inflight.set(labels, 0);
      inflightRequests.set(labels, 0);
    },
    modelUnloaded(model) {
      const labels = of(model);
      const key = JSON.stringify([model.name, model.version]);
      const info = infoLabels.get(key);
      if (info) modelInfo.remove({ ...labels, ...info });
      infoLabels.delete(key);
      for (const protocol of protocols) {
        for (const outcome of OUTCOMES) {
          requests.remove({ ...labels, outcome, protocol });
          requestDuration.remove({ ...labels, outcome, protocol });
        }
      }
      for (const metric of [preprocess, queue, compute, postprocess, batchSize, images, batches, queueDepth, inflight, inflightRequests, loadDuration])
        metric.remove(labels);
      queueCapacity?.remove(labels);
    },
    modelLoadFailed(model, version) {
      loadFailures.inc({ model, version: version ?? '' });
    },
  };

  // The registry's content type is state: serialize renders so two scrapes asking for
  // different formats never interleave.
  let rendering: Promise<unknown> = Promise.resolve();

  // prom-client 15's OpenMetrics render strips `_total` from each counter's `name` in place
  // (prometheus/client_js#829), after which the Prometheus text format would expose
  // `inference_requests{…}` instead of `inference_requests_total{…}`. Names are put back
  // after every render.
  const renderRestoringNames = async (): Promise<string> => {
    const names = registry.getMetricsAsArray().map((metric) => [metric, metric.name] as const);
    try {
      return await registry.metrics();
    } finally {
      for (const [metric, name] of names) metric.name = name;
    }
  };

  return {
    registry,
    observer,
    observeHttp: (method, route, statusCode, seconds) => http.observe({ method, route, status_code: String(statusCode) }, seconds),
    render(accept) {
      const contentType = wantsOpenMetrics(accept) ? client.Registry.OPENMETRICS_CONTENT_TYPE : client.Registry.PROMETHEUS_CONTENT_TYPE;
      const result = rendering.then(async () => {
        registry.setContentType(contentType);
        return { contentType, body: await renderRestoringNames() };
      });
      rendering = result.catch(() => undefined);
      return result;
    },
  };
}

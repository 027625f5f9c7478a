/**
 * Builds the application: the serving core (model registry, batchers, workers) and the
 * Fastify instance in front of it. It never listens and never reads the environment; the
 * entry point (server.ts) does both. Models are loaded by `app.serving.registry.load()`,
 * so that probes answer while loading.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import type { Config } from './config.js';
import { errors } from './errors.js';
import { DEFAULT_BATCH_MAX_SIZE } from './inference/execution-provider.js';
import { AccessLogController, installAccessLog } from './http/access-log.js';
import { installImageTypeParser, isRawImageBody } from './http/accepted-bodies.js';
import { createApiKeyCheck } from './http/auth.js';
import type { RouteContext } from './http/context.js';
import { createClientErrorHandler, handleFrameworkError, installErrorHandler } from './http/error-handler.js';
import { HTTP_EDGE_SERVER_OPTIONS, installHttpEdge } from './http/http-edge.js';
import { createIncomingBodies } from './http/incoming-bodies.js';
import { createBodyBudget } from './http/body-budget.js';
import { installRequestBodies } from './http/request-body.js';
import { createJsonBodyParser, defaultJsonBodyLimits } from './protocol/json-body.js';
import { createLoadShedder } from './http/load-shedding.js';
import { multipartLimits } from './http/request-inputs.js';
import { docsRoutes } from './http/routes/docs.js';
import { healthRoutes } from './http/routes/health.js';
import { metricsRoutes } from './http/routes/metrics.js';
import { pageRoutes } from './http/routes/page.js';
import { statisticsRoutes } from './http/routes/statistics.js';
import { v1Routes } from './http/routes/v1.js';
import { v2Routes } from './http/routes/v2.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createDecodeBudget, createDecodeThreads } from './preprocess/index.js';
import { createInferenceService, type InferenceService } from './serving/inference-service.js';
import { createModelControl, type ModelControl } from './serving/model-control.js';
import { createModelRegistry, type ModelRegistry } from './serving/model-registry.js';
import { repositoryRoutes } from './http/routes/repository.js';
import { combineObservers, nullObserver } from './serving/observer.js';
import { createResponseCache } from './serving/response-cache.js';
import type { Lifecycle } from './serving/readiness.js';
import { createInferenceStatistics, type InferenceStatistics } from './serving/statistics.js';
import { projectVersion } from './system/project-root.js';

/** What `/v2` and gRPC's ServerMetadata report: package.json's version. */
export const SERVER_VERSION = projectVersion();

export interface AppDeps {
  /** Runs before the repository is scanned (the entry point builds the default model here). */
  readonly prepareRepository?: (log: FastifyBaseLogger) => Promise<void>;
  /** Inference worker entry override, for tests. */
  readonly workerUrl?: URL;
  /** Collect Node.js process metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** Where the log's JSON lines go (tests capture them here). @default stdout */
  readonly logStream?: { write(line: string): void };
  /** Clock of the access log's sampling of shed requests, in ms (access-log.ts). @default performance.now */
  readonly logClock?: () => number;
}

export interface RouteInfo {
  readonly method: string;
  /** The documented path (openapi.yaml's form, e.g. `/v1/models/{name}:predict`). */
  readonly path: string;
  /** False for the Swagger UI's own pages and assets under `/docs` (`schema.hide`). */
  readonly documented: boolean;
}

export interface Serving {
  readonly registry: ModelRegistry;
  /** Loads and unloads while serving (`MODEL_CONTROL_MODE` explicit or poll); `undefined` with `none`. */
  readonly control: ModelControl | undefined;
  /** Every route the app serves; the contract test compares them with openapi.yaml. */
  readonly routes: readonly RouteInfo[];
  /** Stops intake, finishes admitted requests, drains every model (see InferenceService.stop). */
  drain(): Promise<void>;
  /**
   * Answers 503 SHUTTING_DOWN to every request whose body is still arriving, and closes their
   * connections (see incoming-bodies.ts); returns how many. For the end of a drain.
   */
  refuseIncompleteBodies(): number;
  readonly metrics: Metrics;
  readonly lifecycle: Lifecycle;
  /** The transport-free data plane, for the other edges (gRPC) the entry point starts. */
  readonly dataPlane: { readonly service: InferenceService; readonly statistics: InferenceStatistics };
}

declare module 'fastify' {
  interface FastifyInstance {
    serving: Serving;
  }
  interface FastifyContextConfig {
    /** Route template for metrics when the router's own differs (e.g. `{name}:predict`). */
    routeTemplate?: string;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Route template as a metric label: `/v2/models/:name/infer` → `/v2/models/{name}/infer`. */
export function routeLabel(url: string | undefined, template: string | undefined): string {
  if (template !== undefined) return template;
  if (url === undefined) return 'unmatched';
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Longest a model name in a path may be, in characters as sent (percent-encoded): a file
 * system's 255-byte name, every byte escaped. Longer segments are refused by the router (404).
 */
const MAX_PATH_PARAM_LENGTH = 3 * 255;

/**
 * How often Node looks for connections past `headersTimeout` or `requestTimeout`, in ms. Node
 * checks only at this interval (30 s by default), so it bounds how late a timeout fires.
 */
export function connectionsCheckingIntervalMs(config: Pick<Config, 'httpHeadersTimeoutMs' | 'httpRequestTimeoutMs'>): number {
  return Math.max(10, Math.min(1_000, Math.floor(Math.min(config.httpHeadersTimeoutMs, config.httpRequestTimeoutMs) / 4)));
}

/**
 * Fastify options both servers share (the API's and `METRICS_PORT`'s): logging, the slow-client
 * timeouts, and the doors through which framework and parser refusals reach the error catalog.
 */
function serverOptions(config: Config, { logStream, logClock }: Pick<AppDeps, 'logStream' | 'logClock'>) {
  // Node's clientError fires on the server, outside any request: it logs through the app's logger.
  const appLog: { current?: FastifyBaseLogger } = {};
  const options = {
    logger: {
      level: config.logLevel,
      // Keys and cookies never reach the log (Fastify's request serializer leaves headers out
      // anyway; this holds if a log line ever includes them).
      redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'headers.authorization'],
      ...(logStream ? { stream: logStream } : {}),
    },
    // Slow clients: headers must arrive within httpHeadersTimeoutMs and the whole request within
    // httpRequestTimeoutMs, or the connection is closed; idle keep-alive connections close
    // after httpKeepAliveTimeoutMs.
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    requestTimeout: config.httpRequestTimeoutMs,
    http: {
      headersTimeout: config.httpHeadersTimeoutMs,
      requestTimeout: config.httpRequestTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingIntervalMs(config),
      ...HTTP_EDGE_SERVER_OPTIONS,
    },
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: createClientErrorHandler(() => appLog.current),
    return503OnClosing: true,
    // One line per request instead of two (access-log.ts).
    logController: new AccessLogController(logClock ? { now: logClock } : {}),
  };
  return { options, appLog };
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const { options, appLog } = serverOptions(config, deps);
  const app = Fastify({
    ...options,
    bodyLimit: config.jsonBodyMaxBytes,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // request.ip (rate limit, logs) from X-Forwarded-For only when it comes from a trusted proxy.
    trustProxy: config.trustProxy === false ? false : [...config.trustProxy],
  });
  appLog.current = app.log;

  const bodyBudget = createBodyBudget(config.bodyMemoryBudgetBytes);
  const decodeBudget = createDecodeBudget({ capacityBytes: config.decodeMemoryBudgetBytes, maxImageBytes: config.maxImageDecodeBytes });
  // Shared by every model's preprocessor; threads start on the first large image.
  const decodeThreads = config.decodeThreads === 0 ? undefined : createDecodeThreads({ size: config.decodeThreads, niceIncrement: config.decodeNice });
  // Batch-size buckets must reach the largest batch any provider may form.
  const metrics = createMetrics({
    memoryBudgets: { body: bodyBudget, decode: decodeBudget },
    protocols: config.grpcPort === 0 ? ['http'] : ['http', 'grpc'],
    maxBatchSize: config.batchMaxSize ?? Math.max(...Object.values(DEFAULT_BATCH_MAX_SIZE)),
    queueMaxSize: config.queueMaxSize,
    defaultMetrics: deps.defaultMetrics ?? true,
  });
  // Triton's statistics extension reads the same reports as the metrics, so the two agree.
  const statistics = createInferenceStatistics();
  const reported = combineObservers(metrics.observer, statistics.observer);
  const responseCache = createResponseCache({
    maxBytes: config.responseCacheMaxBytes,
    observer: { evicted: (model) => reported.cacheEvicted(model), usage: (model, entries, bytes) => reported.cacheUsage(model, entries, bytes) },
  });
  // A version taken out of service (no new load of it serves) leaves the cache with its series.
  const observer = combineObservers(reported, { ...nullObserver, modelUnloaded: (model) => responseCache.forget(model) });
  const lifecycle: Lifecycle = { draining: false };
  const registry = createModelRegistry({
    repository: config.modelRepository,
    defaultModel: config.defaultModel,
    initialModels: config.modelControlMode === 'explicit' ? config.modelLoad : '*',
    ...(deps.prepareRepository ? { prepare: () => deps.prepareRepository!(app.log) } : {}),
    load: {
      executionProvider: config.executionProvider,
      cuda: { deviceId: config.cudaDeviceId, memLimitBytes: config.cudaMemLimitBytes, cudnnConvAlgoSearch: config.cudnnConvAlgoSearch },
      intraOpThreads: config.intraOpThreads,
      inferenceNice: config.inferenceNice,
      workers: config.inferenceWorkers,
      batchMaxSize: config.batchMaxSize,
      batchMaxDelayMs: config.batchMaxDelayMs,
      queueMaxSize: config.queueMaxSize,
      maxImagePixels: config.maxImagePixels,
      decodeBudget,
      ...(decodeThreads ? { decodeThreads } : {}),
      observer,
      log: app.log,
      ...(deps.workerUrl ? { workerUrl: deps.workerUrl } : {}),
    },
  });
  const service = createInferenceService(registry, observer, { maxInflightPerModel: config.queueMaxSize, responseCache });
  const control =
    config.modelControlMode === 'none' ? undefined : createModelControl({ repository: config.modelRepository, registry, service, observer, log: app.log });
  // Rescans begin once the startup load is done (a tick before it does nothing).
  if (config.modelControlMode === 'poll') control!.startPolling(config.modelPollIntervalS * 1000);
  const stopServing = () => (control ? control.stop() : Promise.resolve()).then(() => service.stop());
  const routes: RouteInfo[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const documented = route.schema?.hide !== true;
    for (const method of methods) if (method !== 'HEAD') routes.push({ method, path: routeLabel(route.url, route.config?.routeTemplate), documented });
  });
  const incoming = createIncomingBodies();
  app.decorate('serving', {
    registry,
    control,
    metrics,
    lifecycle,
    routes,
    drain: stopServing,
    refuseIncompleteBodies: () => incoming.refuseAll(),
    dataPlane: { service, statistics },
  });
  const ctx: RouteContext = { config, registry, service, metrics, lifecycle, version: SERVER_VERSION };

  // A client refused with 503 or 429 may send a body up to the largest the routes take; it is
  // drained rather than cut off, so the client reads its Retry-After (not a shed request's:
  // see error-handler.ts).
  installErrorHandler(app, { drainRetryableMaxBytes: Math.max(config.uploadMaxBytes, config.jsonBodyMaxBytes) });
  // Hooks on every request take callbacks rather than being async: no promise and no extra
  // microtask per request.
  app.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('X-Request-Id', request.id);
    // RFC 8259 defines no charset for application/json (it is UTF-8), and KServe's client shows
    // the server's error text only when the type is exactly `application/json`.
    if (reply.getHeader('content-type') === 'application/json; charset=utf-8') void reply.header('Content-Type', 'application/json');
    // Inference answers carry their stages; every other answer at least its total.
    if (!reply.hasHeader('Server-Timing')) void reply.header('Server-Timing', `total;dur=${reply.elapsedTime.toFixed(1)}`);
    done(null, payload);
  });
  installHttpEdge(app);
  installRequestBodies(app, bodyBudget, incoming, isRawImageBody);
  installAccessLog(app);
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeHttp(
      request.method,
      routeLabel(request.routeOptions.url, request.routeOptions.config?.routeTemplate),
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });
  app.addHook('onClose', async () => {
    await stopServing();
    await decodeThreads?.close();
  });

  // Fastify parses text/plain by default; nothing here takes text, so it is refused (415).
  app.removeContentTypeParser('text/plain');
  // JSON bodies: nesting, arrays and objects, and keys are counted in one pass over the bytes
  // and refused before JSON.parse sees them (json-body.ts: a 16 MiB nested body took 1.6 s).
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: config.jsonBodyMaxBytes },
    createJsonBodyParser(defaultJsonBodyLimits(config.jsonBodyMaxBytes)),
  );
  // Raw image bodies declared image/*. The generic types a raw image may also come under
  // (application/octet-stream, curl's urlencoded default, none) are each route plugin's own
  // (accepted-bodies.ts, routes/v2.ts), since what they mean differs by route.
  installImageTypeParser(app, config.uploadMaxBytes);
  await app.register(multipart, { throwFileSizeLimit: true, limits: multipartLimits(config) });
  if (config.rateLimitMax > 0) {
    await app.register(rateLimit, {
      max: config.rateLimitMax,
      timeWindow: config.rateLimitWindowMs,
      errorResponseBuilder: (_request, context) =>
        errors.RATE_LIMITED(`Rate limit of ${context.max} requests per ${context.after} exceeded`, {
          retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)),
        }),
    });
  }

  const auth = createApiKeyCheck(config.apiKeys);
  // Requests for a model with no room are refused before their bodies are read.
  const shedLoad = createLoadShedder({ service, observer });
  await app.register(healthRoutes(ctx));
  await app.register(pageRoutes());
  if (config.metricsPort === undefined) await app.register(metricsRoutes(metrics, auth));
  await app.register(v1Routes(ctx, auth, shedLoad));
  await app.register(statisticsRoutes(ctx, auth, statistics));
  await app.register(v2Routes(ctx, auth, shedLoad));
  await app.register(repositoryRoutes(ctx, auth, control));
  await app.register(docsRoutes());
  return app;
}

/** A second, minimal server for `/metrics` alone (`METRICS_PORT`), open to whoever reaches it. */
export async function buildMetricsApp(config: Config, metrics: Metrics, deps: Pick<AppDeps, 'logStream'> = {}): Promise<FastifyInstance> {
  const { options, appLog } = serverOptions(config, deps);
  const app = Fastify(options);
  appLog.current = app.log;
  installHttpEdge(app);
  installAccessLog(app);
  installErrorHandler(app);
  await app.register(metricsRoutes(metrics));
  return app;
}

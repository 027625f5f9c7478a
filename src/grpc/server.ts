/**
 * The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, wire-compatible with
 * KServe's grpc_predict_v2.proto and Triton's grpc_service.proto) and the standard
 * `grpc.health.v1.Health` service, on @grpc/grpc-js: the one module that imports it. Another
 * edge over the same data plane as HTTP: requests decode into the same validated request
 * (codec.ts), run through the same batchers, limits, deadlines and statistics, and errors come
 * from the same catalog, mapped to gRPC codes with the catalog code in trailing metadata
 * (`error-code`).
 *
 * - Deadlines: the client's (`grpc-timeout`) bounds the request like `X-Request-Timeout-Ms`
 *   does, never beyond `REQUEST_TIMEOUT_MS`; a cancelled call drops its queued work.
 * - API keys from `authorization: Bearer <key>` metadata when `API_KEYS` is set (health stays
 *   open); the rate limit counts per peer address, as HTTP's does per client.
 * - Message sizes: at most the largest body the HTTP routes take (RESOURCE_EXHAUSTED beyond,
 *   from grpc-js itself, before the message is parsed).
 * - HTTP/2 receive windows of 8 MiB instead of Node's 64 KiB (receive-window.ts, standing in
 *   for grpc/grpc-node#3058): a large tensor is not held up by a WINDOW_UPDATE every 64 KiB.
 * - Health: the empty service name and `inference.GRPCInferenceService` answer SERVING once
 *   every model is ready and NOT_SERVING from the start of shutdown (Kubernetes' readiness);
 *   `liveness` answers SERVING while the process runs.
 * - Drain: readiness turns NOT_SERVING at once; calls are served until the data plane stops
 *   intake (then UNAVAILABLE, code SHUTTING_DOWN), in-flight calls complete, then the server
 *   shuts down.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Config } from '../config.js';
import { errors, isServingError, type ServingError } from '../errors.js';
import { createKeyVerifier } from '../http/auth.js';
import type { Lifecycle } from '../http/context.js';
import { modelAt, servedVersionsOf, v2Metadata, versionsAt } from '../http/routes/model-metadata.js';
import { parseIndexRequest, parseLoadRequest, parseUnloadRequest } from '../protocol/repository-request.js';
import type { ModelControl } from '../serving/model-control.js';
import { defaultJsonBodyLimits } from '../protocol/json-body.js';
import { serverMetadata } from '../protocol/server-metadata.js';
import { serverTimingValue } from '../protocol/server-timing.js';
import { runInfer } from '../protocol/v2-infer.js';
import type { DecodeLimits } from '../protocol/v2-request.js';
import type { InferenceService } from '../serving/inference-service.js';
import type { ModelRegistry } from '../serving/model-registry.js';
import { isServerReady } from '../serving/readiness.js';
import type { InferenceStatistics } from '../serving/statistics.js';
import { applyReceiveWindow, FLOW_CONTROL_WINDOW_OPTION, RECEIVE_WINDOW_BYTES } from './receive-window.js';
import { decodeGrpcInferRequest, encodeGrpcInferResponse, grpcCodeOf, type GrpcInferRequest } from './codec.js';

const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

export interface GrpcDeps {
  readonly config: Config;
  readonly registry: ModelRegistry;
  readonly service: InferenceService;
  readonly statistics: Pick<InferenceStatistics, 'snapshot'>;
  readonly lifecycle: Lifecycle;
  /** Model control, for the repository rpcs (explicit mode only, as over HTTP); `undefined` with `none`. */
  readonly control?: ModelControl | undefined;
  readonly version: string;
  readonly log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export interface GrpcServer {
  /** The port it listens on (useful when started on port 0). */
  readonly port: number;
  /** Waits for calls in flight to end, for at most `timeoutMs`, then ends the rest. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The repository rpcs' requests, as @grpc/proto-loader decodes them (`oneofs: true`). */
interface RepositoryRequest {
  readonly repository_name?: string;
  readonly model_name?: string;
  readonly parameters?: Record<string, { parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param'; [choice: string]: unknown }>;
}
const HEALTH = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
/** Slack for protobuf framing around the largest body the HTTP routes take. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

function loadDefinitions() {
  const options: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };
  const inference = grpc.loadPackageDefinition(protoLoader.loadSync('grpc_service.proto', options)) as unknown as {
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  const health = grpc.loadPackageDefinition(protoLoader.loadSync('health.proto', options)) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return { inference: inference.inference.GRPCInferenceService.service, health: health.grpc.health.v1.Health.service };
}

/** What a failed call is answered: the catalog error's gRPC code, message and code. */
function toStatus(err: unknown): { code: number; details: string; metadata: grpc.Metadata; error: ServingError } {
  const e = isServingError(err) ? err : errors.INTERNAL(undefined, { cause: err });
  const metadata = new grpc.Metadata();
  metadata.set('error-code', e.code);
  if (e.retryAfterSeconds !== undefined) metadata.set('retry-after', String(e.retryAfterSeconds));
  const details = e.code === 'INTERNAL' ? errors.INTERNAL().message : e.message;
  return { code: grpcCodeOf(e), details, metadata, error: e };
}

/** A fixed-window count of calls per peer address, as `RATE_LIMIT_MAX` per `RATE_LIMIT_WINDOW_MS`. */
function createRateLimit(max: number, windowMs: number) {
  if (max <= 0) return undefined;
  let windowStart = performance.now();
  let counts = new Map<string, number>();
  return (peer: string) => {
    const now = performance.now();
    if (now - windowStart >= windowMs) {
      windowStart = now;
      counts = new Map();
    }
    const n = (counts.get(peer) ?? 0) + 1;
    counts.set(peer, n);
    if (n > max) {
      throw errors.RATE_LIMITED(`Rate limit of ${max} requests per ${windowMs} ms exceeded`, {
        retryAfterSeconds: Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000)),
      });
    }
  };
}

/** The peer's address without its port: `ipv4:127.0.0.1:5000` → `127.0.0.1`. */
function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[(.*)\]:\d+$/.exec(bare);
  if (v6) return v6[1]!;
  const colon = bare.lastIndexOf(':');
  return colon > 0 && bare.indexOf(':') === colon ? bare.slice(0, colon) : bare;
}

export async function startGrpcServer(deps: GrpcDeps, host: string, port: number): Promise<GrpcServer> {
  const { config, registry, service, lifecycle, log } = deps;
  const definitions = loadDefinitions();
  const maxMessage = Math.max(config.uploadMaxBytes, config.jsonBodyMaxBytes) + MESSAGE_OVERHEAD_BYTES;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessage,
    'grpc.max_send_message_length': maxMessage,
    [FLOW_CONTROL_WINDOW_OPTION]: RECEIVE_WINDOW_BYTES,
  });
  if (applyReceiveWindow(server, RECEIVE_WINDOW_BYTES) === 'unavailable') {
    log.info(
      { windowBytes: RECEIVE_WINDOW_BYTES },
      'gRPC: this @grpc/grpc-js neither honours grpc-node.flow_control_window on the server nor has the internals src/grpc/receive-window.ts reaches; HTTP/2 receive windows stay at 64 KiB (large messages arrive slower)',
    );
  }
  const verifyKey = createKeyVerifier(config.apiKeys);
  const rateLimit = createRateLimit(config.rateLimitMax, config.rateLimitWindowMs);
  const limits: DecodeLimits = {
    maxElements: Math.ceil(maxMessage / 2),
    maxImages: config.maxImagesPerRequest,
    maxImageBytes: config.uploadMaxBytes,
    json: defaultJsonBodyLimits(config.jsonBodyMaxBytes),
  };
  const ready = () => isServerReady(registry, lifecycle);

  type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

  /** Checks a call's key and rate; its request id. */
  const admit = (call: AnyCall): string => {
    rateLimit?.(peerAddress(call.getPeer()));
    verifyKey?.(call.metadata.get('authorization')[0]);
    const given = call.metadata.get('x-request-id')[0];
    return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  };

  /** The request's deadline on performance.now()'s clock: the client's, never past REQUEST_TIMEOUT_MS. */
  const deadlineOf = (call: AnyCall, started: number): number => {
    let timeoutMs = config.requestTimeoutMs;
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(at)) timeoutMs = Math.min(timeoutMs, Math.max(0, at - Date.now()));
    return started + timeoutMs;
  };

  /**
   * Wraps a unary handler: admission (unless `polled`: probes need no key), one access-log line
   * (at debug for probes, as HTTP's), the catalog's errors as statuses.
   */
  const unary =
    <Req, Res>(
      method: string,
      work: (request: Req, call: grpc.ServerUnaryCall<Req, Res>, requestId: string, trailer: grpc.Metadata) => Promise<Res> | Res,
      polled = false,
    ) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      const started = performance.now();
      let requestId = '';
      // Trailing metadata of a successful answer, which `work` may fill (ModelInfer's server-timing).
      const trailer = new grpc.Metadata();
      void (async () => {
        if (!polled) {
          requestId = admit(call as AnyCall);
          // The request id goes back as HTTP's X-Request-Id does.
          const metadata = new grpc.Metadata();
          metadata.set('x-request-id', requestId);
          call.sendMetadata(metadata);
        }
        return work(call.request, call, requestId, trailer);
      })().then(
        (response) => {
          const line = { protocol: 'grpc', method, requestId, code: 'OK', responseTime: performance.now() - started, peer: call.getPeer() };
          if (polled) log.debug(line, 'grpc call');
          else log.info(line, 'grpc call');
          callback(null, response, trailer);
        },
        (err: unknown) => {
          const status = toStatus(err);
          const line = {
            protocol: 'grpc',
            method,
            requestId,
            code: status.error.code,
            grpcCode: status.code,
            responseTime: performance.now() - started,
            peer: call.getPeer(),
          };
          if (status.error.statusCode >= 500 && status.error.code === 'INTERNAL') log.error({ ...line, err }, 'grpc call failed');
          else log.info(line, status.details);
          callback({ code: status.code, details: status.details, metadata: status.metadata });
        },
      );
    };

  /**
   * Aborted when the call is cancelled. A stream's requests share it: each in flight listens on
   * it (the batcher, the decode budget), as many as the model admits, so Node's warning at 11
   * listeners would be a false alarm.
   */
  const cancellation = (call: AnyCall): AbortSignal => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    call.once('cancelled', () => controller.abort());
    return controller.signal;
  };

  /** One inference; its Server-Timing value goes into `trailer` when given (unary calls). */
  const infer = async (request: GrpcInferRequest, call: AnyCall, started: number, signal: AbortSignal, trailer?: grpc.Metadata) => {
    const model = modelAt({ registry }, { name: request.model_name ?? '', ...(request.model_version ? { version: request.model_version } : {}) });
    const decoded = decodeGrpcInferRequest(request, limits);
    const response = await runInfer(service, model, decoded, { deadline: deadlineOf(call, started), signal, protocol: 'grpc' });
    const encoded = encodeGrpcInferResponse(response);
    trailer?.set('server-timing', serverTimingValue(response.timings, performance.now() - started));
    return encoded;
  };

  /** Model control, when the repository rpcs apply (as the HTTP routes: explicit mode only); one repository, unnamed. */
  const repositoryControl = (request: RepositoryRequest): ModelControl => {
    if (config.modelControlMode !== 'explicit' || deps.control === undefined) {
      throw errors.MODEL_CONTROL_DISABLED(`The repository API needs MODEL_CONTROL_MODE=explicit; this server runs with ${config.modelControlMode}`);
    }
    if (request.repository_name) throw errors.INVALID_REQUEST('This server has one model repository: leave `repository_name` empty');
    return deps.control;
  };

  /** The rpc's parameters map as the HTTP body's `parameters` (each value its oneof's). */
  const repositoryParameters = (request: RepositoryRequest): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(request.parameters ?? {}).map(([key, value]) => [key, value.parameter_choice === undefined ? undefined : value[value.parameter_choice]]),
    );

  const modelName = (request: { name?: string; version?: string }) => ({ name: request.name ?? '', ...(request.version ? { version: request.version } : {}) });

  server.addService(definitions.inference, {
    ServerLive: unary('ServerLive', () => ({ live: true }), true),
    ServerReady: unary('ServerReady', () => ({ ready: ready() }), true),
    // As Triton answers it: a model (or version) that is not served is not ready, not an error.
    ModelReady: unary('ModelReady', (request: { name?: string; version?: string }) => {
      try {
        modelAt({ registry }, modelName(request));
      } catch (err) {
        if (isServingError(err) && err.code === errors.MODEL_NOT_FOUND.code) return { ready: false };
        throw err;
      }
      return { ready: ready() };
    }),
    ServerMetadata: unary('ServerMetadata', () => serverMetadata(deps.version, config.modelControlMode)),
    ModelMetadata: unary('ModelMetadata', (request: { name?: string; version?: string }) => {
      const model = modelAt({ registry }, modelName(request));
      const meta = v2Metadata(model, servedVersionsOf({ registry }, model));
      return { name: meta.name, versions: meta.versions, platform: meta.platform, inputs: meta.inputs, outputs: meta.outputs };
    }),
    ModelInfer: unary('ModelInfer', (request: GrpcInferRequest, call, _requestId, trailer) =>
      infer(request, call as AnyCall, performance.now(), cancellation(call as AnyCall), trailer),
    ),
    ModelStatistics: unary('ModelStatistics', (request: { name?: string; version?: string }) => {
      const models = request.name ? versionsAt({ registry }, modelName(request)) : registry.list();
      return { model_stats: deps.statistics.snapshot(models) };
    }),
    RepositoryIndex: unary('RepositoryIndex', async (request: RepositoryRequest & { ready?: boolean }) => {
      const control = repositoryControl(request);
      const rows = await control.index(parseIndexRequest({ ready: request.ready === true }));
      return { models: rows.map((r) => ({ name: r.name, version: r.version ?? '', state: r.state ?? '', reason: r.reason ?? '' })) };
    }),
    RepositoryModelLoad: unary('RepositoryModelLoad', async (request: RepositoryRequest) => {
      const { override } = parseLoadRequest({ parameters: repositoryParameters(request) });
      await repositoryControl(request).load(request.model_name ?? '', override);
      return {};
    }),
    RepositoryModelUnload: unary('RepositoryModelUnload', async (request: RepositoryRequest) => {
      parseUnloadRequest({ parameters: repositoryParameters(request) });
      await repositoryControl(request).unload(request.model_name ?? '');
      return {};
    }),
    ModelStreamInfer: (call: grpc.ServerDuplexStream<GrpcInferRequest, unknown>) => {
      // Requests run concurrently (they may share batches) but are answered in the order they
      // came, as a stream of a non-decoupled model is; an error answers its request only.
      let previous: Promise<void> = Promise.resolve();
      let pending = 0;
      let ended = false;
      const finish = () => {
        if (ended && pending === 0) call.end();
      };
      // The key and the rate are the stream's: one refused ends it with that status.
      let requestId: string;
      try {
        requestId = admit(call as AnyCall);
      } catch (err) {
        const status = toStatus(err);
        log.info({ protocol: 'grpc', method: 'ModelStreamInfer', code: status.error.code }, status.details);
        call.emit('error', { code: status.code, details: status.details, metadata: status.metadata });
        return;
      }
      const signal = cancellation(call as AnyCall);
      call.on('data', (request: GrpcInferRequest) => {
        const started = performance.now();
        pending++;
        // Each request counts against the rate limit, as each HTTP request does.
        const outcome = (async () => {
          rateLimit?.(peerAddress(call.getPeer()));
          return infer(request, call as AnyCall, started, signal);
        })().then(
          (infer_response) => ({ error_message: '', infer_response }),
          (err: unknown) => {
            const status = toStatus(err);
            log.info({ protocol: 'grpc', method: 'ModelStreamInfer', requestId, code: status.error.code }, status.details);
            return { error_message: status.details, infer_response: { id: request.id ?? '' } };
          },
        );
        previous = previous.then(async () => {
          const message = await outcome;
          if (!call.cancelled) call.write(message);
          pending--;
          finish();
        });
      });
      call.on('end', () => {
        ended = true;
        void previous.then(finish);
      });
    },
  });

  const healthStatus = (serviceName: string): number | undefined => {
    if (serviceName === 'liveness') return HEALTH.SERVING;
    if (serviceName === '' || serviceName === 'inference.GRPCInferenceService') return ready() ? HEALTH.SERVING : HEALTH.NOT_SERVING;
    return undefined;
  };
  const watchers = new Set<{ service: string; last: number | undefined; call: grpc.ServerWritableStream<{ service?: string }, unknown> }>();
  // Readiness changes with loading and shutdown, which emit nothing: watchers are told within a
  // tick of this interval, which Kubernetes' probe periods (seconds) dwarf.
  const watchTimer = setInterval(() => {
    for (const w of watchers) {
      const status = healthStatus(w.service) ?? HEALTH.SERVICE_UNKNOWN;
      if (status !== w.last) {
        w.last = status;
        w.call.write({ status });
      }
    }
  }, 250);
  watchTimer.unref();
  server.addService(definitions.health, {
    Check: (call: grpc.ServerUnaryCall<{ service?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const status = healthStatus(call.request.service ?? '');
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: `Unknown service ${JSON.stringify(call.request.service)}` });
      else callback(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<{ service?: string }, unknown>) => {
      const service = call.request.service ?? '';
      const watcher = { service, last: healthStatus(service) ?? HEALTH.SERVICE_UNKNOWN, call };
      call.write({ status: watcher.last });
      watchers.add(watcher);
      call.on('cancelled', () => watchers.delete(watcher));
    },
  });

  const boundPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );

  let closing: Promise<void> | undefined;
  return {
    port: boundPort,
    close(timeoutMs) {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(watchTimer);
        for (const w of watchers) w.call.end();
        watchers.clear();
        const force = setTimeout(() => server.forceShutdown(), timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}

/**
 * One JSON log line per request, written when the answer has gone out: method, URL, peer,
 * status, time, the request id (pino's `reqId` binding) and, for inference, the model and the
 * version that answered, the image count, the batch size and the stage timings. It replaces Fastify's pair of lines per
 * request ("incoming request", then "request completed") through Fastify's LogController: a
 * third of the log volume and of the logging work on the event loop, with nothing lost.
 * Fastify's other lines (stream errors, serializer failures) are kept.
 *
 * A request whose client goes away before the answer gets a "request aborted" line instead
 * (onRequestAbort, installed by `installAccessLog`).
 *
 * Probes and scrapes arrive every few seconds from Kubernetes and Prometheus and are logged at
 * `debug`, so an `info` log holds the traffic that matters.
 *
 * Shed requests (503 QUEUE_FULL: refused at the door on their headers, by the body budget or by
 * a full batcher queue) are logged by sample: the first, then at most one line per
 * `REFUSAL_LOG_INTERVAL_MS`, each carrying `suppressedRefusals`, the refusals not logged since
 * the line before. Under a flood of thousands of refusals a second, a line each was most of
 * what a refusal cost the event loop; `inference_requests_total{outcome="rejected"}` still
 * counts every one.
 */
import { performance } from 'node:perf_hooks';
import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { StageTimings } from '../serving/inference-service.js';

/** What an inference route records about a request for its log line. */
export interface InferenceLogFields {
  readonly model: string;
  /** The version that answered. */
  readonly version: string;
  /** Images (v1, v2 BYTES) or tensor items (v2 FP32) in the request. */
  readonly images: number;
  readonly batchSize: number;
  readonly timings: StageTimings;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by inference routes; the access log line includes it. */
    inferenceLog: InferenceLogFields | null;
    /** Set by the error handler on a request shed with 503 QUEUE_FULL: its line is sampled. */
    shed: boolean;
  }
  interface FastifyContextConfig {
    /** A route polled by machines (probes, scrapes): logged at `debug`. POLLED_ROUTE also exempts it from the rate limit. */
    polled?: boolean;
  }
}

/** Route options of probes and scrapes (see `polled`). */
export const POLLED_ROUTE = { config: { polled: true, rateLimit: false } } as const;

const isQuiet = (request: FastifyRequest) => request.routeOptions.config?.polled === true;

/** Shortest time between two sampled lines of shed requests, in ms. */
export const REFUSAL_LOG_INTERVAL_MS = 1_000;

/**
 * Decides which of a stream of events gets a log line: the first, then the first after each
 * `intervalMs` since the last line. `take()` returns `undefined` for an event not to log, or how
 * many were not logged since the last line.
 */
export interface LogSampler {
  take(): number | undefined;
}

export interface LogSamplerOptions {
  /** @default REFUSAL_LOG_INTERVAL_MS */
  readonly intervalMs?: number;
  /** Clock, in ms. @default performance.now */
  readonly now?: () => number;
}

export function createLogSampler(options: LogSamplerOptions = {}): LogSampler {
  const { intervalMs = REFUSAL_LOG_INTERVAL_MS, now = () => performance.now() } = options;
  if (!(intervalMs >= 0)) throw new RangeError(`Expected \`intervalMs\` to be a number from 0 and up, got \`${intervalMs}\``);
  let lastLine = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return {
    take() {
      const t = now();
      if (t - lastLine < intervalMs) {
        suppressed++;
        return undefined;
      }
      lastLine = t;
      const n = suppressed;
      suppressed = 0;
      return n;
    },
  };
}

/** Fastify's request lines, one per request (shed requests by sample; see the module comment). */
export class AccessLogController extends LogController {
  readonly #refusals: LogSampler;

  constructor(options: LogSamplerOptions = {}) {
    super();
    this.#refusals = createLogSampler(options);
  }

  override incomingRequest(): void {
    // The completion line carries everything; see the module comment.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    let suppressedRefusals: number | undefined;
    if (request.shed && !error) {
      suppressedRefusals = this.#refusals.take();
      if (suppressedRefusals === undefined) return;
    }
    // Fastify's serializers turn `req` and `res` into method, URL, host and peer, and the status.
    const fields = {
      req: request,
      res: reply,
      responseTime: reply.elapsedTime,
      ...(request.inferenceLog ?? {}),
      ...(suppressedRefusals === undefined ? {} : { suppressedRefusals }),
    };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else if (isQuiet(request)) reply.log.debug(fields, 'request completed');
    else reply.log.info(fields, 'request completed');
  }
}

/** Logs requests whose client went away before the answer (no completion line follows). */
export function installAccessLog(app: FastifyInstance): void {
  app.decorateRequest('inferenceLog', null);
  app.decorateRequest('shed', false);
  app.addHook('onRequestAbort', (request, done) => {
    if (isQuiet(request)) request.log.debug({ req: request }, 'request aborted');
    else request.log.info({ req: request, ...(request.inferenceLog ?? {}) }, 'request aborted');
    done();
  });
}

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
 */
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
  }
  interface FastifyContextConfig {
    /** A route polled by machines (probes, scrapes): logged at `debug`. POLLED_ROUTE also exempts it from the rate limit. */
    polled?: boolean;
  }
}

/** Route options of probes and scrapes (see `polled`). */
export const POLLED_ROUTE = { config: { polled: true, rateLimit: false } } as const;

const isQuiet = (request: FastifyRequest) => request.routeOptions.config?.polled === true;

/** Fastify's request lines, one per request. */
export class AccessLogController extends LogController {
  override incomingRequest(): void {
    // The completion line carries everything; see the module comment.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // Fastify's serializers turn `req` and `res` into method, URL, host and peer, and the status.
    const fields = { req: request, res: reply, responseTime: reply.elapsedTime, ...(request.inferenceLog ?? {}) };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else if (isQuiet(request)) reply.log.debug(fields, 'request completed');
    else reply.log.info(fields, 'request completed');
  }
}

/** Logs requests whose client went away before the answer (no completion line follows). */
export function installAccessLog(app: FastifyInstance): void {
  app.decorateRequest('inferenceLog', null);
  app.addHook('onRequestAbort', (request, done) => {
    if (isQuiet(request)) request.log.debug({ req: request }, 'request aborted');
    else request.log.info({ req: request, ...(request.inferenceLog ?? {}) }, 'request aborted');
    done();
  });
}

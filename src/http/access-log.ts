/**
 * One JSON log line per answered request, written when the answer has gone out: method, URL,
 * status, time, the request id (pino's `reqId` binding) and, for inference, the model, the
 * image count, the batch size and the stage timings. Fastify's own pair of lines per request
 * ("incoming request", "request completed") is turned off in app.ts: one line carries all of
 * it, which is a third of the log volume and of the logging work on the event loop.
 *
 * Probes and scrapes arrive every few seconds from Kubernetes and Prometheus and are logged at
 * `debug`, so an `info` log holds the traffic that matters.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { StageTimings } from '../serving/inference-service.js';

/** What an inference route records about a request for its log line. */
export interface InferenceLogFields {
  readonly model: string;
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
}

/** Routes polled by machines, logged at `debug`. */
const QUIET_ROUTES: ReadonlySet<string> = new Set(['/livez', '/readyz', '/v2/health/live', '/v2/health/ready', '/metrics']);

/** Writes the request's line; call from `onResponse`. */
export function logAnswered(request: FastifyRequest, reply: FastifyReply, route: string): void {
  const quiet = QUIET_ROUTES.has(route);
  // Fastify's serializers turn these into method, URL, host and peer, and the status code.
  const fields = {
    req: request,
    res: reply,
    responseTime: reply.elapsedTime,
    ...(request.inferenceLog ?? {}),
  };
  if (quiet) request.log.debug(fields, 'request completed');
  else request.log.info(fields, 'request completed');
}

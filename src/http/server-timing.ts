/**
 * `Server-Timing` for inference answers: where the request's time went, in ms, and where its
 * outputs came from (`cache;desc=hit|coalesced|miss`, see StageTimings.cache).
 */
import type { FastifyReply } from 'fastify';
import type { StageTimings } from '../serving/inference-service.js';

export function setServerTiming(reply: FastifyReply, timings: StageTimings): void {
  const ms = (v: number) => v.toFixed(1);
  void reply.header(
    'Server-Timing',
    `preprocess;dur=${ms(timings.preprocessMs)}, queue;dur=${ms(timings.queueMs)}, infer;dur=${ms(timings.inferMs)}, ` +
      `postprocess;dur=${ms(timings.postprocessMs)}, ${timings.cache === undefined ? '' : `cache;desc=${timings.cache}, `}total;dur=${ms(reply.elapsedTime)}`,
  );
}

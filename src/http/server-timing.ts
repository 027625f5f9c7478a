/** `Server-Timing` for inference answers: where the request's time went, in ms. */
import type { FastifyReply } from 'fastify';
import type { StageTimings } from '../serving/inference-service.js';

export function setServerTiming(reply: FastifyReply, timings: StageTimings): void {
  const ms = (v: number) => v.toFixed(1);
  void reply.header(
    'Server-Timing',
    `preprocess;dur=${ms(timings.preprocessMs)}, queue;dur=${ms(timings.queueMs)}, infer;dur=${ms(timings.inferMs)}, ` +
      `postprocess;dur=${ms(timings.postprocessMs)}, total;dur=${ms(reply.elapsedTime)}`,
  );
}

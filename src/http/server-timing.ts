/** `Server-Timing` for inference answers (protocol/server-timing.ts says what it holds). */
import type { FastifyReply } from 'fastify';
import { serverTimingValue } from '../protocol/server-timing.js';
import type { StageTimings } from '../serving/inference-service.js';

export function setServerTiming(reply: FastifyReply, timings: StageTimings): void {
  void reply.header('Server-Timing', serverTimingValue(timings, reply.elapsedTime));
}

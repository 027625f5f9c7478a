/**
 * Shedding load at the door. The batcher bounds the images waiting for a worker, but a request
 * reaches it only after its body was read and its images decoded, and nothing bounds the
 * requests in that stage: under a flood hundreds decode at once, most only to be refused by a
 * full queue, and that decoding takes the CPU the admitted requests need (measured with
 * bench/overload: see docs/security.md). So each model admits at most `maxInflight` inference
 * requests at a time, counted from before the body is read until the answer is sent; past that,
 * a request is refused at once, its body unread, with the batcher's own 503 QUEUE_FULL and
 * Retry-After.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import type { ServedModel } from '../serving/model.js';
import type { ServingObserver } from '../serving/observer.js';
import type { RouteGuard } from './auth.js';

/** `Retry-After` of a refusal at the door, in seconds: the batcher's own default. */
const RETRY_AFTER_SECONDS = 1;

export interface LoadShedderOptions {
  /** Inference requests one model may have in flight (reading, decoding, queued, running). */
  readonly maxInflight: number;
  /** Told of each refusal, so `inference_requests_total{outcome="rejected"}` counts them too. */
  readonly observer: Pick<ServingObserver, 'requestStarted' | 'requestFinished'>;
}

export type LoadShedder = (pick: (request: FastifyRequest) => ServedModel | undefined) => RouteGuard;

/**
 * @returns a factory of `preParsing` hooks; `pick` names the model a request is for, or returns
 *   `undefined` (or throws) to let the route answer (unknown or not-ready models have their own
 *   errors there).
 */
export function createLoadShedder(options: LoadShedderOptions): LoadShedder {
  if (!Number.isInteger(options.maxInflight) || options.maxInflight < 1) {
    throw new RangeError(`Expected \`maxInflight\` to be an integer from 1 and up, got \`${options.maxInflight}\``);
  }
  const inflight = new Map<string, number>();
  return (pick) => async (request: FastifyRequest, reply: FastifyReply) => {
    let model: ServedModel | undefined;
    try {
      model = pick(request);
    } catch {
      return;
    }
    // A stopping batcher answers SHUTTING_DOWN itself; that code matters more than this one.
    if (model === undefined || model.batcher.stopping) return;
    const name = model.name;
    const count = inflight.get(name) ?? 0;
    if (count >= options.maxInflight) {
      options.observer.requestStarted(name);
      options.observer.requestFinished(name, 'rejected', 0, 0);
      throw errors.QUEUE_FULL(`Model ${name} has ${count} requests in flight, its limit`, { retryAfterSeconds: RETRY_AFTER_SECONDS });
    }
    inflight.set(name, count + 1);
    // 'close' comes once, when the answer is sent or the connection is lost.
    reply.raw.once('close', () => inflight.set(name, (inflight.get(name) ?? 1) - 1));
  };
}

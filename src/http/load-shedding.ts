/**
 * Shedding load at the door. The data plane admits at most `QUEUE_MAX_SIZE` requests per served
 * model version (inference-service.ts), counted once a request's body has arrived; under a flood, though,
 * reading hundreds of bodies only to refuse them takes the CPU the admitted requests need
 * (measured with bench/overload: see docs/security.md). So a request for a model that has no
 * room now is refused on its headers, before its body is read, with the data plane's own 503
 * QUEUE_FULL and Retry-After.
 *
 * The door holds no slot of its own: a request that passes it reads its body unadmitted, and is
 * admitted (or refused) when it reaches the data plane. So a slow sender holds nothing another
 * request needs, and no slot depends on a socket's events (which Node does not emit for
 * pipelined answers still queued behind an unsent one).
 */
import type { FastifyRequest } from 'fastify';
import { errors, RETRY_AFTER_SECONDS } from '../errors.js';
import type { InferenceService } from '../serving/inference-service.js';
import type { ModelView } from '../serving/model.js';
import type { ServingObserver } from '../serving/observer.js';
import type { RouteGuard } from './auth.js';

export interface LoadShedderOptions {
  readonly service: Pick<InferenceService, 'hasRoom'>;
  /** Told of each refusal, so `inference_requests_total{outcome="rejected"}` counts them too. */
  readonly observer: Pick<ServingObserver, 'requestStarted' | 'requestFinished'>;
}

export type LoadShedder = (pick: (request: FastifyRequest) => ModelView | undefined) => RouteGuard;

/**
 * @returns a factory of `preParsing` hooks; `pick` names the model a request is for, or returns
 *   `undefined` (or throws) to let the route answer (unknown or not-ready models have their own
 *   errors there).
 */
export function createLoadShedder(options: LoadShedderOptions): LoadShedder {
  const { service, observer } = options;
  return (pick) => async (request: FastifyRequest) => {
    let model: ModelView | undefined;
    try {
      model = pick(request);
    } catch {
      return;
    }
    // A model that no longer accepts work answers SHUTTING_DOWN itself; that code matters more than this one.
    if (model === undefined || !model.accepting || service.hasRoom(model)) return;
    observer.requestStarted(model);
    observer.requestFinished(model, 'rejected', 0, 0, 'http');
    throw refusal(model);
  };
}

/**
 * The door's QUEUE_FULL, without a stack trace: under a flood it is built thousands of times a
 * second, and capturing the stack was the largest cost of a refusal of our own making (5 % of
 * the event loop's time in a CPU profile of bench/loop.ts --flood); it is never logged, and where
 * it was thrown is always here.
 */
function refusal(model: ModelView): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return errors.QUEUE_FULL(`Model ${model.name} version ${model.version} has no room for another request now`, { retryAfterSeconds: RETRY_AFTER_SECONDS });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Memory for request bodies still arriving. A request is admitted into the data plane only once
 * its body is all there (inference-service.ts), so nothing there bounds the bodies on their way
 * in: a thousand clients each sending most of a 10 MiB upload would hold 10 GB. So the bytes
 * received of bodies not yet complete are counted, process-wide, against `capacityBytes`:
 * - a chunk that would take the count past it fails its request with 503 QUEUE_FULL and
 *   Retry-After (the connection is closed, the rest unread);
 * - with the budget already spent, a request is refused on its headers alone;
 * - a body's bytes leave the count once it has all arrived (it is then the data plane's to
 *   bound) or its request ends. So the count follows what was received, not what was declared:
 *   a slow sender holds only the bytes it sent, and cannot starve the others by declaring much
 *   and sending little.
 */
import type { FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import { RETRY_AFTER_SECONDS } from '../serving/inference-service.js';

export interface BodyBudget {
  readonly capacityBytes: number;
  /** Bytes received of bodies still arriving. */
  readonly usedBytes: number;
  /** Counts `bytes` if they fit; `false` (counting nothing) if they do not. */
  take(bytes: number): boolean;
  give(bytes: number): void;
}

export function createBodyBudget(capacityBytes: number): BodyBudget {
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 1) {
    throw new RangeError(`Expected \`capacityBytes\` to be a positive integer of bytes, got \`${capacityBytes}\``);
  }
  let used = 0;
  return {
    capacityBytes,
    get usedBytes() {
      return used;
    },
    take(bytes) {
      if (used + bytes > capacityBytes) return false;
      used += bytes;
      return true;
    },
    give(bytes) {
      used -= bytes;
    },
  };
}

const full = () =>
  errors.QUEUE_FULL('The server holds as many arriving request bodies as it may; retry later', { retryAfterSeconds: RETRY_AFTER_SECONDS });

/** One body's bytes under the budget, given back once. */
export class BodyCount {
  private held = 0;
  private released = false;

  constructor(private readonly budget: BodyBudget) {}

  /** Counts `bytes` more; throws 503 QUEUE_FULL if they do not fit. */
  count(bytes: number): void {
    if (!this.budget.take(bytes)) throw full();
    this.held += bytes;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.held);
  }
}

/** The request declares a body (a non-zero `Content-Length`, or chunks). */
export const hasBody = (request: FastifyRequest) => {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
};

/**
 * Refuses, on its headers, a request with a body when the budget is already spent; else
 * returns the count its body's bytes go into (see request-body.ts), or `undefined` for a
 * request without a body.
 */
export function admitBody(request: FastifyRequest, budget: BodyBudget): BodyCount | undefined {
  if (!hasBody(request)) return undefined;
  if (budget.usedBytes >= budget.capacityBytes) throw full();
  return new BodyCount(budget);
}

/**
 * Memory for request bodies still arriving. A request is admitted into the data plane only once
 * its body is all there (inference-service.ts), so nothing there bounds the bodies on their way
 * in: a thousand clients each sending most of a 10 MiB upload would hold 10 GB. So the bytes
 * received of bodies not yet complete are counted, process-wide, against `capacityBytes`:
 * - a chunk that would take the count past it fails the youngest bodies still arriving with 503
 *   QUEUE_FULL and Retry-After (that chunk's own request if it is the youngest), so the oldest
 *   always progress;
 * - with the budget already spent, a request is refused on its headers alone;
 * - a body's bytes leave the count once it has all arrived (it is then the data plane's to
 *   bound) or its request ends. So the count follows what was received, not what was declared:
 *   a slow sender holds only the bytes it sent, and cannot starve the others by declaring much
 *   and sending little.
 */
import type { FastifyRequest } from 'fastify';
import { errors, RETRY_AFTER_SECONDS } from '../errors.js';

export interface BodyBudget {
  readonly capacityBytes: number;
  /** Bytes received of bodies still arriving. */
  readonly usedBytes: number;
  /**
   * Counts `bytes` more of `body`. When they do not fit, the youngest bodies still arriving
   * are evicted (failed with QUEUE_FULL, their bytes given back) until they do, unless `body`
   * is itself the youngest: then nothing is counted and `false` is returned. So the oldest body
   * always makes progress: refusing whichever chunk overflowed would let many large uploads,
   * all part-way through, refuse each other for ever (measured: 32 clients sending 23.5 MB
   * bodies against 256 MiB got no answer in a 20 s round).
   */
  take(body: BodyCount, bytes: number): boolean;
  /** Gives back what `body` holds and forgets it. */
  release(body: BodyCount, bytes: number): void;
}

export function createBodyBudget(capacityBytes: number): BodyBudget {
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 1) {
    throw new RangeError(`Expected \`capacityBytes\` to be a positive integer of bytes, got \`${capacityBytes}\``);
  }
  let used = 0;
  // In arrival order (a Set keeps insertion order): the last is the youngest.
  const arriving = new Set<BodyCount>();
  const youngest = (): BodyCount | undefined => {
    let last: BodyCount | undefined;
    for (const b of arriving) last = b;
    return last;
  };
  return {
    capacityBytes,
    get usedBytes() {
      return used;
    },
    take(body, bytes) {
      arriving.add(body);
      while (used + bytes > capacityBytes) {
        const victim = youngest();
        if (victim === undefined || victim === body) return false;
        victim.evict(full());
      }
      used += bytes;
      return true;
    },
    release(body, bytes) {
      if (arriving.delete(body)) used -= bytes;
    },
  };
}

const full = () => errors.QUEUE_FULL('The server holds as many arriving request bodies as it may; retry later', { retryAfterSeconds: RETRY_AFTER_SECONDS });

/** One body's bytes under the budget, given back once. */
export class BodyCount {
  private held = 0;
  private evicted: Error | undefined;
  /** Told when the budget evicts this body to make room for older ones. */
  onEvict: ((err: Error) => void) | undefined;

  constructor(private readonly budget: BodyBudget) {}

  /** Counts `bytes` more; throws 503 QUEUE_FULL if they do not fit, or if this body was evicted. */
  count(bytes: number): void {
    if (this.evicted !== undefined) throw this.evicted;
    if (!this.budget.take(this, bytes)) {
      this.release();
      throw full();
    }
    this.held += bytes;
  }

  release(): void {
    this.budget.release(this, this.held);
    this.held = 0;
  }

  /** Fails this body to make room: its bytes go back now, its reader hears of it. */
  evict(err: Error): void {
    this.release();
    this.evicted = err;
    this.onEvict?.(err);
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

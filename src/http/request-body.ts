/**
 * The body of a request as Fastify's parsers read it. Every request with a body reads it
 * through one lazy stream, which does two things when, and only when, a parser first reads:
 * - sends `100 Continue` to a client that waits for it (http-edge.ts): by then the route's
 *   guards (key, rate limit, load shedding) have passed and Fastify has checked the declared
 *   `Content-Length` against the parser's limit, so a refused client was never asked to send;
 * - counts each chunk against the body budget (body-budget.ts), failing the request with 503
 *   QUEUE_FULL past it, and gives the bytes back once the body has all arrived or the request
 *   closed.
 * Multipart bodies are read by the route from the request itself, which does both in turn
 * (request-inputs.ts).
 *
 * A raw image body (accepted-bodies.ts' `isRawImageBody`) is also hashed as it arrives, a
 * chunk at a time, so that the data plane, which keys the response cache and coalescing by the
 * image's SHA-256, need not read the whole image again in one piece on the event loop once it
 * is there (image-digest.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { digestText, rememberImageDigest } from '../serving/image-digest.js';
import { admitBody, type BodyBudget, type BodyCount } from './body-budget.js';
import { awaitsContinue, sendContinue } from './http-edge.js';
import type { IncomingBodies } from './incoming-bodies.js';

/** The SHA-256 of a raw image body that has all arrived, and how many bytes it covers. */
interface BodyDigest {
  readonly sha256: string;
  readonly bytes: number;
}

const digests = new WeakMap<IncomingMessage, BodyDigest>();

class RequestBody extends Readable {
  private started = false;
  private ended = false;
  private hashed = 0;

  constructor(
    private readonly raw: IncomingMessage,
    private readonly tally: BodyCount,
    private readonly hash: Hash | undefined,
  ) {
    super();
    tally.onEvict = (err) => {
      this.raw.pause();
      this.destroy(err);
    };
  }

  override _read(): void {
    if (this.started) {
      this.raw.resume();
      return;
    }
    this.started = true;
    sendContinue(this.raw);
    this.raw.on('data', (chunk: Buffer) => {
      try {
        this.tally.count(chunk.length);
      } catch (err) {
        this.raw.pause();
        this.destroy(err as Error);
        return;
      }
      if (this.hash !== undefined) {
        this.hash.update(chunk);
        this.hashed += chunk.length;
      }
      if (!this.push(chunk)) this.raw.pause();
    });
    this.raw.once('end', () => {
      this.ended = true;
      if (this.hash !== undefined) digests.set(this.raw, { sha256: digestText(this.hash), bytes: this.hashed });
      this.tally.release();
      this.push(null);
    });
    this.raw.once('error', (err) => this.destroy(err));
    // A client gone mid-body: the parser must hear of it, or it would wait for ever.
    this.raw.once('close', () => {
      if (!this.ended) this.destroy(Object.assign(new Error('The client closed the connection before its body arrived'), { code: 'ECONNRESET' }));
    });
  }
}

/** Each request's count of body bytes, for the routes that read the body themselves (multipart). */
const counts = new WeakMap<IncomingMessage, BodyCount>();

/** The count a request's body bytes go into, when it has a body. */
export function bodyCountOf(raw: IncomingMessage): BodyCount | undefined {
  return counts.get(raw);
}

/**
 * Tells the data plane the SHA-256 of `body`, a raw image body as a content-type parser got it,
 * when its bytes were hashed on arrival: the chunks hashed are the chunks the parser joined,
 * which the byte count confirms.
 */
export function rememberBodyDigest(request: FastifyRequest, body: Buffer): void {
  const digest = digests.get(request.raw);
  if (digest !== undefined && digest.bytes === body.length) rememberImageDigest(body, digest.sha256);
}

/**
 * @param hashes whether a request's body is a raw image, to be hashed as it arrives.
 */
export function installRequestBodies(app: FastifyInstance, budget: BodyBudget, incoming: IncomingBodies, hashes: (request: FastifyRequest) => boolean): void {
  app.addHook('preParsing', (request, reply, payload, done) => {
    let tally: BodyCount | undefined;
    try {
      tally = admitBody(request, budget);
    } catch (err) {
      done(err as Error);
      return;
    }
    if (tally === undefined) {
      done(null, payload);
      return;
    }
    // One listener for this request's bookkeeping: its 'close', which Node emits once the body
    // has all been read or the client went away (always), gives the bytes back and takes the
    // request off the drain's list.
    const count = tally;
    counts.set(request.raw, count);
    const leave = incoming.add(request, reply);
    request.raw.once('close', () => {
      count.release();
      leave();
    });
    // Multipart bodies are read by the route, which counts them with bodyCountOf (request-inputs.ts).
    if (request.isMultipart()) {
      done(null, payload);
      return;
    }
    // No route here: a client waiting for 100 Continue is not asked for a body only to be told
    // 404; it gets the answer to an empty one.
    if (request.is404 && awaitsContinue(request.raw)) {
      done(null, Readable.from([]));
      return;
    }
    done(null, new RequestBody(request.raw, tally, hashes(request) ? createHash('sha256') : undefined));
  });
}

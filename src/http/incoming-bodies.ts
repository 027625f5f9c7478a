/**
 * Requests whose bodies are still arriving. A drain waits for admitted requests, but one whose
 * client sends its body a byte at a time is not admitted yet, and would hold its connection,
 * and so the server's close, until HTTP_REQUEST_TIMEOUT_MS. At the drain's end such requests
 * are answered 503 SHUTTING_DOWN (retryable: another replica will take it) and their
 * connections closed, so the process exits on time and with 0.
 *
 * Requests with a body are added as their body starts to be read (request-body.ts) and leave
 * when the request's 'close' comes, which Node emits as soon as the body has all been read (or
 * the client went away); an answer queued behind others on a pipelined connection does not keep
 * its request here.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors, RETRY_AFTER_SECONDS } from '../errors.js';

export interface IncomingBodies {
  /** Tracks `request` until the returned function is called. */
  add(request: FastifyRequest, reply: FastifyReply): () => void;
  /** Answers each of them 503 SHUTTING_DOWN with `Connection: close`; returns how many. */
  refuseAll(): number;
}

export function createIncomingBodies(): IncomingBodies {
  const receiving = new Map<FastifyRequest, FastifyReply>();
  return {
    add(request, reply) {
      receiving.set(request, reply);
      return () => receiving.delete(request);
    },
    refuseAll() {
      let refused = 0;
      for (const [request, reply] of receiving) {
        receiving.delete(request);
        if (reply.sent || reply.raw.headersSent) continue;
        // Node closes the connection after an answer that says so, unread body or not.
        void reply
          .header('Connection', 'close')
          .send(errors.SHUTTING_DOWN('The server is shutting down; the request body had not all arrived', { retryAfterSeconds: RETRY_AFTER_SECONDS }));
        refused++;
      }
      return refused;
    },
  };
}

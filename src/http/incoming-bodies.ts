/**
 * Requests whose bodies are still arriving. A drain waits for admitted requests, but one whose
 * client sends its body a byte at a time is not admitted yet, and would hold its connection,
 * and so the server's close, until HTTP_REQUEST_TIMEOUT_MS. At the drain's end such requests
 * are answered 503 SHUTTING_DOWN (retryable: another replica will take it) and their
 * connections closed, so the process exits on time and with 0.
 *
 * Only requests with a body are tracked, and each leaves the set when its body has all been
 * read or its request closed; an answer queued behind others on a pipelined connection does
 * not keep its request here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import { hasBody } from './body-budget.js';
import { RETRY_AFTER_SECONDS } from '../serving/inference-service.js';

export interface IncomingBodies {
  /** Requests whose bodies are still arriving. */
  readonly size: number;
  /** Answers each of them 503 SHUTTING_DOWN with `Connection: close`; returns how many. */
  refuseAll(): number;
}

export function trackIncomingBodies(app: FastifyInstance): IncomingBodies {
  const receiving = new Map<FastifyRequest, FastifyReply>();
  app.addHook('onRequest', (request, reply, done) => {
    if (hasBody(request) && !request.raw.complete) {
      receiving.set(request, reply);
      const leave = () => receiving.delete(request);
      request.raw.once('end', leave);
      request.raw.once('close', leave);
    }
    done();
  });
  return {
    get size() {
      return receiving.size;
    },
    refuseAll() {
      let refused = 0;
      for (const [request, reply] of receiving) {
        receiving.delete(request);
        if (reply.sent || reply.raw.headersSent) continue;
        // Node closes the connection after an answer that says so, unread body or not.
        void reply.header('Connection', 'close').send(errors.SHUTTING_DOWN('The server is shutting down; the request body had not all arrived', { retryAfterSeconds: RETRY_AFTER_SECONDS }));
        refused++;
      }
      return refused;
    },
  };
}

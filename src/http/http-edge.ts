/**
 * What Node's HTTP server would otherwise answer on its own, before Fastify sees the request,
 * in its own format: `Expect` headers and requests without `Host`.
 *
 * - `Expect: 100-continue`: Node answers `100 Continue` at once by default, so a client uploads
 *   its body only to be refused for a missing key or a too-large size. Here the 100 goes out
 *   when the body is first read (request-body.ts), which is after the route's guards (key, rate
 *   limit, load shedding) and Fastify's `Content-Length` check against the parser's limit
 *   (multipart bodies are read by the route, which calls `sendContinue` after its own size
 *   check). A request refused before then never got its 100, so its client never sends the
 *   body; Node closes such a connection after the answer.
 * - Any other expectation: 417 EXPECTATION_FAILED from the catalog (RFC 9110 §10.1.1).
 * - HTTP/1.1 without `Host`: 400 INVALID_REQUEST from the catalog (RFC 9112 §3.2), where Node
 *   would answer a bare 400.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { errors, type ServingError } from '../errors.js';

/** Requests whose client waits for `100 Continue`, until it is sent. */
const awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>();

/** Sends `100 Continue` if the client waits for it, it was not sent yet and no answer has begun. */
export function sendContinue(raw: IncomingMessage): void {
  const res = awaitingContinue.get(raw);
  if (res === undefined) return;
  awaitingContinue.delete(raw);
  if (!res.headersSent) res.writeContinue();
}

/** The client waits for `100 Continue` before it sends its body, and was not sent it. */
export function awaitsContinue(raw: IncomingMessage): boolean {
  return awaitingContinue.has(raw);
}

/** Answers on Node's own response object, in the catalog's format, and closes the connection. */
function answerRaw(res: ServerResponse, e: ServingError): void {
  const body = JSON.stringify({ error: e.message, code: e.code });
  res.shouldKeepAlive = false;
  res.writeHead(e.statusCode, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
  res.end(body);
}

/** Node server options that hand these cases to `installHttpEdge` instead of answering them. */
export const HTTP_EDGE_SERVER_OPTIONS = { requireHostHeader: false } as const;

export function installHttpEdge(app: FastifyInstance): void {
  const server: Server = app.server;
  // With a listener, Node neither sends 100 nor answers 417 itself.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.set(req, res);
    server.emit('request', req, res);
  });
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    answerRaw(res, errors.EXPECTATION_FAILED(`Only "Expect: 100-continue" is supported`));
  });
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor >= 1 && request.headers.host === undefined) {
      done(errors.INVALID_REQUEST('An HTTP/1.1 request must carry a Host header'));
      return;
    }
    done();
  });
}

/**
 * The one place where any error becomes an HTTP answer: `{"error", "code"}` with the status
 * from the catalog. Framework and plugin errors are mapped onto catalog entries here; 5xx
 * details go to the log only. Three doors lead here: the route error handler, Fastify's
 * `frameworkErrors` (URLs the router cannot even parse) and Node's `clientError` (requests the
 * HTTP parser refuses, or that were not received in time), so no hostile request is ever
 * answered in Fastify's or Node's own format.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, isServingError, type ServingError } from '../errors.js';
import { unsupportedContentType } from './accepted-bodies.js';

const FASTIFY_CODES: Record<string, (message: string, request: FastifyRequest | undefined) => ServingError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => errors.PAYLOAD_TOO_LARGE(),
  FST_REQ_FILE_TOO_LARGE: () => errors.PAYLOAD_TOO_LARGE('An uploaded file is too large'),
  // A Content-Type no parser of the route takes, or none can parse: the route says what it takes.
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (_message, request) => (request === undefined ? errors.UNSUPPORTED_MEDIA_TYPE() : unsupportedContentType(request)),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => errors.INVALID_JSON('The JSON body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => errors.INVALID_JSON(),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => errors.INVALID_REQUEST('Content-Length does not match the body'),
  FST_ERR_CTP_EMPTY_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('The Content-Type header is empty'),
  FST_ERR_CTP_INVALID_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('The Content-Type header is invalid'),
  FST_FILES_LIMIT: () => errors.TOO_MANY_IMAGES(),
  FST_PARTS_LIMIT: () => errors.TOO_MANY_IMAGES('The multipart body has too many parts'),
  FST_FIELDS_LIMIT: () => errors.PAYLOAD_TOO_LARGE('The multipart body has too many fields'),
  FST_INVALID_JSON_FIELD_ERROR: () => errors.INVALID_REQUEST('A multipart field declared as JSON is not valid JSON'),
  FST_MP_PREMATURE_CLOSE: () => errors.INVALID_REQUEST('The multipart body ended early'),
  FST_INVALID_MULTIPART_CONTENT_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('Expected multipart/form-data'),
  FST_PROTO_VIOLATION: () => errors.INVALID_REQUEST('The multipart body uses a forbidden field name'),
  FST_ERR_VALIDATION: (message) => errors.INVALID_REQUEST(message),
  FST_ERR_RATE_LIMIT: () => errors.RATE_LIMITED(),
  FST_ERR_BAD_URL: () => errors.INVALID_REQUEST('The URL is not valid percent-encoded UTF-8'),
  // The router's per-segment cap (`maxParamLength`) is far above any model name a file system
  // allows, so a longer segment names nothing that exists.
  FST_ERR_MAX_PARAM_LENGTH: () => errors.NOT_FOUND('No route: a path segment is too long'),
};

/** Maps anything thrown (while answering `request`, when there is one) to a catalog error. */
export function toServingError(err: unknown, request?: FastifyRequest): ServingError {
  if (isServingError(err)) return err;
  const e = err as Partial<FastifyError> & { name?: string };
  const mapped = e.code === undefined ? undefined : FASTIFY_CODES[e.code];
  if (mapped) return mapped(e.message ?? '', request);
  if (e.name === 'SyntaxError' && e.statusCode === 400) return errors.INVALID_JSON(`The request body is not valid JSON`);
  if (e.statusCode === 413) return errors.PAYLOAD_TOO_LARGE();
  if (e.statusCode === 415) return errors.UNSUPPORTED_MEDIA_TYPE();
  if (e.statusCode === 429) return errors.RATE_LIMITED();
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return errors.INVALID_REQUEST();
  return errors.INTERNAL(undefined, { cause: err });
}

/** Refusals that are the system working as designed, logged at info rather than error. */
const EXPECTED_5XX = new Set(['QUEUE_FULL', 'SHUTTING_DOWN', 'NOT_READY', 'MODEL_NOT_READY', 'DEADLINE_EXCEEDED']);

/**
 * Unread request bytes Node may read and discard to keep a connection for its next request,
 * rather than closing it: a new connection costs more than this.
 */
const DRAIN_MAX_BYTES = 64 * 1024;

export interface ErrorHandlerOptions {
  /**
   * Largest unread body still read and discarded after a retryable refusal (429, 503) other than
   * shedding (QUEUE_FULL), so that the client surely gets the answer and its `Retry-After`.
   * @default 64 KiB
   */
  readonly drainRetryableMaxBytes?: number;
  /**
   * Put the request (method, URL, peer) on the error's log line: for requests refused while
   * routing, which get no access-log line. @default false
   */
  readonly logRequest?: boolean;
}

/**
 * Whether to close the connection after refusing `request` with `e`. Only when its body was not
 * all read (too large, refused by its headers, shed, malformed multipart): reading what is left
 * only to discard it would be the client's gift of our time, unless it is small. A retryable
 * refusal is for a client that did nothing wrong, and closing while it still sends can reset
 * the connection before it reads the answer, so a body of acceptable size is drained instead;
 * but not for shedding, whose refusals come in floods and must not read the bodies of the
 * requests they turn away (`isShed`).
 */
function mustClose(request: FastifyRequest, e: ServingError, options: ErrorHandlerOptions): boolean {
  if (request.raw.complete) return false;
  const declared = Number(request.headers['content-length']); // NaN when chunked
  const drainable = e.retryAfterSeconds !== undefined && !isShed(e) ? Math.max(DRAIN_MAX_BYTES, options.drainRetryableMaxBytes ?? 0) : DRAIN_MAX_BYTES;
  return !(declared <= drainable);
}

/**
 * A request shed for want of room. Under a flood these come by thousands a second, so each
 * must cost almost nothing: no log line of its own (the access log samples them), and no body
 * read beyond DRAIN_MAX_BYTES (a larger one closes the connection, see `mustClose`).
 */
const isShed = (e: ServingError) => e.code === 'QUEUE_FULL';

function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply, options: ErrorHandlerOptions = {}) {
  const e = toServingError(err, request);
  if (e.statusCode >= 500 && !EXPECTED_5XX.has(e.code)) {
    request.log.error({ err, code: e.code, ...(options.logRequest ? { req: request } : {}) }, 'request failed');
  } else if (isShed(e)) {
    request.shed = true;
  } else {
    request.log.info({ code: e.code, statusCode: e.statusCode, ...(options.logRequest ? { req: request } : {}) }, e.message);
  }
  if (e.retryAfterSeconds !== undefined) void reply.header('Retry-After', String(e.retryAfterSeconds));
  if (e.headers) void reply.headers(e.headers);
  if (mustClose(request, e, options)) void reply.header('Connection', 'close');
  // Our own messages are written for clients; anything else unexpected stays in the log.
  const message = e.code === 'INTERNAL' ? errors.INTERNAL().message : e.message;
  return reply.code(e.statusCode).type('application/json').send({ error: message, code: e.code });
}

/** For Fastify's `frameworkErrors` option: URLs the router refuses before any route runs. */
export function handleFrameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // Refused while routing, before Fastify tracks the answer: no access line follows, so the
  // error's own line names the request.
  void sendError(err, request, reply, { logRequest: true });
}

export function installErrorHandler(app: FastifyInstance, options: ErrorHandlerOptions = {}): void {
  app.setErrorHandler((err, request, reply) => sendError(err, request, reply, options));
  app.setNotFoundHandler((request, reply) => {
    const e = errors.NOT_FOUND(`No route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`);
    return reply.code(e.statusCode).send({ error: e.message, code: e.code });
  });
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them: a request not received in time
 * is REQUEST_TIMEOUT (408), headers over the limit HEADERS_TOO_LARGE (431), anything else the
 * parser refuses INVALID_REQUEST (400).
 */
function clientErrorFor(err: NodeJS.ErrnoException): ServingError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return errors.REQUEST_TIMEOUT();
    case 'HPE_HEADER_OVERFLOW':
      return errors.HEADERS_TOO_LARGE();
    default:
      return errors.INVALID_REQUEST('The request is not valid HTTP/1.1');
  }
}

/**
 * For Fastify's `clientErrorHandler`: answers once in the catalog's format, then destroys the
 * socket (the parser's state is unusable, and a timed-out client gets no more time).
 */
export function createClientErrorHandler(log: () => FastifyBaseLogger | undefined): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const e = clientErrorFor(err);
    log()?.debug({ code: e.code, cause: err.code }, 'refused at the HTTP parser');
    // A response already started on this socket (say a 413 sent while the body still came)
    // must not be followed by a second one: the client would read it as garbage.
    const responseStarted = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (socket.writable && !responseStarted) {
      const body = JSON.stringify({ error: e.message, code: e.code });
      socket.write(
        `HTTP/1.1 ${e.statusCode} ${STATUS_CODES[e.statusCode]}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

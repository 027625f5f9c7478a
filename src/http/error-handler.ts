/**
 * The one place where any error becomes an HTTP answer: `{"error", "code"}` with the status
 * from the catalog. Framework and plugin errors are mapped onto catalog entries here; 5xx
 * details go to the log only.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { errors, isServingError, type ServingError } from '../errors.js';

const FASTIFY_CODES: Record<string, (message: string) => ServingError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => errors.PAYLOAD_TOO_LARGE(),
  FST_REQ_FILE_TOO_LARGE: () => errors.PAYLOAD_TOO_LARGE('An uploaded file is too large'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('Unsupported Content-Type: send an image, multipart/form-data or application/json'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => errors.INVALID_JSON('The JSON body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => errors.INVALID_JSON(),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => errors.INVALID_REQUEST('Content-Length does not match the body'),
  FST_ERR_CTP_EMPTY_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('The Content-Type header is empty'),
  FST_ERR_CTP_INVALID_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('The Content-Type header is invalid'),
  FST_FILES_LIMIT: () => errors.TOO_MANY_IMAGES(),
  FST_PARTS_LIMIT: () => errors.TOO_MANY_IMAGES('The multipart body has too many parts'),
  FST_FIELDS_LIMIT: () => errors.INVALID_REQUEST('The multipart body has too many fields'),
  FST_INVALID_MULTIPART_CONTENT_TYPE: () => errors.UNSUPPORTED_MEDIA_TYPE('Expected multipart/form-data'),
  FST_ERR_VALIDATION: (message) => errors.INVALID_REQUEST(message),
  FST_ERR_RATE_LIMIT: () => errors.RATE_LIMITED(),
};

/** Maps anything thrown to a catalog error. */
export function toServingError(err: unknown): ServingError {
  if (isServingError(err)) return err;
  const e = err as Partial<FastifyError> & { name?: string };
  const mapped = e.code === undefined ? undefined : FASTIFY_CODES[e.code];
  if (mapped) return mapped(e.message ?? '');
  if (e.name === 'SyntaxError' && e.statusCode === 400) return errors.INVALID_JSON(`The request body is not valid JSON`);
  if (e.statusCode === 413) return errors.PAYLOAD_TOO_LARGE();
  if (e.statusCode === 415) return errors.UNSUPPORTED_MEDIA_TYPE();
  if (e.statusCode === 429) return errors.RATE_LIMITED();
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return errors.INVALID_REQUEST();
  return errors.INTERNAL(undefined, { cause: err });
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const e = toServingError(err);
    if (e.statusCode >= 500 && e.code !== 'QUEUE_FULL' && e.code !== 'SHUTTING_DOWN' && e.code !== 'NOT_READY' && e.code !== 'MODEL_NOT_READY' && e.code !== 'DEADLINE_EXCEEDED') {
      request.log.error({ err, code: e.code }, 'request failed');
    } else {
      request.log.info({ code: e.code, statusCode: e.statusCode }, e.message);
    }
    if (e.retryAfterSeconds !== undefined) void reply.header('Retry-After', String(e.retryAfterSeconds));
    if (e.headers) void reply.headers(e.headers);
    // Our own messages are written for clients; anything else unexpected stays in the log.
    const message = e.code === 'INTERNAL' ? errors.INTERNAL().message : e.message;
    return reply.code(e.statusCode).type('application/json; charset=utf-8').send({ error: message, code: e.code });
  });
  app.setNotFoundHandler((request, reply) => {
    const e = errors.NOT_FOUND(`No route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`);
    return reply.code(e.statusCode).send({ error: e.message, code: e.code });
  });
}

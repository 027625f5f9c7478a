/**
 * The error catalog: every error the service answers with comes from here, so its stable
 * `code` and its HTTP `statusCode` travel together. Handlers never invent statuses; the
 * catalog is checked against openapi.yaml's `x-error-codes` by
 * test/integration/openapi-contract.test.ts.
 */

export interface ServingErrorOptions {
  /** Seconds a client should wait before retrying (sent as `Retry-After`). */
  retryAfterSeconds?: number;
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  headers?: Record<string, string>;
  cause?: unknown;
}

/**
 * `Retry-After` of every refusal for load (QUEUE_FULL, SHUTTING_DOWN), in seconds: the one value
 * the batcher, the data plane and the HTTP edge's early refusals all send.
 */
export const RETRY_AFTER_SECONDS = 1;

export class ServingError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly retryAfterSeconds: number | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: string, message: string, statusCode: number, options: ServingErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ServingError';
    this.code = code;
    this.statusCode = statusCode;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers;
  }
}

export type ErrorFactory = ((message?: string, options?: ServingErrorOptions) => ServingError) & {
  readonly code: string;
  readonly statusCode: number;
};

function createError(code: string, defaultMessage: string, statusCode: number): ErrorFactory {
  const factory = (message?: string, options?: ServingErrorOptions) => new ServingError(code, message ?? defaultMessage, statusCode, options);
  return Object.assign(factory, { code, statusCode });
}

export const errors = {
  INVALID_IMAGE: createError('INVALID_IMAGE', 'The image could not be decoded', 400),
  INVALID_JSON: createError('INVALID_JSON', 'The request body is not valid JSON', 400),
  INVALID_BASE64: createError('INVALID_BASE64', 'The image is not valid base64', 400),
  INVALID_TENSOR: createError('INVALID_TENSOR', 'The input tensor does not match the model', 400),
  INVALID_REQUEST: createError('INVALID_REQUEST', 'The request is malformed', 400),
  NO_IMAGES: createError('NO_IMAGES', 'The request holds no image', 400),
  UNAUTHORIZED: createError('UNAUTHORIZED', 'A valid API key is required', 401),
  MODEL_LOAD_FAILED: createError('MODEL_LOAD_FAILED', 'The model could not be loaded', 400),
  MODEL_CONTROL_DISABLED: createError('MODEL_CONTROL_DISABLED', 'The repository API needs MODEL_CONTROL_MODE=explicit', 403),
  MODEL_NOT_FOUND: createError('MODEL_NOT_FOUND', 'No such model', 404),
  NOT_FOUND: createError('NOT_FOUND', 'No such route', 404),
  METHOD_NOT_ALLOWED: createError('METHOD_NOT_ALLOWED', 'Method not allowed', 405),
  REQUEST_TIMEOUT: createError('REQUEST_TIMEOUT', 'The request was not received in time', 408),
  PAYLOAD_TOO_LARGE: createError('PAYLOAD_TOO_LARGE', 'The request body is too large', 413),
  TOO_MANY_IMAGES: createError('TOO_MANY_IMAGES', 'The request holds too many images', 413),
  IMAGE_TOO_LARGE: createError('IMAGE_TOO_LARGE', 'The image has too many pixels', 413),
  UNSUPPORTED_MEDIA_TYPE: createError('UNSUPPORTED_MEDIA_TYPE', 'Unsupported media type', 415),
  EXPECTATION_FAILED: createError('EXPECTATION_FAILED', 'Only Expect: 100-continue is supported', 417),
  RATE_LIMITED: createError('RATE_LIMITED', 'Too many requests', 429),
  HEADERS_TOO_LARGE: createError('HEADERS_TOO_LARGE', 'The request line and headers are too large', 431),
  // nginx's "client closed request": never sent to anyone, but it names the outcome in logs.
  CANCELLED: createError('CANCELLED', 'The client went away before inference ran', 499),
  INTERNAL: createError('INTERNAL', 'Internal server error', 500),
  INFERENCE_FAILED: createError('INFERENCE_FAILED', 'Inference failed', 500),
  NOT_READY: createError('NOT_READY', 'The server is not ready', 503),
  MODEL_NOT_READY: createError('MODEL_NOT_READY', 'The model is not ready', 503),
  QUEUE_FULL: createError('QUEUE_FULL', 'The inference queue is full', 503),
  SHUTTING_DOWN: createError('SHUTTING_DOWN', 'The server is shutting down', 503),
  DEADLINE_EXCEEDED: createError('DEADLINE_EXCEEDED', 'The request deadline passed before inference ran', 504),
} as const;

export type ErrorCode = keyof typeof errors;

export function isServingError(value: unknown): value is ServingError {
  return value instanceof ServingError;
}

/**
 * Turning HTTP requests into the data plane's inputs: image bytes (multipart, raw body or
 * base64 JSON), `top_k`, and the request's deadline and cancellation signal.
 */
import { performance } from 'node:perf_hooks';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import type { RequestControl } from '../serving/inference-service.js';

export interface InputLimits {
  readonly uploadMaxBytes: number;
  readonly maxImagesPerRequest: number;
  readonly requestTimeoutMs: number;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Strictly decodes standard or URL-safe base64 (whitespace ignored); refuses anything else. */
export function decodeBase64(text: unknown, what: string, maxBytes: number): Buffer {
  if (typeof text !== 'string') throw errors.INVALID_BASE64(`${what} must be a base64 string`);
  const s = text.replace(/\s+/g, '');
  if (s.length === 0) throw errors.INVALID_BASE64(`${what} is empty`);
  // Decoded size is known before decoding: refuse oversize input without allocating it.
  if (Math.floor((s.length * 3) / 4) > maxBytes + 2) throw errors.PAYLOAD_TOO_LARGE(`${what} decodes to more than ${maxBytes} bytes`);
  const url = /[-_]/.test(s);
  if (!(url ? BASE64URL : BASE64).test(s) || s.length % 4 === 1) throw errors.INVALID_BASE64(`${what} is not valid base64`);
  return Buffer.from(s, url ? 'base64url' : 'base64');
}

function checkCount(count: number, limits: InputLimits): void {
  if (count > limits.maxImagesPerRequest) {
    throw errors.TOO_MANY_IMAGES(`A request may carry at most ${limits.maxImagesPerRequest} images, got ${count}`);
  }
}

async function readMultipart(request: FastifyRequest, limits: InputLimits): Promise<Buffer[]> {
  const images: Buffer[] = [];
  let total = 0;
  try {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      checkCount(images.length + 1, limits);
      const bytes = await part.toBuffer();
      total += bytes.length;
      if (total > limits.uploadMaxBytes) throw errors.PAYLOAD_TOO_LARGE(`The uploaded images exceed ${limits.uploadMaxBytes} bytes in all`);
      images.push(bytes);
    }
  } catch (err) {
    const e = err as { code?: string; statusCode?: number };
    // Known limits keep their own codes (mapped by the error handler); anything else the
    // multipart parser throws means the body itself is malformed.
    if (e.code !== undefined || e.statusCode !== undefined) throw err;
    throw errors.INVALID_REQUEST(`Malformed multipart body: ${(err as Error).message}`);
  }
  return images;
}

function readInstances(body: unknown, limits: InputLimits): Buffer[] {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { instances?: unknown }).instances)) {
    throw errors.INVALID_REQUEST('Expected a JSON body {"instances": [{"b64": "<base64 image>"}, ...]}');
  }
  const instances = (body as { instances: unknown[] }).instances;
  checkCount(instances.length, limits);
  return instances.map((instance, i) => {
    const what = `instances[${i}]`;
    if (typeof instance === 'object' && instance !== null) {
      const o = instance as { b64?: unknown; image_bytes?: { b64?: unknown } };
      if (o.b64 !== undefined) return decodeBase64(o.b64, `${what}.b64`, limits.uploadMaxBytes);
      if (o.image_bytes?.b64 !== undefined) return decodeBase64(o.image_bytes.b64, `${what}.image_bytes.b64`, limits.uploadMaxBytes);
    }
    throw errors.INVALID_REQUEST(`${what} must be {"b64": "<base64 image>"}`);
  });
}

/** The images of a v1 predict request, in order. */
export async function readImages(request: FastifyRequest, limits: InputLimits): Promise<Buffer[]> {
  let images: Buffer[];
  if (request.isMultipart()) images = await readMultipart(request, limits);
  else if (Buffer.isBuffer(request.body)) images = request.body.length > 0 ? [request.body] : [];
  else if (request.body !== undefined && request.body !== null) images = readInstances(request.body, limits);
  else images = [];
  if (images.length === 0) throw errors.NO_IMAGES('The request holds no image: send image bytes, multipart/form-data files, or {"instances": [{"b64": ...}]}');
  return images;
}

/** Parses `top_k` (default 5) against the model's class count. */
export function readTopK(query: unknown, classes: number): number {
  const raw = (query as { top_k?: unknown } | undefined)?.top_k;
  if (raw === undefined || raw === '') return Math.min(5, classes);
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw errors.INVALID_REQUEST(`top_k must be an integer from 1 and up, got ${JSON.stringify(String(raw).slice(0, 32))}`);
  return Math.min(value, classes);
}

/**
 * The request's deadline (`REQUEST_TIMEOUT_MS`, lowered, never raised, by
 * `X-Request-Timeout-Ms`) and a signal aborted when the client goes away.
 */
export function requestControl(request: FastifyRequest, reply: FastifyReply, limits: InputLimits): RequestControl {
  let timeoutMs = limits.requestTimeoutMs;
  const header = request.headers['x-request-timeout-ms'];
  if (header !== undefined) {
    const value = Number(Array.isArray(header) ? header[0] : header);
    if (!Number.isFinite(value) || value <= 0) throw errors.INVALID_REQUEST('X-Request-Timeout-Ms must be a positive number of milliseconds');
    timeoutMs = Math.min(timeoutMs, value);
  }
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  // The deadline runs from the request's arrival, not from when its body was read.
  return { deadline: performance.now() - reply.elapsedTime + timeoutMs, signal: controller.signal };
}

/**
 * Turning HTTP requests into the data plane's inputs: image bytes (multipart, raw body or
 * base64 JSON), `top_k`, and the request's deadline and cancellation signal.
 */
import { performance } from 'node:perf_hooks';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import { checkImageCount, decodeBase64Images } from '../protocol/images.js';
import type { RequestControl } from '../serving/inference-service.js';
import { sendContinue } from './http-edge.js';
import { bodyCountOf } from './request-body.js';

export interface InputLimits {
  /** Bytes of image data one request may carry, all images together. */
  readonly uploadMaxBytes: number;
  readonly maxImagesPerRequest: number;
  readonly requestTimeoutMs: number;
}

/** Non-file form fields a multipart request may carry (they are ignored). */
const MULTIPART_FIELDS = 32;
/** Largest non-file field value, in bytes. */
const MULTIPART_FIELD_MAX_BYTES = 64 * 1024;
const MULTIPART_FIELD_NAME_MAX_BYTES = 256;
/** Largest header block of one part (Content-Disposition with its file name, Content-Type), in bytes. */
const MULTIPART_PART_HEADER_MAX_BYTES = 16 * 1024;

/** busboy's limits (as @fastify/multipart takes them) for uploads within `limits`. */
export function multipartLimits(limits: Pick<InputLimits, 'uploadMaxBytes' | 'maxImagesPerRequest'>) {
  return {
    fileSize: limits.uploadMaxBytes,
    files: limits.maxImagesPerRequest,
    parts: limits.maxImagesPerRequest + MULTIPART_FIELDS,
    fields: MULTIPART_FIELDS,
    fieldSize: MULTIPART_FIELD_MAX_BYTES,
    fieldNameSize: MULTIPART_FIELD_NAME_MAX_BYTES,
    headerPairs: 32,
    headerSize: MULTIPART_PART_HEADER_MAX_BYTES,
  };
}

/**
 * The largest multipart body that can hold an acceptable upload: every file byte allowed, every
 * field and part header at its limit, and a boundary line per part (the boundary is shorter
 * than the Content-Type header that carries it). A Content-Length above it is refused unread.
 */
export function multipartMaxBodyBytes(limits: Pick<InputLimits, 'uploadMaxBytes' | 'maxImagesPerRequest'>, contentTypeLength: number): number {
  const m = multipartLimits(limits);
  const boundaryLine = contentTypeLength + 8; // "\r\n--" boundary ["--"] "\r\n"
  return m.fileSize + m.fields * (m.fieldSize + m.fieldNameSize) + (m.parts + 1) * (m.headerSize + boundaryLine);
}

async function readMultipart(request: FastifyRequest, limits: InputLimits): Promise<Buffer[]> {
  const declared = Number(request.headers['content-length']);
  const maxBody = multipartMaxBodyBytes(limits, request.headers['content-type']?.length ?? 0);
  if (declared > maxBody) {
    throw errors.PAYLOAD_TOO_LARGE(`The multipart body is ${declared} bytes; images may total at most ${limits.uploadMaxBytes} bytes`);
  }
  // The declared size is within bounds: a client waiting for `100 Continue` may send the body.
  sendContinue(request.raw);
  const images: Buffer[] = [];
  let total = 0;
  // Multipart bodies are read here, past the body budget's stream: their file bytes are counted
  // here, until the body has all arrived (the request's 'close' gives them back).
  const tally = bodyCountOf(request.raw);
  try {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      checkImageCount(images.length + 1, limits.maxImagesPerRequest);
      // Counted as it streams, so the total is refused at the first byte past the limit
      // rather than after buffering a whole file.
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (total + size > limits.uploadMaxBytes) throw errors.PAYLOAD_TOO_LARGE(`The uploaded images exceed ${limits.uploadMaxBytes} bytes in all`);
        tally?.count(chunk.length);
        chunks.push(chunk);
      }
      if (part.file.truncated) throw errors.PAYLOAD_TOO_LARGE(`An uploaded file exceeds ${limits.uploadMaxBytes} bytes`);
      total += size;
      images.push(Buffer.concat(chunks, size));
    }
  } catch (err) {
    const e = err as { code?: string; statusCode?: number };
    // Known limits keep their own codes (mapped by the error handler); anything else the
    // multipart parser throws means the body itself is malformed. Its text is the library's
    // ("The needle cannot have a length bigger than 256"), so the client gets ours.
    if (e.code !== undefined || e.statusCode !== undefined) throw err;
    throw errors.INVALID_REQUEST('Malformed multipart/form-data body: check its boundary and part headers', { cause: err });
  }
  return images;
}

function readInstances(body: unknown, limits: InputLimits): Buffer[] {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { instances?: unknown }).instances)) {
    throw errors.INVALID_REQUEST('Expected a JSON body {"instances": [{"b64": "<base64 image>"}, ...]}');
  }
  const instances = (body as { instances: unknown[] }).instances;
  checkImageCount(instances.length, limits.maxImagesPerRequest);
  const values = instances.map((instance, i) => {
    if (typeof instance === 'object' && instance !== null) {
      const o = instance as { b64?: unknown; image_bytes?: { b64?: unknown } };
      if (o.b64 !== undefined) return { value: o.b64, what: `instances[${i}].b64` };
      if (o.image_bytes?.b64 !== undefined) return { value: o.image_bytes.b64, what: `instances[${i}].image_bytes.b64` };
    }
    throw errors.INVALID_REQUEST(`instances[${i}] must be {"b64": "<base64 image>"}`);
  });
  return decodeBase64Images(
    values.map((v) => v.value),
    (i) => values[i]!.what,
    limits,
  );
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
  if (!Number.isInteger(value) || value < 1)
    throw errors.INVALID_REQUEST(`top_k must be an integer from 1 and up, got ${JSON.stringify(String(raw).slice(0, 32))}`);
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
  const res = reply.raw;
  const abandoned = () => {
    if (!res.writableFinished) controller.abort();
  };
  // The answer's 'close' tells of a client gone while it is being answered; the socket's, of one
  // gone while the answer waits behind earlier ones on a pipelined connection (Node emits no
  // 'close' for those). The socket outlives the request on a kept-alive connection, so its
  // listener goes once the answer is done.
  const socket = request.raw.socket;
  res.once('close', abandoned);
  socket.once('close', abandoned);
  res.once('close', () => socket.removeListener('close', abandoned));
  // The deadline runs from the request's arrival, not from when its body was read.
  return { deadline: performance.now() - reply.elapsedTime + timeoutMs, signal: controller.signal };
}

/**
 * `Content-Encoding` of request bodies and `Accept-Encoding` of answers, for the v2 inference
 * route (tritonclient's `request_compression_algorithm` / `response_compression_algorithm`).
 * zlib runs on libuv's threads, off the event loop. A compressed body is bounded by what it
 * decompresses to: zlib stops at `maxBytes` of output, so a gzip bomb costs no more than an
 * uncompressed body of the limit.
 */
import { promisify } from 'node:util';
import { deflate, gunzip, gzip, inflate } from 'node:zlib';
import { errors } from '../errors.js';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);

export type BodyEncoding = 'gzip' | 'deflate';

/** The body as sent, decompressed (at most `maxBytes`); 413 past that, 400 if corrupt, 415 for other codings. */
export async function decodeBody(body: Buffer, contentEncoding: string | undefined, maxBytes: number): Promise<Buffer> {
  const coding = contentEncoding?.trim().toLowerCase();
  if (coding === undefined || coding === '' || coding === 'identity') return body;
  const inflater = coding === 'gzip' || coding === 'x-gzip' ? gunzipAsync : coding === 'deflate' ? inflateAsync : undefined;
  if (inflater === undefined)
    throw errors.UNSUPPORTED_MEDIA_TYPE(`Content-Encoding ${JSON.stringify(coding.slice(0, 32))} is not supported: send gzip, deflate or identity`);
  try {
    return await inflater(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw errors.PAYLOAD_TOO_LARGE(`The ${coding} body decompresses to more than ${maxBytes} bytes`);
    }
    throw errors.INVALID_REQUEST(`The body is not valid ${coding} data`, { cause: err });
  }
}

/**
 * The coding to answer in for an `Accept-Encoding` header, or `undefined` for none: gzip, then
 * deflate, each unless refused with `q=0`.
 */
export function responseEncoding(acceptEncoding: string | string[] | undefined): BodyEncoding | undefined {
  const header = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (header === undefined) return undefined;
  const accepted = new Map<string, number>();
  for (const range of header.split(',')) {
    const [coding = '', ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    accepted.set(coding, q === undefined ? 1 : Number(q.slice(2)) || 0);
  }
  const wants = (coding: BodyEncoding) => (accepted.get(coding) ?? accepted.get('*') ?? 0) > 0;
  if (wants('gzip')) return 'gzip';
  if (wants('deflate')) return 'deflate';
  return undefined;
}

export function encodeBody(body: Buffer, encoding: BodyEncoding): Promise<Buffer> {
  return encoding === 'gzip' ? gzipAsync(body) : deflateAsync(body);
}

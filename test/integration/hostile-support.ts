/**
 * Helpers for the hostile-input tests: a listening server, HTTP requests sent byte for byte
 * (no client-side URL normalisation, no well-formedness), every one bounded by a client-side
 * guard so a hang fails the test instead of stalling it, and the check that an answer is a
 * catalog error.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../src/errors.js';

/** Generous: a hostile request is answered in milliseconds; this only turns a hang into a failure. */
export const GUARD_MS = 20_000;

/** Status of every catalog code. */
export const CATALOG: ReadonlyMap<string, number> = new Map(Object.values(errors).map((e) => [e.code, e.statusCode]));

/** Listens on an ephemeral loopback port (closed with the app) and returns the port. */
export async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as { port: number }).port;
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface SendOptions {
  readonly method?: string;
  /** Sent verbatim: `%2e%2e` stays `%2e%2e`. */
  readonly path: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: Buffer | string;
  /** @default GUARD_MS */
  readonly guardMs?: number;
}

/** One request over a fresh connection; rejects (failing the test) if no answer within the guard. */
export function send(port: number, options: SendOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(options.guardMs ?? GUARD_MS, () =>
      req.destroy(new Error(`no answer to ${options.method ?? 'GET'} ${options.path.slice(0, 80)} within the guard`)),
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RawExchange {
  /** Everything the server sent before closing (or before the guard expired). */
  readonly received: Buffer;
  /** Whether the server closed the connection before the guard expired. */
  readonly closed: boolean;
  /** The first response, parsed, if one came. */
  readonly answer: Answer | undefined;
}

/** Splits one HTTP/1.1 response (Content-Length framed, as this server always frames errors). */
export function parseResponse(bytes: Buffer): Answer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1]);
  if (!Number.isInteger(status)) return undefined;
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  return { status, headers, text: bytes.subarray(end + 4, end + 4 + length).toString('utf8') };
}

export interface RawOptions {
  /** Half-close after writing (the client will send nothing more). @default false */
  readonly end?: boolean;
  /** Stop waiting once a whole first response has arrived, without waiting for the close. @default false */
  readonly untilAnswer?: boolean;
  /** @default GUARD_MS */
  readonly guardMs?: number;
}

/**
 * Writes `data` on a raw TCP connection and collects what comes back until the server closes
 * the connection (or, with `untilAnswer`, until a first response is complete). Malformed HTTP
 * stays malformed this way.
 */
export function exchange(port: number, data: ReadonlyArray<Buffer | string>, options: RawOptions = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      socket.destroy();
      const received = Buffer.concat(chunks);
      resolve({ received, closed, answer: parseResponse(received) });
    };
    const guard = setTimeout(() => finish(false), options.guardMs ?? GUARD_MS);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (options.untilAnswer) {
        const answer = parseResponse(Buffer.concat(chunks));
        const length = Number(answer?.headers['content-length'] ?? -1);
        if (answer && Buffer.byteLength(answer.text) >= length) finish(true);
      }
    });
    // A reset after the answer is still an answer; what was received is what counts.
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    for (const d of data) socket.write(d);
    if (options.end) socket.end();
  });
}

/**
 * Asserts an answer is a catalog error: JSON `{error, code}`, a code the catalog has, the
 * status the catalog gives it, and nothing internal (no stack, no file path) in it.
 */
export function assertCatalogError(answer: Answer, expected?: { status?: number; code?: string }, what = ''): { code: string; error: string } {
  const label = `${what} → ${answer.status} ${answer.text.slice(0, 300)}`;
  assert.match(String(answer.headers['content-type'] ?? ''), /^application\/json/, label);
  let body: { code?: unknown; error?: unknown };
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    assert.fail(`not JSON: ${label}`);
  }
  assert.equal(typeof body.code, 'string', label);
  assert.equal(typeof body.error, 'string', label);
  const code = body.code as string;
  assert.ok(CATALOG.has(code), `code ${code} is not in the catalog: ${label}`);
  assert.equal(answer.status, CATALOG.get(code), `status differs from the catalog's for ${code}: ${label}`);
  assert.doesNotMatch(answer.text, /\/work\/|\/home\/|node_modules|\bat .*\.[cm]?js:\d+|\.ts:\d+/, `internal detail leaked: ${label}`);
  if (expected?.status !== undefined) assert.equal(answer.status, expected.status, label);
  if (expected?.code !== undefined) assert.equal(code, expected.code, label);
  return { code, error: body.error as string };
}

/** A 4xx catalog error: what every hostile request must get. */
export function assertClientError(answer: Answer, what = ''): string {
  assert.ok(answer.status >= 400 && answer.status < 500, `expected a 4xx: ${what} → ${answer.status} ${answer.text.slice(0, 300)}`);
  return assertCatalogError(answer, undefined, what).code;
}

/** A multipart/form-data body with one file part per image. */
export function multipartBody(
  files: ReadonlyArray<{ name?: string; filename?: string; type?: string; bytes: Buffer }>,
  boundary = 'hostile-boundary-7',
): Buffer {
  const parts: Buffer[] = [];
  files.forEach((f, i) => {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.name ?? `image${i}`}"; filename="${f.filename ?? `image${i}.bin`}"\r\n` +
          `Content-Type: ${f.type ?? 'application/octet-stream'}\r\n\r\n`,
      ),
    );
    parts.push(f.bytes, Buffer.from('\r\n'));
  });
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

/** A POST written by hand: request line, headers (Content-Length from the body unless given), body. */
export function rawPost(path: string, contentType: string, body: Buffer | string, extra: Record<string, string | number> = {}): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const headers = { Host: 'localhost', 'Content-Type': contentType, 'Content-Length': bytes.length, Connection: 'close', ...extra };
  const head = `POST ${path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}

/** Runs `tasks` with at most `width` in flight, in order of start. */
export async function inParallel<T>(tasks: ReadonlyArray<() => Promise<T>>, width: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, tasks.length) }, worker));
  return results;
}

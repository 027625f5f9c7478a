/** A POST for the benchmarks that send bodies outside autocannon (hostile inputs, closed-loop clients). */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface PostResult {
  readonly status: number;
  readonly body: string;
  /** From the call to the last byte of the answer, in ms. */
  readonly ms: number;
}

export interface PostOptions {
  readonly headers?: http.OutgoingHttpHeaders;
  /** Longest wait for the whole answer, from the call, in ms (not an idle timeout). @default 10000 */
  readonly timeoutMs?: number;
  /** `false` opens a new connection for the call; pass a keep-alive agent to reuse one. @default false */
  readonly agent?: http.Agent | false;
  /** Aborts the call (the promise rejects with an `AbortError`). */
  readonly signal?: AbortSignal;
}

/** Raised when the answer has not fully arrived `timeoutMs` after the call. */
export class PostTimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(url: string, timeoutMs: number) {
    super(`POST ${url} got no whole answer within ${timeoutMs} ms`);
    this.name = 'PostTimeoutError';
  }
}

/**
 * POSTs `body` to `url`. The promise settles with the answer as soon as it has fully arrived,
 * even when the server answered before reading the whole body (the write error that may follow
 * is then ignored).
 */
export function httpPost(url: string, body: Buffer | string, options: PostOptions = {}): Promise<PostResult> {
  const { timeoutMs = 10_000, agent = false, signal } = options;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-length': Buffer.byteLength(body), ...options.headers },
      ...(signal ? { signal } : {}),
    });
    const timer = setTimeout(() => request.destroy(new PostTimeoutError(url, timeoutMs)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started });
      });
      response.on('error', fail);
    });
    request.on('error', fail);
    request.end(body);
  });
}

/** A short name for why a call got no answer: `timeout`, `aborted`, or the system error code. */
export function failureName(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown };
  if (e.code === 'TIMEOUT') return 'timeout';
  if (e.name === 'AbortError' || e.code === 'ABORT_ERR') return 'aborted';
  return typeof e.code === 'string' ? e.code : err instanceof Error ? err.message : String(err);
}

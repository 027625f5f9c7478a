/**
 * Downloads one large file robustly: into `<destination>.part`, resuming with an HTTP Range
 * request after a dropped connection (and across runs), retrying transient failures with
 * exponential backoff, checking size and sha256, and only then renaming it into place.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as delay } from 'node:timers/promises';

export type DownloadErrorCode = 'NOT_FOUND' | 'HTTP_STATUS' | 'UNREACHABLE' | 'INTERRUPTED' | 'SIZE_MISMATCH' | 'CHECKSUM_MISMATCH';

export class DownloadError extends Error {
  readonly code: DownloadErrorCode;

  constructor(code: DownloadErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DownloadError';
    this.code = code;
  }
}

export interface DownloadProgress {
  /** Bytes of the file on disk so far, including any resumed part. */
  readonly receivedBytes: number;
  /** Size of the whole file, when the server or the caller knows it. */
  readonly totalBytes: number | undefined;
}

export interface DownloadOptions {
  readonly url: string;
  /** Final path; the download goes to `<destination>.part` until verified. */
  readonly destination: string;
  /** Expected size in bytes; checked against the server's and the result. */
  readonly expectedBytes?: number;
  /** Expected lower-case hex sha256 of the whole file. */
  readonly sha256?: string;
  /**
   * Failed attempts allowed after the first, in a row without progress; at most 2 when the host
   * cannot be reached at all. @default 5
   */
  readonly retries?: number;
  /** First backoff delay, doubled after each failure (capped at 30 s), in ms. @default 1000 */
  readonly retryDelayMs?: number;
  /** An attempt is abandoned when no byte arrives for this long, in ms. @default 30000 */
  readonly idleTimeoutMs?: number;
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly onRetry?: (info: { attempt: number; delayMs: number; error: Error }) => void;
  readonly signal?: AbortSignal;
}

export interface DownloadResult {
  readonly bytes: number;
  readonly sha256: string;
  /** Whether some bytes came from an earlier, interrupted attempt or run. */
  readonly resumed: boolean;
}

const MAX_BACKOFF_MS = 30_000;
/** Retries when no connection could be made at all. */
const UNREACHABLE_RETRIES = 2;
/** Error codes meaning the host could not be reached at all (rather than a dropped transfer). */
const UNREACHABLE_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'ENETDOWN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** A failure worth another attempt (network trouble, 5xx, 408, 429, a short body). */
class TransientError extends Error {
  constructor(
    message: string,
    readonly unreachable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 0;
    throw error;
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Parses `Content-Range: bytes <start>-<end>/<total|*>`. */
function parseContentRange(header: string | null): { start: number; total: number | undefined } | undefined {
  const match = header ? /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!match) return undefined;
  return { start: Number(match[1]), total: match[2] === '*' ? undefined : Number(match[2]) };
}

/** One request; appends to the part file. Throws `TransientError` for what a retry may fix. */
async function attempt(options: DownloadOptions, part: string, host: string): Promise<void> {
  let offset = await fileSize(part);
  const { expectedBytes } = options;
  if (expectedBytes !== undefined && offset > expectedBytes) {
    await rm(part, { force: true });
    offset = 0;
  }
  if (expectedBytes !== undefined && offset === expectedBytes) return;

  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdleTimer = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => controller.abort(new Error(`no data from ${host} for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };

  try {
    armIdleTimer();
    let response: Response;
    try {
      response = await fetch(options.url, {
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        redirect: 'follow',
        signal: controller.signal,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const code = errorCode(error) ?? (controller.signal.aborted ? 'timeout' : 'network error');
      throw new TransientError(`cannot reach ${host} (${code})`, UNREACHABLE_CODES.has(code) || code === 'timeout', { cause: error });
    }

    if (response.status === 416 && offset > 0) {
      // The part may already be the whole file (a run killed between download and rename).
      await response.body?.cancel();
      const unsatisfied = /^bytes \*\/(\d+)$/.exec(response.headers.get('content-range')?.trim() ?? '');
      if (unsatisfied && Number(unsatisfied[1]) === offset) return;
      await rm(part, { force: true });
      throw new TransientError(`${host} refused to resume at byte ${offset}; starting over`, false);
    }
    if (response.status === 404 || response.status === 410) {
      await response.body?.cancel();
      throw new DownloadError('NOT_FOUND', `${options.url} was not found (HTTP ${response.status})`);
    }
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      await response.body?.cancel();
      throw new TransientError(`${host} answered HTTP ${response.status}`, false);
    }
    if (response.status !== 200 && response.status !== 206) {
      await response.body?.cancel();
      throw new DownloadError('HTTP_STATUS', `${options.url} answered HTTP ${response.status} ${response.statusText}`);
    }

    let total: number | undefined;
    let append = false;
    if (response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      if (!range || range.start !== offset) {
        await response.body?.cancel();
        await rm(part, { force: true });
        throw new TransientError(`${host} sent a range other than the one asked for; starting over`, false);
      }
      total = range.total;
      append = true;
    } else {
      // A server that ignores Range sends the whole file again: start the part over.
      const length = response.headers.get('content-length');
      total = length === null ? undefined : Number(length);
      offset = 0;
    }
    if (expectedBytes !== undefined && total !== undefined && total !== expectedBytes) {
      await response.body?.cancel();
      await rm(part, { force: true });
      throw new DownloadError('SIZE_MISMATCH', `${options.url} is ${total} bytes, expected ${expectedBytes}: the file upstream changed or the URL is wrong`);
    }
    if (!response.body) throw new TransientError(`${host} sent no body`, false);

    total ??= expectedBytes;
    let received = offset;
    // Not stream.pipeline: it destroys the file stream when the connection breaks, dropping
    // writes still queued, and then the next attempt cannot resume from what was received.
    // Here the file is always ended (flushed) before the error is looked at.
    const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
    let broken: unknown;
    try {
      for await (const chunk of Readable.fromWeb(response.body as WebReadableStream<Uint8Array>)) {
        armIdleTimer();
        received += chunk.length;
        options.onProgress?.({ receivedBytes: received, totalBytes: total });
        if (!out.write(chunk)) await once(out, 'drain');
      }
    } catch (error) {
      broken = error;
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (broken !== undefined) {
      if (options.signal?.aborted) throw broken;
      const reason = controller.signal.aborted ? controller.signal.reason : broken;
      const detail = reason instanceof Error ? reason.message : String(reason);
      throw new TransientError(`the connection to ${host} broke after ${received} bytes (${detail})`, false, { cause: broken });
    }
    if (total !== undefined && received < total) {
      throw new TransientError(`the connection to ${host} closed after ${received} of ${total} bytes`, false);
    }
  } finally {
    clearTimeout(idleTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Downloads `url` to `destination`. A `<destination>.part` left by an earlier run is resumed.
 * On a size or checksum mismatch the part is deleted and a `DownloadError` thrown; other
 * failures are retried, and after the last one a `DownloadError` says what went wrong.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const part = `${options.destination}.part`;
  const host = new URL(options.url).host;
  const retries = options.retries ?? 5;
  const baseDelayMs = options.retryDelayMs ?? 1000;
  const resumed = (await fileSize(part)) > 0;

  let failures = 0;
  for (;;) {
    const before = await fileSize(part);
    try {
      await attempt(options, part, host);
      break;
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      // A broken connection that still moved the download forward does not use up a retry.
      if ((await fileSize(part)) > before) failures = 0;
      else failures++;
      // A host that cannot be reached at all (offline, DNS failure) is given up on sooner.
      if (failures > (error.unreachable ? Math.min(retries, UNREACHABLE_RETRIES) : retries)) {
        if (error.unreachable) {
          throw new DownloadError(
            'UNREACHABLE',
            `Cannot download ${options.url}: ${error.message} after ${failures} attempts. ` +
              'Is this machine offline or behind a proxy? A mirror can be given with --base-url (or MODEL_FETCH_BASE_URL).',
            { cause: error },
          );
        }
        throw new DownloadError(
          'INTERRUPTED',
          `Cannot download ${options.url}: ${error.message} (gave up after ${failures} failed attempts; run again to resume)`,
          {
            cause: error,
          },
        );
      }
      const delayMs = Math.min(baseDelayMs * 2 ** Math.max(0, failures - 1), MAX_BACKOFF_MS);
      options.onRetry?.({ attempt: failures, delayMs, error });
      if (delayMs > 0) await delay(delayMs, undefined, { signal: options.signal });
    }
  }

  const bytes = await fileSize(part);
  if (options.expectedBytes !== undefined && bytes !== options.expectedBytes) {
    await rm(part, { force: true });
    throw new DownloadError('SIZE_MISMATCH', `${options.url} gave ${bytes} bytes, expected ${options.expectedBytes}; the partial file was deleted`);
  }
  const sha256 = await sha256File(part);
  if (options.sha256 !== undefined && sha256 !== options.sha256.toLowerCase()) {
    await rm(part, { force: true });
    throw new DownloadError(
      'CHECKSUM_MISMATCH',
      `${options.url} has sha256 ${sha256}, expected ${options.sha256}: the file is corrupt or not the one catalogued; it was deleted`,
    );
  }
  await rename(part, options.destination);
  return { bytes, sha256, resumed };
}

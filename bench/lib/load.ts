/**
 * Closed-loop load with autocannon: `connections` clients, each sending its next request as
 * soon as its previous one is answered, posting raw image bodies in rotation. One autocannon
 * run covers a warm-up and then the measured window, so the window sees steady state with
 * no reconnection at its start; only responses that complete inside the window count, each
 * with its own latency (autocannon's histogram keeps whole milliseconds only).
 *
 * While the window is open a liveness probe runs every `probeIntervalMs` on a new connection
 * each time, as a kubelet probe does, from its own thread (prober.ts).
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { startProber, type Prober } from './prober.js';

export interface Upload {
  readonly name: string;
  readonly contentType: string;
  readonly body: Buffer;
}

export interface LoadOptions {
  readonly baseUrl: string;
  readonly path: string;
  readonly uploads: readonly Upload[];
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  /** @default 100 */
  readonly probeIntervalMs?: number;
  readonly probePath: string;
  /** Called as the window opens and closes (synchronously first, then awaited). */
  readonly onWindowStart?: () => Promise<void> | void;
  readonly onWindowEnd?: () => Promise<void> | void;
}

export interface LoadResult {
  /** Length of the measured window, in seconds. */
  readonly windowSeconds: number;
  /** Latencies of the 2xx responses completed in the window, in ms. */
  readonly latenciesMs: number[];
  /** Responses by status code, completed in the window. */
  readonly statuses: ReadonlyMap<number, number>;
  /** Connection errors and timeouts in the window. */
  readonly transportErrors: number;
  /** Non-2xx responses and transport errors during the warm-up (not in the window's figures). */
  readonly warmupErrors: number;
  readonly probeLatenciesMs: number[];
  readonly probeFailures: number;
}

/** `body` with `n` appended (4 bytes): new bytes, the same image. */
function uniqueBody(body: Buffer, n: number): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt32BE(n >>> 0);
  return Buffer.concat([body, tag]);
}

/** Each client starts at a different image, so the clients do not move through them in step. */
function rotated<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { uploads, connections } = options;
  if (uploads.length === 0) throw new RangeError('Expected at least one upload');
  let sent = 0;
  const requests = uploads.map((u) => ({
    method: 'POST' as const,
    path: options.path,
    headers: { 'content-type': u.contentType },
    body: u.body,
    // Every body its own bytes (a counter appended after the image's end, which decoders
    // ignore): the server runs identical images in flight at once as one inference, and this
    // load measures inference, not that.
    setupRequest: (request: autocannon.Request) => ({ ...request, body: uniqueBody(u.body, sent++) }),
  }));
  const step = Math.max(1, Math.floor(uploads.length / connections));
  let nextClient = 0;

  const latenciesMs: number[] = [];
  const statuses = new Map<number, number>();
  let transportErrors = 0;
  let warmupErrors = 0;
  let phase: 'warmup' | 'window' | 'after' = 'warmup';
  let windowStart = 0;
  let windowEnd = 0;
  let prober: Prober | undefined;

  return new Promise<LoadResult>((resolve, reject) => {
    let finished = false;
    const instance = autocannon(
      {
        url: options.baseUrl,
        connections,
        pipelining: 1,
        // Long enough never to end the run by itself: the window's end stops it.
        duration: options.warmupSeconds + options.durationSeconds + 60,
        timeout: 30,
        requests,
        setupClient: (client) => client.setRequests(rotated(requests, step * nextClient++)),
      },
      (err) => {
        if (err && !finished) reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (phase === 'window') {
        statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1);
        if (statusCode >= 200 && statusCode < 300) latenciesMs.push(responseTime);
      } else if (phase === 'warmup' && (statusCode < 200 || statusCode >= 300)) {
        warmupErrors++;
      }
    });
    instance.on('reqError', () => {
      if (phase === 'window') transportErrors++;
      else if (phase === 'warmup') warmupErrors++;
    });

    const openWindow = async () => {
      await options.onWindowStart?.();
      phase = 'window';
      windowStart = performance.now();
      prober = startProber(`${options.baseUrl}${options.probePath}`, options.probeIntervalMs ?? 100);
      setTimeout(() => void closeWindow().catch(reject), options.durationSeconds * 1000);
    };
    const closeWindow = async () => {
      phase = 'after';
      windowEnd = performance.now();
      const probes = prober!.stop();
      try {
        await options.onWindowEnd?.();
      } finally {
        finished = true;
        instance.stop();
      }
      const { latenciesMs: probeLatenciesMs, failures: probeFailures } = await probes;
      resolve({
        windowSeconds: (windowEnd - windowStart) / 1000,
        latenciesMs,
        statuses,
        transportErrors,
        warmupErrors,
        probeLatenciesMs,
        probeFailures,
      });
    };
    setTimeout(() => void openWindow().catch(reject), options.warmupSeconds * 1000);
  });
}

/**
 * Closed-loop load of one prepared POST (any headers, any body) from `connections` clients in
 * this thread, each on its own keep-alive connection, sending again as soon as its answer has
 * fully arrived; every answer is read whole and checked. load.ts (autocannon) cannot set
 * per-request headers beyond Content-Type nor hand back binary answers, which the v2 binary
 * tensor extension needs.
 *
 * The warm-up lasts `warmupSeconds` and at least until every client has had one answer: at
 * many clients and slow requests the first round is a burst (every client's request arrives at
 * once), and a window opened in it would count that burst's work against too few answers. Only
 * answers completed inside the window count. At its end the requests in flight are abandoned.
 * A client that fails (no answer, or not 200) waits 50 ms before sending again, so that a
 * server refusing work is not hammered in a tight loop.
 */
import { setMaxListeners } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { failureName } from './http-post.js';

export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RequestLoopOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /**
   * Connection `i` sends `perConnection[i]` instead of `headers` and `body`: e.g. the same image
   * under different bytes per client, so that the server coalesces no two requests in flight.
   */
  readonly perConnection?: ReadonlyArray<{ readonly headers: Readonly<Record<string, string>>; readonly body: Buffer }>;
  /** Why a 200 answer is wrong, or `undefined` when it is right. */
  readonly check: (answer: RawAnswer) => string | undefined;
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  /** Longest wait for one whole answer, in ms. @default 120000 */
  readonly timeoutMs?: number;
  /** Called as the window opens and as it closes, synchronously (e.g. to read CPU times). */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

export interface RequestLoopResult {
  /** How long the warm-up lasted, in seconds (at least `warmupSeconds`). */
  readonly warmupSeconds: number;
  /** Length of the measured window, in seconds. */
  readonly windowSeconds: number;
  /** Answers completed in the window that were 200 and passed the check. */
  readonly ok: number;
  /** Latencies of those answers, in ms (from sending to the last byte). */
  readonly latenciesMs: number[];
  /** Faults in the window by kind: `status 503`, a failed check's message, a transport error code. */
  readonly errors: ReadonlyMap<string, number>;
  /** Faults during the warm-up (not in the window's figures). */
  readonly warmupErrors: number;
}

function post(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
  agent: http.Agent,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, signal, headers: { 'content-length': String(body.length), ...headers } });
    const timer = setTimeout(() => request.destroy(Object.assign(new Error(`no whole answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) });
      });
      response.on('error', fail);
    });
    request.on('error', fail);
    request.end(body);
  });
}

export async function runRequestLoop(options: RequestLoopOptions): Promise<RequestLoopResult> {
  const { connections, timeoutMs = 120_000 } = options;
  if (!Number.isInteger(connections) || connections < 1)
    throw new RangeError(`Expected \`connections\` to be an integer from 1 and up, got \`${connections}\``);
  const stopping = new AbortController();
  // Every request listens to it until its 'close', which can come after the next has started.
  setMaxListeners(0, stopping.signal);
  let phase: 'warmup' | 'window' | 'after' = 'warmup';
  const answered = new Array<boolean>(connections).fill(false);
  const latenciesMs: number[] = [];
  const errors = new Map<string, number>();
  let warmupErrors = 0;
  const fault = (kind: string) => {
    if (phase === 'window') errors.set(kind, (errors.get(kind) ?? 0) + 1);
    else if (phase === 'warmup') warmupErrors++;
  };

  const client = async (index: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (!stopping.signal.aborted) {
        const started = performance.now();
        try {
          const own = options.perConnection?.[index];
          const answer = await post(options.url, own?.headers ?? options.headers, own?.body ?? options.body, agent, stopping.signal, timeoutMs);
          answered[index] = true;
          const problem = answer.status === 200 ? options.check(answer) : `status ${answer.status}`;
          if (problem !== undefined) fault(problem);
          else if (phase === 'window') latenciesMs.push(performance.now() - started);
          // A refusal (503 and its Retry-After, say) is not answered by sending again at once.
          if (answer.status !== 200) await sleep(50);
        } catch (err) {
          if (stopping.signal.aborted) break;
          answered[index] = true;
          fault(failureName(err));
          await sleep(50);
        }
      }
    } finally {
      agent.destroy();
    }
  };

  const started = performance.now();
  const clients = Array.from({ length: connections }, (_, i) => client(i));
  const warmupEnd = started + options.warmupSeconds * 1000;
  const warmupLimit = warmupEnd + timeoutMs;
  while (performance.now() < warmupLimit && (performance.now() < warmupEnd || !answered.every(Boolean))) await sleep(20);

  options.onWindowStart?.();
  phase = 'window';
  const windowStart = performance.now();
  await sleep(options.durationSeconds * 1000);
  phase = 'after';
  const windowEnd = performance.now();
  options.onWindowEnd?.();
  stopping.abort();
  await Promise.all(clients);
  return {
    warmupSeconds: (windowStart - started) / 1000,
    windowSeconds: (windowEnd - windowStart) / 1000,
    ok: latenciesMs.length,
    latenciesMs,
    errors,
    warmupErrors,
  };
}

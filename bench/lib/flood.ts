/**
 * A refusal flood from clients that behave as HTTP clients do, unlike autocannon: each of
 * `connections` clients keeps one connection alive while the server allows it (Node's agent
 * honours `Connection: close` and opens a new one for the next request), and sends its next
 * request as soon as its answer has arrived, whatever it was (no back-off: a flood ignores
 * Retry-After). Bodies rotate through `uploads`. Meanwhile the live probe runs from its own
 * thread (prober.ts).
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upload } from './load.js';
import { failureName } from './http-post.js';
import { startProber } from './prober.js';

export interface FloodOptions {
  readonly url: string;
  readonly probeUrl: string;
  readonly uploads: readonly Upload[];
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  readonly onWindowStart?: () => Promise<void> | void;
  readonly onWindowEnd?: () => Promise<void> | void;
}

export interface FloodResult {
  readonly windowSeconds: number;
  /** Answers in the window by status. */
  readonly statuses: ReadonlyMap<number, number>;
  /** Requests in the window that got no answer, by error code. */
  readonly failures: ReadonlyMap<string, number>;
  /** Latencies of the 200s in the window, in ms. */
  readonly latenciesMs: number[];
  /** Connections opened in the window. */
  readonly connectionsOpened: number;
  readonly probeLatenciesMs: number[];
  readonly probeFailures: number;
}

function post(url: string, upload: Upload, agent: http.Agent, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: 'POST',
      agent,
      signal,
      headers: { 'content-type': upload.contentType, 'content-length': String(upload.body.length) },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(upload.body);
  });
}

export async function runFlood(options: FloodOptions): Promise<FloodResult> {
  const stopping = new AbortController();
  // Every client's request listens to it.
  setMaxListeners(0, stopping.signal);
  let phase: 'warmup' | 'window' | 'after' = 'warmup';
  const statuses = new Map<number, number>();
  const failures = new Map<string, number>();
  const latenciesMs: number[] = [];
  let connectionsOpened = 0;
  const client = async (index: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const createConnection = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<typeof createConnection>) => {
      if (phase === 'window') connectionsOpened++;
      return createConnection(...args);
    };
    let i = index;
    try {
      while (!stopping.signal.aborted) {
        const upload = options.uploads[i++ % options.uploads.length]!;
        const started = performance.now();
        try {
          const status = await post(options.url, upload, agent, stopping.signal);
          if (phase === 'window') {
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            if (status === 200) latenciesMs.push(performance.now() - started);
          }
        } catch (err) {
          if (stopping.signal.aborted) break;
          if (phase === 'window') failures.set(failureName(err), (failures.get(failureName(err)) ?? 0) + 1);
          // A server refusing connections would otherwise be hammered in a tight loop.
          await sleep(10);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const clients = Array.from({ length: options.connections }, (_, i) => client(i));
  await sleep(options.warmupSeconds * 1000);
  await options.onWindowStart?.();
  phase = 'window';
  const prober = startProber(options.probeUrl, 100);
  const windowStart = performance.now();
  await sleep(options.durationSeconds * 1000);
  phase = 'after';
  const windowSeconds = (performance.now() - windowStart) / 1000;
  const probes = prober.stop();
  await options.onWindowEnd?.();
  stopping.abort();
  await Promise.all(clients);
  const { latenciesMs: probeLatenciesMs, failures: probeFailures } = await probes;
  return { windowSeconds, statuses, failures, latenciesMs, connectionsOpened, probeLatenciesMs, probeFailures };
}

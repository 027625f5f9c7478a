/**
 * A closed-loop client on its own thread: one request at a time over one keep-alive
 * connection, the next sent when the last is answered. Like the prober (prober.ts), it runs
 * apart from the benchmark's main thread so that what that thread does meanwhile (sending
 * attack bodies, say) does not show in its latencies.
 */
import { Worker } from 'node:worker_threads';

export interface ClosedLoopData {
  readonly url: string;
  readonly body: Uint8Array;
  readonly contentType: string;
  /** Longest wait for one answer, in ms. */
  readonly timeoutMs: number;
}

export interface ClosedLoopResult {
  /** Latencies of the answers with status 200, in ms. */
  readonly okMs: number[];
  /** Answers by status (200 included). */
  readonly statuses: Record<string, number>;
  /** Requests that got no answer, by reason (`timeout`, or the system error code). */
  readonly failures: Record<string, number>;
  /** The request in flight when the client was stopped (0 or 1): neither answered nor failed. */
  readonly inFlightAtStop: number;
}

export interface ClosedLoopClient {
  /** Stops at once (abandoning the request in flight) and returns every result. */
  stop(): Promise<ClosedLoopResult>;
}

export function startClosedLoopClient(data: ClosedLoopData): ClosedLoopClient {
  const worker = new Worker(new URL('./closed-loop-worker.js', import.meta.url), { workerData: data });
  const failed = new Promise<never>((_resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the closed-loop client's thread exited (code ${code}) before reporting`)));
  });
  failed.catch(() => {});
  return {
    async stop() {
      const result = new Promise<ClosedLoopResult>((resolve) => worker.once('message', (r: ClosedLoopResult) => resolve(r)));
      worker.postMessage('stop');
      try {
        return await Promise.race([result, failed]);
      } finally {
        await worker.terminate();
      }
    },
  };
}

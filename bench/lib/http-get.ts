/** A minimal HTTP GET for the benchmark's side channels (readiness, /metrics, the live probe). */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface GetResult {
  readonly status: number;
  readonly body: string;
  /** From the call to the last byte of the body, in ms. */
  readonly ms: number;
}

/**
 * GETs `url`. With `agent: false` every call opens its own connection, as a kubelet probe
 * does; pass a keep-alive agent to reuse one.
 */
export function httpGet(url: string, { timeoutMs = 5_000, agent = false as http.Agent | false } = {}): Promise<GetResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

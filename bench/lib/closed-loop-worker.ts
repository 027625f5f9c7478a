/** Thread body of closed-loop.ts: sends until told to stop, then posts the results. */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { failureName, httpPost } from './http-post.js';
import type { ClosedLoopData, ClosedLoopResult } from './closed-loop.js';

const { url, body, contentType, timeoutMs } = workerData as ClosedLoopData;
const payload = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const stopping = new AbortController();
const okMs: number[] = [];
const statuses: Record<string, number> = {};
const failures: Record<string, number> = {};
let inFlightAtStop = 0;

const loop = (async () => {
  while (!stopping.signal.aborted) {
    try {
      const r = await httpPost(url, payload, { headers: { 'content-type': contentType }, timeoutMs, agent, signal: stopping.signal });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) okMs.push(r.ms);
    } catch (err) {
      if (stopping.signal.aborted) inFlightAtStop++;
      else {
        failures[failureName(err)] = (failures[failureName(err)] ?? 0) + 1;
        // A server that refuses connections would otherwise be hammered in a tight loop.
        await sleep(50);
      }
    }
  }
})();

parentPort!.once('message', async () => {
  stopping.abort();
  await loop;
  agent.destroy();
  const result: ClosedLoopResult = { okMs, statuses, failures, inFlightAtStop };
  parentPort!.postMessage(result);
});

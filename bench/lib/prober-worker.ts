/** Thread body of prober.ts: probes until told to stop, then posts the results. */
import { parentPort, workerData } from 'node:worker_threads';
import { httpGet } from './http-get.js';
import type { ProberData, ProbeResult } from './prober.js';

const { url, intervalMs, timeoutMs } = workerData as ProberData;
const latenciesMs: number[] = [];
let failures = 0;
const inFlight = new Set<Promise<void>>();

const probe = () => {
  const p = httpGet(url, { timeoutMs }).then(
    (r) => {
      if (r.status === 200) latenciesMs.push(r.ms);
      else failures++;
    },
    () => {
      failures++;
    },
  );
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
};

const timer = setInterval(probe, intervalMs);
parentPort!.once('message', async () => {
  clearInterval(timer);
  await Promise.all(inFlight);
  const result: ProbeResult = { latenciesMs, failures };
  parentPort!.postMessage(result);
});

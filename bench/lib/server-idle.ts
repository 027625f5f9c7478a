/** Waiting for a server process to go quiet between measurements (Linux /proc; elsewhere at once). */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { readThreadTimes, threadGroupDelta } from './cpu-usage.js';

export interface IdleOptions {
  /** Cores below which the process counts as idle. @default 0.05 */
  readonly maxCores?: number;
  /** Length of each sample, in ms. @default 250 */
  readonly sampleMs?: number;
  /** Longest wait, in ms. @default 30000 */
  readonly timeoutMs?: number;
}

/**
 * Waits until process `pid` uses under `maxCores` over one sample: work left from a load level
 * (a batch still running, abandoned requests being dropped) would otherwise land in the next
 * measurement. Resolves false after `timeoutMs`.
 */
export async function waitUntilIdle(pid: number, { maxCores = 0.05, sampleMs = 250, timeoutMs = 30_000 }: IdleOptions = {}): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let previous = readThreadTimes(pid);
  while (performance.now() < deadline) {
    await sleep(sampleMs);
    const now = readThreadTimes(pid);
    const seconds = threadGroupDelta(pid, previous, now).reduce((a, g) => a + g.seconds, 0);
    if (seconds / (sampleMs / 1000) < maxCores) return true;
    previous = now;
  }
  return false;
}

/**
 * A process's memory from Linux's /proc/<pid>/status: VmRSS (resident now, every thread of
 * the process: a Node server's main thread, its worker threads and libvips) and VmHWM (the
 * highest VmRSS since the process started, kept by the kernel, so it misses no peak that
 * sampling would). Off Linux, or once the process is gone, the figures are NaN.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface ProcMemory {
  /** VmRSS, in bytes. */
  readonly rssBytes: number;
  /** VmHWM (peak resident set since the process started), in bytes. */
  readonly peakRssBytes: number;
}

export function readProcMemory(pid: number): ProcMemory {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rssBytes: Number.NaN, peakRssBytes: Number.NaN };
  }
  const kB = (field: string) => {
    const value = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1];
    return value === undefined ? Number.NaN : Number(value) * 1024;
  };
  return { rssBytes: kB('VmRSS'), peakRssBytes: kB('VmHWM') };
}

export interface MemorySample extends ProcMemory {
  /** When it was taken, in ms since sampling began. */
  readonly atMs: number;
}

export interface MemorySampler {
  readonly samples: readonly MemorySample[];
  /** Takes a last sample and stops. */
  stop(): readonly MemorySample[];
}

/** Samples `pid`'s memory every `everyMs` (on this thread's timers) until stopped. */
export function sampleProcMemory(pid: number, everyMs: number): MemorySampler {
  const samples: MemorySample[] = [];
  const t0 = performance.now();
  const take = () => samples.push({ atMs: performance.now() - t0, ...readProcMemory(pid) });
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/**
 * How many CPUs this process may really use: the smaller of the CPUs it is scheduled on and
 * its cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
 * In a Kubernetes pod with `limits.cpu: 2` on a 64-core node this says 2, not 64, so
 * onnxruntime does not start 64 threads that fight over two CPUs' worth of time.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export type ReadText = (path: string) => string | undefined;

const readTextOrUndefined: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** Parses cgroup v2 `cpu.max` ("max 100000" or "200000 100000"); `undefined` when unlimited. */
export function parseCgroupV2CpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period ?? '100000');
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}

/** Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; `undefined` when unlimited (-1). */
export function parseCgroupV1Quota(quotaText: string, periodText: string): number | undefined {
  const q = Number(quotaText.trim());
  const p = Number(periodText.trim());
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}

/**
 * The cgroup CPU limit of this process in CPUs (may be fractional), or `undefined` when none.
 * Reads `/proc/self/cgroup` to find this process's own cgroup, then its limit files.
 */
export function cgroupCpuLimit(readText: ReadText = readTextOrUndefined): number | undefined {
  const self = readText('/proc/self/cgroup') ?? '';
  const lines = self.split('\n').filter(Boolean);
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 !== undefined) {
    const path = v2.slice(3).trim();
    // Inside a container the cgroup namespace makes our cgroup "/"; outside, walk its path.
    for (const dir of [`/sys/fs/cgroup${path === '/' ? '' : path}`, '/sys/fs/cgroup']) {
      const text = readText(`${dir}/cpu.max`);
      if (text !== undefined) return parseCgroupV2CpuMax(text);
    }
  }
  const v1 = lines.find((l) => /^\d+:[^:]*\bcpu\b[^:]*:/.test(l));
  const v1Path = v1 ? v1.split(':').slice(2).join(':').trim() : '/';
  for (const base of ['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpu']) {
    for (const dir of v1Path === '/' ? [base] : [`${base}${v1Path}`, base]) {
      const quota = readText(`${dir}/cpu.cfs_quota_us`);
      const period = readText(`${dir}/cpu.cfs_period_us`);
      if (quota !== undefined && period !== undefined) return parseCgroupV1Quota(quota, period);
    }
  }
  return undefined;
}

/** Whole CPUs this process may use: at least 1, at most the CPUs it is scheduled on. */
export function availableCpus(readText: ReadText = readTextOrUndefined, scheduledCpus = availableParallelism()): number {
  const limit = cgroupCpuLimit(readText);
  const cpus = limit === undefined ? scheduledCpus : Math.min(scheduledCpus, Math.floor(limit));
  return Math.max(1, cpus);
}

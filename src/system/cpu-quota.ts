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

/** `root` + `cgroupPath`, then each folder above it up to and including `root`, leaf first. */
function selfAndAncestors(root: string, cgroupPath: string): string[] {
  const parts = cgroupPath.split('/').filter((p) => p.length > 0);
  const dirs: string[] = [];
  for (let n = parts.length; n >= 0; n--) dirs.push(n === 0 ? root : `${root}/${parts.slice(0, n).join('/')}`);
  return dirs;
}

/** The smallest of the limits found, `undefined` when none of them limits. */
function tightest(limits: (number | undefined)[]): number | undefined {
  const set = limits.filter((l): l is number => l !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}

/**
 * The cgroup CPU limit of this process in CPUs (may be fractional), or `undefined` when none.
 * Reads `/proc/self/cgroup` to find this process's own cgroup, then the limit files of that
 * cgroup and of every cgroup above it that is visible, and takes the tightest: a quota set on a
 * parent (a pod, a systemd slice) binds its children even when theirs say "max".
 * Inside a container the cgroup namespace or the bind mount makes the container's own cgroup
 * the root of /sys/fs/cgroup, so the folders of a host-side path do not exist there and the
 * root's files are the container's.
 */
export function cgroupCpuLimit(readText: ReadText = readTextOrUndefined): number | undefined {
  const self = readText('/proc/self/cgroup') ?? '';
  const lines = self.split('\n').filter(Boolean);
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 !== undefined) {
    const found = selfAndAncestors('/sys/fs/cgroup', v2.slice(3).trim())
      .map((dir) => readText(`${dir}/cpu.max`))
      .filter((text): text is string => text !== undefined);
    // No cpu.max anywhere: a hybrid host whose cpu controller is on cgroup v1 (below).
    if (found.length > 0) return tightest(found.map(parseCgroupV2CpuMax));
  }
  const v1 = lines.find((l) => /^\d+:[^:]*\bcpu\b[^:]*:/.test(l));
  const v1Path = v1 ? v1.split(':').slice(2).join(':').trim() : '/';
  for (const base of ['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpu']) {
    const limits: (number | undefined)[] = [];
    for (const dir of selfAndAncestors(base, v1Path)) {
      const quota = readText(`${dir}/cpu.cfs_quota_us`);
      const period = readText(`${dir}/cpu.cfs_period_us`);
      if (quota !== undefined && period !== undefined) limits.push(parseCgroupV1Quota(quota, period));
    }
    if (limits.length > 0) return tightest(limits);
  }
  return undefined;
}

/** Whole CPUs this process may use: at least 1, at most the CPUs it is scheduled on. */
export function availableCpus(readText: ReadText = readTextOrUndefined, scheduledCpus = availableParallelism()): number {
  const limit = cgroupCpuLimit(readText);
  const cpus = limit === undefined ? scheduledCpus : Math.min(scheduledCpus, Math.floor(limit));
  return Math.max(1, cpus);
}

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { availableCpus, cgroupCpuLimit, parseCgroupV1Quota, parseCgroupV2CpuMax, type ReadText } from '../../../src/system/cpu-quota.js';

/**
 * A fake filesystem of cgroup files, as they read on real machines (contents copied from the
 * kinds of hosts named in each test). Paths that are not listed do not exist.
 */
function files(entries: Record<string, string>): ReadText {
  return (path) => entries[path];
}

// /proc/self/cgroup as seen in a cgroup v2 container with its own cgroup namespace (Kubernetes
// with containerd on a v2 host, Docker 20.10+ on a v2 host).
const V2_NAMESPACED = '0::/\n';
// The same container's process seen from the host (no cgroup namespace), as in `cat /proc/<pid>/cgroup`.
const V2_HOST_VIEW = '0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-abcd.scope\n';
const V2_POD = '/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice';
// Docker on a cgroup v1 host: one line per hierarchy, the path is the host-side one, and each
// hierarchy's folder is bind-mounted so that /sys/fs/cgroup/<controller> is the container's own.
const V1_DOCKER = [
  '12:pids:/docker/0123abcd',
  '11:memory:/docker/0123abcd',
  '10:cpuset:/docker/0123abcd',
  '4:cpu,cpuacct:/docker/0123abcd',
  '1:name=systemd:/docker/0123abcd',
  '0::/system.slice/containerd.service',
  '',
].join('\n');
// A hybrid host like the one this project is developed on: v1 controllers, cpu and cpuacct
// mounted apart, and an empty unified (v2) hierarchy.
const V1_HYBRID = ['9:name=systemd:/', '4:memory:/process_api/b302', '3:cpuset:/', '2:cpuacct:/', '1:cpu:/', '0::/', ''].join('\n');

describe('parseCgroupV2CpuMax', () => {
  it('reads "<quota> <period>" as quota / period CPUs', () => {
    assert.equal(parseCgroupV2CpuMax('200000 100000\n'), 2);
    assert.equal(parseCgroupV2CpuMax('150000 100000'), 1.5);
    assert.equal(parseCgroupV2CpuMax('50000 100000'), 0.5);
    assert.equal(parseCgroupV2CpuMax('100000 50000'), 2);
  });

  it('reads "max" as no limit', () => {
    assert.equal(parseCgroupV2CpuMax('max 100000\n'), undefined);
    assert.equal(parseCgroupV2CpuMax('max'), undefined);
  });

  it('takes the kernel default period (100000 us) when the period is missing', () => {
    assert.equal(parseCgroupV2CpuMax('300000'), 3);
  });

  it('reads nonsense as no limit rather than as a number', () => {
    assert.equal(parseCgroupV2CpuMax(''), undefined);
    assert.equal(parseCgroupV2CpuMax('lots 100000'), undefined);
    assert.equal(parseCgroupV2CpuMax('0 100000'), undefined);
    assert.equal(parseCgroupV2CpuMax('100000 0'), undefined);
  });
});

describe('parseCgroupV1Quota', () => {
  it('reads quota / period CPUs', () => {
    assert.equal(parseCgroupV1Quota('200000\n', '100000\n'), 2);
    assert.equal(parseCgroupV1Quota('25000', '100000'), 0.25);
  });

  it('reads -1 as no limit', () => {
    assert.equal(parseCgroupV1Quota('-1\n', '100000\n'), undefined);
  });

  it('reads nonsense as no limit', () => {
    assert.equal(parseCgroupV1Quota('', '100000'), undefined);
    assert.equal(parseCgroupV1Quota('100000', 'x'), undefined);
    assert.equal(parseCgroupV1Quota('0', '100000'), undefined);
  });
});

describe('cgroupCpuLimit on cgroup v2', () => {
  it('reads the container cgroup at the root of its own namespace', () => {
    const read = files({ '/proc/self/cgroup': V2_NAMESPACED, '/sys/fs/cgroup/cpu.max': '200000 100000\n' });
    assert.equal(cgroupCpuLimit(read), 2);
  });

  it('says no limit when the container has none', () => {
    const read = files({ '/proc/self/cgroup': V2_NAMESPACED, '/sys/fs/cgroup/cpu.max': 'max 100000\n' });
    assert.equal(cgroupCpuLimit(read), undefined);
  });

  it('follows a host-side path and takes the tightest limit of the cgroup and its parents', () => {
    const read = files({
      '/proc/self/cgroup': V2_HOST_VIEW,
      [`${V2_POD}/cri-containerd-abcd.scope/cpu.max`]: '150000 100000\n',
      [`${V2_POD}/cpu.max`]: '400000 100000\n',
      '/sys/fs/cgroup/kubepods.slice/cpu.max': 'max 100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 1.5);
  });

  it('applies a parent limit when the cgroup itself says max', () => {
    const read = files({
      '/proc/self/cgroup': V2_HOST_VIEW,
      [`${V2_POD}/cri-containerd-abcd.scope/cpu.max`]: 'max 100000\n',
      [`${V2_POD}/cpu.max`]: '300000 100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 3);
  });

  it('falls back to the root of /sys/fs/cgroup when the host-side path is not mounted there', () => {
    const read = files({ '/proc/self/cgroup': '0::/system.slice/docker-0123abcd.scope\n', '/sys/fs/cgroup/cpu.max': '100000 100000\n' });
    assert.equal(cgroupCpuLimit(read), 1);
  });
});

describe('cgroupCpuLimit on cgroup v1', () => {
  it('reads the cpu,cpuacct hierarchy mounted for a Docker container', () => {
    const read = files({
      '/proc/self/cgroup': V1_DOCKER,
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '300000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 3);
  });

  it('follows the host-side path when the hierarchy is the host one', () => {
    const read = files({
      '/proc/self/cgroup': V1_DOCKER,
      '/sys/fs/cgroup/cpu,cpuacct/docker/0123abcd/cpu.cfs_quota_us': '50000\n',
      '/sys/fs/cgroup/cpu,cpuacct/docker/0123abcd/cpu.cfs_period_us': '100000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 0.5);
  });

  it('says no limit for a quota of -1', () => {
    const read = files({
      '/proc/self/cgroup': V1_DOCKER,
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    assert.equal(cgroupCpuLimit(read), undefined);
  });

  it('uses the v1 cpu controller on a hybrid host even though a v2 line is present', () => {
    const read = files({
      '/proc/self/cgroup': V1_HYBRID,
      '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '200000\n',
      '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 2);
  });

  it('does not take the cpuacct or cpuset lines for the cpu controller', () => {
    const read = files({
      '/proc/self/cgroup': ['5:cpuset:/elsewhere', '3:cpuacct:/elsewhere', '2:cpu:/mine', ''].join('\n'),
      '/sys/fs/cgroup/cpu/mine/cpu.cfs_quota_us': '100000\n',
      '/sys/fs/cgroup/cpu/mine/cpu.cfs_period_us': '100000\n',
      '/sys/fs/cgroup/cpu/elsewhere/cpu.cfs_quota_us': '800000\n',
      '/sys/fs/cgroup/cpu/elsewhere/cpu.cfs_period_us': '100000\n',
    });
    assert.equal(cgroupCpuLimit(read), 1);
  });
});

describe('cgroupCpuLimit without cgroups', () => {
  it('says no limit when nothing can be read (not Linux, or /proc hidden)', () => {
    assert.equal(cgroupCpuLimit(files({})), undefined);
  });
});

describe('availableCpus', () => {
  const limitedTo = (cpuMax: string) => files({ '/proc/self/cgroup': V2_NAMESPACED, '/sys/fs/cgroup/cpu.max': cpuMax });

  it('is the quota when it is below the scheduled CPUs (a 2-CPU pod on a 64-core node)', () => {
    assert.equal(availableCpus(limitedTo('200000 100000'), 64), 2);
  });

  it('is the scheduled CPUs when they are fewer than the quota (cpuset or taskset)', () => {
    assert.equal(availableCpus(limitedTo('800000 100000'), 4), 4);
  });

  it('rounds a fractional quota down, so threads never outnumber the CPU time', () => {
    assert.equal(availableCpus(limitedTo('250000 100000'), 64), 2);
  });

  it('is at least 1, even under a quota of half a CPU', () => {
    assert.equal(availableCpus(limitedTo('50000 100000'), 64), 1);
  });

  it('is the scheduled CPUs when there is no limit', () => {
    assert.equal(availableCpus(limitedTo('max 100000'), 12), 12);
    assert.equal(availableCpus(files({}), 12), 12);
  });

  it('gives a whole number from 1 to the scheduled CPUs on this machine', () => {
    const cpus = availableCpus();
    assert.ok(Number.isInteger(cpus) && cpus >= 1 && cpus <= availableParallelism(), `got ${cpus}`);
  });
});

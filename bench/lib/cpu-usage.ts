/**
 * CPU time from Linux's /proc, to see where a machine's cores went during a measurement:
 * per thread of one process (grouped by thread name: the event loop, libuv's pool where sharp
 * runs, the inference worker and onnxruntime's pool threads) and for the whole machine, so
 * what other processes took is known too. Linux only; elsewhere the snapshots are empty.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface ThreadTimes {
  /** Thread id → name and CPU seconds (user + system) since it started. */
  readonly threads: ReadonlyMap<number, { readonly name: string; readonly seconds: number }>;
}

function readThread(pid: number, tid: number): { name: string; seconds: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The name is in parentheses and may itself contain spaces or parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // Fields after the name start at #3 (state); utime is #14 and stime #15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { name: text.slice(open + 1, close), seconds: ticks / clockTicks() };
}

export function readThreadTimes(pid: number): ThreadTimes {
  const threads = new Map<number, { name: string; seconds: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { threads };
  }
  for (const t of tids) {
    const times = readThread(pid, Number(t));
    if (times) threads.set(Number(t), times);
  }
  return { threads };
}

/**
 * CPU seconds each thread group used between two snapshots of process `pid`, largest first.
 * Threads are grouped by name with any trailing digits dropped, so pool threads count
 * together; the main thread (its id is the process id) is `main`. In a Node process the
 * threads left called `node` are libuv's pool (sharp's work, file I/O) and V8's helpers (GC).
 */
export function threadGroupDelta(
  pid: number,
  before: ThreadTimes,
  after: ThreadTimes,
): Array<{ readonly group: string; readonly threads: number; readonly seconds: number }> {
  const groups = new Map<string, { threads: number; seconds: number }>();
  for (const [tid, now] of after.threads) {
    const seconds = now.seconds - (before.threads.get(tid)?.seconds ?? 0);
    const group = tid === pid ? 'main' : now.name.replace(/[\s\d]+$/, '') || now.name;
    const g = groups.get(group) ?? { threads: 0, seconds: 0 };
    g.threads += 1;
    g.seconds += seconds;
    groups.set(group, g);
  }
  return [...groups].map(([group, g]) => ({ group, ...g })).sort((a, b) => b.seconds - a.seconds);
}

export interface MachineTimes {
  /** CPU seconds spent busy (not idle or waiting for I/O), summed over every CPU. */
  readonly busySeconds: number;
  /** CPU seconds stolen by the hypervisor, summed over every CPU. */
  readonly stealSeconds: number;
}

export function readMachineTimes(): MachineTimes {
  let line: string | undefined;
  try {
    line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('cpu '));
  } catch {
    line = undefined;
  }
  if (line === undefined) return { busySeconds: Number.NaN, stealSeconds: Number.NaN };
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return { busySeconds: busy / clockTicks(), stealSeconds: steal! / clockTicks() };
}

/** CPU seconds (user + system) of this process so far, all threads. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * CPU seconds (user + system) of process `pid` so far, all its threads, the exited ones
 * included (/proc/<pid>/stat); NaN off Linux or once the process is gone.
 */
export function readProcessCpuSeconds(pid: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

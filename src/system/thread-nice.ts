/**
 * Lowers the priority of this process's threads whose name matches, as they appear: libvips
 * starts its worker threads on demand (and glib ends idle ones), from threads this code never
 * runs on, so they cannot lower their own priority as the inference workers do. On Linux a
 * thread id is a valid `setpriority` target and each thread has its own nice value.
 *
 * Why: with decodes at the event loop's priority, a core busy decoding delays the loop's next
 * turn by a whole scheduler slice; measured with bench/loop.ts (ResNet-20, 32 clients sending
 * phone photos, see BENCHMARKS.md), renicing the libvips threads cut the event loop's wait for a
 * CPU per slice 3–7× and the live probe's p99 several-fold, throughput within the noise.
 *
 * Each scan lists /proc/self/task and reads the name of the threads it has not seen before
 * (a few dozen microseconds when nothing is new). Elsewhere than Linux it does nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export interface ThreadSystem {
  /** Thread ids of this process. */
  listThreads(): number[];
  /** A thread's name (`comm`), or `undefined` when it is gone. */
  threadName(tid: number): string | undefined;
  getPriority(tid: number): number;
  setPriority(tid: number, nice: number): void;
}

const linux: ThreadSystem = {
  listThreads: () => readdirSync('/proc/self/task').map(Number),
  threadName: (tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
    } catch {
      return undefined;
    }
  },
  getPriority: (tid) => getPriority(tid),
  setPriority: (tid, nice) => setPriority(tid, nice),
};

export interface ThreadNiceOptions {
  /** Names of the threads to renice. */
  readonly name: RegExp;
  /** Added to the process's nice value (at most 19). */
  readonly increment: number;
  /** Time between two scans, in ms. @default 250 */
  readonly intervalMs?: number;
  /** @default Linux's /proc and os.setPriority */
  readonly system?: ThreadSystem;
  /** Told once if renicing fails (e.g. not permitted); scanning stops then. */
  readonly onError?: (err: unknown) => void;
}

export interface ThreadNice {
  /** Renices the matching threads that appeared since the last scan; returns how many. */
  scan(): number;
  /** Stops the periodic scans. Idempotent. */
  stop(): void;
}

export function startThreadNice(options: ThreadNiceOptions): ThreadNice {
  const { name, increment, intervalMs = 250, system = linux, onError } = options;
  if (!Number.isInteger(increment) || increment < 0 || increment > 19) {
    throw new RangeError(`Expected \`increment\` to be an integer from 0 to 19, got \`${increment}\``);
  }
  const seen = new Set<number>();
  let target: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const scan = (): number => {
    let tids: number[];
    try {
      tids = system.listThreads();
    } catch {
      return 0; // Not Linux: nothing to do.
    }
    target ??= Math.min(19, system.getPriority(0) + increment);
    let reniced = 0;
    const alive = new Set(tids);
    for (const tid of seen) if (!alive.has(tid)) seen.delete(tid);
    for (const tid of tids) {
      if (seen.has(tid)) continue;
      seen.add(tid);
      const threadName = system.threadName(tid);
      if (threadName === undefined || !name.test(threadName)) continue;
      try {
        system.setPriority(tid, target);
        reniced++;
      } catch (err) {
        // Raising a nice value is always allowed to a thread's owner; a thread gone meanwhile is not an error.
        if (/ESRCH/.test(String((err as { info?: { code?: string } }).info?.code ?? (err as Error).message))) continue;
        stop();
        onError?.(err);
        break;
      }
    }
    return reniced;
  };
  const stop = () => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  if (increment > 0) {
    timer = setInterval(scan, intervalMs);
    timer.unref();
  }
  return { scan, stop };
}

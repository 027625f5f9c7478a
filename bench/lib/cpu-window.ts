/**
 * Where the CPU went over one measured window: the server's threads (split into the inference
 * threads, named `inferenceThreads`, and the rest), this benchmark process, the whole machine,
 * and what the hypervisor stole. `start` and `end` are synchronous so a load loop can call them
 * exactly as its window opens and closes (request-loop.ts's and call-loop.ts's hooks).
 */
import { ownCpuSeconds, readMachineTimes, readThreadTimes, threadGroupDelta, type MachineTimes, type ThreadTimes } from './cpu-usage.js';

export interface WindowCpu {
  /** CPU seconds of all the server's threads over the window. */
  readonly serverSeconds: number;
  /** Of which the inference threads. */
  readonly inferenceSeconds: number;
  /** Of which the main thread (the event loop). */
  readonly mainSeconds: number;
  /** Every thread group of the server, largest first. */
  readonly groups: ReadonlyArray<{ readonly group: string; readonly threads: number; readonly seconds: number }>;
  /** CPU seconds of this process. */
  readonly benchSeconds: number;
  /** Busy CPU seconds of the whole machine, and stolen ones. */
  readonly machineBusySeconds: number;
  readonly stealSeconds: number;
}

export interface CpuWindow {
  start(): void;
  end(): void;
  /** The figures, once `end` has been called. */
  result(): WindowCpu;
}

export function createCpuWindow(pid: number, inferenceThreads: string): CpuWindow {
  let threads: ThreadTimes | undefined;
  let machine: MachineTimes | undefined;
  let bench = 0;
  let figures: WindowCpu | undefined;
  return {
    start() {
      threads = readThreadTimes(pid);
      machine = readMachineTimes();
      bench = ownCpuSeconds();
    },
    end() {
      if (threads === undefined || machine === undefined) throw new Error('end() before start()');
      const groups = threadGroupDelta(pid, threads, readThreadTimes(pid));
      const now = readMachineTimes();
      const of = (name: string) => groups.filter((g) => g.group === name).reduce((a, g) => a + g.seconds, 0);
      figures = {
        serverSeconds: groups.reduce((a, g) => a + g.seconds, 0),
        inferenceSeconds: of(inferenceThreads),
        mainSeconds: of('main'),
        groups,
        benchSeconds: ownCpuSeconds() - bench,
        machineBusySeconds: now.busySeconds - machine.busySeconds,
        stealSeconds: now.stealSeconds - machine.stealSeconds,
      };
    },
    result() {
      if (figures === undefined) throw new Error('result() before end()');
      return figures;
    },
  };
}

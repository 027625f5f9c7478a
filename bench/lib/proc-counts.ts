/**
 * A process's threads and open file descriptors, counted in Linux's /proc/<pid>/task and
 * /proc/<pid>/fd (every thread of the process: the main thread, worker threads, libuv's pool,
 * V8's platform threads, onnxruntime's). NaN off Linux or once the process is gone.
 */
import { readdirSync, readFileSync } from 'node:fs';

function entries(path: string): string[] | undefined {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
}

/** The number of threads of `pid`. */
export function threadCount(pid: number): number {
  return entries(`/proc/${pid}/task`)?.length ?? Number.NaN;
}

/** The number of open file descriptors of `pid` (sockets, pipes, eventfds and files alike). */
export function fdCount(pid: number): number {
  return entries(`/proc/${pid}/fd`)?.length ?? Number.NaN;
}

/** `pid`'s threads by name (/proc/<pid>/task/<tid>/comm), e.g. `ort-inference` for inference workers. */
export function threadsByName(pid: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const tid of entries(`/proc/${pid}/task`) ?? []) {
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended while listed
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

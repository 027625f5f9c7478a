/**
 * What a worker thread does to itself on Linux before its real work starts: take a name that
 * `top -H`, /proc and the benchmark's per-thread CPU tables show (every Node thread is
 * otherwise called `node`), and lower its own priority. Both are per thread on Linux, and a
 * thread's children (onnxruntime's intra-op threads) inherit them.
 */
import { writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** Names the calling thread (at most 15 bytes are kept). Not Linux, or no /proc: nothing happens. */
export function nameThisThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name);
  } catch {
    // The name is only a convenience.
  }
}

/**
 * Raises the calling thread's nice value by `increment` (at most to 19). `setPriority(0, …)`
 * from a worker thread changes that thread only: the event loop and libuv's pool keep theirs.
 * Raising one's own nice value needs no privilege; failure (other systems) leaves it as is.
 */
export function lowerThisThreadPriority(increment: number): void {
  if (increment <= 0) return;
  try {
    setPriority(0, Math.min(19, getPriority(0) + increment));
  } catch {
    // Not permitted or not supported: the thread keeps the process's priority.
  }
}

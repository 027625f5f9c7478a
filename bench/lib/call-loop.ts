/**
 * Closed-loop load of any asynchronous call (a gRPC call, a message on a stream) from `clients`
 * callers in this thread, each sending again as soon as its answer is in. The same phases and
 * figures as request-loop.ts's HTTP loop, so the two are compared window for window: a warm-up
 * of `warmupSeconds` and at least until every caller has had one answer (the first round at
 * many callers is a burst), then a window in which only answers completed inside count; at its
 * end the calls in flight are abandoned (their signal aborts). A caller whose call fails waits
 * 50 ms before calling again, so a server refusing work is not hammered in a tight loop.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestLoopResult } from './request-loop.js';

export interface CallLoopOptions {
  /**
   * One call of caller `client` (0-based); resolves with why the answer is wrong, `undefined`
   * when it is right; rejects when there was no answer. Must give up when `signal` aborts.
   */
  readonly call: (client: number, signal: AbortSignal) => Promise<string | undefined>;
  readonly clients: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  /** Longest warm-up wait for every caller's first answer past `warmupSeconds`, in ms. @default 120000 */
  readonly firstAnswerTimeoutMs?: number;
  /** Called as the window opens and as it closes, synchronously (e.g. to read CPU times). */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

/** A short name for a failed call: its gRPC code or system code, else its message. */
export function callFailureName(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { code, details } = err as { code?: unknown; details?: unknown };
    if (typeof code === 'number') return `gRPC code ${code}${typeof details === 'string' && details !== '' ? ` (${details.slice(0, 80)})` : ''}`;
    if (typeof code === 'string') return code;
  }
  return err instanceof Error ? err.message.slice(0, 80) : String(err);
}

export async function runCallLoop(options: CallLoopOptions): Promise<RequestLoopResult> {
  const { clients, firstAnswerTimeoutMs = 120_000 } = options;
  if (!Number.isInteger(clients) || clients < 1) throw new RangeError(`Expected \`clients\` to be an integer from 1 and up, got \`${clients}\``);
  const stopping = new AbortController();
  // Every caller's call in flight listens to it.
  setMaxListeners(0, stopping.signal);
  let phase: 'warmup' | 'window' | 'after' = 'warmup';
  const answered = new Array<boolean>(clients).fill(false);
  const latenciesMs: number[] = [];
  const errors = new Map<string, number>();
  let warmupErrors = 0;
  const fault = (kind: string) => {
    if (phase === 'window') errors.set(kind, (errors.get(kind) ?? 0) + 1);
    else if (phase === 'warmup') warmupErrors++;
  };

  const caller = async (index: number) => {
    while (!stopping.signal.aborted) {
      const started = performance.now();
      try {
        const problem = await options.call(index, stopping.signal);
        answered[index] = true;
        if (problem !== undefined) {
          fault(problem);
          await sleep(50);
        } else if (phase === 'window') latenciesMs.push(performance.now() - started);
      } catch (err) {
        if (stopping.signal.aborted) break;
        answered[index] = true;
        fault(callFailureName(err));
        await sleep(50);
      }
    }
  };

  const started = performance.now();
  const callers = Array.from({ length: clients }, (_, i) => caller(i));
  const warmupEnd = started + options.warmupSeconds * 1000;
  const warmupLimit = warmupEnd + firstAnswerTimeoutMs;
  while (performance.now() < warmupLimit && (performance.now() < warmupEnd || !answered.every(Boolean))) await sleep(20);

  options.onWindowStart?.();
  phase = 'window';
  const windowStart = performance.now();
  await sleep(options.durationSeconds * 1000);
  phase = 'after';
  const windowEnd = performance.now();
  options.onWindowEnd?.();
  stopping.abort();
  await Promise.all(callers);
  return {
    warmupSeconds: (windowStart - started) / 1000,
    windowSeconds: (windowEnd - windowStart) / 1000,
    ok: latenciesMs.length,
    latenciesMs,
    errors,
    warmupErrors,
  };
}

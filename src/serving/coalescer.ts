/**
 * Request coalescing: identical work in flight at the same time is done once. Requests attach
 * to work by key (an image's cache key, see response-cache.ts); keys with nothing in flight are
 * started together by the first request, and later requests (or a later key of the same
 * request) join what is running instead of decoding and queuing again.
 *
 * Rules (each has a test in test/unit/serving/coalescer.test.ts):
 * - Every waiter gets the work's own outcome: its result, or its error (an undecodable image's
 *   error reaches every request that sent that image). Settled work is forgotten at once, so a
 *   failure is never handed to a request that arrives after it.
 * - A waiter leaves on its own (its deadline, its client gone: `release`) without touching the
 *   work while others still wait on it.
 * - Work every waiter has left is forgotten (a later request starts it afresh), and once no
 *   key of one start has a waiter, the signal given to that start is aborted, so its queued
 *   items are dropped as a cancelled request's are.
 *
 * Single-threaded: used from the main thread only. Knows no HTTP, no model, no clock.
 */

/**
 * Starts the work of `indices` (positions in the keys given to `attach`) together, and returns
 * one promise per index, in order. `signal` is aborted once none of them has a waiter left.
 */
export type CoalescedStart<V> = (indices: readonly number[], signal: AbortSignal) => ReadonlyArray<Promise<V>>;

export interface Attachment<V> {
  /** Per key: true when it joined work already in flight rather than starting it. */
  readonly joined: readonly boolean[];
  /** Per key: the shared work's outcome. */
  readonly results: ReadonlyArray<Promise<V>>;
  /** Leaves every key's work (see the rules above). Idempotent. */
  release(): void;
}

export interface Coalescer<V> {
  /** Keys with work in flight (and at least one waiter). */
  readonly inflight: number;
  /** Waiters on the work in flight under `key`; 0 when none is. */
  waitersOf(key: string): number;
  /** Joins the work in flight under each key, and starts the others with one call to `start`. */
  attach(keys: readonly string[], start: CoalescedStart<V>): Attachment<V>;
}

interface Start {
  readonly controller: AbortController;
  /** Its flights not yet settled. */
  unsettled: number;
  /** Its flights not yet settled that still have a waiter. */
  wanted: number;
}

interface Flight<V> {
  readonly key: string;
  readonly start: Start;
  /** Set once `start` has been called. */
  result: Promise<V> | undefined;
  waiters: number;
  settled: boolean;
}

export function createCoalescer<V>(): Coalescer<V> {
  const flights = new Map<string, Flight<V>>();

  const forget = (flight: Flight<V>) => {
    if (flights.get(flight.key) === flight) flights.delete(flight.key);
  };

  const settle = (flight: Flight<V>) => {
    if (flight.settled) return;
    flight.settled = true;
    forget(flight);
    flight.start.unsettled--;
    if (flight.waiters > 0) flight.start.wanted--;
  };

  const leave = (flight: Flight<V>) => {
    flight.waiters--;
    if (flight.waiters > 0 || flight.settled) return;
    forget(flight);
    const start = flight.start;
    start.wanted--;
    if (start.wanted === 0 && start.unsettled > 0) start.controller.abort();
  };

  return {
    get inflight() {
      return flights.size;
    },
    waitersOf(key) {
      return flights.get(key)?.waiters ?? 0;
    },
    attach(keys, startWork) {
      const joined: boolean[] = [];
      const mine: Array<Flight<V>> = [];
      const started: number[] = [];
      let start: Start | undefined;
      keys.forEach((key, i) => {
        let flight = flights.get(key);
        joined.push(flight !== undefined);
        if (flight === undefined) {
          start ??= { controller: new AbortController(), unsettled: 0, wanted: 0 };
          flight = { key, start, result: undefined, waiters: 0, settled: false };
          flights.set(key, flight);
          start.unsettled++;
          start.wanted++;
          started.push(i);
        }
        flight.waiters++;
        mine.push(flight);
      });
      if (start !== undefined) {
        const s = start;
        let promises: ReadonlyArray<Promise<V>>;
        try {
          promises = startWork(started, s.controller.signal);
        } catch (err) {
          promises = started.map(() => Promise.reject(err));
        }
        started.forEach((index, n) => {
          const flight = mine[index]!;
          const result = promises[n] ?? Promise.reject(new Error(`start returned ${promises.length} results for ${started.length} keys`));
          flight.result = result;
          // Settling forgets the flight before any waiter hears of it (so a request that
          // arrives after an error starts afresh); nobody may be left to hear a rejection.
          result.then(
            () => settle(flight),
            () => settle(flight),
          );
        });
      }
      let released = false;
      return {
        joined,
        results: mine.map((flight) => flight.result!),
        release() {
          if (released) return;
          released = true;
          for (const flight of mine) leave(flight);
        },
      };
    },
  };
}

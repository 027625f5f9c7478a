/**
 * Spreads synchronous work over turns of the event loop, one piece per turn, so that a burst
 * of it (a batch of answers brings a batch of new requests, whose decodes finish together)
 * cannot hold the loop for long: between two pieces the loop polls for I/O, and a health
 * probe or a new connection is served within about one piece (under a millisecond) instead
 * of after all of them.
 */

export interface TurnQueue {
  /** Resolves on a later turn of the event loop than any caller before it (first come, first served). */
  next(): Promise<void>;
}

export function createTurnQueue(): TurnQueue {
  const waiting: Array<() => void> = [];
  let scheduled = false;
  const release = () => {
    // The woken caller runs its synchronous piece in this check phase (its continuation is a
    // microtask of this callback); the next caller waits for the following turn.
    waiting.shift()?.();
    if (waiting.length > 0) setImmediate(release);
    else scheduled = false;
  };
  return {
    next() {
      return new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (!scheduled) {
          scheduled = true;
          setImmediate(release);
        }
      });
    },
  };
}

/**
 * The process's queue for main-thread work that follows a burst: preprocessing's synchronous
 * share and the answers of a finished batch take turns in one line.
 */
export const mainThreadTurns: TurnQueue = createTurnQueue();

/**
 * Recycled Float32Arrays of one length, for the tensors that cross the main thread on every
 * request (one per image, one per batch). A fresh array of hundreds of kilobytes costs more
 * than the work done in it: its first touch page-faults every 4 kB page, and the garbage
 * collector has to find it again (measured in bench/preprocess.ts and BENCHMARKS.md).
 *
 * Only arrays the pool created are taken back (`release` ignores any other), so a caller may
 * release whatever it was handed without knowing where it came from. A buffer that went to a
 * worker thread comes back as a new ArrayBuffer object, which the pool cannot recognise:
 * `adopt` takes it back explicitly. An array not released (a request that failed or was
 * cancelled) is simply collected.
 * Single-threaded: used from the main thread only.
 */

export interface BufferPool {
  /** Elements of every array. */
  readonly length: number;
  /** A recycled array, or a new one (zero-filled) when none is free. Contents are arbitrary. */
  acquire(): Float32Array;
  /** Gives `array` back for reuse if this pool made it (and it is not detached); else no-op. */
  release(array: Float32Array): void;
  /** Takes `array`'s whole buffer for reuse as if the pool had made it, if it has this pool's length. */
  adopt(array: Float32Array): void;
  /** Arrays waiting for reuse. */
  readonly free: number;
}

export function createBufferPool(length: number, maxFree: number): BufferPool {
  if (!Number.isInteger(length) || length < 1) throw new TypeError(`Expected \`length\` to be an integer from 1 and up, got \`${length}\``);
  if (!Number.isInteger(maxFree) || maxFree < 0) throw new TypeError(`Expected \`maxFree\` to be an integer from 0 and up, got \`${maxFree}\``);
  // Keyed by ArrayBuffer: a buffer that went to a worker and came back is a new Float32Array
  // over the same memory.
  const owned = new WeakSet<ArrayBuffer>();
  const free: Float32Array[] = [];
  const keep = (buffer: ArrayBuffer) => {
    if (buffer.byteLength !== length * 4 || free.length >= maxFree || free.some((f) => f.buffer === buffer)) return;
    free.push(new Float32Array(buffer));
  };
  return {
    length,
    get free() {
      return free.length;
    },
    acquire() {
      const recycled = free.pop();
      if (recycled !== undefined) return recycled;
      const array = new Float32Array(length);
      owned.add(array.buffer);
      return array;
    },
    release(array) {
      const buffer = array.buffer as ArrayBuffer;
      if (owned.has(buffer)) keep(buffer);
    },
    adopt(array) {
      const buffer = array.buffer as ArrayBuffer;
      owned.add(buffer);
      keep(buffer);
    },
  };
}

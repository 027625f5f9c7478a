/**
 * The response cache: one model output row per image, least recently used first out, within a
 * byte bound (`RESPONSE_CACHE_MAX_BYTES`). Triton's response cache is the model: answers are
 * keyed by what determines them, and a hit skips decoding, the queue and the session.
 *
 * - A key names the model version's load (see `responseCacheKey`) and the SHA-256 of the image
 *   bytes, so a reload or a swap can never be answered from an earlier load's entries.
 * - A value is the output row as the model produced it (logits or probabilities), copied out of
 *   its batch's buffer; every answer (v1 top_k, v2 classification, raw tensors) derives from it
 *   per request. Rows handed out are shared: readers must not write into them.
 * - Every entry is charged its row's bytes, its key's (two bytes per UTF-16 code unit: V8 may
 *   store it in one, this never undercounts) and `ENTRY_OVERHEAD_BYTES`; the sum never passes
 *   `maxBytes`. An entry that alone would pass it is not stored. A flood of unique images only
 *   churns the LRU.
 * - Usage is told per model version (`name`, `version`): each load's entries count under the
 *   version that made them, whose series the metrics keep.
 *
 * Single-threaded: used from the main thread only. Knows no HTTP.
 */
import type { ModelKey } from './observer.js';

/**
 * What one entry costs beyond its row's floats and its key, in bytes: the Map's slot, the entry
 * object, the Float32Array, its ArrayBuffer and backing store. Measured on Node 20 (x64, 100 000
 * entries, heap and array buffers after GC): about 290 bytes beside 10- and 1000-float rows;
 * rounded up so that the bound holds.
 */
export const ENTRY_OVERHEAD_BYTES = 384;

export interface ResponseCacheObserver {
  /** An entry of `model` was dropped to make room. */
  evicted(model: ModelKey): void;
  /** `model`'s entries and their bytes now (after every change but `forget`). */
  usage(model: ModelKey, entries: number, bytes: number): void;
}

export interface ResponseCacheOptions {
  /** Bound on the bytes held (rows, keys and overhead); 0 turns the cache off. */
  readonly maxBytes: number;
  readonly observer?: ResponseCacheObserver;
}

export interface ResponseCache {
  /** False when `maxBytes` is 0: nothing is stored. */
  readonly enabled: boolean;
  readonly maxBytes: number;
  /** Bytes held now, as charged (see above); never above `maxBytes`. */
  readonly bytes: number;
  readonly entries: number;
  /** The row stored under `key`, now the most recently used; undefined on a miss. Never write into it. */
  get(key: string): Float32Array | undefined;
  /**
   * Stores a copy of `row` under `key` for `model`, evicting the least recently used entries
   * until it fits. Returns false (and stores nothing) when the cache is off or the entry alone
   * is larger than the bound.
   */
  set(key: string, model: ModelKey, row: Float32Array): boolean;
  /**
   * Drops every entry of `model` (all its loads) without telling the observer: for a version
   * taken out of service, whose series are gone.
   */
  forget(model: ModelKey): void;
}

/** One model version's tally, shared by its entries. */
interface Usage {
  readonly model: ModelKey;
  readonly key: string;
  entries: number;
  bytes: number;
}

interface Entry {
  readonly row: Float32Array;
  readonly usage: Usage;
  readonly bytes: number;
}

/** The key of one image's answer from one load (`loadId`) of a model version. */
export function responseCacheKey(model: ModelKey, loadId: number, imageSha256: string): string {
  // JSON keeps any name or version apart from the fields around it.
  return JSON.stringify([model.name, model.version, loadId, imageSha256]);
}

/** What an entry under `key` holding `row` is charged, in bytes. */
export function entryBytes(key: string, row: Float32Array): number {
  return row.byteLength + 2 * key.length + ENTRY_OVERHEAD_BYTES;
}

export function createResponseCache(options: ResponseCacheOptions): ResponseCache {
  const { maxBytes, observer } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`Expected \`maxBytes\` to be an integer from 0 and up, got \`${maxBytes}\``);
  }
  // A Map iterates in insertion order: re-inserting on every hit keeps the oldest use first.
  const map = new Map<string, Entry>();
  const usage = new Map<string, Usage>();
  let bytes = 0;

  const usageKeyOf = (model: ModelKey) => JSON.stringify([model.name, model.version]);
  const usageOf = (model: ModelKey): Usage => {
    const key = usageKeyOf(model);
    let u = usage.get(key);
    if (u === undefined) usage.set(key, (u = { model: { name: model.name, version: model.version }, key, entries: 0, bytes: 0 }));
    return u;
  };
  const account = (entry: Entry, sign: 1 | -1) => {
    const u = entry.usage;
    bytes += sign * entry.bytes;
    u.entries += sign;
    u.bytes += sign * entry.bytes;
    if (u.entries === 0) usage.delete(u.key);
    observer?.usage(u.model, u.entries, u.bytes);
  };

  return {
    enabled: maxBytes > 0,
    maxBytes,
    get bytes() {
      return bytes;
    },
    get entries() {
      return map.size;
    },
    get(key) {
      const entry = map.get(key);
      if (entry === undefined) return undefined;
      map.delete(key);
      map.set(key, entry);
      return entry.row;
    },
    set(key, model, row) {
      const cost = entryBytes(key, row);
      if (cost > maxBytes) return false;
      const previous = map.get(key);
      if (previous !== undefined) {
        map.delete(key);
        account(previous, -1);
      }
      for (const [oldestKey, oldest] of map) {
        if (bytes + cost <= maxBytes) break;
        map.delete(oldestKey);
        account(oldest, -1);
        observer?.evicted(oldest.usage.model);
      }
      // A copy: `row` is usually a view into its whole batch's output, which it would keep alive.
      const entry: Entry = { row: row.slice(), usage: usageOf(model), bytes: cost };
      map.set(key, entry);
      account(entry, 1);
      return true;
    },
    forget(model) {
      const usageKey = usageKeyOf(model);
      for (const [key, entry] of map) {
        if (entry.usage.key !== usageKey) continue;
        map.delete(key);
        bytes -= entry.bytes;
      }
      usage.delete(usageKey);
    },
  };
}

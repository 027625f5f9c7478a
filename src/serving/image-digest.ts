/**
 * The SHA-256 of an image's bytes: the response cache's and the coalescer's key for the image
 * (inference-service.ts), so every image is hashed, with the cache on or off.
 *
 * An edge that already hashed the bytes as they arrived (the HTTP edge hashes a raw image body
 * chunk by chunk, request-body.ts) says so with `rememberImageDigest`, and the data plane takes
 * that digest instead of reading the bytes again. The digest is remembered for that very array
 * (a WeakMap: it goes with the array), so bytes copied or decoded on the way are hashed anew and
 * can never be matched to another array's digest.
 */
import { createHash, webcrypto } from 'node:crypto';

const remembered = new WeakMap<Uint8Array, string>();

/** Images up to this size are hashed on the calling thread (about 1 GB/s: 0.25 ms); larger ones on libuv's pool. */
const SYNC_DIGEST_MAX_BYTES = 256 * 1024;

/** The digest of a whole buffer, as `imageDigest` gives it (SHA-256, base64). */
export function digestText(hash: ReturnType<typeof createHash>): string {
  return hash.digest('base64');
}

/**
 * Records that `sha256` (as `digestText` gives it) is the SHA-256 of exactly `bytes`, which
 * nobody will change. A wrong digest would make the cache answer for another image: only an
 * edge that hashed these very bytes may call this.
 */
export function rememberImageDigest(bytes: Uint8Array, sha256: string): void {
  remembered.set(bytes, sha256);
}

/** SHA-256 of an image's bytes, base64 (a shorter key than hex). */
export async function imageDigest(bytes: Uint8Array): Promise<string> {
  const known = remembered.get(bytes);
  if (known !== undefined) return known;
  if (bytes.byteLength <= SYNC_DIGEST_MAX_BYTES) return digestText(createHash('sha256').update(bytes));
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('base64');
}

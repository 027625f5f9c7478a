/**
 * What a response cache entry really takes, against what the cache charges it
 * (ENTRY_OVERHEAD_BYTES in src/serving/response-cache.ts):
 *
 *   npm run build && node --expose-gc dist/bench/cache-entry.js [--entries 100000]
 *
 * Fills a cache without a bound with `--entries` entries of 10- and 1000-float rows under keys
 * shaped as the server's, and prints the V8 heap and array-buffer growth per entry after garbage
 * collection. The keys are made before the first measure, so their strings are not in it; the
 * charge counts them at 2 bytes a character (V8 stores these one-byte strings in about 16 plus
 * one byte a character).
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createResponseCache, entryBytes, responseCacheKey } from '../src/serving/response-cache.js';
import { positive } from './lib/cli.js';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '100000' } } });
const count = positive('--entries', values.entries!, { integer: true });
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('Run with node --expose-gc');

const model = { name: 'resnet20', version: '1' };
const keys = Array.from({ length: count }, (_, i) => responseCacheKey(model, 0, createHash('sha256').update(String(i)).digest('base64')));
const held = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
console.log(`node --expose-gc dist/bench/cache-entry.js --entries ${count}   (node ${process.version}, ${process.arch})`);
for (const classes of [10, 1000]) {
  const cache = createResponseCache({ maxBytes: Number.MAX_SAFE_INTEGER });
  const row = new Float32Array(classes);
  const before = held();
  for (const key of keys) cache.set(key, model, row);
  const perEntry = (held() - before) / count;
  // Read after the measure: otherwise the cache is garbage before it, and nothing is measured.
  if (cache.entries !== count) throw new Error(`${cache.entries} entries held, ${count} set`);
  const keyHeld = 16 + keys[0]!.length;
  console.log(
    `${classes} classes: held ${perEntry.toFixed(0)} B + key ~${keyHeld} B = ${(perEntry + keyHeld).toFixed(0)} B per entry; charged ${entryBytes(keys[0]!, row)} B`,
  );
}

/**
 * The data plane's use of the coalescer and the response cache, on a stand-in model whose
 * decodes and batches the test releases (gated promises; no timers, no sleeping).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors } from '../../../src/errors.js';
import { createBatcher } from '../../../src/serving/batcher.js';
import type { ItemOutput } from '../../../src/serving/batch-assembly.js';
import { createInferenceService } from '../../../src/serving/inference-service.js';
import type { ModelRegistry } from '../../../src/serving/model-registry.js';
import type { ServedModel } from '../../../src/serving/model.js';
import { nullObserver } from '../../../src/serving/observer.js';
import { createResponseCache } from '../../../src/serving/response-cache.js';
import { gate, type Gate } from './support.js';

const CLASSES = 3;
const FOREVER = () => performance.now() + 3_600_000;

/**
 * A model of 3 classes whose image "decodes" wait in `decodes` (by the image's first byte) until
 * the test settles them, and whose batches answer at once with the item's value in class 0.
 */
function standIn() {
  const decodes = new Map<number, Gate<Float32Array>>();
  const batches: number[] = [];
  const batcher = createBatcher<Float32Array, ItemOutput>({
    maxBatchSize: 4,
    queueMaxSize: 16,
    runner: {
      concurrency: 1,
      run: async (items) => {
        batches.push(items.length);
        return items.map((item) => ({ row: Float32Array.from([item[0]!, 0, 0]), computeMs: 1 }));
      },
    },
  });
  const model = {
    name: 'm',
    version: '1',
    outputKind: 'probabilities',
    labels: undefined,
    output: { name: 'out', shape: [-1, CLASSES], classes: CLASSES },
    input: { itemSize: 1 },
    get accepting() {
      return !batcher.stopping;
    },
    batcher,
    preprocess(bytes: Uint8Array) {
      const h = gate<Float32Array>();
      decodes.set(bytes[0]!, h);
      return h.promise;
    },
  } as unknown as ServedModel;
  const registry = { stop: () => batcher.stop() } as unknown as ModelRegistry;
  return { model, registry, decodes, batches };
}

/** Resolves once `predicate` holds, checking on every turn of the event loop (bounded). */
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}

const image = (id: number) => Uint8Array.from([id, 1, 2, 3]);

describe('data plane: coalescing and the response cache', () => {
  it('keeps the admission slot of a request that left until the decode it started has ended', async () => {
    const { model, registry, decodes } = standIn();
    const service = createInferenceService(registry, nullObserver, { maxInflightPerModel: 1 });
    const client = new AbortController();
    const request = service.classify(model, [image(7)], 1, { deadline: FOREVER(), signal: client.signal });
    await until(() => decodes.has(7), 'the decode started');
    client.abort();
    await assert.rejects(request, { code: 'CANCELLED' });
    assert.equal(service.hasRoom(model), false, 'the decode still runs, on this request’s slot');
    decodes.get(7)!.resolve(Float32Array.from([0.5]));
    await until(() => service.hasRoom(model), 'the slot is free once the decode ended');
    await service.stop();
  });

  it('runs an image that decodes for whoever joined it, when another image of the same start fails', async () => {
    const { model, registry, decodes, batches } = standIn();
    const service = createInferenceService(registry, nullObserver, { maxInflightPerModel: 4 });
    const leader = service.classify(model, [image(1), image(2)], 1, { deadline: FOREVER() });
    await until(() => decodes.size === 2, 'both decodes started');
    const joiner = service.classify(model, [image(1)], 1, { deadline: FOREVER() });
    decodes.get(2)!.reject(errors.INVALID_IMAGE());
    await assert.rejects(leader, { code: 'INVALID_IMAGE' });
    decodes.get(1)!.resolve(Float32Array.from([0.75]));
    const answer = await joiner;
    assert.equal(answer.predictions[0]!.score, 0.75);
    assert.equal(answer.timings.cache, 'coalesced');
    assert.deepEqual(batches, [1], 'the image that decoded ran, alone');
    await service.stop();
  });

  it('stores the rows of a start nobody waits on any more once its batch has run', async () => {
    const { model, registry, decodes, batches } = standIn();
    const cache = createResponseCache({ maxBytes: 1 << 20 });
    const service = createInferenceService(registry, nullObserver, { maxInflightPerModel: 4, responseCache: cache });
    const leader = service.classify(model, [image(3), image(4)], 1, { deadline: FOREVER() });
    await until(() => decodes.size === 2, 'both decodes started');
    const joiner = service.classify(model, [image(3)], 1, { deadline: FOREVER() });
    decodes.get(4)!.reject(errors.INVALID_IMAGE());
    await assert.rejects(leader, { code: 'INVALID_IMAGE' });
    decodes.get(3)!.resolve(Float32Array.from([0.25]));
    await joiner;
    assert.equal(cache.entries, 1, 'the row of image 3; no error is kept');
    const hit = await service.classify(model, [image(3)], 1, { deadline: FOREVER() });
    assert.equal(hit.timings.cache, 'hit');
    assert.equal(hit.predictions[0]!.score, 0.25);
    assert.deepEqual(batches, [1]);
    await service.stop();
  });
});

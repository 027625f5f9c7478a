/**
 * loadModel with the shared ResNet-20: warm-up runs every batch size before the model is
 * returned, and none of it reaches the observer as traffic; batches after loading do.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadModel } from '../../../src/serving/model.js';
import { nullObserver, type ServingObserver } from '../../../src/serving/observer.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';

describe('loadModel', () => {
  it('warms up without reporting the warm-up batches, then reports each batch of traffic once', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const computed: Array<[string, number]> = [];
    const loaded: string[] = [];
    const observer: ServingObserver = {
      ...nullObserver,
      computed: (model, size) => void computed.push([model, size]),
      modelLoaded: ({ model }) => void loaded.push(model),
    };
    const model = await loadModel(`${repo}/resnet20`, 'resnet20', {
      executionProvider: 'cpu',
      cuda: { deviceId: 0, memLimitBytes: 0, cudnnConvAlgoSearch: 'HEURISTIC' },
      intraOpThreads: 1,
      workers: 1,
      batchMaxSize: 4,
      batchMaxDelayMs: 0,
      queueMaxSize: 16,
      maxImagePixels: 1_000_000,
      observer,
      log: { info() {}, warn() {}, error() {} },
    });
    t.after(() => model.stop());
    assert.deepEqual(loaded, ['resnet20']);
    assert.deepEqual(computed, [], 'the warm-up batches (sizes 4, 3, 2, 1) are not traffic');

    const item = () => new Float32Array(model.input.itemSize).fill(0.25);
    const results = await model.batcher.enqueue([item(), item(), item()]);
    assert.equal(results.length, 3);
    assert.deepEqual(computed, [['resnet20', 3]]);
  });
});

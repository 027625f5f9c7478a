/**
 * loadModel with the shared ResNet-20: warm-up runs every batch size before the model is
 * returned, and none of it reaches the observer as traffic; batches after loading do, and a
 * lone item (sent without a copy) gets the answer it gets inside a batch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadModel } from '../../../src/serving/model.js';
import { readModelPlan } from '../../../src/serving/model-repository.js';
import { nullObserver, type ServingObserver } from '../../../src/serving/observer.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';

describe('loadModel', () => {
  it('warms up without reporting the warm-up batches, then reports each batch of traffic once', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const computed: Array<[string, string, number]> = [];
    const loaded: string[] = [];
    const observer: ServingObserver = {
      ...nullObserver,
      computed: (model, size) => void computed.push([model.name, model.version, size]),
      modelLoaded: ({ model }) => void loaded.push(model),
    };
    const model = await loadModel(
      { name: 'resnet20', plan: await readModelPlan(`${repo}/resnet20`), version: '1' },
      {
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
      },
    );
    t.after(() => model.stop());
    assert.deepEqual(loaded, ['resnet20']);
    assert.deepEqual(computed, [], 'the warm-up batches (sizes 4, 3, 2, 1) are not traffic');

    // Three different items in one batch (copied into a batch buffer), then the second alone
    // (its own buffer goes to the worker): the same answer either way.
    const item = (v: number) => new Float32Array(model.input.itemSize).map((_, i) => Math.sin(i * v));
    const results = await model.batcher.enqueue([item(0.1), item(0.2), item(0.3)]);
    assert.equal(results.length, 3);
    assert.deepEqual(computed, [['resnet20', '1', 3]]);
    const lone = item(0.2);
    const [alone] = await model.batcher.enqueue([lone]);
    assert.equal(lone.byteLength, 0, 'the lone item was transferred to the worker, not copied');
    assert.deepEqual(computed, [
      ['resnet20', '1', 3],
      ['resnet20', '1', 1],
    ]);
    const inBatch = results[1]!.output.row;
    assert.equal(alone!.output.row.length, 10);
    for (let i = 0; i < 10; i++) assert.ok(Math.abs(alone!.output.row[i]! - inBatch[i]!) < 1e-4, `logit ${i}: ${alone!.output.row[i]} vs ${inBatch[i]}`);
  });
});

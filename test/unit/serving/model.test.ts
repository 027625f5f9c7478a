/**
 * loadModel with the shared ResNet-20: warm-up runs every batch size before the model is
 * returned, and none of it reaches the observer as traffic; batches after loading do, and a
 * lone item (sent without a copy) gets the answer it gets inside a batch.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelConfigError } from '../../../src/serving/model-config.js';
import { loadModel } from '../../../src/serving/model.js';
import { nullObserver, type ServingObserver } from '../../../src/serving/observer.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';
import { makeFifo, testLoadOptions } from './support.js';

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

    // Three different items in one batch (copied into a batch buffer), then the second alone
    // (its own buffer goes to the worker): the same answer either way.
    const item = (v: number) => new Float32Array(model.input.itemSize).map((_, i) => Math.sin(i * v));
    const results = await model.batcher.enqueue([item(0.1), item(0.2), item(0.3)]);
    assert.equal(results.length, 3);
    assert.deepEqual(computed, [['resnet20', 3]]);
    const lone = item(0.2);
    const [alone] = await model.batcher.enqueue([lone]);
    assert.equal(lone.byteLength, 0, 'the lone item was transferred to the worker, not copied');
    assert.deepEqual(computed, [['resnet20', 3], ['resnet20', 1]]);
    const inBatch = results[1]!.output.row;
    assert.equal(alone!.output.row.length, 10);
    for (let i = 0; i < 10; i++) assert.ok(Math.abs(alone!.output.row[i]! - inBatch[i]!) < 1e-4, `logit ${i}: ${alone!.output.row[i]} vs ${inBatch[i]}`);
  });
});

describe('loadModel reads only regular files, within their caps', () => {
  const refused = (file: string, problem: RegExp) => (err: Error) => err instanceof ModelConfigError && err.message.startsWith(`${file}: `) && problem.test(err.message);
  const notRegular = (kind: string) => new RegExp(`: is ${kind}, not a regular file: a model folder's files must be regular files`);

  // Each case is refused before onnxruntime is involved, so none of them starts a worker.
  it('refuses a FIFO labels.txt at once instead of waiting for a writer', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const labels = join(repo, 'm', 'labels.txt');
    await rm(labels);
    if (!(await makeFifo(t, labels))) return;
    await assert.rejects(loadModel(join(repo, 'm'), 'm', testLoadOptions()), refused(labels, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a FIFO config.json or model.onnx', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'config', from: RESNET20_DIR }, { name: 'model', from: RESNET20_DIR }]);
    const config = join(repo, 'config', 'config.json');
    const model = join(repo, 'model', 'model.onnx');
    await rm(model);
    if (!(await makeFifo(t, config)) || !(await makeFifo(t, model))) return;
    await assert.rejects(loadModel(join(repo, 'config'), 'config', testLoadOptions()), refused(config, notRegular('a FIFO \\(named pipe\\)')));
    await assert.rejects(loadModel(join(repo, 'model'), 'model', testLoadOptions()), refused(model, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a directory named labels.txt or model.onnx', async (t) => {
    const repo = await tempRepository(t, [{ name: 'labels', from: RESNET20_DIR, config: RESNET20_CONFIG }, { name: 'model', from: RESNET20_DIR }]);
    const labels = join(repo, 'labels', 'labels.txt');
    const model = join(repo, 'model', 'model.onnx');
    await rm(labels);
    await mkdir(labels);
    await rm(model);
    await mkdir(model);
    await assert.rejects(loadModel(join(repo, 'labels'), 'labels', testLoadOptions()), refused(labels, notRegular('a directory')));
    await assert.rejects(loadModel(join(repo, 'model'), 'model', testLoadOptions()), refused(model, notRegular('a directory')));
  });

  it('refuses a labels file over 16 MiB and a config.json over 1 MiB', async (t) => {
    const repo = await tempRepository(t, [{ name: 'labels', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, labels: 'classes.txt' } }, { name: 'config', from: RESNET20_DIR }]);
    const labels = join(repo, 'labels', 'classes.txt');
    await writeFile(labels, Buffer.alloc(16 * 1024 * 1024 + 1, 0x0a));
    await assert.rejects(loadModel(join(repo, 'labels'), 'labels', testLoadOptions()), refused(labels, /: is 16777217 bytes, over the 16 MiB this file may hold$/));
    const config = join(repo, 'config', 'config.json');
    await writeFile(config, `{"description": "${'x'.repeat(1024 * 1024)}"}`);
    await assert.rejects(loadModel(join(repo, 'config'), 'config', testLoadOptions()), refused(config, /: is 1048595 bytes, over the 1 MiB this file may hold$/));
  });

  it('still says a missing model.onnx is missing', async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    await rm(join(repo, 'm', 'model.onnx'));
    await assert.rejects(loadModel(join(repo, 'm'), 'm', testLoadOptions()), /model\.onnx: is missing: every model folder needs a model\.onnx$/);
  });
});

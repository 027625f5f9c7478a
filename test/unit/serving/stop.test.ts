/**
 * stop() of the model, the registry and the data plane, like p-queue's onIdle: idempotent, and
 * every caller gets the same promise, which settles only once the work running is done. The
 * inference worker is the gated stand-in (test/fixtures/workers/gated-worker.ts), so the test
 * decides when the running batch ends.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { performance } from 'node:perf_hooks';
import { gateControl } from '../../fixtures/workers/gated-worker.js';
import { createInferenceService } from '../../../src/serving/inference-service.js';
import { loadModel } from '../../../src/serving/model.js';
import { readModelPlan } from '../../../src/serving/model-repository.js';
import { createModelRegistry } from '../../../src/serving/model-registry.js';
import { nullObserver } from '../../../src/serving/observer.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';
import { testLoadOptions } from './support.js';

/** A deadline that never passes during a test (setTimeout takes no infinite delay). */
const HOUR_MS = 60 * 60 * 1000;
const GATED_WORKER = new URL('../../fixtures/workers/gated-worker.js', import.meta.url);

/** A repository with one model, `m`, run by the gated worker; the gate opens before cleanup. */
async function gated(t: TestContext) {
  const repository = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const control = gateControl();
  const cleanups: Array<() => Promise<void>> = [];
  t.after(async () => {
    control.release();
    for (const cleanup of cleanups) await cleanup();
    control.close();
  });
  return { repository, control, load: { ...testLoadOptions(), workerUrl: GATED_WORKER }, cleanup: (f: () => Promise<void>) => void cleanups.push(f) };
}

/** Lets pending callbacks run: enough turns for a promise that could settle to have settled. */
async function turns(count = 20) {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Calls `stop` twice while a batch is held, and checks both calls against the one promise. */
async function checkStop(control: ReturnType<typeof gateControl>, stop: () => Promise<void>, running: Promise<unknown>) {
  // The batch is in the worker's hands before stop() begins, so what is checked is a stop that
  // waits for running work, not a race between the batch's dispatch and the stop.
  await control.heard('held');
  const first = stop();
  assert.equal(stop(), first, 'a second stop() gets the same promise');
  let settled = false;
  void first.then(() => (settled = true));
  await turns();
  assert.equal(settled, false, 'not settled while a batch runs');
  await control.gate('open');
  await running;
  await first;
  assert.equal(settled, true);
  assert.equal(stop(), first, 'a call after the end gets it too');
}

describe('stop()', () => {
  it('of a model', async (t) => {
    const { repository, control, load, cleanup } = await gated(t);
    const model = await loadModel({ name: 'm', plan: await readModelPlan(`${repository}/m`), version: '1' }, load);
    cleanup(() => model.stop());
    await control.gate('close');
    const running = model.batcher.enqueue([new Float32Array(model.input.itemSize)]);
    await checkStop(control, () => model.stop(), running);
  });

  it('of the registry', async (t) => {
    const { repository, control, load, cleanup } = await gated(t);
    const registry = createModelRegistry({ repository, defaultModel: undefined, load });
    cleanup(() => registry.stop());
    await registry.load();
    await control.gate('close');
    const model = registry.get('m');
    const running = model.batcher.enqueue([new Float32Array(model.input.itemSize)]);
    await checkStop(control, () => registry.stop(), running);
    assert.equal(registry.state, 'stopped');
  });

  it('of the data plane, with a request admitted', async (t) => {
    const { repository, control, load, cleanup } = await gated(t);
    const registry = createModelRegistry({ repository, defaultModel: undefined, load });
    const service = createInferenceService(registry, nullObserver, { maxInflightPerModel: 4 });
    cleanup(() => service.stop());
    await registry.load();
    await control.gate('close');
    const model = registry.get('m');
    const running = service.inferTensor(model, new Float32Array(model.input.itemSize), 1, { deadline: performance.now() + HOUR_MS });
    await checkStop(control, () => service.stop(), running);
    assert.equal(registry.state, 'stopped', 'the registry was stopped after the admitted request');
  });
});

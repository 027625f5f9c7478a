import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RegistryState } from '../../../src/serving/model-registry.js';
import { isServerReady, notReadyError } from '../../../src/serving/readiness.js';

const STATES: readonly RegistryState[] = ['idle', 'loading', 'ready', 'failed', 'stopping', 'stopped'];
const registryIn = (state: RegistryState) => ({ state, ready: state === 'ready' });

describe('the readiness rule', () => {
  it('is ready only with every model loaded and shutdown not begun', () => {
    for (const state of STATES) {
      for (const draining of [false, true]) {
        assert.equal(isServerReady(registryIn(state), { draining }), state === 'ready' && !draining, `${state}, draining ${draining}`);
      }
    }
  });

  it("says why not: SHUTTING_DOWN once shutdown began, else NOT_READY naming the models' state", () => {
    assert.equal(notReadyError(registryIn('ready'), { draining: true }).code, 'SHUTTING_DOWN');
    const loading = notReadyError(registryIn('loading'), { draining: false });
    assert.equal(loading.code, 'NOT_READY');
    assert.equal(loading.message, 'Not ready: models are loading');
  });
});

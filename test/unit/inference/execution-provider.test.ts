/**
 * Provider selection with the binding replaced by a fake opener that behaves as
 * onnxruntime-node does on a machine without CUDA (it throws on `cuda`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_BATCH_MAX_SIZE, ExecutionProviderError, openWithProvider } from '../../../src/inference/execution-provider.js';
import { executionProviders } from '../../../src/inference/onnx-binding.js';

const CUDA_FAILURE = 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library';

function fakeBinding(cudaWorks: boolean) {
  const attempts: string[] = [];
  const open = async (provider: 'cpu' | 'cuda') => {
    attempts.push(provider);
    if (provider === 'cuda' && !cudaWorks) throw new Error(CUDA_FAILURE);
    return { session: provider };
  };
  const warnings: Array<{ obj: object; msg: string }> = [];
  return { attempts, open, log: { warn: (obj: object, msg: string) => warnings.push({ obj, msg }) }, warnings };
}

describe('openWithProvider', () => {
  it('cpu opens on CPU only', async () => {
    const b = fakeBinding(true);
    const r = await openWithProvider('cpu', 'm.onnx', b.open, b.log);
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(b.attempts, ['cpu']);
  });

  it('cuda opens on CUDA when it can be created', async () => {
    const b = fakeBinding(true);
    const r = await openWithProvider('cuda', 'm.onnx', b.open, b.log);
    assert.equal(r.provider, 'cuda');
    assert.deepEqual(r.value, { session: 'cuda' });
  });

  it('cuda fails with a message naming CUDA, the model, the reason and how to install it', async () => {
    const b = fakeBinding(false);
    await assert.rejects(openWithProvider('cuda', '/models/r50/model.onnx', b.open, b.log), (err: Error) => {
      assert.ok(err instanceof ExecutionProviderError);
      assert.match(err.message, /EXECUTION_PROVIDER=cuda: the CUDA execution provider could not be created for \/models\/r50\/model\.onnx/);
      assert.ok(err.message.includes(CUDA_FAILURE), "keeps onnxruntime's reason");
      assert.match(err.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
      assert.match(err.message, /EXECUTION_PROVIDER=auto/);
      return true;
    });
    assert.deepEqual(b.attempts, ['cuda'], 'no silent fallback to CPU');
  });

  it('auto falls back to CPU with a warning naming the reason', async () => {
    const b = fakeBinding(false);
    const r = await openWithProvider('auto', 'm.onnx', b.open, b.log);
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(b.attempts, ['cuda', 'cpu']);
    assert.equal(b.warnings.length, 1);
    assert.match(b.warnings[0]!.msg, /falling back to CPU/);
    assert.deepEqual(b.warnings[0]!.obj, { model: 'm.onnx', reason: CUDA_FAILURE });
  });

  it('auto uses CUDA without a warning when it works', async () => {
    const b = fakeBinding(true);
    assert.equal((await openWithProvider('auto', 'm.onnx', b.open, b.log)).provider, 'cuda');
    assert.equal(b.warnings.length, 0);
  });

  it('batches more by default on CUDA than on CPU', () => {
    assert.ok(DEFAULT_BATCH_MAX_SIZE.cuda > DEFAULT_BATCH_MAX_SIZE.cpu);
  });
});

describe('executionProviders (session options given to onnxruntime-node)', () => {
  it('asks for the CPU provider alone on cpu', () => {
    assert.deepEqual(executionProviders({}), ['cpu']);
    assert.deepEqual(executionProviders({ executionProvider: 'cpu' }), ['cpu']);
  });

  it('asks for CUDA on the configured device, with the CUDA options, and no CPU fallback', () => {
    const eps = executionProviders({ executionProvider: 'cuda', cuda: { deviceId: 1, memLimitBytes: 2 ** 31, cudnnConvAlgoSearch: 'EXHAUSTIVE' } });
    assert.deepEqual(eps, [{ name: 'cuda', deviceId: 1, cudnn_conv_algo_search: 'EXHAUSTIVE', gpu_mem_limit: 2 ** 31 }]);
  });

  it('leaves the arena limit unset when it is 0', () => {
    const eps = executionProviders({ executionProvider: 'cuda', cuda: { deviceId: 0, memLimitBytes: 0, cudnnConvAlgoSearch: 'HEURISTIC' } });
    assert.deepEqual(eps, [{ name: 'cuda', deviceId: 0, cudnn_conv_algo_search: 'HEURISTIC' }]);
  });
});

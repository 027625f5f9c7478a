import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isServingError } from '../../../src/errors.js';
import { createWorkerPool } from '../../../src/serving/worker-pool.js';
import { RESNET20_DIR } from '../../helpers.js';

const quiet = { warn() {}, error() {} };
const init = { modelPath: join(RESNET20_DIR, 'model.onnx'), session: { intraOpThreads: 1 } };

describe('createWorkerPool', () => {
  it("loads the session in a worker and reports the graph's inputs and outputs", async (t) => {
    const pool = await createWorkerPool({ init, log: quiet });
    t.after(() => pool.close());
    assert.deepEqual(pool.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 3, 32, 32] }]);
    assert.equal(pool.outputs[0]!.name, 'logits');
    assert.equal(pool.executionProvider, 'cpu');
    const input = new Float32Array(2 * 3 * 32 * 32).fill(0.5);
    const out = await pool.run('input', input, [2, 3, 32, 32]);
    assert.deepEqual(out.dims, [2, 10]);
    assert.equal(out.output.length, 20);
    assert.equal(input.byteLength, 0, 'the input buffer was transferred to the worker, not copied');
    assert.ok(out.computeMs > 0);
  });

  it('fails only the batch of a worker that dies, replaces the worker, and carries on', async (t) => {
    const errors: string[] = [];
    const pool = await createWorkerPool({ init, log: { warn() {}, error: (_o, msg) => errors.push(msg) } });
    t.after(() => pool.close());
    pool.crashOne();
    const doomed = pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    await assert.rejects(doomed, (err) => isServingError(err) && err.code === 'INFERENCE_FAILED' && err.statusCode === 500);
    const after = await pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    assert.deepEqual(after.dims, [1, 10], 'the replacement worker serves the next batch');
    assert.ok(errors.some((m) => /inference worker died/.test(m)));
  });

  it('refuses to start on a file that is not a model, with onnxruntime\'s reason', async () => {
    await assert.rejects(
      createWorkerPool({ init: { modelPath: join(RESNET20_DIR, 'labels.txt'), session: {} }, log: quiet }),
      (err: Error) => err.message.length > 0,
    );
  });
});

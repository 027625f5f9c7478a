import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isServingError } from '../../../src/errors.js';
import { createWorkerPool } from '../../../src/serving/worker-pool.js';
import { gateControl } from '../../fixtures/workers/gated-worker.js';
import { RESNET20_DIR } from '../../helpers.js';

const GATED_WORKER = new URL('../../fixtures/workers/gated-worker.js', import.meta.url);

const quiet = { warn() {}, error() {} };

/** Id, name and nice value of every thread of this process (Linux /proc). */
function threadNices(): Array<{ tid: string; name: string; nice: number }> {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      // The fields after the parenthesised name: state is field 3, nice is field 19.
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [{ tid, name, nice: Number(fields[19 - 3]) }];
    } catch {
      return []; // the thread ended between listing and reading
    }
  });
}
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

  it(
    'runs the inference thread and the onnxruntime threads it starts at the nice increment, and no other thread',
    { skip: process.platform !== 'linux' },
    async (t) => {
      const before = threadNices();
      const base = before.find((th) => th.name !== 'ort-inference')!.nice;
      const pool = await createWorkerPool({ init: { ...init, session: { intraOpThreads: 2 }, niceIncrement: 5 }, log: quiet });
      t.after(() => pool.close());
      await pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
      // Threads the pool started: the worker and those it started (onnxruntime names none, so
      // they inherit the worker's name). Threads of earlier pools in this process are left out.
      const started = threadNices().filter((th) => !before.some((b) => b.tid === th.tid));
      const inference = started.filter((th) => th.name === 'ort-inference');
      // The worker thread itself and onnxruntime's second intra-op thread, at least.
      assert.ok(inference.length >= 2, `threads started: ${JSON.stringify(started)}`);
      for (const th of inference) assert.equal(th.nice, Math.min(19, base + 5), JSON.stringify(th));
      for (const th of threadNices().filter((x) => x.name !== 'ort-inference')) assert.equal(th.nice, base, `${th.name} keeps the process's nice value`);
    },
  );

  it('fails only the batch of a worker that dies, replaces the worker, and carries on', async (t) => {
    const errors: string[] = [];
    // The gated stand-in worker holds the batch until the test makes it exit.
    const control = gateControl();
    const pool = await createWorkerPool({ init, log: { warn() {}, error: (_o, msg) => errors.push(msg) }, workerUrl: GATED_WORKER });
    t.after(async () => {
      control.release();
      await pool.close();
      control.close();
    });
    await control.gate('close');
    const doomed = pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    control.crash();
    await assert.rejects(doomed, (err) => isServingError(err) && err.code === 'INFERENCE_FAILED' && err.statusCode === 500);
    const after = await pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    assert.deepEqual(after.dims, [1, 10], 'the replacement worker serves the next batch');
    assert.ok(errors.some((m) => /inference worker died/.test(m)));
  });

  it('close() ends the workers once: every call gets the same promise, and later batches are refused', async () => {
    const pool = await createWorkerPool({ init, log: quiet });
    const first = pool.close();
    assert.equal(pool.close(), first);
    await first;
    assert.equal(pool.close(), first, 'a call after the end gets it too');
    await assert.rejects(pool.run('input', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]), (err) => isServingError(err) && err.code === 'SHUTTING_DOWN');
  });

  it("refuses to start on a file that is not a model, with onnxruntime's reason", async () => {
    await assert.rejects(
      createWorkerPool({ init: { modelPath: join(RESNET20_DIR, 'labels.txt'), session: {} }, log: quiet }),
      (err: Error) => err.message.length > 0,
    );
  });
});

/**
 * Batch assembly with a stand-in for the worker pool that does to buffers what a worker does:
 * the batch tensor's buffer is transferred (detached here) and handed back as a new object over
 * the same memory. Each test checks what the worker saw, what each item got back, and which
 * pool each buffer went back to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBatchAssembly, type BatchAssemblyOptions } from '../../../src/serving/batch-assembly.js';
import type { BatchOutput } from '../../../src/serving/worker-pool.js';

/** 3 × 2 × 2 images: 12 values an item. */
const ITEM = 12;

interface Seen {
  readonly inputName: string;
  readonly dims: readonly number[];
  /** The batch tensor's values, as the worker read them. */
  readonly values: number[];
  /** The buffer handed back, to check where it is reused. */
  readonly returned: ArrayBuffer;
}

/** A worker stand-in: row i of the output is [first value of item i, i]. */
function standIn() {
  const seen: Seen[] = [];
  const run = async (inputName: string, data: Float32Array, dims: readonly number[]): Promise<BatchOutput> => {
    const values = [...data];
    const returned = structuredClone(data.buffer as ArrayBuffer, { transfer: [data.buffer as ArrayBuffer] });
    seen.push({ inputName, dims, values, returned });
    const batch = dims[0]!;
    const output = new Float32Array(batch * 2);
    for (let i = 0; i < batch; i++) output.set([values[i * ITEM]!, i], i * 2);
    return { output, dims: [batch, 2], computeMs: 4, input: new Float32Array(returned) };
  };
  return { seen, run };
}

function assembly(run: BatchAssemblyOptions['run'], fixedBatchSize?: number) {
  const computed: Array<[number, number]> = [];
  const a = createBatchAssembly({
    input: { name: 'input', shape: [fixedBatchSize ?? -1, 3, 2, 2], fixedBatchSize, itemSize: ITEM },
    maxBatchSize: 4,
    concurrency: 1,
    maxFreeItems: 8,
    run,
    computed: (items, seconds) => void computed.push([items, seconds]),
  });
  return { a, computed };
}

const rows = (outputs: ReadonlyArray<{ row: Float32Array }>) => outputs.map((o) => [...o.row]);

describe('createBatchAssembly', () => {
  it('copies several items into one batch tensor, gives each its row, and recycles both kinds of buffer', async () => {
    const worker = standIn();
    const { a, computed } = assembly(worker.run);
    const items = [1, 2, 3].map((v) => a.acquireItem().fill(v));
    const outputs = await a.run(items);

    assert.equal(worker.seen.length, 1);
    const batch = worker.seen[0]!;
    assert.equal(batch.inputName, 'input');
    assert.deepEqual(batch.dims, [3, 3, 2, 2]);
    assert.deepEqual(batch.values, [...Array<number>(ITEM).fill(1), ...Array<number>(ITEM).fill(2), ...Array<number>(ITEM).fill(3)]);
    assert.deepEqual(
      rows(outputs),
      [
        [1, 0],
        [2, 1],
        [3, 2],
      ],
      'each item gets its own row, in order',
    );
    assert.ok(outputs.every((o) => o.computeMs === 4));
    assert.deepEqual(computed, [[3, 0.004]]);
    assert.equal(a.freeItems, 3, 'the items went back to the item pool once copied');
    assert.equal(a.freeBatches, 1, 'the batch tensor came back from the worker to the batch pool');
  });

  it('sends a lone item that owns its buffer as it is, and takes that buffer back into the item pool', async () => {
    const worker = standIn();
    const { a } = assembly(worker.run);
    const lone = a.acquireItem().fill(7);
    const [output] = await a.run([lone]);
    assert.equal(lone.byteLength, 0, 'the item itself was transferred: no copy');
    assert.deepEqual(worker.seen[0]!.dims, [1, 3, 2, 2]);
    assert.deepEqual(rows([output!]), [[7, 0]]);
    assert.equal(a.freeBatches, 0, 'no batch tensor was used');
    assert.equal(a.freeItems, 1);
    assert.equal(a.acquireItem().buffer, worker.seen[0]!.returned, 'the next item reuses the returned buffer');
  });

  it('copies a lone item that is a view into a larger buffer (a v2 tensor request), leaving the request its data', async () => {
    const worker = standIn();
    const { a } = assembly(worker.run);
    const request = new Float32Array(2 * ITEM).fill(5);
    const view = request.subarray(ITEM);
    const [output] = await a.run([view]);
    assert.equal(request.byteLength, 2 * ITEM * 4, "the request's buffer was not transferred");
    assert.deepEqual(worker.seen[0]!.values, Array<number>(ITEM).fill(5));
    assert.deepEqual(rows([output!]), [[5, 0]]);
    assert.equal(a.freeBatches, 1);
    assert.equal(a.freeItems, 0, 'an array the pool did not make is not taken into it');
  });

  it('pads a fixed-size graph with zero rows, even in a recycled batch tensor that held others', async () => {
    const worker = standIn();
    const { a } = assembly(worker.run, 3);
    await a.run([1, 2, 3].map((v) => a.acquireItem().fill(v)));
    assert.equal(a.freeBatches, 1, 'the next batch takes this tensor, which holds the rows 1, 2, 3');
    const outputs = await a.run([a.acquireItem().fill(9)]);
    const second = worker.seen[1]!;
    assert.deepEqual(second.dims, [3, 3, 2, 2], 'the graph takes 3 rows');
    assert.deepEqual(second.values, [...Array<number>(ITEM).fill(9), ...Array<number>(2 * ITEM).fill(0)]);
    assert.deepEqual(rows(outputs), [[9, 0]], 'only the real item gets a row');
  });

  it('does not report warm-up batches (observe false) as computed traffic', async () => {
    const { a, computed } = assembly(standIn().run);
    await a.run([a.acquireItem(), a.acquireItem()], false);
    assert.deepEqual(computed, []);
    await a.run([a.acquireItem()]);
    assert.deepEqual(computed, [[1, 0.004]]);
  });

  it('takes back an item released before batching, and no other array', () => {
    const { a } = assembly(standIn().run);
    const item = a.acquireItem();
    a.releaseItem(new Float32Array(ITEM));
    assert.equal(a.freeItems, 0);
    a.releaseItem(item);
    assert.equal(a.freeItems, 1);
    assert.equal(a.acquireItem().buffer, item.buffer);
  });
});

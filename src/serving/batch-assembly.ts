/**
 * Batch assembly for one model: the hot path between the batcher and the worker pool. Items
 * (one tensor per image) become one contiguous batch tensor of the graph's input shape; the
 * batch's output is cut back into one row per item.
 *
 * Buffers, and who owns them (every one recycled, since a fresh tensor of hundreds of kilobytes
 * costs page faults on the main thread; see buffer-pool.ts):
 * - an item's tensor comes from the item pool (`acquireItem`), is filled by preprocessing, and
 *   belongs to the request until its batch is assembled, when it goes back to the pool;
 * - a batch's tensor comes from the batch pool (one per running batch), is transferred to the
 *   worker, and comes back with the result, to the pool it came from;
 * - a lone item that owns its whole buffer is the batch as it is: no copy, and it comes back to
 *   the item pool.
 * Single-threaded: used from the main thread only.
 */
import type { ResolvedModelInput } from './model-config.js';
import { createBufferPool, type BufferPool } from './buffer-pool.js';
import type { BatchOutput } from './worker-pool.js';

/** One output row per item, and the batch's compute time. */
export interface ItemOutput {
  readonly row: Float32Array;
  readonly computeMs: number;
}

export interface BatchAssemblyOptions {
  readonly input: Pick<ResolvedModelInput, 'name' | 'shape' | 'fixedBatchSize' | 'itemSize'>;
  /** Largest batch that will be run (the graph's fixed batch size when it has one). */
  readonly maxBatchSize: number;
  /** Batches that may run at once (the workers): one batch buffer is kept for each. */
  readonly concurrency: number;
  /** Item tensors kept for reuse; more released ones are left to the garbage collector. */
  readonly maxFreeItems: number;
  /** Runs a batch; `data`'s whole buffer is transferred, and comes back as `BatchOutput.input`. */
  readonly run: (inputName: string, data: Float32Array, dims: readonly number[]) => Promise<BatchOutput>;
  /** Told of every batch run with `observe` (traffic, not warm-up): its items and compute time. */
  readonly computed?: (items: number, computeSeconds: number) => void;
}

export interface BatchAssembly {
  /** A tensor for one item (contents arbitrary), to preprocess into. */
  acquireItem(): Float32Array;
  /** Gives back an item tensor that will not be run (its request failed before batching). */
  releaseItem(item: Float32Array): void;
  /**
   * Runs `items` as one batch and resolves with one output per item, in order. The items belong
   * to the assembly from this call on. `observe: false` for warm-up batches, which are not
   * traffic. @default observe true
   */
  run(items: readonly Float32Array[], observe?: boolean): Promise<ItemOutput[]>;
  /** Item tensors waiting for reuse. */
  readonly freeItems: number;
  /** Batch tensors waiting for reuse. */
  readonly freeBatches: number;
}

/** A lone item that owns its whole buffer can go to the worker as it is, without a copy. */
const ownsBuffer = (item: Float32Array) => item.byteOffset === 0 && item.byteLength === item.buffer.byteLength;

const rowsFromDims = (dims: readonly number[]) => dims.slice(1).reduce((a, b) => a * b, 1);

export function createBatchAssembly(options: BatchAssemblyOptions): BatchAssembly {
  const { input, run, computed } = options;
  const itemPool = createBufferPool(input.itemSize, options.maxFreeItems);
  const batchRows = input.fixedBatchSize ?? options.maxBatchSize;
  const batchPool = createBufferPool(batchRows * input.itemSize, options.concurrency);

  return {
    acquireItem: () => itemPool.acquire(),
    releaseItem: (item) => itemPool.release(item),
    get freeItems() {
      return itemPool.free;
    },
    get freeBatches() {
      return batchPool.free;
    },
    async run(items, observe = true) {
      const batch = input.fixedBatchSize ?? items.length;
      const dims = [batch, ...input.shape.slice(1)];
      let data: Float32Array;
      let bufferPool: BufferPool;
      if (batch === 1 && ownsBuffer(items[0]!)) {
        // The common case at low load: the image's own tensor is transferred (the request no
        // longer reads it) and comes back to the item pool.
        data = items[0]!;
        bufferPool = itemPool;
      } else {
        // One contiguous buffer, transferred (not copied) to the worker, which hands it back.
        data = batchPool.acquire().subarray(0, batch * input.itemSize);
        items.forEach((item, i) => {
          data.set(item, i * input.itemSize);
          itemPool.release(item);
        });
        // A fixed-size graph gets zero rows as padding (the recycled buffer holds old rows).
        if (items.length < batch) data.fill(0, items.length * input.itemSize);
        bufferPool = batchPool;
      }
      const { output, dims: outDims, computeMs, input: returned } = await run(input.name, data, dims);
      if (returned !== undefined) bufferPool.adopt(returned);
      const rowSize = rowsFromDims(outDims);
      if (observe) computed?.(items.length, computeMs / 1000);
      return items.map((_, i) => ({ row: output.subarray(i * rowSize, (i + 1) * rowSize), computeMs }));
    },
  };
}

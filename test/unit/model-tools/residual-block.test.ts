/**
 * The lecture's point about residual blocks: a block computes a[l+2] = relu(z[l+2] + a[l]), so
 * with its residual branch at zero it passes its (non-negative, post-ReLU) input through
 * unchanged (identity shortcut) or subsampled and zero-padded (option A): adding a block cannot
 * make the network worse, because doing nothing is easy for it to learn.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openSession } from '../../../src/inference/onnx-binding.js';
import type { BlockKind, ShortcutKind } from '../../../src/model-tools/architectures.js';
import { buildModel, resolveBuildOptions } from '../../../src/model-tools/build.js';
import type { Initializer, OnnxModel } from '../../../src/model-tools/onnx-graph.js';
import { decodeModel, encodeModel } from '../../../src/model-tools/onnx-proto.js';
import { createRandom } from '../../../src/model-tools/prng.js';
import { buildBlockModel } from '../../../src/model-tools/resnet.js';
import { maxAbsDifference } from './support.js';

interface Tensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Non-negative input, as every block input follows a ReLU. */
function nonNegativeInput(dims: number[], seed: number): Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  return { data: createRandom(seed).fillUniform(new Float32Array(count), 0, 2), dims };
}

/** `x[:, :, ::stride, ::stride]` with `before` zero channels in front and `after` behind. */
function subsampleAndPad(x: Tensor, stride: number, before: number, after: number): Tensor {
  const [n = 0, c = 0, h = 0, w = 0] = x.dims;
  const oh = Math.ceil(h / stride);
  const ow = Math.ceil(w / stride);
  const oc = before + c + after;
  const out = new Float32Array(n * oc * oh * ow);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          out[((b * oc + ch + before) * oh + i) * ow + j] = x.data[((b * c + ch) * h + i * stride) * w + j * stride] ?? NaN;
        }
  return { data: out, dims: [n, oc, oh, ow] };
}

async function run(model: OnnxModel | Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await openSession(model instanceof Uint8Array ? model : encodeModel(model), { intraOpThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

interface Case {
  readonly title: string;
  readonly block: BlockKind;
  readonly shortcut: ShortcutKind;
  readonly inChannels: number;
  readonly planes: number;
  readonly stride: number;
  readonly size: number;
  /** Zero channels the shortcut adds before and after the input's. */
  readonly pad: readonly [number, number];
}

const CASES: readonly Case[] = [
  { title: 'basic block, identity shortcut', block: 'basic', shortcut: 'zeropad', inChannels: 8, planes: 8, stride: 1, size: 6, pad: [0, 0] },
  {
    title: 'basic block, zero-pad shortcut (stride 2, 8 → 16 channels)',
    block: 'basic',
    shortcut: 'zeropad',
    inChannels: 8,
    planes: 16,
    stride: 2,
    size: 6,
    pad: [4, 4],
  },
  { title: 'bottleneck, identity shortcut', block: 'bottleneck', shortcut: 'zeropad', inChannels: 32, planes: 8, stride: 1, size: 5, pad: [0, 0] },
  {
    title: 'bottleneck, zero-pad shortcut (stride 2, odd size, 16 → 32 channels)',
    block: 'bottleneck',
    shortcut: 'zeropad',
    inChannels: 16,
    planes: 8,
    stride: 2,
    size: 7,
    pad: [8, 8],
  },
  {
    title: 'bottleneck, zero-pad shortcut (stride 1, 16 → 32 channels)',
    block: 'bottleneck',
    shortcut: 'zeropad',
    inChannels: 16,
    planes: 8,
    stride: 1,
    size: 5,
    pad: [8, 8],
  },
];

describe('a residual block with its residual branch at zero passes its input through', () => {
  for (const c of CASES) {
    test(c.title, async () => {
      const x = nonNegativeInput([2, c.inChannels, c.size, c.size], 11);
      const expected = subsampleAndPad(x, c.stride, c.pad[0], c.pad[1]);

      const zeroed = await run(buildBlockModel({ ...c, seed: 5, zeroResidualBranch: true }), { x });
      const y = Object.values(zeroed)[0];
      assert.ok(y);
      assert.deepEqual(y.dims, expected.dims);
      // Exact: relu(0 + x) is x, bit for bit, for x ≥ 0.
      assert.deepEqual(y.data, expected.data);

      const random = Object.values(await run(buildBlockModel({ ...c, seed: 5 }), { x }))[0];
      assert.ok(random);
      assert.ok(maxAbsDifference(random.data, expected.data) > 0.1, 'with random weights the block changes its input');
    });
  }

  test('a projection shortcut does not: relu(Ws·x) is not x', async () => {
    const spec = { block: 'basic', shortcut: 'projection', inChannels: 8, planes: 16, stride: 2, size: 6, seed: 5 } as const;
    const x = nonNegativeInput([1, 8, 6, 6], 11);
    const y = Object.values(await run(buildBlockModel({ ...spec, zeroResidualBranch: true }), { x }))[0];
    assert.ok(y);
    assert.ok(maxAbsDifference(y.data, subsampleAndPad(x, 2, 4, 4).data) > 0.1);
  });
});

describe('inside a built ResNet-20', () => {
  /** The built model with two block outputs exposed as graph outputs and some weights zeroed. */
  function withProbes(zero: (init: Initializer) => boolean, probes: Array<[string, number, number]>): Uint8Array {
    const model = decodeModel(encodeModel(buildModel(resolveBuildOptions({ arch: 'resnet20', seed: 9 }))));
    const graph = model.graph;
    return encodeModel({
      ...model,
      graph: {
        ...graph,
        initializers: graph.initializers.map((i) => (i.elementType === 'float32' && zero(i) ? { ...i, data: new Float32Array(i.data.length) } : i)),
        outputs: [
          ...graph.outputs,
          ...probes.map(([name, channels, size]) => ({ name, elementType: 'float32' as const, shape: ['batch', channels, size, size] })),
        ],
      },
    });
  }

  const input = () => nonNegativeInput([2, 3, 32, 32], 3);

  test('zeroing layer2.1 (identity shortcut) makes its output equal its input', async () => {
    const branch = /^layer2\.1\.conv\d\./;
    const out = await run(
      withProbes(
        (i) => branch.test(i.name),
        [
          ['layer2.0.out', 32, 16],
          ['layer2.1.out', 32, 16],
        ],
      ),
      { input: input() },
    );
    assert.deepEqual(out['layer2.1.out']?.data, out['layer2.0.out']?.data);

    const untouched = await run(
      withProbes(
        () => false,
        [
          ['layer2.0.out', 32, 16],
          ['layer2.1.out', 32, 16],
        ],
      ),
      { input: input() },
    );
    assert.ok(maxAbsDifference(untouched['layer2.1.out']!.data, untouched['layer2.0.out']!.data) > 0.1);
  });

  test('zeroing layer3.0 (zero-pad shortcut) makes its output its input subsampled and padded', async () => {
    const branch = /^layer3\.0\.conv\d\./;
    const out = await run(
      withProbes(
        (i) => branch.test(i.name),
        [
          ['layer2.2.out', 32, 16],
          ['layer3.0.out', 64, 8],
        ],
      ),
      { input: input() },
    );
    const before = out['layer2.2.out'];
    assert.ok(before);
    assert.deepEqual(out['layer3.0.out']?.data, subsampleAndPad(before, 2, 16, 16).data);
  });
});

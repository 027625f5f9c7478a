/**
 * Built models load in onnxruntime and give [batch, classes] for any batch; and the built
 * ResNet-20, given the trained weights of the shared ResNet-20, computes what that model does.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openSession } from '../../../src/inference/onnx-binding.js';
import { buildModel, buildModelFiles, resolveBuildOptions } from '../../../src/model-tools/build.js';
import type { Initializer, OnnxGraph } from '../../../src/model-tools/onnx-graph.js';
import { decodeModel, encodeModel } from '../../../src/model-tools/onnx-proto.js';
import { createRandom } from '../../../src/model-tools/prng.js';
import { SHARED_RESNET20_DIR, maxAbsDifference, tempDir } from './support.js';

function image(batch: number, size: number, seed: number) {
  const data = createRandom(seed).fillUniform(new Float32Array(batch * 3 * size * size), -2, 2);
  return { data, dims: [batch, 3, size, size] };
}

describe('built models in onnxruntime', () => {
  for (const { arch, size, classes } of [
    { arch: 'resnet50', size: 224, classes: 1000 },
    { arch: 'resnet20', size: 32, classes: 10 },
  ]) {
    test(`${arch} loads and gives [batch, ${classes}] for batches of 1 and 3`, async (t) => {
      const dir = await tempDir(t);
      const { modelPath, configPath, labelsPath } = await buildModelFiles({ arch, outDir: join(dir, arch) });
      const session = await openSession(modelPath, { intraOpThreads: 2 });
      t.after(() => session.release());
      assert.deepEqual(session.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 3, size, size] }]);
      assert.deepEqual(session.outputs, [{ name: 'logits', type: 'float32', shape: ['batch', classes] }]);

      const three = image(3, size, 1);
      const out3 = (await session.run({ input: three })).logits;
      assert.ok(out3);
      assert.deepEqual(out3.dims, [3, classes]);
      assert.ok(out3.data.every(Number.isFinite));

      // Batch 1 of the second image gives the second row of the batch of three.
      const second = { data: three.data.slice(3 * size * size, 2 * 3 * size * size), dims: [1, 3, size, size] };
      const out1 = (await session.run({ input: second })).logits;
      assert.ok(out1);
      assert.deepEqual(out1.dims, [1, classes]);
      const row = out3.data.slice(classes, 2 * classes);
      assert.ok(maxAbsDifference(out1.data, row) <= 1e-3 * Math.max(1, ...row.map(Math.abs)));

      const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
      assert.equal(config.trained, false);
      assert.equal(config.output, 'logits');
      assert.equal(config.labels, 'labels.txt');
      assert.deepEqual(config.preprocess, {
        resize: size === 224 ? 256 : 32,
        crop: size,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        scale: 255,
        channels: 'RGB',
        layout: 'NCHW',
        decode: 'fast',
      });
      const labels = (await readFile(labelsPath, 'utf8')).trimEnd().split('\n');
      assert.equal(labels.length, classes);
      assert.equal(labels[0], size === 224 ? 'tench' : 'airplane');
    });
  }
});

/** The Conv and Gemm parameters of a graph, in node order: [weight, bias] per node. */
function parameterOrder(graph: OnnxGraph): string[] {
  return graph.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm').flatMap((n) => [n.inputs[1] ?? '', n.inputs[2] ?? '']);
}

describe('built resnet20 with the trained weights of ../shared', () => {
  const sharedPath = join(SHARED_RESNET20_DIR, 'model.onnx');
  const skip = existsSync(sharedPath) ? false : `${sharedPath} is not present`;

  test('computes the same logits as the shared model (same graph, same zero-pad placement)', { skip }, async (t) => {
    const sharedBytes = await readFile(sharedPath);
    const shared = decodeModel(sharedBytes).graph;
    const built = buildModel(resolveBuildOptions({ arch: 'resnet20', shortcut: 'zeropad' }));
    const sharedInit = new Map(shared.initializers.map((i) => [i.name, i]));
    const sharedOrder = parameterOrder(shared);
    const builtOrder = parameterOrder(built.graph);
    assert.equal(builtOrder.length, sharedOrder.length);
    const transplant = new Map<string, Initializer>();
    builtOrder.forEach((name, i) => {
      const from = sharedInit.get(sharedOrder[i] ?? '');
      assert.ok(from, `shared parameter ${sharedOrder[i]}`);
      transplant.set(name, { ...from, name });
    });
    const trained = encodeModel({
      ...built,
      graph: { ...built.graph, initializers: built.graph.initializers.map((i) => transplant.get(i.name) ?? i) },
    });

    const reference = await openSession(sharedBytes, { intraOpThreads: 1 });
    const ours = await openSession(trained, { intraOpThreads: 1 });
    t.after(async () => {
      await reference.release();
      await ours.release();
    });
    const input = image(4, 32, 7);
    const expected = (await reference.run({ input })).logits;
    const actual = (await ours.run({ input })).logits;
    assert.ok(expected && actual);
    assert.deepEqual(actual.dims, expected.dims);
    assert.ok(maxAbsDifference(actual.data, expected.data) < 1e-4, `max difference ${maxAbsDifference(actual.data, expected.data)}`);
  });
});

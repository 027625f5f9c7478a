import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ARCHITECTURES, getArchitecture } from '../../../src/model-tools/architectures.js';
import { buildModel, resolveBuildOptions } from '../../../src/model-tools/build.js';
import type { OnnxGraph } from '../../../src/model-tools/onnx-graph.js';
import { decodeModel, encodeModel } from '../../../src/model-tools/onnx-proto.js';
import { buildResNetGraph } from '../../../src/model-tools/resnet.js';
import { SHARED_RESNET20_DIR, TORCHVISION_FIXTURES, floatInitializerShapes, weightShapes } from './support.js';

interface TorchvisionShapes {
  arch: string;
  output: number[];
  convWeights: number[][];
  gemmWeights: number[][];
}

async function torchvisionShapes(arch: string): Promise<TorchvisionShapes> {
  return JSON.parse(await readFile(join(TORCHVISION_FIXTURES, `${arch}-shapes.json`), 'utf8')) as TorchvisionShapes;
}

const sortedKeys = (shapes: number[][]) => shapes.map((s) => s.join('x')).sort();

const graphs = new Map<string, OnnxGraph>();

/** Builds each graph once per file: resnet50 draws 25 million weights. */
function graphOf(arch: string, options: { shortcut?: 'projection' | 'zeropad'; classes?: number } = {}): OnnxGraph {
  const key = JSON.stringify([arch, options.shortcut, options.classes]);
  let graph = graphs.get(key);
  if (!graph) {
    graph = buildModel(resolveBuildOptions({ arch, ...options })).graph;
    graphs.set(key, graph);
  }
  return graph;
}

describe('ImageNet ResNets against torchvision', () => {
  for (const arch of ['resnet18', 'resnet50']) {
    test(`${arch}: the convolution and gemm weight shapes and the output are torchvision's`, async () => {
      const reference = await torchvisionShapes(arch);
      const graph = graphOf(arch);
      const shapes = weightShapes(graph);
      assert.deepEqual(shapes.conv, sortedKeys(reference.convWeights));
      assert.deepEqual(shapes.gemm, sortedKeys(reference.gemmWeights));
      const output = graph.outputs[0];
      assert.equal(graph.outputs.length, 1);
      assert.equal(output?.name, 'logits');
      // torchvision's output is [2, 1000] for a batch of 2; the graph's is [batch, 1000].
      assert.deepEqual(output?.shape, ['batch', reference.output[1]]);
      assert.deepEqual(graph.inputs, [{ name: 'input', elementType: 'float32', shape: ['batch', 3, 224, 224] }]);
    });
  }

  test('resnet50 puts the stride on the 3×3 convolution of a bottleneck (v1.5)', () => {
    const graph = graphOf('resnet50');
    const strides = (name: string) => {
      const node = graph.nodes.find((n) => n.name === name);
      assert.ok(node, `node ${name}`);
      const attribute = node.attributes.find(([key]) => key === 'strides')?.[1];
      return attribute?.kind === 'ints' ? attribute.value : undefined;
    };
    assert.deepEqual(strides('layer2.0.conv1'), [1, 1]);
    assert.deepEqual(strides('layer2.0.conv2'), [2, 2]);
    assert.deepEqual(strides('layer2.0.downsample'), [2, 2]);
    assert.deepEqual(strides('conv1'), [2, 2]);
  });

  test('the graph has batch norm folded away and uses only onnxruntime-friendly operators', () => {
    const ops = new Set(graphOf('resnet18').nodes.map((n) => n.opType));
    assert.deepEqual([...ops].sort(), ['Add', 'Conv', 'Flatten', 'Gemm', 'GlobalAveragePool', 'MaxPool', 'Relu']);
    const cifarOps = new Set(graphOf('resnet20').nodes.map((n) => n.opType));
    assert.deepEqual([...cifarOps].sort(), ['Add', 'Conv', 'Flatten', 'Gemm', 'GlobalAveragePool', 'Pad', 'Relu', 'Slice']);
  });

  test('resnet34 and the CIFAR depths have the number of convolutions their depth implies', () => {
    // Depth counts the weighted layers on the main path: convolutions plus the final fc.
    for (const [arch, projections] of [
      ['resnet34', 3],
      ['resnet20', 0],
      ['resnet32', 0],
      ['resnet44', 0],
      ['resnet56', 0],
      ['resnet110', 0],
    ] as const) {
      const depth = Number(arch.slice('resnet'.length));
      assert.equal(weightShapes(graphOf(arch)).conv.length, depth - 1 + projections, arch);
    }
    // With projection shortcuts the two subsampling blocks of a CIFAR ResNet gain a 1×1 conv each.
    assert.deepEqual(
      weightShapes(graphOf('resnet20', { shortcut: 'projection' })).conv.filter((s) => s.endsWith('x1x1')),
      ['32x16x1x1', '64x32x1x1'],
    );
  });

  test('--classes sets the final layer and the output', () => {
    const graph = graphOf('resnet18', { classes: 7 });
    assert.deepEqual(weightShapes(graph).gemm, ['7x512']);
    assert.deepEqual(graph.outputs[0]?.shape, ['batch', 7]);
  });

  test('both shortcut kinds build, and the table holds exactly the documented architectures', () => {
    for (const name of ['resnet18', 'resnet20']) {
      for (const shortcut of ['projection', 'zeropad'] as const) {
        const graph = buildResNetGraph(getArchitecture(name), { classes: 10, shortcut, seed: 1 });
        assert.equal(graph.outputs[0]?.name, 'logits');
      }
    }
    assert.deepEqual(Object.keys(ARCHITECTURES).sort(), [
      'resnet101',
      'resnet110',
      'resnet152',
      'resnet18',
      'resnet20',
      'resnet32',
      'resnet34',
      'resnet44',
      'resnet50',
      'resnet56',
    ]);
    assert.throws(() => getArchitecture('resnet19'), /Unknown architecture `resnet19`; expected one of resnet18/);
  });
});

describe('CIFAR ResNet-20 against the trained model in ../shared', () => {
  const sharedModel = join(SHARED_RESNET20_DIR, 'model.onnx');
  const skip = existsSync(sharedModel) ? false : `${sharedModel} is not present`;

  test('resnet20 --shortcut zeropad has the same weight shapes as the shared model', { skip }, async () => {
    const shared = decodeModel(await readFile(sharedModel)).graph;
    const built = graphOf('resnet20', { shortcut: 'zeropad' });
    assert.deepEqual(weightShapes(built), weightShapes(shared));
    // Folded batch norm: every convolution has a bias, as in the export.
    assert.deepEqual(floatInitializerShapes(built), floatInitializerShapes(shared));
    assert.deepEqual(built.inputs[0]?.shape, shared.inputs[0]?.shape);
    assert.deepEqual(built.outputs[0]?.shape, shared.outputs[0]?.shape);
    assert.deepEqual([built.inputs[0]?.name, built.outputs[0]?.name], [shared.inputs[0]?.name, shared.outputs[0]?.name]);
  });
});

describe('ONNX writer and reader', () => {
  test('a decoded model encodes back to the same bytes', () => {
    const bytes = encodeModel(buildModel(resolveBuildOptions({ arch: 'resnet20', seed: 3 })));
    const decoded = decodeModel(bytes);
    assert.deepEqual(Buffer.from(encodeModel(decoded)), Buffer.from(bytes));
    assert.equal(decoded.opsetVersion, 13);
    assert.deepEqual(Object.fromEntries(decoded.metadata), { trained: 'false', arch: 'resnet20', classes: '10', shortcut: 'zeropad', seed: '3' });
  });

  test('a node with attributes the reader cannot hold is refused on encoding, not written half', async (t) => {
    const sharedModel = join(SHARED_RESNET20_DIR, 'model.onnx');
    if (!existsSync(sharedModel)) return t.skip(`${sharedModel} is not present`);
    // The PyTorch export keeps its zero-pad constants in Constant nodes with tensor values.
    const decoded = decodeModel(await readFile(sharedModel));
    const constant = decoded.graph.nodes.find((n) => n.opType === 'Constant');
    assert.deepEqual(constant?.unsupportedAttributes, ['value']);
    assert.throws(() => encodeModel(decoded), /cannot be encoded: its attributes value were not decoded/);
  });
});

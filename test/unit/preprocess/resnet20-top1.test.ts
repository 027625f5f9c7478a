/**
 * The check that matters to a user: the shared trained ResNet-20 names the same class for an
 * image whether torchvision or this module preprocessed it. Covers the 50 CIFAR-10 JPEGs
 * (32×32: no resize, identical tensors) and the photos reduced 9–47× to 32 px, where the
 * tensors differ most (see torchvision-parity.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openSession, type OnnxSession } from '../../../src/inference/onnx-binding.js';
import { createImagePreprocessor } from '../../../src/preprocess/index.js';
import { haveShared, loadManifest, readInput, sharedDir, torchvisionTensor } from './support.js';

const modelDir = join(sharedDir, 'models', 'resnet20-cifar10');
const modelPath = join(modelDir, 'model.onnx');
const skip = !haveShared || !existsSync(modelPath) ? '../shared/models/resnet20-cifar10 is not present' : false;

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

describe('ResNet-20 (CIFAR-10) top-1: ours vs torchvision', { skip }, () => {
  const manifest = loadManifest();
  const cases = manifest.cases.filter((c) => c.spec === 'cifar');
  const spec = manifest.specs.cifar;
  let session: OnnxSession;

  before(async () => {
    session = await openSession(modelPath, { intraOpThreads: 1 });
  });
  after(async () => {
    await session?.release();
  });

  async function classify(tensors: Float32Array[]): Promise<number[]> {
    const per = 3 * 32 * 32;
    const batch = new Float32Array(tensors.length * per);
    tensors.forEach((t, i) => batch.set(t, i * per));
    const input = session.inputs[0]?.name ?? 'input';
    const outputs = await session.run({ [input]: { data: batch, dims: [tensors.length, 3, 32, 32] } });
    const logits = Object.values(outputs)[0];
    assert.ok(logits);
    const classes = logits.dims[1] as number;
    return tensors.map((_, i) => argmax(logits.data.subarray(i * classes, (i + 1) * classes)));
  }

  it('names the same class for every CIFAR-10 image and photo', async (t) => {
    assert.ok(spec);
    assert.ok(cases.length >= 55, `expected the 50 CIFAR-10 images and the photos, got ${cases.length}`);
    const preprocessor = createImagePreprocessor(spec, { maxPixels: 40_000_000 });
    const ours = await Promise.all(cases.map(async (c) => (await preprocessor.preprocess(readInput(c))).data));
    const theirs = cases.map((c) => torchvisionTensor(c, spec));
    const [a, b] = await Promise.all([classify(ours), classify(theirs)]);
    const labels = readFileSync(join(modelDir, 'labels.txt'), 'utf8').trim().split('\n');
    const differing = cases.filter((_, i) => a[i] !== b[i]).map((c) => c.name);
    assert.deepEqual(differing, []);
    const correct = cases.filter((c, i) => c.input.shared?.startsWith('images/cifar10/') && c.name.startsWith(labels[a[i] as number] as string));
    t.diagnostic(`${correct.length} of 50 CIFAR-10 images right`);
    const chelsea = cases.findIndex((c) => c.name === 'chelsea.cifar');
    assert.equal(labels[a[chelsea] as number], 'cat');
  });
});

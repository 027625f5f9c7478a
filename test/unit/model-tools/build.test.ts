import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { buildModelFiles, resolveBuildOptions } from '../../../src/model-tools/build.js';
import { readLabelSet } from '../../../src/model-tools/labels.js';
import { createRandom } from '../../../src/model-tools/prng.js';
import { parseModelConfigFile } from '../../../src/serving/model-config.js';
import { REPO_ROOT, SHARED_RESNET20_DIR, tempDir } from './support.js';

const run = promisify(execFile);
const BUILD_CLI = join(REPO_ROOT, 'dist', 'src', 'model-tools', 'build-cli.js');

async function filesOf(dir: string) {
  return Promise.all(['model.onnx', 'config.json', 'labels.txt'].map((f) => readFile(join(dir, f))));
}

describe('reproducible builds', () => {
  for (const arch of ['resnet20', 'resnet18']) {
    test(`${arch}: the same seed gives byte-identical files, another seed other weights`, async (t) => {
      const dir = await tempDir(t);
      await buildModelFiles({ arch, outDir: join(dir, 'a'), seed: 42 });
      await buildModelFiles({ arch, outDir: join(dir, 'b'), seed: 42 });
      await buildModelFiles({ arch, outDir: join(dir, 'c'), seed: 43 });
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((d) => filesOf(join(dir, d))));
      assert.ok(a && b && c);
      assert.ok(a[0]?.equals(b[0]!), 'model.onnx is byte-identical');
      assert.ok(a[1]?.equals(b[1]!), 'config.json is byte-identical');
      assert.ok(a[2]?.equals(b[2]!), 'labels.txt is byte-identical');
      assert.equal(a[0]?.length, c[0]?.length, 'another seed changes values, not structure');
      assert.ok(!a[0]?.equals(c[0]!), 'another seed gives other weights');
    });
  }
});

describe('build options', () => {
  test('defaults follow the architecture family', () => {
    const imagenet = resolveBuildOptions({ arch: 'resnet50' });
    assert.deepEqual([imagenet.classes, imagenet.shortcut, imagenet.seed], [1000, 'projection', 0]);
    const cifar = resolveBuildOptions({ arch: 'resnet56' });
    assert.deepEqual([cifar.classes, cifar.shortcut, cifar.seed], [10, 'zeropad', 0]);
  });

  test('bad options fail with a message naming the value', () => {
    assert.throws(() => resolveBuildOptions({ arch: 'vgg16' }), /Unknown architecture `vgg16`/);
    assert.throws(() => resolveBuildOptions({ arch: 'resnet18', classes: 0 }), /`classes` to be an integer from 1 to 100000, got `0`/);
    assert.throws(() => resolveBuildOptions({ arch: 'resnet18', classes: 2.5 }), /got `2.5`/);
    assert.throws(() => resolveBuildOptions({ arch: 'resnet18', seed: -1 }), /`seed` to be an integer from 0 to 4294967295, got `-1`/);
    assert.throws(() => resolveBuildOptions({ arch: 'resnet18', shortcut: 'dense' as never }), /"projection" or "zeropad", got `dense`/);
  });

  test('a class count without a shipped label set gets placeholder labels', async (t) => {
    const dir = await tempDir(t);
    const { labelsPath } = await buildModelFiles({ arch: 'resnet20', outDir: dir, classes: 3 });
    assert.equal(await readFile(labelsPath, 'utf8'), 'class_0\nclass_1\nclass_2\n');
  });
});

describe('the written config.json', () => {
  test("is the server's config type, every field filled in, and the server reads it back unchanged", async (t) => {
    const dir = await tempDir(t);
    const { configPath } = await buildModelFiles({ arch: 'resnet20', outDir: dir, classes: 3 });
    const written = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(written).sort(), ['description', 'labels', 'output', 'preprocess', 'source', 'trained', 'version']);
    assert.deepEqual(parseModelConfigFile(written, configPath), written);
  });
});

describe('shipped labels', () => {
  test('ImageNet: 1000 names in the standard order', async () => {
    const labels = await readLabelSet('imagenet-1k');
    assert.equal(labels.length, 1000);
    assert.deepEqual([labels[0], labels[1], labels[281], labels[999]], ['tench', 'goldfish', 'tabby', 'toilet tissue']);
    assert.ok(labels.every((l) => l.length > 0 && l.trim() === l));
  });

  test('CIFAR-10: the ten names of the shared trained model, in its order', async (t) => {
    const labels = await readLabelSet('cifar10');
    const shared = await readFile(join(SHARED_RESNET20_DIR, 'labels.txt'), 'utf8').catch(() => undefined);
    if (shared === undefined) return t.skip('../shared/models/resnet20-cifar10/labels.txt is not present');
    assert.deepEqual(labels, shared.trimEnd().split('\n'));
  });
});

describe('seeded generator', () => {
  test('the same seed gives the same numbers, normals have mean 0 and variance 1', () => {
    const a = createRandom(7).fillNormal(new Float32Array(200_000), 1);
    const b = createRandom(7).fillNormal(new Float32Array(200_000), 1);
    const c = createRandom(8).fillNormal(new Float32Array(200_000), 1);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
    assert.throws(() => createRandom(2 ** 32), /`seed` to be an integer from 0 to 4294967295/);
  });
});

describe('model:build command line', () => {
  test('writes the three files and says the weights are untrained', async (t) => {
    const dir = await tempDir(t);
    const { stdout } = await run(process.execPath, [BUILD_CLI, '--arch', 'resnet20', '--out', join(dir, 'm'), '--seed', '5']);
    assert.match(stdout, /Built resnet20/);
    assert.match(stdout, /UNTRAINED/);
    const config = JSON.parse(await readFile(join(dir, 'm', 'config.json'), 'utf8')) as { source: { seed: number } };
    assert.equal(config.source.seed, 5);
  });

  for (const [args, message] of [
    [[], /--arch is required/],
    [['--arch', 'resnet18'], /--out is required/],
    [['--arch', 'alexnet', '--out', 'x'], /--arch must be one of resnet18, resnet34, resnet50, resnet101, resnet152, resnet20/],
    [['--arch', 'resnet18', '--out', 'x', '--classes', 'ten'], /--classes must be an integer from 1 to 100000, got "ten"/],
    [['--arch', 'resnet18', '--out', 'x', '--shortcut', 'b'], /--shortcut must be projection or zeropad, got "b"/],
    [['--arch', 'resnet18', '--out', 'x', '--seed', '-3'], /--seed/],
    [['--arch', 'resnet18', '--out', 'x', '--depth', '3'], /Unknown option '--depth'/],
  ] as const) {
    test(`usage error: ${args.join(' ') || '(no arguments)'}`, async () => {
      await assert.rejects(run(process.execPath, [BUILD_CLI, ...args]), (error: { code?: number; stderr?: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr ?? '', message);
        assert.match(error.stderr ?? '', /Usage: npm run model:build/);
        return true;
      });
    });
  }
});

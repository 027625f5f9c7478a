import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_MODEL_NAME, ensureDefaultModel, shippedDefaultModelDir } from '../../../src/model-tools/default-model.js';
import { scanRepository } from '../../../src/serving/model-repository.js';
import { REPO_ROOT, tempDir } from './support.js';

interface Entry {
  level: 'info' | 'warn';
  obj: object;
  msg: string;
}

function recordingLog() {
  const entries: Entry[] = [];
  return {
    entries,
    info: (obj: object, msg: string) => entries.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg: string) => entries.push({ level: 'warn', obj, msg }),
  };
}

describe('ensureDefaultModel', () => {
  test('copies the shipped trained ResNet-20 into a missing repository, says what it knows, and reuses it later', async (t) => {
    const repository = join(await tempDir(t), 'models');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { seeded: true, name: DEFAULT_MODEL_NAME });

    assert.deepEqual((await readdir(repository)).sort(), [DEFAULT_MODEL_NAME], 'no staging folder is left behind');
    const folder = join(repository, DEFAULT_MODEL_NAME);
    assert.deepEqual(
      (await readdir(folder)).sort(),
      ['LICENSE', 'README.md', 'config.json', 'labels.txt', 'model.onnx'],
      'the licence and provenance travel with the weights',
    );
    const model = await readFile(join(folder, 'model.onnx'));
    assert.equal(createHash('sha256').update(model).digest('hex'), 'ac146e6ebcfc55d69cbab6bdb7d21748f2ac0fcc35378f0fc7a0b1937d488a95');
    const config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as { trained?: boolean; preprocess?: { resize?: number; crop?: number } };
    assert.equal(config.trained, true);
    assert.deepEqual([config.preprocess?.resize, config.preprocess?.crop], [32, 32]);
    assert.equal((await readFile(join(folder, 'labels.txt'), 'utf8')).trim().split('\n').length, 10);

    const said = log.entries.find((e) => e.level === 'info');
    assert.ok(said, 'the copy is logged');
    assert.match(said.msg, /10 CIFAR-10 classes/);
    assert.match(said.msg, /ImageNet ResNet/);

    const before = await stat(join(folder, 'model.onnx'));
    const again = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, again), { seeded: false, name: undefined });
    assert.equal(again.entries.length, 0);
    assert.equal((await stat(join(folder, 'model.onnx'))).mtimeMs, before.mtimeMs);
  });

  test('copies nothing when the repository already holds a model', async (t) => {
    const repository = await tempDir(t);
    await mkdir(join(repository, 'mine'));
    await writeFile(join(repository, 'mine', 'model.onnx'), 'not really a model');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { seeded: false, name: undefined });
    assert.deepEqual(await readdir(repository), ['mine']);
    assert.equal(log.entries.length, 0);
  });

  test("never overwrites a folder of the default model's name that has no model.onnx: it is a model folder, whose load fails", async (t) => {
    const repository = await tempDir(t);
    await mkdir(join(repository, DEFAULT_MODEL_NAME));
    await writeFile(join(repository, DEFAULT_MODEL_NAME, 'notes.txt'), 'mine');
    assert.deepEqual(await ensureDefaultModel(repository, recordingLog()), { seeded: false, name: undefined });
    assert.deepEqual(await readdir(join(repository, DEFAULT_MODEL_NAME)), ['notes.txt']);
  });

  test("never replaces a file of the default model's name, and says why", async (t) => {
    const repository = await tempDir(t);
    await writeFile(join(repository, DEFAULT_MODEL_NAME), 'mine');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { seeded: false, name: undefined });
    assert.equal(await readFile(join(repository, DEFAULT_MODEL_NAME), 'utf8'), 'mine');
    assert.match(log.entries[0]?.msg ?? '', /is in the way \(not a directory\)/);
  });

  // The server's rule for what a model folder is, and the copy's, are one (model-repository.ts):
  // the copy is made exactly when the server would find no model to load.
  const layouts: Array<[string, (repository: string, elsewhere: string) => Promise<void>, boolean]> = [
    ['an empty repository', async () => {}, true],
    [
      'a folder with model.onnx',
      async (r) => {
        await mkdir(join(r, 'm'));
        await writeFile(join(r, 'm', 'model.onnx'), '');
      },
      false,
    ],
    [
      'a folder without model.onnx',
      async (r) => {
        await mkdir(join(r, 'm'));
      },
      false,
    ],
    [
      'a symlink to a folder',
      async (r, e) => {
        await mkdir(join(e, 'm'));
        await symlink(join(e, 'm'), join(r, 'm'));
      },
      false,
    ],
    [
      'a dangling symlink',
      async (r, e) => {
        await symlink(join(e, 'gone'), join(r, 'm'));
      },
      true,
    ],
    [
      'a symlink to a file',
      async (r, e) => {
        await writeFile(join(e, 'f'), '');
        await symlink(join(e, 'f'), join(r, 'm'));
      },
      true,
    ],
    [
      'a hidden folder with model.onnx',
      async (r) => {
        await mkdir(join(r, '.m'));
        await writeFile(join(r, '.m', 'model.onnx'), '');
      },
      true,
    ],
    [
      'a file',
      async (r) => {
        await writeFile(join(r, 'README.md'), '');
      },
      true,
    ],
  ];
  for (const [layout, make, seeds] of layouts) {
    test(`${seeds ? 'copies' : 'copies nothing'} into a repository holding ${layout}, as the server ${seeds ? 'finds no model' : 'finds a model'} there`, async (t) => {
      const repository = await tempDir(t);
      await make(repository, await tempDir(t));
      const before = await scanRepository(repository);
      assert.equal(before.models.length === 0, seeds, `the server's scan: ${JSON.stringify(before)}`);
      assert.equal((await ensureDefaultModel(repository, recordingLog())).seeded, seeds);
      if (seeds) assert.deepEqual((await scanRepository(repository)).models, [DEFAULT_MODEL_NAME]);
    });
  }

  test('a copy that fails leaves no model folder and no staging folder', async (t) => {
    const repository = await tempDir(t);
    const missing = join(await tempDir(t), 'no-such-model');
    await assert.rejects(ensureDefaultModel(repository, recordingLog(), missing));
    assert.deepEqual(await readdir(repository), []);
  });

  test('hidden and stale staging folders (of this and earlier releases) are not models; stale ones are cleaned up', async (t) => {
    const repository = await tempDir(t);
    const stale = join(repository, '.building-resnet50-1-dead');
    const staleCopy = join(repository, `.seeding-${DEFAULT_MODEL_NAME}-1-dead`);
    const fresh = join(repository, `.seeding-${DEFAULT_MODEL_NAME}-2-live`);
    for (const dir of [stale, staleCopy, fresh]) {
      await mkdir(dir);
      await writeFile(join(dir, 'model.onnx'), 'half a model');
    }
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    for (const dir of [stale, staleCopy]) await utimes(dir, twoHoursAgo, twoHoursAgo);
    assert.deepEqual((await scanRepository(repository)).models, []);

    assert.equal((await ensureDefaultModel(repository, recordingLog())).seeded, true);
    assert.equal(existsSync(stale), false, 'the stale staging folder is removed');
    assert.equal(existsSync(staleCopy), false, 'the stale staging folder is removed');
    assert.equal(existsSync(fresh), true, 'a recent one may belong to a copy in progress');
    assert.deepEqual((await scanRepository(repository)).models, [DEFAULT_MODEL_NAME]);
  });

  test('the shipped model is the one in ../shared that the tests use', async () => {
    const shipped = await readFile(join(shippedDefaultModelDir(), 'model.onnx'));
    const shared = await readFile(join(REPO_ROOT, '..', 'shared', 'models', 'resnet20-cifar10', 'model.onnx'));
    assert.ok(shipped.equals(shared));
    assert.equal(
      await readFile(join(shippedDefaultModelDir(), 'LICENSE'), 'utf8'),
      await readFile(join(REPO_ROOT, '..', 'shared', 'models', 'resnet20-cifar10', 'LICENSE'), 'utf8'),
    );
  });
});

test('model-tools never import onnxruntime (the default model is built without it)', async () => {
  const dir = join(REPO_ROOT, 'src', 'model-tools');
  for (const file of await readdir(dir)) {
    const source = await readFile(join(dir, file), 'utf8');
    assert.doesNotMatch(source, /from ['"](onnxruntime-node|onnxruntime-common|.*inference\/)/, file);
  }
});

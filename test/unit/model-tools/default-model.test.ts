import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ensureDefaultModel, listModelFolders } from '../../../src/model-tools/default-model.js';
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
  test('builds an untrained resnet50 into a missing repository, says so, and reuses it later', async (t) => {
    const repository = join(await tempDir(t), 'models');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { built: true, name: 'resnet50' });

    assert.deepEqual((await readdir(repository)).sort(), ['resnet50'], 'no staging folder is left behind');
    assert.deepEqual((await readdir(join(repository, 'resnet50'))).sort(), ['config.json', 'labels.txt', 'model.onnx']);
    const config = JSON.parse(await readFile(join(repository, 'resnet50', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.trained, false);

    const warning = log.entries.find((e) => e.level === 'warn');
    assert.ok(warning, 'a warning is logged');
    assert.match(warning.msg, /UNTRAINED/);
    assert.match(warning.msg, /predictions mean nothing/);
    assert.match(warning.msg, /npm run model:fetch -- resnet50-v1/);
    assert.match(warning.msg, /export your own/);
    assert.equal((warning.obj as { trained?: boolean }).trained, false);

    const before = await stat(join(repository, 'resnet50', 'model.onnx'));
    const again = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, again), { built: false, name: undefined });
    assert.equal(again.entries.length, 0);
    assert.equal((await stat(join(repository, 'resnet50', 'model.onnx'))).mtimeMs, before.mtimeMs);
  });

  test('builds nothing when the repository already holds a model', async (t) => {
    const repository = await tempDir(t);
    await mkdir(join(repository, 'mine'));
    await writeFile(join(repository, 'mine', 'model.onnx'), 'not really a model');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { built: false, name: undefined });
    assert.deepEqual(await readdir(repository), ['mine']);
    assert.equal(log.entries.length, 0);
  });

  test('never overwrites a resnet50 folder that has no model.onnx', async (t) => {
    const repository = await tempDir(t);
    await mkdir(join(repository, 'resnet50'));
    await writeFile(join(repository, 'resnet50', 'notes.txt'), 'mine');
    const log = recordingLog();
    assert.deepEqual(await ensureDefaultModel(repository, log), { built: false, name: undefined });
    assert.deepEqual(await readdir(join(repository, 'resnet50')), ['notes.txt']);
    assert.match(log.entries[0]?.msg ?? '', /without model\.onnx/);
  });

  test('hidden and stale staging folders are not models; stale ones are cleaned up', async (t) => {
    const repository = await tempDir(t);
    const stale = join(repository, '.building-resnet50-1-dead');
    const fresh = join(repository, '.building-resnet50-2-live');
    for (const dir of [stale, fresh]) {
      await mkdir(dir);
      await writeFile(join(dir, 'model.onnx'), 'half a model');
    }
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    assert.deepEqual(await listModelFolders(repository), []);

    assert.equal((await ensureDefaultModel(repository, recordingLog())).built, true);
    assert.equal(existsSync(stale), false, 'the stale staging folder is removed');
    assert.equal(existsSync(fresh), true, 'a recent one may belong to a build in progress');
    assert.deepEqual(await listModelFolders(repository), ['resnet50']);
  });
});

test('model-tools never import onnxruntime (the default model is built without it)', async () => {
  const dir = join(REPO_ROOT, 'src', 'model-tools');
  for (const file of await readdir(dir)) {
    const source = await readFile(join(dir, file), 'utf8');
    assert.doesNotMatch(source, /from ['"](onnxruntime-node|onnxruntime-common|.*inference\/)/, file);
  }
});

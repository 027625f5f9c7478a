/**
 * The registry over the repository scan (model-repository.ts): each skipped entry is logged, a
 * warning, or an info line for hidden entries, which are skipped by design. A model whose files
 * are refused fails the load naming the file, as any bad model does.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createModelRegistry, noDefaultModelMessage } from '../../../src/serving/model-registry.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';
import { makeFifo, tempDir, testLoadOptions, type LogLine } from './support.js';

describe('createModelRegistry', () => {
  it('serves a symlinked model folder and logs each skipped entry', async (t) => {
    const elsewhere = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const repo = await tempDir(t);
    await symlink(join(elsewhere, 'resnet20'), join(repo, 'linked'));
    await symlink(join(elsewhere, 'gone'), join(repo, 'dangling'));
    await mkdir(join(repo, '..data'));
    const lines: LogLine[] = [];
    const registry = createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions(lines) });
    t.after(() => registry.stop());

    await registry.load();
    assert.equal(registry.state, 'ready');
    assert.equal(registry.get('linked').output.classes, 10);
    const sha256 = createHash('sha256').update(await readFile(join(RESNET20_DIR, 'model.onnx'))).digest('hex');
    assert.equal(registry.get('linked').sha256, sha256, 'hashed through the checked handle, the whole file');
    assert.deepEqual(registry.list().map((m) => m.name), ['linked']);
    const skips = lines.filter((l) => l.msg.startsWith('model repository: skipped'));
    assert.deepEqual(
      skips.map((l) => [l.level, l.msg, l.obj]),
      [
        ['info', 'model repository: skipped ..data: hidden: dot-prefixed entries are work in progress, never models', { entry: '..data', reason: 'hidden: dot-prefixed entries are work in progress, never models' }],
        ['warn', 'model repository: skipped dangling: dangling symlink: its target does not exist', { entry: 'dangling', reason: 'dangling symlink: its target does not exist' }],
      ],
    );
  });

  it('names skipped entries when DEFAULT_MODEL or every model is missing', async (t) => {
    const repo = await tempDir(t);
    await symlink(join(repo, 'gone'), join(repo, 'resnet20'));
    const load = (defaultModel: string | undefined) => createModelRegistry({ repository: repo, defaultModel, load: testLoadOptions() }).load();
    await assert.rejects(load(undefined), { message: `MODEL_REPOSITORY ${repo} holds no model folder; skipped: resnet20 (dangling symlink: its target does not exist)` });
    await mkdir(join(repo, 'other'));
    await writeFile(join(repo, 'other', 'model.onnx'), '');
    await assert.rejects(load('resnet20'), {
      message: `DEFAULT_MODEL is "resnet20", but ${repo} has no such folder (it has: other; skipped: resnet20 (dangling symlink: its target does not exist))`,
    });
  });

  it('names the hidden entries when the repository holds no model, such as an unfinished fetch', async (t) => {
    const repo = await tempDir(t);
    await mkdir(join(repo, '.fetch-resnet18-v1'));
    await writeFile(join(repo, '.fetch-resnet18-v1', 'model.onnx.part'), 'part');
    await assert.rejects(createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions() }).load(), {
      message: `MODEL_REPOSITORY ${repo} holds no model folder; ignored, being dot-prefixed (work in progress, never served): .fetch-resnet18-v1`,
    });
  });

  it('says, when several models leave the short routes without one, which are loaded and how to pick one', () => {
    assert.equal(
      noDefaultModelMessage(['r18', 'resnet20']),
      'Several models are loaded (r18, resnet20) and DEFAULT_MODEL is not set, so this route cannot tell which to use: ' +
        'set DEFAULT_MODEL=<one of them> and restart (e.g. DEFAULT_MODEL=r18), or send the request to /v1/models/<name>:predict (e.g. /v1/models/r18:predict)',
    );
    const many = Array.from({ length: 11 }, (_, i) => `m${i}`);
    assert.match(noDefaultModelMessage(many), /^Several models are loaded \(m0, m1, m2, m3, m4, m5, m6, m7 and 3 more\) /);
  });

  it('fails the load, naming the file, when a model has a FIFO labels.txt', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const labels = join(repo, 'resnet20', 'labels.txt');
    await rm(labels);
    if (!(await makeFifo(t, labels))) return;
    const registry = createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions() });
    t.after(() => registry.stop());
    await assert.rejects(registry.load(), { name: 'ModelConfigError', message: new RegExp(`^${labels}: is a FIFO \\(named pipe\\), not a regular file`) });
    assert.equal(registry.state, 'failed');
  });
});

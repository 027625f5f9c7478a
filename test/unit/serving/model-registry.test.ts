/**
 * The registry over the repository scan (model-repository.ts): each skipped entry is logged, a
 * warning, or an info line for hidden entries, which are skipped by design. A model whose files
 * are refused fails the load naming the file, as any bad model does. Versions: every version
 * the policy selects is loaded on its own; lookups give the highest or the one named; `swap`
 * replaces what a model serves in one step, and a version already handed out keeps working.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { compareVersionsDescending, createModelRegistry, noDefaultModelMessage, servedVersions } from '../../../src/serving/model-registry.js';
import type { ServedModel } from '../../../src/serving/model.js';
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
    const sha256 = createHash('sha256')
      .update(await readFile(join(RESNET20_DIR, 'model.onnx')))
      .digest('hex');
    assert.equal(registry.get('linked').sha256, sha256, 'hashed through the checked handle, the whole file');
    assert.deepEqual(
      registry.list().map((m) => m.name),
      ['linked'],
    );
    const skips = lines.filter((l) => l.msg.startsWith('model repository: skipped'));
    assert.deepEqual(
      skips.map((l) => [l.level, l.msg, l.obj]),
      [
        [
          'info',
          'model repository: skipped ..data: hidden: dot-prefixed entries are work in progress, never models',
          { entry: '..data', reason: 'hidden: dot-prefixed entries are work in progress, never models' },
        ],
        [
          'warn',
          'model repository: skipped dangling: dangling symlink: its target does not exist',
          { entry: 'dangling', reason: 'dangling symlink: its target does not exist' },
        ],
      ],
    );
  });

  it('names skipped entries when DEFAULT_MODEL or every model is missing', async (t) => {
    const repo = await tempDir(t);
    await symlink(join(repo, 'gone'), join(repo, 'resnet20'));
    const load = (defaultModel: string | undefined) => createModelRegistry({ repository: repo, defaultModel, load: testLoadOptions() }).load();
    await assert.rejects(load(undefined), {
      message: `MODEL_REPOSITORY ${repo} holds no model folder; skipped: resnet20 (dangling symlink: its target does not exist)`,
    });
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

describe('versions in the registry', () => {
  const notFound = (message: string) => ({ code: 'MODEL_NOT_FOUND', statusCode: 404, message });

  it('loads every version the policy selects, each on its own workers, and finds them', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'm', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { latest: { num_versions: 2 } } }, versions: ['1', '2', '3'] },
    ]);
    await mkdir(join(repo, 'm', 'next'));
    const lines: LogLine[] = [];
    const registry = createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions(lines) });
    t.after(() => registry.stop());
    await registry.load();

    assert.deepEqual(
      registry.versions('m').map((v) => v.version),
      ['3', '2'],
    );
    assert.deepEqual(
      registry.list().map((v) => `${v.name}:${v.version}`),
      ['m:3', 'm:2'],
    );
    assert.deepEqual(registry.names(), ['m']);
    assert.equal(registry.get('m').version, '3', 'no version named: the highest served');
    assert.equal(registry.getDefault().version, '3');
    assert.equal(registry.get('m', '2').version, '2');
    assert.notEqual(registry.get('m', '2'), registry.get('m', '3'));
    assert.throws(() => registry.get('m', '1'), notFound('Model m does not serve version "1"; it serves versions 3, 2'));
    assert.throws(() => registry.get('m', 'x'.repeat(100)), notFound(`Model m does not serve version "${'x'.repeat(64)}"; it serves versions 3, 2`));
    assert.throws(() => registry.versions('n'), notFound('No model named "n" is loaded'));
    assert.deepEqual(
      lines.filter((l) => l.msg.startsWith('model m')).map((l) => [l.level, l.msg]),
      [
        ['warn', 'model m: skipped next: not a version folder: its name is not a positive integer (1, 2, …, no leading zeros)'],
        ['info', 'model m version 3 ready on cpu'],
        ['info', 'model m version 2 ready on cpu'],
      ],
    );
  });

  it('fails the load naming the file when a selected version is an empty folder, and stops the versions it had loaded', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'm', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { all: {} } }, versions: ['1', '3'] },
    ]);
    await mkdir(join(repo, 'm', '2'));
    const registry = createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions() });
    t.after(() => registry.stop());
    await assert.rejects(registry.load(), {
      name: 'ModelConfigError',
      message: `${join(repo, 'm', '2', 'model.onnx')}: is missing: every model folder needs a model.onnx, or version folders (1/, 2/, …) each holding one`,
    });
    assert.equal(registry.state, 'failed');
    assert.throws(() => registry.get('m'), { code: 'MODEL_NOT_FOUND' });
  });

  it('swaps what a model serves in one step; a version handed out before keeps answering until retired', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'm', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { all: {} } }, versions: ['1', '2'] },
    ]);
    const registry = createModelRegistry({ repository: repo, defaultModel: undefined, load: testLoadOptions() });
    t.after(() => registry.stop());
    await registry.load();
    const [two, one] = registry.versions('m') as [ServedModel, ServedModel];
    const held = registry.get('m');
    assert.equal(held, two);

    assert.deepEqual(registry.swap('m', [one]), [two], 'version 2 is out of service');
    assert.equal(registry.get('m'), one, 'the next lookup sees the new set');
    assert.throws(() => registry.get('m', '2'), notFound('Model m does not serve version "2"; it serves version 1'));
    const item = new Float32Array(held.input.itemSize);
    const [answer] = await held.batcher.enqueue([item], { deadline: performance.now() + 60_000 });
    assert.equal(answer!.output.row.length, 10, 'the version held before the swap still answers');

    await assert.rejects(registry.retire(one), /Expected a version taken out of service, got version `1` of `m`, which is served/);
    await registry.retire(two);
    assert.equal(two.accepting, false);
    assert.deepEqual(registry.swap('m', [one]), [], 'the same set again takes nothing out');
    assert.deepEqual(registry.swap('m', []), [one], 'no versions: the model is no longer served');
    assert.throws(() => registry.get('m'), notFound('No model named "m" is loaded'));
  });

  it('orders versions as numbers when they are, and refuses an inconsistent set', () => {
    assert.deepEqual(['2', '10', '1'].sort(compareVersionsDescending), ['10', '2', '1']);
    assert.deepEqual(['b', 'a', 'c'].sort(compareVersionsDescending), ['c', 'b', 'a']);
    const v = (name: string, version: string) => ({ name, version }) as ServedModel;
    const set = servedVersions('m', [v('m', '1'), v('m', '10'), v('m', '9')]);
    assert.deepEqual(
      set.versions.map((m) => m.version),
      ['10', '9', '1'],
    );
    assert.equal(set.highest.version, '10');
    assert.ok(Object.isFrozen(set) && Object.isFrozen(set.versions));
    assert.throws(() => servedVersions('m', []), /Expected at least one version of model `m`, got none/);
    assert.throws(() => servedVersions('m', [v('n', '1')]), /Expected versions of model `m`, got one of `n`/);
    assert.throws(() => servedVersions('m', [v('m', '1'), v('m', '1')]), /got version `1` twice/);
  });
});

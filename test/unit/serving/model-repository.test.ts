/**
 * The repository layout (model-repository.ts), its one owner: which entries are model folders
 * (folders and symlinks to folders, hidden ones never; every other entry skipped with its
 * reason), what reading a model folder gives and refuses, and the two layouts of a model
 * folder: flat (model.onnx at its top) and versioned (version folders, with config.json and
 * labels at the model's top, either overridable by a version folder), with the version policy.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelConfigError } from '../../../src/serving/model-config.js';
import { readModelFolder, readModelPlan, readModelVersion, scanRepository } from '../../../src/serving/model-repository.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../../helpers.js';
import { makeFifo, tempDir } from './support.js';

describe('scanRepository', () => {
  it('takes folders and symlinks to folders, and says why it skips everything else', async (t) => {
    const repo = await tempDir(t);
    const elsewhere = await tempDir(t);
    await mkdir(join(repo, 'plain'));
    await mkdir(join(elsewhere, 'target'));
    await symlink(join(elsewhere, 'target'), join(repo, 'linked'));
    await symlink(join(elsewhere, 'gone'), join(repo, 'dangling'));
    await writeFile(join(elsewhere, 'file'), '');
    await symlink(join(elsewhere, 'file'), join(repo, 'to-file'));
    await writeFile(join(repo, 'README.md'), '');
    await symlink(join(repo, 'loop'), join(repo, 'loop'));
    await mkdir(join(repo, '.building-x'));
    // Without model.onnx: a model folder still, whose load fails naming the missing file.
    await mkdir(join(repo, 'unfinished'));

    const scan = await scanRepository(repo);
    assert.deepEqual(scan.models, ['linked', 'plain', 'unfinished']);
    assert.deepEqual(
      scan.skipped.map(({ name, reason, hidden }) => [name, reason.replace(/: ELOOP.*/, ': ELOOP'), hidden]),
      [
        ['.building-x', 'hidden: dot-prefixed entries are work in progress, never models', true],
        ['README.md', 'not a directory', false],
        ['dangling', 'dangling symlink: its target does not exist', false],
        ['loop', 'symlink that cannot be followed: ELOOP', false],
        ['to-file', 'symlink to something other than a directory', false],
      ],
    );
  });
});

describe('readModelFolder', () => {
  it("gives the folder's config, labels and model.onnx's sha256, and the paths messages name", async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    await writeFile(join(repo, 'm', 'labels.txt'), ' cat \r\ndog\n\n\n');
    const folder = await readModelFolder(join(repo, 'm'));
    assert.deepEqual(folder.config, RESNET20_CONFIG);
    assert.deepEqual(folder.labels, ['cat', 'dog'], 'trimmed, trailing blank lines dropped');
    assert.equal(
      folder.sha256,
      createHash('sha256')
        .update(await readFile(join(RESNET20_DIR, 'model.onnx')))
        .digest('hex'),
    );
    assert.deepEqual(
      [folder.modelPath, folder.configPath, folder.labelsPath],
      ['model.onnx', 'config.json', 'labels.txt'].map((f) => join(repo, 'm', f)),
    );
  });

  it('takes a folder with model.onnx alone: an empty config, no labels', async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR }]);
    await rm(join(repo, 'm', 'labels.txt'));
    const folder = await readModelFolder(join(repo, 'm'));
    assert.deepEqual(folder.config, {});
    assert.equal(folder.labels, undefined);
  });

  it('reads the labels file config.json names, and refuses one outside the folder or missing', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'named', from: RESNET20_DIR, config: { labels: 'classes.txt' } },
      { name: 'outside', from: RESNET20_DIR, config: { labels: '../named/classes.txt' } },
      { name: 'missing', from: RESNET20_DIR, config: { labels: 'none.txt' } },
    ]);
    await writeFile(join(repo, 'named', 'classes.txt'), 'a\nb\n');
    const named = await readModelFolder(join(repo, 'named'));
    assert.deepEqual(named.labels, ['a', 'b']);
    assert.equal(named.labelsPath, join(repo, 'named', 'classes.txt'));
    const config = (name: string) => join(repo, name, 'config.json');
    await assert.rejects(readModelFolder(join(repo, 'outside')), {
      message: `${config('outside')}: field \`labels\` must name a file inside the model folder, got "../named/classes.txt"`,
    });
    await assert.rejects(
      readModelFolder(join(repo, 'missing')),
      (err: Error) =>
        err instanceof ModelConfigError &&
        err.message.startsWith(`${config('missing')}: field \`labels\` names ${join(repo, 'missing', 'none.txt')}, which cannot be read`),
    );
  });

  it('names config.json when it is not JSON or has a bad field', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'json', from: RESNET20_DIR },
      { name: 'field', from: RESNET20_DIR, config: { preprocess: { crop: 0 } } },
    ]);
    await writeFile(join(repo, 'json', 'config.json'), '{');
    await assert.rejects(
      readModelFolder(join(repo, 'json')),
      (err: Error) => err instanceof ModelConfigError && err.message.startsWith(`${join(repo, 'json', 'config.json')}: is not valid JSON`),
    );
    await assert.rejects(readModelFolder(join(repo, 'field')), {
      message: `${join(repo, 'field', 'config.json')}: field \`preprocess.crop\` must be an integer from 1 to 8192, got 0`,
    });
  });
});

describe('readModelFolder reads only regular files, within their caps', () => {
  const refused = (file: string, problem: RegExp) => (err: Error) =>
    err instanceof ModelConfigError && err.message.startsWith(`${file}: `) && problem.test(err.message);
  const notRegular = (kind: string) => new RegExp(`: is ${kind}, not a regular file: a model folder's files must be regular files`);

  it('refuses a FIFO labels.txt at once instead of waiting for a writer', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const labels = join(repo, 'm', 'labels.txt');
    await rm(labels);
    if (!(await makeFifo(t, labels))) return;
    await assert.rejects(readModelFolder(join(repo, 'm')), refused(labels, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a FIFO config.json or model.onnx', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [
      { name: 'config', from: RESNET20_DIR },
      { name: 'model', from: RESNET20_DIR },
    ]);
    const config = join(repo, 'config', 'config.json');
    const model = join(repo, 'model', 'model.onnx');
    await rm(model);
    if (!(await makeFifo(t, config)) || !(await makeFifo(t, model))) return;
    await assert.rejects(readModelFolder(join(repo, 'config')), refused(config, notRegular('a FIFO \\(named pipe\\)')));
    await assert.rejects(readModelFolder(join(repo, 'model')), refused(model, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a directory named labels.txt or model.onnx', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'labels', from: RESNET20_DIR, config: RESNET20_CONFIG },
      { name: 'model', from: RESNET20_DIR },
    ]);
    const labels = join(repo, 'labels', 'labels.txt');
    const model = join(repo, 'model', 'model.onnx');
    await rm(labels);
    await mkdir(labels);
    await rm(model);
    await mkdir(model);
    await assert.rejects(readModelFolder(join(repo, 'labels')), refused(labels, notRegular('a directory')));
    await assert.rejects(readModelFolder(join(repo, 'model')), refused(model, notRegular('a directory')));
  });

  it('refuses a labels file over 16 MiB and a config.json over 1 MiB', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'labels', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, labels: 'classes.txt' } },
      { name: 'config', from: RESNET20_DIR },
    ]);
    const labels = join(repo, 'labels', 'classes.txt');
    await writeFile(labels, Buffer.alloc(16 * 1024 * 1024 + 1, 0x0a));
    await assert.rejects(readModelFolder(join(repo, 'labels')), refused(labels, /: is 16777217 bytes, over the 16 MiB this file may hold$/));
    const config = join(repo, 'config', 'config.json');
    await writeFile(config, `{"description": "${'x'.repeat(1024 * 1024)}"}`);
    await assert.rejects(readModelFolder(join(repo, 'config')), refused(config, /: is 1048595 bytes, over the 1 MiB this file may hold$/));
  });

  it('still says a missing model.onnx is missing', async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    await rm(join(repo, 'm', 'model.onnx'));
    await assert.rejects(
      readModelFolder(join(repo, 'm')),
      /model\.onnx: is missing: every model folder needs a model\.onnx, or version folders \(1\/, 2\/, …\) each holding one$/,
    );
  });
});

describe('the versioned layout: readModelPlan and readModelVersion', () => {
  const sha256 = async () =>
    createHash('sha256')
      .update(await readFile(join(RESNET20_DIR, 'model.onnx')))
      .digest('hex');
  const refused = (message: string) => (err: Error) => err instanceof ModelConfigError && err.message === message;

  it('reads a flat folder as one version, "1" or its config `version`', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'plain', from: RESNET20_DIR },
      { name: 'named', from: RESNET20_DIR, config: { version: '2024.1' } },
    ]);
    const plain = await readModelPlan(join(repo, 'plain'));
    assert.deepEqual([plain.layout, plain.versions, plain.available], ['flat', ['1'], ['1']]);
    await mkdir(join(repo, 'plain', 'notes'));
    assert.deepEqual((await readModelPlan(join(repo, 'plain'))).skipped, [], 'a folder beside a flat model.onnx is no candidate version: not reported');
    const named = await readModelPlan(join(repo, 'named'));
    assert.deepEqual(named.versions, ['2024.1']);
    const folder = await readModelVersion(named, '2024.1');
    assert.equal(folder.modelPath, join(repo, 'named', 'model.onnx'));
  });

  it("serves the highest version by default (latest 1), with the model's config and labels", async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG, versions: ['1', '2', '10'] }]);
    const plan = await readModelPlan(join(repo, 'm'));
    assert.deepEqual([plan.layout, plan.versions, plan.available], ['versioned', ['10'], ['1', '2', '10']]);
    const folder = await readModelVersion(plan, '10');
    assert.equal(folder.modelPath, join(repo, 'm', '10', 'model.onnx'));
    assert.equal(folder.configPath, join(repo, 'm', 'config.json'));
    assert.deepEqual(folder.config, RESNET20_CONFIG);
    assert.equal(folder.labelsPath, join(repo, 'm', 'labels.txt'));
    assert.equal(folder.labels?.length, 10);
    assert.equal(folder.sha256, await sha256());
  });

  it('applies each policy: latest N, specific, all', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'latest', from: RESNET20_DIR, config: { version_policy: { latest: { num_versions: 2 } } }, versions: ['1', '2', '3'] },
      { name: 'specific', from: RESNET20_DIR, config: { version_policy: { specific: { versions: [1, 3] } } }, versions: ['1', '2', '3'] },
      { name: 'all', from: RESNET20_DIR, config: { version_policy: { all: {} } }, versions: ['1', '2', '3'] },
    ]);
    const versions = async (name: string) => (await readModelPlan(join(repo, name))).versions;
    assert.deepEqual(await versions('latest'), ['3', '2']);
    assert.deepEqual(await versions('specific'), ['3', '1']);
    assert.deepEqual(await versions('all'), ['3', '2', '1']);
  });

  it('fails naming a specific version that does not exist', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'm', from: RESNET20_DIR, config: { version_policy: { specific: { versions: [2, 5] } } }, versions: ['1', '2'] },
    ]);
    await assert.rejects(
      readModelPlan(join(repo, 'm')),
      refused(
        `${join(repo, 'm', 'config.json')}: field \`version_policy.specific.versions\` names version 5, but ${join(repo, 'm')} has no such version folder (it has: 1, 2)`,
      ),
    );
  });

  it('lets a version folder override config.json (whole) and the labels file', async (t) => {
    const own = { ...RESNET20_CONFIG, labels: 'classes.txt', description: 'retrained' };
    const repo = await tempRepository(t, [
      { name: 'm', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { all: {} } }, versions: ['1', { version: '2', config: own }, '3'] },
    ]);
    const m = join(repo, 'm');
    await writeFile(join(m, '1', 'labels.txt'), Array.from({ length: 10 }, (_, i) => `v1-${i}`).join('\n'));
    await writeFile(join(m, '2', 'classes.txt'), Array.from({ length: 10 }, (_, i) => `v2-${i}`).join('\n'));
    const plan = await readModelPlan(m);
    const one = await readModelVersion(plan, '1');
    assert.equal(one.configPath, join(m, 'config.json'), "no config.json of its own: the model's");
    assert.equal(one.labelsPath, join(m, '1', 'labels.txt'));
    assert.equal(one.labels?.[0], 'v1-0');
    const two = await readModelVersion(plan, '2');
    assert.equal(two.configPath, join(m, '2', 'config.json'));
    assert.deepEqual(two.config, own, "its own config.json replaces the model's whole (no version_policy, no merge)");
    assert.equal(two.labelsPath, join(m, '2', 'classes.txt'));
    assert.equal(two.labels?.[0], 'v2-0');
    const three = await readModelVersion(plan, '3');
    assert.equal(three.labelsPath, join(m, 'labels.txt'), "no labels of its own: the model's");
    assert.equal(three.labels?.[0], 'airplane');
  });

  it('ignores folders whose name is not a version, saying why, and files beside the versions', async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: { version_policy: { all: {} } }, versions: ['1', '2'] }]);
    const m = join(repo, 'm');
    for (const name of ['v3', '01', '0', 'latest', '.staging-3']) await mkdir(join(m, name));
    await writeFile(join(m, 'README.md'), 'notes');
    const plan = await readModelPlan(m);
    assert.deepEqual(plan.versions, ['2', '1']);
    const reason = 'not a version folder: its name is not a positive integer (1, 2, …, no leading zeros)';
    assert.deepEqual(
      plan.skipped.map((s) => [s.name, s.reason, s.hidden]),
      [
        ['.staging-3', 'hidden: dot-prefixed entries are work in progress, never versions', true],
        ['0', reason, false],
        ['01', reason, false],
        ['latest', reason, false],
        ['v3', reason, false],
      ],
    );
  });

  it('fails naming model.onnx when the version the policy selects is an empty folder', async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, versions: ['1'] }]);
    await mkdir(join(repo, 'm', '2'));
    const plan = await readModelPlan(join(repo, 'm'));
    assert.deepEqual(plan.versions, ['2'], 'an empty version folder is a version, a broken one');
    await assert.rejects(
      readModelVersion(plan, '2'),
      refused(`${join(repo, 'm', '2', 'model.onnx')}: is missing: every model folder needs a model.onnx, or version folders (1/, 2/, …) each holding one`),
    );
  });

  it('refuses both layouts at once, and fields where they do not apply', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'both', from: RESNET20_DIR, versions: ['1'] },
      { name: 'flat-policy', from: RESNET20_DIR, config: { version_policy: { all: {} } } },
      { name: 'top-version', from: RESNET20_DIR, config: { version: '2' }, versions: ['1'] },
      { name: 'own-policy', from: RESNET20_DIR, versions: [{ version: '1', config: { version_policy: { all: {} } } }] },
      {
        name: 'own-version',
        from: RESNET20_DIR,
        versions: [
          { version: '1', config: { version: '2' } },
          { version: '2', config: { version: '2' } },
        ],
        config: { version_policy: { all: {} } },
      },
    ]);
    await writeFile(join(repo, 'both', 'model.onnx'), '');
    await assert.rejects(
      readModelPlan(join(repo, 'both')),
      refused(`${join(repo, 'both')}: holds both model.onnx and version folders (1): use one layout, e.g. move model.onnx into a version folder`),
    );
    await assert.rejects(
      readModelPlan(join(repo, 'flat-policy')),
      refused(
        `${join(repo, 'flat-policy', 'config.json')}: field \`version_policy\` chooses among version folders (${join(repo, 'flat-policy')}/<version>/model.onnx), but this model has model.onnx at its top (one version)`,
      ),
    );
    await assert.rejects(
      readModelPlan(join(repo, 'top-version')),
      refused(
        `${join(repo, 'top-version', 'config.json')}: field \`version\` does not apply to a model with version folders: each version is its folder's name; remove it`,
      ),
    );
    const ownPolicy = await readModelPlan(join(repo, 'own-policy'));
    await assert.rejects(
      readModelVersion(ownPolicy, '1'),
      refused(
        `${join(repo, 'own-policy', '1', 'config.json')}: field \`version_policy\` applies to the whole model: set it in ${join(repo, 'own-policy', 'config.json')}`,
      ),
    );
    const ownVersion = await readModelPlan(join(repo, 'own-version'));
    await assert.rejects(
      readModelVersion(ownVersion, '1'),
      refused(
        `${join(repo, 'own-version', '1', 'config.json')}: field \`version\` is "2", but this is version folder 1; remove it (the folder's name is the version)`,
      ),
    );
    assert.equal((await readModelVersion(ownVersion, '2')).config.version, '2', 'repeating the folder name is allowed (a flat folder moved in as it is)');
  });
});

/**
 * The repository layout (model-repository.ts), its one owner: which entries are model folders
 * (folders and symlinks to folders, hidden ones never; every other entry skipped with its
 * reason), and what reading a model folder gives and refuses.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelConfigError } from '../../../src/serving/model-config.js';
import { readModelFolder, scanRepository } from '../../../src/serving/model-repository.js';
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
    assert.equal(folder.sha256, createHash('sha256').update(await readFile(join(RESNET20_DIR, 'model.onnx'))).digest('hex'));
    assert.deepEqual([folder.modelPath, folder.configPath, folder.labelsPath], ['model.onnx', 'config.json', 'labels.txt'].map((f) => join(repo, 'm', f)));
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
    await assert.rejects(readModelFolder(join(repo, 'outside')), { message: `${config('outside')}: field \`labels\` must name a file inside the model folder, got "../named/classes.txt"` });
    await assert.rejects(readModelFolder(join(repo, 'missing')), (err: Error) => err instanceof ModelConfigError && err.message.startsWith(`${config('missing')}: field \`labels\` names ${join(repo, 'missing', 'none.txt')}, which cannot be read`));
  });

  it('names config.json when it is not JSON or has a bad field', async (t) => {
    const repo = await tempRepository(t, [{ name: 'json', from: RESNET20_DIR }, { name: 'field', from: RESNET20_DIR, config: { preprocess: { crop: 0 } } }]);
    await writeFile(join(repo, 'json', 'config.json'), '{');
    await assert.rejects(readModelFolder(join(repo, 'json')), (err: Error) => err instanceof ModelConfigError && err.message.startsWith(`${join(repo, 'json', 'config.json')}: is not valid JSON`));
    await assert.rejects(readModelFolder(join(repo, 'field')), { message: `${join(repo, 'field', 'config.json')}: field \`preprocess.crop\` must be an integer from 1 to 8192, got 0` });
  });
});

describe('readModelFolder reads only regular files, within their caps', () => {
  const refused = (file: string, problem: RegExp) => (err: Error) => err instanceof ModelConfigError && err.message.startsWith(`${file}: `) && problem.test(err.message);
  const notRegular = (kind: string) => new RegExp(`: is ${kind}, not a regular file: a model folder's files must be regular files`);

  it('refuses a FIFO labels.txt at once instead of waiting for a writer', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const labels = join(repo, 'm', 'labels.txt');
    await rm(labels);
    if (!(await makeFifo(t, labels))) return;
    await assert.rejects(readModelFolder(join(repo, 'm')), refused(labels, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a FIFO config.json or model.onnx', { timeout: 10_000 }, async (t) => {
    const repo = await tempRepository(t, [{ name: 'config', from: RESNET20_DIR }, { name: 'model', from: RESNET20_DIR }]);
    const config = join(repo, 'config', 'config.json');
    const model = join(repo, 'model', 'model.onnx');
    await rm(model);
    if (!(await makeFifo(t, config)) || !(await makeFifo(t, model))) return;
    await assert.rejects(readModelFolder(join(repo, 'config')), refused(config, notRegular('a FIFO \\(named pipe\\)')));
    await assert.rejects(readModelFolder(join(repo, 'model')), refused(model, notRegular('a FIFO \\(named pipe\\)')));
  });

  it('refuses a directory named labels.txt or model.onnx', async (t) => {
    const repo = await tempRepository(t, [{ name: 'labels', from: RESNET20_DIR, config: RESNET20_CONFIG }, { name: 'model', from: RESNET20_DIR }]);
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
    const repo = await tempRepository(t, [{ name: 'labels', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, labels: 'classes.txt' } }, { name: 'config', from: RESNET20_DIR }]);
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
    await assert.rejects(readModelFolder(join(repo, 'm')), /model\.onnx: is missing: every model folder needs a model\.onnx$/);
  });
});

/**
 * readRegularFile / openRegularFile: regular files (and symlinks to them) are read, within
 * the cap; FIFOs, sockets, devices and directories are refused with the file named, and a
 * FIFO is refused at once instead of waiting for a writer.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelConfigError } from '../../../src/serving/model-config.js';
import { openRegularFile, readRegularFile } from '../../../src/serving/repository-files.js';
import { makeFifo, tempDir } from './support.js';

const refusal = (file: string, kind: string) => (err: Error) =>
  err instanceof ModelConfigError &&
  err.message === `${file}: is ${kind}, not a regular file: a model folder's files must be regular files (or symlinks to them)`;

describe('readRegularFile', () => {
  it('reads a regular file, and a symlink to one', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'labels.txt'), 'cat\ndog\n');
    await symlink(join(dir, 'labels.txt'), join(dir, 'linked.txt'));
    assert.equal((await readRegularFile(join(dir, 'labels.txt'), 100)).toString(), 'cat\ndog\n');
    assert.equal((await readRegularFile(join(dir, 'linked.txt'), 100)).toString(), 'cat\ndog\n');
    await writeFile(join(dir, 'empty.txt'), '');
    assert.equal((await readRegularFile(join(dir, 'empty.txt'), 100)).length, 0);
  });

  it('refuses a FIFO at once, without waiting for a writer', { timeout: 10_000 }, async (t) => {
    const dir = await tempDir(t);
    const fifo = join(dir, 'labels.txt');
    if (!(await makeFifo(t, fifo))) return;
    await assert.rejects(readRegularFile(fifo, 1024), refusal(fifo, 'a FIFO (named pipe)'));
    await assert.rejects(openRegularFile(fifo), refusal(fifo, 'a FIFO (named pipe)'));
    await symlink(fifo, join(dir, 'linked.txt'));
    await assert.rejects(readRegularFile(join(dir, 'linked.txt'), 1024), refusal(join(dir, 'linked.txt'), 'a FIFO (named pipe)'));
  });

  it('refuses a directory, a socket and a device', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'labels.txt'));
    await assert.rejects(readRegularFile(join(dir, 'labels.txt'), 1024), refusal(join(dir, 'labels.txt'), 'a directory'));

    const socketPath = join(dir, 'config.json');
    const server = createServer();
    await new Promise<void>((done) => server.listen(socketPath, done));
    t.after(() => new Promise<void>((done) => server.close(() => done())));
    await assert.rejects(readRegularFile(socketPath, 1024), refusal(socketPath, 'a socket'));

    if (!existsSync('/dev/null')) return t.skip('no /dev/null on this platform');
    await assert.rejects(readRegularFile('/dev/null', 1024), refusal('/dev/null', 'a character device'));
  });

  it('refuses a file over the cap, naming its size and the cap', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'labels.txt');
    await writeFile(file, Buffer.alloc(1024 * 1024 + 1, 0x61));
    await assert.rejects(
      readRegularFile(file, 1024 * 1024),
      (err: Error) => err instanceof ModelConfigError && err.message === `${file}: is 1048577 bytes, over the 1 MiB this file may hold`,
    );
    assert.equal((await readRegularFile(file, 1024 * 1024 + 1)).length, 1024 * 1024 + 1, 'exactly at the cap is read');
    await assert.rejects(readRegularFile(file, 1000), /is 1048577 bytes, over the 1000 bytes this file may hold/);
  });

  it('passes a missing file or a dangling symlink on as ENOENT', async (t) => {
    const dir = await tempDir(t);
    await symlink(join(dir, 'gone.txt'), join(dir, 'dangling.txt'));
    for (const name of ['missing.txt', 'dangling.txt']) {
      await assert.rejects(readRegularFile(join(dir, name), 1024), (err: NodeJS.ErrnoException) => err.code === 'ENOENT', name);
    }
  });
});

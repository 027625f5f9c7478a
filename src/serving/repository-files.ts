/**
 * The one rule for reading a file of the model repository: only a regular file (a symlink to
 * one is followed, as Kubernetes volumes present files as symlinks), within a size cap.
 * Anything else (FIFO, socket, device, directory) is refused with the file named, and is
 * never read: opening a FIFO for reading waits for a writer, which would leave loading, and
 * one of libuv's four threads, stuck for good.
 */
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ModelConfigError } from './model-config.js';

/**
 * Flags for opening a repository file. O_NONBLOCK makes `open` return at once even if a FIFO
 * replaced the file after it was checked (a regular file ignores the flag); the handle's type
 * is checked again before anything is read.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return 'of an unknown kind';
}

function notRegular(path: string, info: Stats): ModelConfigError {
  return new ModelConfigError(path, undefined, `is ${kindOf(info)}, not a regular file: a model folder's files must be regular files (or symlinks to them)`);
}

function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/**
 * Opens `path` for reading if it is a regular file. The path is checked with `stat` first, so
 * nothing else is ever opened (opening a device can have effects of its own), and the open
 * handle is checked again, so a file swapped in between is refused too.
 * Errors: the system error of `stat` or `open` as it is (`code` `ENOENT` for a missing file or
 * a dangling symlink); `ModelConfigError` naming the file for anything but a regular file.
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const before = await stat(path);
  if (!before.isFile()) throw notRegular(path, before);
  const handle = await open(path, OPEN_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw notRegular(path, info);
    if (info.ino !== before.ino || info.dev !== before.dev) {
      throw new ModelConfigError(path, undefined, 'was replaced while being opened; try again once the model folder is written');
    }
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * The content of the regular file at `path`, refused (`ModelConfigError` naming the file and
 * the cap) if it holds more than `maxBytes`. The cap holds while reading too, for a file that
 * grows or reports no size. Other errors as `openRegularFile`.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const handle = await openRegularFile(path);
  try {
    const tooLarge = (size: string) => new ModelConfigError(path, undefined, `is ${size}, over the ${sizeText(maxBytes)} this file may hold`);
    const { size } = await handle.stat();
    if (size > maxBytes) throw tooLarge(`${size} bytes`);
    // One byte over the expected size, so reaching the end needs no second buffer.
    let buffer = Buffer.alloc(size + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw tooLarge(`more than ${maxBytes} bytes`);
        const larger = Buffer.alloc(Math.min(Math.max(2 * buffer.length, 64 * 1024), maxBytes + 1));
        buffer.copy(larger);
        buffer = larger;
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

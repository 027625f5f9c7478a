/**
 * Small helpers for the serving tests: model load options with a recording logger, temporary
 * folders, FIFOs that can never leave the test process hanging, and promises the test settles.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { link, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { ModelLoadOptions } from '../../../src/serving/model.js';
import { nullObserver } from '../../../src/serving/observer.js';

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string;
}

/** CPU load options for the shared ResNet-20; every log line lands in `lines`. */
export function testLoadOptions(lines: LogLine[] = []): ModelLoadOptions {
  const record = (level: LogLine['level']) => (obj: object, msg: string) => void lines.push({ level, obj, msg });
  return {
    executionProvider: 'cpu',
    cuda: { deviceId: 0, memLimitBytes: 0, cudnnConvAlgoSearch: 'HEURISTIC' },
    intraOpThreads: 1,
    workers: 1,
    batchMaxSize: 1,
    batchMaxDelayMs: 0,
    queueMaxSize: 16,
    maxImagePixels: 1_000_000,
    observer: nullObserver,
    log: { info: record('info'), warn: record('warn'), error: record('error') },
  };
}

/** A fresh temporary folder, removed after the test. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'resnet-serve-serving-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Makes a FIFO at `path`; false (and the test is marked skipped) where mkfifo is missing.
 * Should a reader ever block on it, the cleanup opens it for writing, which lets that reader
 * go: a regression fails the test (through its `timeout`) instead of hanging the process. The
 * cleanup opens a hard link of its own, since `path`'s folder may be removed first.
 */
export async function makeFifo(t: TestContext, path: string): Promise<boolean> {
  try {
    execFileSync('mkfifo', [path]);
  } catch (err) {
    t.skip(`needs mkfifo, which failed: ${(err as Error).message}`);
    return false;
  }
  const own = await mkdtemp(join(tmpdir(), 'resnet-serve-fifo-'));
  await link(path, join(own, 'fifo'));
  t.after(async () => {
    try {
      closeSync(openSync(join(own, 'fifo'), constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader is waiting, the expected case.
    }
    await rm(own, { recursive: true, force: true });
  });
  return true;
}

/** A promise the test settles (Node 20 has no `Promise.withResolvers`). */
export interface Gate<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

export function gate<T>(): Gate<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * model:fetch against a local HTTP server on 127.0.0.1 serving a small fixture: a good file,
 * a wrong checksum, a connection dropped half-way (resumed with a Range request), a missing
 * file, a server that cannot be reached, and one that ignores Range. A fetch that fails leaves
 * no model folder: only the hidden part a next run resumes from, or nothing at all.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import type { CatalogEntry } from '../../../src/model-tools/catalog.js';
import { CATALOG } from '../../../src/model-tools/catalog.js';
import { DownloadError } from '../../../src/model-tools/download.js';
import { FetchError, fetchModel, fetchStagingDir, resolveModelUrl } from '../../../src/model-tools/fetch.js';
import { IMAGENET_PREPROCESS } from '../../../src/model-tools/model-config.js';
import { scanRepository } from '../../../src/serving/model-repository.js';
import { FETCH_FIXTURES, tempDir } from './support.js';

const FIXTURE = join(FETCH_FIXTURES, 'tiny-classifier.onnx');
// Size and digest written down, not computed here, so the test checks the verification itself.
const FIXTURE_BYTES = 16_465;
const FIXTURE_SHA256 = 'b035e776863941169221d505aa6d62c4a6a545f77490b065c735397b112c95f6';

const ENTRY: CatalogEntry = {
  name: 'tiny',
  aliases: ['tiny-classifier'],
  file: 'tiny-classifier.onnx',
  baseUrl: 'http://catalog.invalid/models/',
  sizeBytes: FIXTURE_BYTES,
  sha256: FIXTURE_SHA256,
  checksumSource: 'test/fixtures/model-fetch/README.md',
  description: 'test fixture',
  page: 'http://catalog.invalid/',
  license: 'Apache-2.0',
  input: { name: 'data', shape: ['N', 3, 224, 224] },
  outputName: 'scores',
  preprocess: IMAGENET_PREPROCESS,
  labels: 'imagenet-1k',
};

type Behaviour = 'good' | 'drop' | 'ignore-range' | 'missing' | 'flaky' | 'gone';

interface Served {
  readonly baseUrl: (behaviour: Behaviour) => string;
  /** Every request, as `<behaviour> <range header or "-">`. */
  readonly requests: string[];
  /** Cuts the connection of the pending `drop` response (after the client has read its half). */
  readonly cut: () => void;
}

function sendWithRange(req: IncomingMessage, res: ServerResponse, bytes: Buffer): void {
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (!match) {
    res.writeHead(200, { 'content-length': bytes.length, 'accept-ranges': 'bytes' }).end(bytes);
    return;
  }
  const start = Number(match[1]);
  if (start >= bytes.length) {
    res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
    return;
  }
  res
    .writeHead(206, { 'content-length': bytes.length - start, 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` })
    .end(bytes.subarray(start));
}

async function serveFixture(t: TestContext): Promise<Served> {
  const bytes = await readFile(FIXTURE);
  const requests: string[] = [];
  const counts = new Map<string, number>();
  let dropping: ServerResponse | undefined;
  const server = createServer((req, res) => {
    const [, behaviour = '', file = ''] = (req.url ?? '').split('/');
    requests.push(`${behaviour} ${req.headers.range ?? '-'}`);
    const count = (counts.get(behaviour) ?? 0) + 1;
    counts.set(behaviour, count);
    if (file !== ENTRY.file || behaviour === 'missing') {
      res.writeHead(404).end('not found');
    } else if ((behaviour === 'drop' || behaviour === 'gone') && count === 1) {
      // Promise the whole file and send half; the test cuts the connection once the client has
      // read that half (cutting earlier races the client: a stream that errors drops what it
      // had buffered but not yet handed on).
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      dropping = res;
    } else if (behaviour === 'gone') {
      // After the dropped half, every later request has its connection closed unanswered.
      req.socket.destroy();
    } else if (behaviour === 'flaky' && count === 1) {
      res.writeHead(503).end('try later');
    } else if (behaviour === 'ignore-range') {
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    } else {
      sendWithRange(req, res, bytes);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: (behaviour) => `http://127.0.0.1:${port}/${behaviour}/`,
    requests,
    cut: () => {
      dropping?.socket?.destroy();
      dropping = undefined;
    },
  };
}

function options(repositoryDir: string, baseUrl: string) {
  return { name: 'tiny', repositoryDir, baseUrl, catalog: [ENTRY], retryDelayMs: 0 } as const;
}

async function assertFetched(repositoryDir: string): Promise<void> {
  const dir = join(repositoryDir, 'tiny');
  assert.deepEqual((await readdir(repositoryDir)).sort(), ['tiny'], 'only the model folder, no staging left');
  assert.ok((await readFile(join(dir, 'model.onnx'))).equals(await readFile(FIXTURE)));
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.trained, true);
  assert.equal(config.output, 'logits');
  assert.deepEqual(config.preprocess, IMAGENET_PREPROCESS);
  assert.equal((config.source as { sha256?: string }).sha256, FIXTURE_SHA256);
  const labels = (await readFile(join(dir, 'labels.txt'), 'utf8')).trimEnd().split('\n');
  assert.equal(labels.length, 1000);
}

function isDownloadError(code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof DownloadError, `expected a DownloadError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

describe('fetchModel', () => {
  test('a good file lands in <repository>/<name> with config.json and labels, progress reported', async (t) => {
    const served = await serveFixture(t);
    const repository = join(await tempDir(t), 'models');
    const progress: number[] = [];
    const result = await fetchModel({ ...options(repository, served.baseUrl('good')), onProgress: (p) => progress.push(p.receivedBytes) });
    assert.deepEqual(
      { bytes: result.bytes, sha256: result.sha256, resumed: result.resumed, modelDir: result.modelDir },
      { bytes: FIXTURE_BYTES, sha256: FIXTURE_SHA256, resumed: false, modelDir: join(repository, 'tiny') },
    );
    assert.equal(progress.at(-1), FIXTURE_BYTES);
    assert.deepEqual(served.requests, ['good -']);
    await assertFetched(repository);
  });

  test('a wrong checksum fails clearly and leaves nothing behind', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await assert.rejects(
      fetchModel({ ...options(repository, served.baseUrl('good')), catalog: [{ ...ENTRY, sha256: 'ab'.repeat(32) }] }),
      isDownloadError('CHECKSUM_MISMATCH', new RegExp(`has sha256 ${FIXTURE_SHA256}, expected ${'ab'.repeat(32)}`)),
    );
    assert.deepEqual(await readdir(repository), []);
  });

  test('a size other than the catalogued one is refused before downloading', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await assert.rejects(
      fetchModel({ ...options(repository, served.baseUrl('good')), catalog: [{ ...ENTRY, sizeBytes: FIXTURE_BYTES + 1 }] }),
      isDownloadError('SIZE_MISMATCH', /is 16465 bytes, expected 16466/),
    );
    assert.deepEqual(await readdir(repository), []);
  });

  test('a connection dropped half-way is resumed with a Range request', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    const retries: string[] = [];
    const result = await fetchModel({
      ...options(repository, served.baseUrl('drop')),
      onRetry: ({ error }) => retries.push(error.message),
      onProgress: ({ receivedBytes }) => {
        if (receivedBytes >= Math.floor(FIXTURE_BYTES / 2)) served.cut();
      },
    });
    assert.equal(served.requests.length, 2);
    assert.equal(served.requests[0], 'drop -');
    const range = /^drop bytes=(\d+)-$/.exec(served.requests[1] ?? '');
    assert.ok(range, `second request resumes: ${served.requests[1]}`);
    assert.ok(Number(range[1]) > 0 && Number(range[1]) <= FIXTURE_BYTES / 2, `resumed at byte ${range[1]}`);
    assert.equal(retries.length, 1);
    assert.match(retries[0] ?? '', /connection to 127\.0\.0\.1:\d+ (broke|closed) after/);
    assert.equal(result.sha256, FIXTURE_SHA256);
    await assertFetched(repository);
  });

  test('a download interrupted in an earlier run resumes from its .part file', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await mkdir(join(repository, '.fetch-tiny'));
    await writeFile(join(repository, '.fetch-tiny', 'model.onnx.part'), (await readFile(FIXTURE)).subarray(0, 5000));
    const result = await fetchModel(options(repository, served.baseUrl('good')));
    assert.deepEqual(served.requests, ['good bytes=5000-']);
    assert.equal(result.resumed, true);
    await assertFetched(repository);
  });

  test('a server that ignores Range sends the whole file again, which replaces the part', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await mkdir(join(repository, '.fetch-tiny'));
    await writeFile(join(repository, '.fetch-tiny', 'model.onnx.part'), (await readFile(FIXTURE)).subarray(0, 5000));
    await fetchModel(options(repository, served.baseUrl('ignore-range')));
    assert.deepEqual(served.requests, ['ignore-range bytes=5000-']);
    await assertFetched(repository);
  });

  test('a 503 is retried', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await fetchModel(options(repository, served.baseUrl('flaky')));
    assert.deepEqual(served.requests, ['flaky -', 'flaky -']);
    await assertFetched(repository);
  });

  test('a 404 fails at once with the URL, and leaves nothing behind', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await assert.rejects(
      fetchModel(options(repository, served.baseUrl('missing'))),
      isDownloadError('NOT_FOUND', /\/missing\/tiny-classifier\.onnx was not found \(HTTP 404\)/),
    );
    assert.deepEqual(served.requests, ['missing -']);
    assert.deepEqual(await readdir(repository), []);
  });

  test('an unreachable server fails with a message about being offline', async (t) => {
    // A port that was just closed refuses connections.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const repository = await tempDir(t);
    let attempts = 0;
    await assert.rejects(
      fetchModel({ ...options(repository, `http://127.0.0.1:${port}/models/`), onRetry: () => attempts++ }),
      isDownloadError('UNREACHABLE', /cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\).*offline/),
    );
    assert.equal(attempts, 2, 'an unreachable host is retried twice, not five times');
    assert.deepEqual(await readdir(repository), []);
  });

  test('a fetch that fails part-way leaves no model folder, only the hidden part; the next run resumes it', async (t) => {
    const served = await serveFixture(t);
    const repository = join(await tempDir(t), 'models');
    await assert.rejects(
      fetchModel({
        ...options(repository, served.baseUrl('gone')),
        retries: 0,
        onProgress: ({ receivedBytes }) => {
          if (receivedBytes >= Math.floor(FIXTURE_BYTES / 2)) served.cut();
        },
      }),
      isDownloadError('INTERRUPTED', /run again to resume/),
    );
    const staging = fetchStagingDir(repository, 'tiny');
    assert.deepEqual(await readdir(repository), ['.fetch-tiny'], 'no model folder');
    assert.deepEqual(await readdir(staging), ['model.onnx.part']);
    const kept = (await stat(join(staging, 'model.onnx.part'))).size;
    assert.ok(kept > 0 && kept < FIXTURE_BYTES, `kept ${kept} bytes`);
    // What the server would find there: no model, the staging folder ignored as hidden.
    const scan = await scanRepository(repository);
    assert.deepEqual(scan.models, []);
    assert.deepEqual(
      scan.skipped.map((s) => [s.name, s.hidden]),
      [['.fetch-tiny', true]],
    );

    const result = await fetchModel(options(repository, served.baseUrl('good')));
    assert.equal(result.resumed, true);
    assert.deepEqual(served.requests.slice(-1), [`good bytes=${kept}-`]);
    await assertFetched(repository);
  });

  test('a fetch that fails with nothing to resume leaves no folder, not even the repository it created', async (t) => {
    const served = await serveFixture(t);
    const parent = await tempDir(t);
    const repository = join(parent, 'models', 'nested');
    await assert.rejects(fetchModel(options(repository, served.baseUrl('missing'))), isDownloadError('NOT_FOUND', /HTTP 404/));
    assert.deepEqual(await readdir(parent), [], 'after a 404');

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(fetchModel(options(repository, `http://127.0.0.1:${port}/models/`)), isDownloadError('UNREACHABLE', /offline/));
    assert.deepEqual(await readdir(parent), [], 'after an unreachable server');

    // A repository that was there before stays, with whatever else it holds.
    await mkdir(repository, { recursive: true });
    await assert.rejects(fetchModel(options(repository, served.baseUrl('missing'))), isDownloadError('NOT_FOUND', /HTTP 404/));
    assert.deepEqual(await readdir(repository), []);

    await fetchModel(options(repository, served.baseUrl('good')));
    await assertFetched(repository);
  });

  test('the model:fetch command, failing, creates no folder and exits 1 with the reason', async (t) => {
    const served = await serveFixture(t);
    const parent = await tempDir(t);
    const repository = join(parent, 'models');
    const cli = fileURLToPath(new URL('../../../src/model-tools/fetch-cli.js', import.meta.url));
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [cli, 'resnet18-v1', '--repository', repository, '--base-url', served.baseUrl('missing')],
        (error, _stdout, stderr) => resolve({ code: error === null ? 0 : (child.exitCode ?? null), stderr }),
      );
    });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /resnet18-v1-7\.onnx was not found \(HTTP 404\)/);
    assert.deepEqual(await readdir(parent), []);
  });

  test('an existing model folder is kept unless --force', async (t) => {
    const served = await serveFixture(t);
    const repository = await tempDir(t);
    await mkdir(join(repository, 'tiny'));
    await writeFile(join(repository, 'tiny', 'model.onnx'), 'old');
    await assert.rejects(fetchModel(options(repository, served.baseUrl('good'))), (error: unknown) => {
      assert.ok(error instanceof FetchError && error.code === 'ALREADY_EXISTS');
      assert.match(error.message, /already exists; pass --force/);
      return true;
    });
    assert.deepEqual(served.requests, []);
    await fetchModel({ ...options(repository, served.baseUrl('good')), force: true });
    await assertFetched(repository);
  });

  test('an unknown name lists the catalog', async (t) => {
    const repository = await tempDir(t);
    await assert.rejects(
      fetchModel({ name: 'resnet9000', repositoryDir: repository }),
      /No model "resnet9000" in the catalog; known: resnet50-v1, resnet50-v2, resnet18-v1/,
    );
    assert.equal(existsSync(join(repository, '.fetch-resnet9000')), false);
  });
});

describe('the built-in catalog', () => {
  test('lists the ONNX Model Zoo ResNet-50 v1, v2 and ResNet-18 v1 with size, sha256 and preprocessing', () => {
    assert.deepEqual(
      CATALOG.map((e) => [e.name, e.file, e.outputName]),
      [
        ['resnet50-v1', 'resnet50-v1-7.onnx', 'resnetv17_dense0_fwd'],
        ['resnet50-v2', 'resnet50-v2-7.onnx', 'resnetv24_dense0_fwd'],
        ['resnet18-v1', 'resnet18-v1-7.onnx', 'resnetv15_dense0_fwd'],
      ],
    );
    for (const e of CATALOG) {
      assert.match(e.sha256, /^[0-9a-f]{64}$/, e.name);
      assert.ok(e.sizeBytes > 40_000_000, e.name);
      assert.deepEqual(e.preprocess, IMAGENET_PREPROCESS);
      assert.equal(resolveModelUrl(e), `https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/${e.file}`);
    }
  });

  test('a base URL override replaces the folder, with or without a trailing slash', () => {
    const entry = CATALOG[0]!;
    assert.equal(resolveModelUrl(entry, 'http://mirror.local/onnx'), 'http://mirror.local/onnx/resnet50-v1-7.onnx');
    assert.equal(resolveModelUrl(entry, 'http://mirror.local/onnx/'), 'http://mirror.local/onnx/resnet50-v1-7.onnx');
    assert.throws(() => resolveModelUrl(entry, 'ftp://mirror.local/'), /must use http or https/);
    assert.throws(() => resolveModelUrl(entry, 'not a url'), /is not a valid URL/);
  });
});

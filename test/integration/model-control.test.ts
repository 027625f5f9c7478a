/**
 * Model control while serving, with the shared trained ResNet-20: version 2 taken into service
 * under 16 clients posting continuously (explicit mode's load, then unload; poll mode's rescan)
 * without a refused request, the old version's inference threads gone afterwards; a corrupt
 * version leaving the serving one untouched (index, metric); the repository API refused where
 * it does not apply; a config override.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import request from 'supertest';
import type { FastifyInstance } from 'fastify';
import { CIFAR_DIR, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository } from '../helpers.js';

const CLIENTS = 16;

/** This process's threads by name (/proc/self/task/<tid>/comm). */
function threadsByName(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let name: string;
    try {
      name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended while listed
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** onnxruntime's inference threads (the workers name themselves `ort-inference`). */
const inferenceThreads = () => threadsByName().get('ort-inference') ?? 0;

async function versionedRepository(t: TestContext) {
  return tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG, versions: ['1'] }]);
}

async function dropVersion(repo: string, version: string, bytes?: Buffer) {
  await mkdir(join(repo, 'resnet20', `.${version}`));
  const staged = join(repo, 'resnet20', `.${version}`, 'model.onnx');
  if (bytes) await writeFile(staged, bytes);
  else await copyFile(join(RESNET20_DIR, 'model.onnx'), staged);
  // Renamed into place whole, as an operator would (a half-copied file is never scanned).
  const { rename } = await import('node:fs/promises');
  await rename(join(repo, 'resnet20', `.${version}`), join(repo, 'resnet20', version));
}

interface Answer {
  readonly status: number;
  readonly version: string | undefined;
  /** Sent after the unload was asked for. */
  readonly afterUnload: boolean;
}

/** 16 clients posting to the unversioned route until `stop()`; `seen(pred, n)` resolves once n answers match. */
async function traffic(app: FastifyInstance, image: Buffer) {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const answers: Answer[][] = Array.from({ length: CLIENTS }, () => []);
  let stopping = false;
  let unloadAsked = false;
  const waiters: Array<{ pred: (a: Answer) => boolean; n: number; resolve: () => void }> = [];
  const record = (client: number, a: Answer) => {
    answers[client]!.push(a);
    for (const w of [...waiters]) {
      if (answers.flat().filter(w.pred).length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const loops = answers.map(async (_, client) => {
    while (!stopping) {
      const afterUnload = unloadAsked;
      const res = await fetch(`${address}/v1/models/resnet20:predict`, { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: image });
      const body = (await res.json()) as { model_version?: string };
      record(client, { status: res.status, version: body.model_version, afterUnload });
    }
  });
  return {
    answers,
    markUnload: () => void (unloadAsked = true),
    seen: (pred: (a: Answer) => boolean, n: number) =>
      answers.flat().filter(pred).length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ pred, n, resolve })),
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

const cat = () => readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
const indexOf = async (app: FastifyInstance) =>
  (await request(app.server).post('/v2/repository/index').send({})).body as Array<{ name: string; version?: string; state?: string; reason?: string }>;

/** Each client's answers go 1 → 2 (→ 404), never back. */
function assertOrdered(answers: Answer[][]) {
  const rank = (a: Answer) => (a.status === 404 ? 3 : Number(a.version));
  for (const client of answers) {
    for (let i = 1; i < client.length; i++)
      assert.ok(rank(client[i]!) >= rank(client[i - 1]!), `answers went back: ${JSON.stringify(client.slice(i - 1, i + 1))}`);
  }
}

const tally = (answers: Answer[][]) => {
  const counts: Record<string, number> = {};
  for (const a of answers.flat()) {
    const key = a.status === 200 ? `200 v${a.version}` : String(a.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

describe('model control under load', () => {
  it('explicit: loads version 2 and unloads the model with no refused request; the old workers end', async (t) => {
    const repo = await versionedRepository(t);
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: 'resnet20' });
    const load = await traffic(app, await cat());
    t.after(() => load.stop());
    await load.seen((a) => a.version === '1', CLIENTS);
    const withOne = inferenceThreads();

    await dropVersion(repo, '2');
    const loaded = await request(app.server).post('/v2/repository/models/resnet20/load').send({});
    assert.equal(loaded.status, 200, loaded.text);
    await load.seen((a) => a.version === '2', CLIENTS);
    // The load answers once version 1 is retired: its threads are gone, version 2's are there.
    assert.equal(inferenceThreads(), withOne, 'as many inference threads as with version 1 alone');
    assert.deepEqual(
      (await indexOf(app)).map((r) => [r.version, r.state]),
      [
        ['1', 'UNAVAILABLE'],
        ['2', 'READY'],
      ],
    );

    load.markUnload();
    const unloaded = await request(app.server).post('/v2/repository/models/resnet20/unload').send({});
    assert.equal(unloaded.status, 200, unloaded.text);
    await load.seen((a) => a.status === 404, CLIENTS);
    await load.stop();
    const perVersion = withOne - inferenceThreads();
    assert.ok(perVersion >= 1, `version 2's inference threads end with the unload (${withOne} before, ${inferenceThreads()} after)`);

    const all = load.answers.flat();
    const refused = all.filter((a) => a.status !== 200 && !(a.status === 404 && a.afterUnload));
    assert.deepEqual(refused, [], `only 200s, and 404s after the unload: ${JSON.stringify(tally(load.answers))}`);
    assertOrdered(load.answers);
    t.diagnostic(`answers: ${JSON.stringify(tally(load.answers))}`);
    const metrics = (await request(app.server).get('/metrics')).text;
    assert.doesNotMatch(metrics, /model_info\{[^}]*model="resnet20"/, 'the retired versions report no model_info');
  });

  it('poll: version 2 dropped into the repository is served with no refused request; a corrupt version 3 leaves it serving', async (t) => {
    const repo = await versionedRepository(t);
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'poll', MODEL_POLL_INTERVAL_S: '1' });
    const control = app.serving.control!;
    const load = await traffic(app, await cat());
    t.after(() => load.stop());
    await load.seen((a) => a.version === '1', CLIENTS);
    const withOne = inferenceThreads();

    // Picked up by the poll (every second), not asked for.
    await dropVersion(repo, '2');
    await load.seen((a) => a.version === '2', CLIENTS);
    await control.rescan(); // version 1's retirement, queued behind the poll's load, is done
    assert.equal(inferenceThreads(), withOne, 'version 1 retired, its threads gone');

    await dropVersion(repo, '3', Buffer.from('not an onnx model'));
    await control.rescan();
    await control.rescan(); // unchanged files are not tried again
    const before = load.answers.flat().length;
    await load.seen(() => true, before + CLIENTS);
    await load.stop();

    // The index over HTTP is explicit mode's; the same rows, from model control itself.
    const index = await control.index();
    const three = index.find((r) => r.version === '3');
    assert.equal(three?.state, 'UNAVAILABLE');
    assert.match(three!.reason!, /3\/model\.onnx/, 'the reason names the file');
    assert.equal(index.find((r) => r.version === '2')?.state, 'READY');
    const metrics = (await request(app.server).get('/metrics')).text;
    assert.match(metrics, /model_load_failures_total\{model="resnet20",version="3"\} 1\n/);

    const all = load.answers.flat();
    assert.deepEqual(
      all.filter((a) => a.status !== 200),
      [],
      JSON.stringify(tally(load.answers)),
    );
    assert.equal(all.at(-1)?.version, '2', 'version 2 keeps answering');
    assertOrdered(load.answers);
    t.diagnostic(`answers: ${JSON.stringify(tally(load.answers))}`);
  });
});

describe('poll mode', () => {
  it('reloads a model whose config changed, leaves an unchanged one alone, and unloads a removed one', async (t) => {
    const repo = await versionedRepository(t);
    // Only the rescans the test asks for.
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'poll', MODEL_POLL_INTERVAL_S: '3600' });
    const control = app.serving.control!;
    const first = app.serving.registry.get('resnet20');
    await control.rescan();
    assert.equal(app.serving.registry.get('resnet20'), first, 'nothing changed, nothing reloaded');

    const labels = (await readFile(join(RESNET20_DIR, 'labels.txt'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
    await writeFile(join(repo, 'resnet20', 'other-labels.txt'), labels.map((l) => `x-${l}`).join('\n'));
    await writeFile(join(repo, 'resnet20', 'config.json'), JSON.stringify({ ...RESNET20_CONFIG, labels: 'other-labels.txt' }));
    await control.rescan();
    assert.notEqual(app.serving.registry.get('resnet20'), first, 'reloaded');
    const answer = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .set('Content-Type', 'image/jpeg')
      .send(await cat());
    assert.equal(answer.body.predictions[0].label, 'x-cat');
    assert.equal(first.accepting, false, 'the version it replaced is retired');

    const { rm } = await import('node:fs/promises');
    await rm(join(repo, 'resnet20'), { recursive: true });
    await control.rescan();
    assert.deepEqual(app.serving.registry.names(), []);
    assert.deepEqual(await control.index(), [{ name: 'resnet20', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' }]);
    assert.equal((await request(app.server).get('/v2/health/ready')).status, 200, 'a model removed from the repository is no longer one that should be served');
  });
});

describe('repository API', () => {
  it('is refused unless MODEL_CONTROL_MODE=explicit', async (t) => {
    for (const mode of ['none', 'poll']) {
      const repo = await versionedRepository(t);
      const app = await startApp(t, repo, { MODEL_CONTROL_MODE: mode });
      for (const path of ['/v2/repository/index', '/v2/repository/models/resnet20/load', '/v2/repository/models/resnet20/unload']) {
        const res = await request(app.server).post(path).send({});
        assert.equal(res.status, 403, `${mode} ${path}`);
        assert.equal(res.body.code, 'MODEL_CONTROL_DISABLED');
      }
      const meta = await request(app.server).get('/v2');
      assert.ok(!meta.body.extensions.includes('model_repository'));
    }
  });

  it('needs the API key when keys are set', async (t) => {
    const repo = await versionedRepository(t);
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '*', API_KEYS: 'k1' });
    const without = await request(app.server).post('/v2/repository/models/resnet20/unload').send({});
    assert.equal(without.status, 401);
    assert.deepEqual(app.serving.registry.names(), ['resnet20'], 'nothing unloaded');
    const index = await request(app.server).post('/v2/repository/index').set('Authorization', 'Bearer k1').send({ ready: true });
    assert.equal(index.status, 200);
    assert.deepEqual(index.body, [{ name: 'resnet20', version: '1', state: 'READY', reason: '' }]);
    const meta = await request(app.server).get('/v2').set('Authorization', 'Bearer k1');
    assert.ok(meta.body.extensions.includes('model_repository'));
  });

  it('starts with no model unless named, loads one with a config override, and refuses a bad one', async (t) => {
    const repo = await versionedRepository(t);
    const app = await startApp(t, repo, { MODEL_CONTROL_MODE: 'explicit' });
    assert.deepEqual(app.serving.registry.names(), []);
    assert.equal((await request(app.server).get('/v2/health/ready')).status, 200, 'no model should be served, so ready');
    assert.deepEqual(await indexOf(app), [{ name: 'resnet20' }]);

    const bad = await request(app.server)
      .post('/v2/repository/models/resnet20/load')
      .send({ parameters: { config: JSON.stringify({ preprocess: { resize: 64, crop: 64 } }) } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.body.code, 'MODEL_LOAD_FAILED', bad.text);
    assert.deepEqual(app.serving.registry.names(), []);
    const [failed] = await indexOf(app);
    assert.equal(failed?.state, 'UNAVAILABLE');
    assert.match(failed!.reason!, /crop|input/, failed!.reason);
    assert.equal((await request(app.server).get('/v2/health/ready')).status, 200, 'a failed new model leaves the server ready');

    const labels = (await readFile(join(RESNET20_DIR, 'labels.txt'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
    await writeFile(join(repo, 'resnet20', 'other-labels.txt'), labels.map((l) => `x-${l}`).join('\n'));
    const res = await request(app.server)
      .post('/v2/repository/models/resnet20/load')
      .send({ parameters: { config: JSON.stringify({ ...RESNET20_CONFIG, labels: 'other-labels.txt' }) } });
    assert.equal(res.status, 200, res.text);
    const answer = await request(app.server)
      .post('/v1/models/resnet20:predict')
      .set('Content-Type', 'image/jpeg')
      .send(await cat());
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.predictions[0].label, 'x-cat', "the override's labels");

    const missing = await request(app.server).post('/v2/repository/models/..%2Fetc/load').send({});
    assert.equal(missing.status, 404);
    const notJson = await request(app.server)
      .post('/v2/repository/models/resnet20/load')
      .send({ parameters: { config: '{' } });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.code, 'INVALID_REQUEST');
    assert.deepEqual(await readdir(join(repo, 'resnet20')).then((e) => e.sort()), ['1', 'config.json', 'labels.txt', 'other-labels.txt']);
  });
});

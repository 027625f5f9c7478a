/**
 * Model versions over HTTP with the shared trained ResNet-20 in Triton's layout: two versions
 * served under `{"all": {}}` (version 2 with a labels file of its own, so the answers show
 * which version gave them). Unversioned routes answer with the highest version, the version
 * routes (v1 and v2) with the one named, an unserved version is 404 MODEL_NOT_FOUND naming
 * the versions served; metadata lists both; metrics, statistics and the access log name the
 * version that answered.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import request from 'supertest';
import { CIFAR_DIR, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository } from '../helpers.js';

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

interface LogLine {
  readonly msg: string;
  readonly reqId?: string;
  readonly model?: string;
  readonly version?: string;
}

/** Versions 1 and 2 of `resnet20`, both served; version 2 names its classes `v2-<class>`. */
async function twoVersions(t: TestContext, env: Record<string, string> = {}) {
  const repo = await tempRepository(t, [
    { name: 'resnet20', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { all: {} } }, versions: ['1', '2'] },
  ]);
  await writeFile(join(repo, 'resnet20', '2', 'labels.txt'), CLASSES.map((c) => `v2-${c}`).join('\n'));
  const lines: string[] = [];
  const app = await startApp(t, repo, { LOG_LEVEL: 'info', ...env }, { logStream: { write: (line: string) => void lines.push(line) } });
  const log = () => lines.map((l) => JSON.parse(l) as LogLine);
  return { app, log };
}

const cat = () => readFile(join(CIFAR_DIR, 'cat_0000.jpg'));

describe('two versions served (version_policy all)', () => {
  it('answers unversioned routes with the highest version and version routes with the one named', async (t) => {
    const { app } = await twoVersions(t);
    const s = app.server;
    const image = await cat();
    const v1Predict = (url: string) => request(s).post(url).set('Content-Type', 'image/jpeg').send(image);

    const highest = await v1Predict('/v1/models/resnet20:predict');
    assert.equal(highest.status, 200, highest.text);
    assert.equal(highest.body.model_version, '2');
    assert.equal(highest.body.predictions[0].label, 'v2-cat', "version 2's own labels");
    const short = await v1Predict('/v1/predict');
    assert.equal(short.body.model_version, '2');

    const one = await v1Predict('/v1/models/resnet20/versions/1:predict');
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.model_version, '1');
    assert.equal(one.body.predictions[0].label, 'cat', "the model's labels");
    assert.equal(one.body.predictions[0].index, highest.body.predictions[0].index);
    const two = await v1Predict('/v1/models/resnet20/versions/2:predict');
    assert.equal(two.body.model_version, '2');

    const infer = (path: string) =>
      request(s)
        .post(path)
        .send({
          inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [image.toString('base64')] }],
          outputs: [{ name: 'logits', parameters: { classification: 1 } }],
        });
    const v2Highest = await infer('/v2/models/resnet20/infer');
    assert.equal(v2Highest.status, 200, v2Highest.text);
    assert.equal(v2Highest.body.model_version, '2');
    assert.match(v2Highest.body.outputs[0].data[0], /:3:v2-cat$/);
    for (const version of ['1', '2']) {
      const res = await infer(`/v2/models/resnet20/versions/${version}/infer`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.model_version, version);
      assert.match(res.body.outputs[0].data[0], version === '1' ? /:3:cat$/ : /:3:v2-cat$/);
    }
  });

  it('refuses a version it does not serve with 404 MODEL_NOT_FOUND naming those it does', async (t) => {
    const { app } = await twoVersions(t);
    const s = app.server;
    const message = 'Model resnet20 does not serve version "3"; it serves versions 2, 1';
    const answers: Array<[string, request.Response]> = [
      [
        'v2 infer',
        await request(s)
          .post('/v2/models/resnet20/versions/3/infer')
          .send({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3072).fill(0) }] }),
      ],
      ['v2 metadata', await request(s).get('/v2/models/resnet20/versions/3')],
      ['v2 ready', await request(s).get('/v2/models/resnet20/versions/3/ready')],
      ['v2 stats', await request(s).get('/v2/models/resnet20/versions/3/stats')],
      ['v1 metadata', await request(s).get('/v1/models/resnet20/versions/3')],
      [
        'v1 predict',
        await request(s)
          .post('/v1/models/resnet20/versions/3:predict')
          .set('Content-Type', 'image/jpeg')
          .send(await cat()),
      ],
    ];
    for (const [route, res] of answers) {
      assert.equal(res.status, 404, `${route}: ${res.text}`);
      assert.deepEqual(res.body, { error: message, code: 'MODEL_NOT_FOUND' }, route);
    }
    const wrongVerb = await request(s).post('/v1/models/resnet20/versions/1:classify').send({});
    assert.equal(wrongVerb.status, 404);
    assert.equal(wrongVerb.body.code, 'NOT_FOUND');
  });

  it('lists both versions in the v1 and v2 metadata, the model once in the model list', async (t) => {
    const { app } = await twoVersions(t);
    const s = app.server;
    const v2 = await request(s).get('/v2/models/resnet20');
    assert.deepEqual(v2.body.versions, ['2', '1']);
    assert.deepEqual((await request(s).get('/v2/models/resnet20/versions/1')).body.versions, ['2', '1']);
    const v1 = await request(s).get('/v1/models/resnet20');
    assert.equal(v1.body.version, '2');
    assert.deepEqual(v1.body.versions, ['2', '1']);
    const v1One = await request(s).get('/v1/models/resnet20/versions/1');
    assert.equal(v1One.status, 200, v1One.text);
    assert.equal(v1One.body.version, '1');
    assert.deepEqual((await request(s).get('/v1/models')).body, { models: ['resnet20'] });
    const ready = await request(s).get('/v2/models/resnet20/versions/1/ready');
    assert.deepEqual([ready.status, ready.body], [200, { name: 'resnet20', ready: true }]);
  });

  it('counts each version apart in the metrics and statistics, and the access log names the version that answered', async (t) => {
    const { app, log } = await twoVersions(t);
    const s = app.server;
    const image = await cat();
    const post = (url: string, id: string) => request(s).post(url).set('Content-Type', 'image/jpeg').set('X-Request-Id', id).send(image);
    assert.equal((await post('/v1/models/resnet20:predict', 'unversioned')).status, 200);
    assert.equal((await post('/v1/models/resnet20/versions/2:predict', 'version-2')).status, 200);
    assert.equal((await post('/v1/models/resnet20/versions/1:predict', 'version-1')).status, 200);

    const text = (await request(s).get('/metrics')).text;
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('inference_images_total{model="resnet20",version="2"}'), 2);
    assert.equal(value('inference_images_total{model="resnet20",version="1"}'), 1);
    assert.equal(value('inference_requests_total{model="resnet20",version="1",outcome="ok",protocol="http"}'), 1);
    assert.match(text, /^model_info\{model="resnet20",version="1",execution_provider="cpu",sha256="[0-9a-f]{64}"\} 1$/m);
    assert.match(text, /^model_info\{model="resnet20",version="2",execution_provider="cpu",sha256="[0-9a-f]{64}"\} 1$/m);
    for (const version of ['1', '2']) assert.ok(value(`model_load_duration_seconds{model="resnet20",version="${version}"}`) > 0, version);

    const stats = (await request(s).get('/v2/models/resnet20/stats')).body.model_stats as Array<{ name: string; version: string; inference_count: number }>;
    assert.deepEqual(
      stats.map((m) => [m.name, m.version, m.inference_count]),
      [
        ['resnet20', '2', 2],
        ['resnet20', '1', 1],
      ],
      'every served version, as Triton answers',
    );
    const one = (await request(s).get('/v2/models/resnet20/versions/1/stats')).body.model_stats as Array<{ version: string }>;
    assert.deepEqual(
      one.map((m) => m.version),
      ['1'],
    );

    const completed = log().filter((l) => l.msg === 'request completed' && l.reqId !== undefined && l.model !== undefined);
    assert.deepEqual(
      completed.map((l) => [l.reqId, l.model, l.version]),
      [
        ['unversioned', 'resnet20', '2'],
        ['version-2', 'resnet20', '2'],
        ['version-1', 'resnet20', '1'],
      ],
    );
    const loaded = log()
      .filter((l) => /^model resnet20 version \d ready on cpu$/.test(l.msg))
      .map((l) => l.version);
    assert.deepEqual(loaded, ['2', '1']);
  });

  it('serves only the latest version by default, leaving the other out', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG, versions: ['1', '2'] }]);
    const app = await startApp(t, repo);
    const s = app.server;
    assert.deepEqual((await request(s).get('/v2/models/resnet20')).body.versions, ['2']);
    const res = await request(s).get('/v2/models/resnet20/versions/1');
    assert.equal(res.status, 404);
    assert.equal(res.body.error, 'Model resnet20 does not serve version "1"; it serves version 2');
  });
});

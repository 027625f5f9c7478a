/** openapi.yaml is the contract: its routes, error codes and response schemas match the app. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import request from 'supertest';
import { parse } from 'yaml';
import { buildApp } from '../../src/app.js';
import { errors } from '../../src/errors.js';
import { REPO_ROOT, photo, resnet20App, testConfig } from '../helpers.js';

interface OpenApi {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, unknown> };
  'x-error-codes': Record<string, number>;
}

const loadSpec = async () => parse(await readFile(join(REPO_ROOT, 'openapi.yaml'), 'utf8')) as OpenApi;

function validator(spec: OpenApi) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: 'spec', components: spec.components }, 'spec');
  return (schema: string, data: unknown) => {
    const validate = ajv.compile({ $ref: `spec#/components/schemas/${schema}` });
    assert.ok(validate(data), `${schema}: ${JSON.stringify(validate.errors)}`);
  };
}

describe('openapi.yaml', () => {
  it('documents exactly the routes the app serves', async (t) => {
    const spec = await loadSpec();
    const app = await buildApp(testConfig('/nonexistent'), { defaultMetrics: false });
    t.after(() => app.close());
    await app.ready();
    const served = new Set(app.serving.routes.filter((r) => r.documented).map((r) => `${r.method} ${r.path}`));
    const undocumented = app.serving.routes.filter((r) => !r.documented).map((r) => r.path);
    assert.ok(
      undocumented.length > 0 && undocumented.every((path) => path === '/docs' || path.startsWith('/docs/')),
      `only Swagger UI's own pages go undocumented: ${undocumented.join(', ')}`,
    );
    const documented = new Set(
      Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((m) => m !== 'parameters')
          .map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    assert.deepEqual([...served].sort(), [...documented].sort());
  });

  it('lists every error code of the catalog with its status', async () => {
    const spec = await loadSpec();
    const catalog = Object.fromEntries(Object.values(errors).map((e) => [e.code, e.statusCode]));
    assert.deepEqual(spec['x-error-codes'], catalog);
  });

  it('describes the real responses', async (t) => {
    const spec = await loadSpec();
    const check = validator(spec);
    const app = await resnet20App(t);
    const s = app.server;
    const predict = await request(s)
      .post('/v1/models/resnet20:predict')
      .set('Content-Type', 'image/png')
      .send(await photo('chelsea.png'));
    check('PredictResponse', predict.body);
    check('ModelMetadataV1', (await request(s).get('/v1/models/resnet20')).body);
    check('ModelMetadataV1', (await request(s).get('/v1/models/resnet20/versions/1')).body);
    check(
      'PredictResponse',
      (
        await request(s)
          .post('/v1/models/resnet20/versions/1:predict')
          .set('Content-Type', 'image/png')
          .send(await photo('chelsea.png'))
      ).body,
    );
    check('ModelMetadataV2', (await request(s).get('/v2/models/resnet20')).body);
    check('ModelReady', (await request(s).get('/v2/models/resnet20/ready')).body);
    const infer = await request(s)
      .post('/v2/models/resnet20/infer')
      .send({ id: 'x', inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3072).fill(0.5) }] });
    check('InferenceResponse', infer.body);
    check('Error', (await request(s).get('/v2/models/none')).body);
  });
});

/** The contract served over HTTP: /openapi.yaml, /openapi.json and Swagger UI at /docs. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { parse } from 'yaml';
import { REPO_ROOT, resnet20App } from '../helpers.js';

describe('API documentation', () => {
  it('serves openapi.yaml as written, and the same document as JSON', async (t) => {
    const app = await resnet20App(t);
    const text = await readFile(join(REPO_ROOT, 'openapi.yaml'), 'utf8');
    const yaml = await request(app.server).get('/openapi.yaml');
    assert.equal(yaml.status, 200);
    assert.match(yaml.headers['content-type'] ?? '', /^application\/yaml/);
    assert.equal(yaml.text, text);
    const json = await request(app.server).get('/openapi.json');
    assert.equal(json.status, 200);
    assert.match(json.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(json.body, parse(text));
    assert.equal(json.body.servers[0].url, '/', '"Try it out" calls the server that serves the page');
  });

  it('renders the contract at /docs with Swagger UI from this server alone, under a strict CSP', async (t) => {
    const app = await resnet20App(t);
    const page = await request(app.server).get('/docs');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] ?? '', /^text\/html/);
    const csp = page.headers['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|unsafe-hashes|https:|\*/);
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    assert.ok(assets.length >= 3, 'the page loads its script and styles');
    for (const asset of assets) {
      assert.match(asset, /^(\/docs\/|\.\/)/, `${asset} is served by this server`);
      const url = asset.startsWith('./') ? `/docs/${asset.slice(2)}` : asset;
      const res = await request(app.server).get(url);
      assert.equal(res.status, 200, url);
    }
    const initializer = await request(app.server).get('/docs/static/swagger-initializer.js');
    assert.match(initializer.text, /"validatorUrl":\s*null/, 'no call to validator.swagger.io');
  });

  it('lets browsers revalidate the UI assets instead of downloading them again', async (t) => {
    const app = await resnet20App(t);
    const first = await request(app.server).get('/docs/static/swagger-ui-bundle.js');
    assert.equal(first.status, 200);
    const etag = first.headers.etag;
    assert.ok(etag, 'an ETag');
    const again = await request(app.server).get('/docs/static/swagger-ui-bundle.js').set('If-None-Match', etag);
    assert.equal(again.status, 304);
  });

  it('is open when API keys are set (the contract is no secret), while the API is not', async (t) => {
    const app = await resnet20App(t, { API_KEYS: 'k1' });
    assert.equal((await request(app.server).get('/docs')).status, 200);
    assert.equal((await request(app.server).get('/openapi.json')).status, 200);
    assert.equal((await request(app.server).get('/v1/models')).status, 401);
  });

  it('serves nothing outside the UI files', async (t) => {
    const app = await resnet20App(t);
    for (const path of [
      '/docs/static/../../package.json',
      '/docs/static/%2e%2e/%2e%2e/package.json',
      '/docs/static/..%2f..%2fpackage.json',
      '/docs/package.json',
      '/docs/static/nope.js',
    ]) {
      const res = await request(app.server).get(path);
      assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
      assert.doesNotMatch(res.text, /"name":\s*"resnet-serve"/, path);
    }
  });
});

/**
 * The page at `/` through HTTP: content negotiation between the page and KServe v1's liveness,
 * a strict Content-Security-Policy, no inline script or style and nothing from another origin,
 * revalidated caching (ETag, 304), a few tens of KB in all, and `/ui/{file}` serving its
 * allow-list only, however a path out of it is spelled.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { installErrorHandler } from '../../src/http/error-handler.js';
import { PAGE_CSP, pageRoutes, prefersHtml } from '../../src/http/routes/page.js';
import { resnet20App } from '../helpers.js';
import { assertCatalogError, listen, send } from './hostile-support.js';

/** What Chromium and Firefox send for a page they navigate to. */
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8';
/** The page's own files (index.html is `/`). */
const ASSETS = { '/ui/page.css': /^text\/css; charset=utf-8$/, '/ui/page.js': /^text\/javascript; charset=utf-8$/ };
/** "A few tens of KB": the page and its files together stay under this. */
const PAGE_BUDGET_BYTES = 40 * 1024;

describe('prefersHtml', () => {
  it('takes text/html only when it ranks above application/json', () => {
    for (const accept of [BROWSER_ACCEPT, 'text/html', 'text/*', 'TEXT/HTML', 'application/json;q=0.5, text/html', 'text/html, */*;q=0.1']) {
      assert.equal(prefersHtml(accept), true, accept);
    }
    for (const accept of [
      undefined,
      '',
      '*/*',
      'application/json',
      'application/json, text/html',
      'text/html;q=0.5, application/json',
      'text/html;q=0',
      'text/plain',
      'image/*, text/html;q=0.9, */*',
    ]) {
      assert.equal(prefersHtml(accept), false, String(accept));
    }
  });
});

describe('GET /', () => {
  it('answers API clients KServe v1 liveness JSON and browsers the page, varying on Accept', async (t) => {
    const app = await resnet20App(t);
    for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html']) {
      const res = await app.inject({ url: '/', headers: accept === undefined ? {} : { accept } });
      assert.equal(res.statusCode, 200, String(accept));
      assert.equal(res.headers['content-type'], 'application/json', String(accept));
      assert.deepEqual(res.json(), { status: 'alive' }, String(accept));
      assert.equal(res.headers.vary, 'Accept', String(accept));
    }
    for (const accept of [BROWSER_ACCEPT, 'text/html']) {
      const res = await app.inject({ url: '/', headers: { accept } });
      assert.equal(res.statusCode, 200, accept);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8', accept);
      assert.equal(res.headers.vary, 'Accept', accept);
      assert.match(res.body, /^<!doctype html>/i);
      assert.match(res.body, /<title>resnet-serve<\/title>/);
    }
  });

  it('sends a strict Content-Security-Policy, and the page holds no inline script or style and nothing from elsewhere', async (t) => {
    const app = await resnet20App(t);
    const res = await app.inject({ url: '/', headers: { accept: BROWSER_ACCEPT } });
    const csp = String(res.headers['content-security-policy']);
    assert.equal(csp, PAGE_CSP);
    const directives = new Map(
      csp.split(';').map((d) => {
        const [name = '', ...sources] = d.trim().split(/\s+/);
        return [name, sources] as const;
      }),
    );
    assert.deepEqual(directives.get('default-src'), ["'none'"]);
    assert.deepEqual(directives.get('script-src'), ["'self'"]);
    assert.deepEqual(directives.get('style-src'), ["'self'"]);
    assert.deepEqual(directives.get('connect-src'), ["'self'"]);
    assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
    assert.doesNotMatch(csp, /unsafe-|https?:|\*/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['referrer-policy'], 'no-referrer');

    const html = res.body;
    assert.doesNotMatch(html, /<style/i, 'no <style> element');
    assert.doesNotMatch(html, /\sstyle\s*=/i, 'no style attribute');
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no event handler attribute');
    for (const [, attributes = ''] of html.matchAll(/<script\b([^>]*)>/gi))
      assert.match(attributes, /\ssrc="\/ui\/[a-z.]+"/, `script without a same-origin src: ${attributes}`);
    const urls = [...html.matchAll(/\s(?:src|href|action)="([^"]*)"/gi)].map((m) => m[1]!);
    assert.ok(urls.length >= 3, `links found: ${urls.join(' ')}`);
    for (const url of urls) assert.match(url, /^\/(?!\/)/, `not a same-origin path: ${url}`);
    for (const asset of Object.keys(ASSETS)) assert.ok(urls.includes(asset), `index.html links ${asset}`);
  });

  it('serves the page files with their types, all within a few tens of KB', async (t) => {
    const app = await resnet20App(t);
    let total = Buffer.byteLength((await app.inject({ url: '/', headers: { accept: 'text/html' } })).body);
    for (const [path, type] of Object.entries(ASSETS)) {
      const res = await app.inject({ url: path });
      assert.equal(res.statusCode, 200, path);
      assert.match(String(res.headers['content-type']), type, path);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', path);
      assert.ok(res.rawPayload.length > 0, path);
      total += res.rawPayload.length;
    }
    assert.ok(total < PAGE_BUDGET_BYTES, `the page weighs ${total} bytes, over ${PAGE_BUDGET_BYTES}`);
    // Nothing the script fetches is from elsewhere either.
    const js = (await app.inject({ url: '/ui/page.js' })).body;
    assert.doesNotMatch(js, /https?:\/\//);
    assert.doesNotMatch(js, /localStorage|sessionStorage|document\.cookie|indexedDB/, 'the API key stays in memory');
    const css = (await app.inject({ url: '/ui/page.css' })).body;
    assert.doesNotMatch(css, /@import|url\(/, 'the stylesheet loads nothing');
  });

  it('is cached with revalidation: ETag, Cache-Control no-cache, 304 for a matching If-None-Match', async (t) => {
    const app = await resnet20App(t);
    const cases: Array<[string, Record<string, string>]> = [
      ['/', { accept: BROWSER_ACCEPT }],
      ...Object.keys(ASSETS).map((path): [string, Record<string, string>] => [path, {}]),
    ];
    for (const [url, headers] of cases) {
      const first = await app.inject({ url, headers });
      const etag = String(first.headers.etag);
      assert.match(etag, /^"[\w-]{16,}"$/, url);
      assert.equal(first.headers['cache-control'], 'no-cache', url);
      for (const tag of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const again = await app.inject({ url, headers: { ...headers, 'if-none-match': tag } });
        assert.equal(again.statusCode, 304, `${url} If-None-Match: ${tag}`);
        assert.equal(again.rawPayload.length, 0, url);
        assert.equal(again.headers.etag, etag, url);
      }
      const changed = await app.inject({ url, headers: { ...headers, 'if-none-match': '"something-else"' } });
      assert.equal(changed.statusCode, 200, url);
      assert.equal(changed.body, first.body, url);
    }
    // The JSON answer at / is not the page's: it carries no page ETag, whatever was cached.
    const json = await app.inject({ url: '/', headers: { 'if-none-match': '*' } });
    assert.equal(json.statusCode, 200);
    assert.deepEqual(json.json(), { status: 'alive' });
  });

  it('answers JSON to browsers too when the page was not built, and 404 under /ui', async (t) => {
    const empty = await mkdtemp(join(tmpdir(), 'resnet-serve-no-page-'));
    t.after(() => rm(empty, { recursive: true, force: true }));
    const warnings: string[] = [];
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => void warnings.push(line) } } });
    t.after(() => app.close());
    installErrorHandler(app);
    await app.register(pageRoutes({ folder: pathToFileURL(`${empty}/`) }));
    const res = await app.inject({ url: '/', headers: { accept: BROWSER_ACCEPT } });
    assert.deepEqual(res.json(), { status: 'alive' });
    const asset = await app.inject({ url: '/ui/page.js' });
    assert.equal(asset.statusCode, 404);
    assert.equal(asset.json().code, 'NOT_FOUND');
    assert.ok(
      warnings.some((line) => line.includes('The page is not built')),
      warnings.join('\n'),
    );
  });
});

describe('GET /ui/{file}', () => {
  it('serves its allow-list only: paths out of it, however spelled, are 404', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    // Sent byte for byte: no client-side normalisation of dot segments or escapes.
    const attempts = [
      '/ui/../package.json',
      '/ui/../../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/%2e%2e%2fpackage.json',
      '/ui/%2E%2E%2Fpackage.json',
      '/ui/..%2fpackage.json',
      '/ui/..%2f..%2fpackage.json',
      '/ui/.%2e/.%2e/package.json',
      '/ui/%252e%252e%252fpackage.json',
      '/ui/..%5cpackage.json',
      '/ui/%2e%2e%5c%2e%2e%5cpackage.json',
      '/ui/....//package.json',
      '/ui//etc/passwd',
      '/ui/%2fetc%2fpasswd',
      '/ui/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
      '/ui/page.js%00.html',
      '/ui/page.js/..',
      '/ui/./page.js',
      '/ui/PAGE.JS',
      '/ui/page.ts',
      '/ui/index.html',
      '/ui/',
      '/ui/..',
      '/ui/%2e%2e',
      '/ui/__proto__',
      '/ui/constructor',
      '/ui/page.js.map',
      '/web/page.ts',
      '/dist/web/page.js',
    ];
    for (const path of attempts) {
      const answer = await send(port, { path });
      assertCatalogError(answer, { status: 404, code: 'NOT_FOUND' }, path);
      assert.doesNotMatch(answer.text, /resnet-serve|root:|ApiError/, `${path} leaked a file`);
    }
    // The files themselves are there, on the same server.
    for (const path of Object.keys(ASSETS)) assert.equal((await send(port, { path })).status, 200, path);
  });
});

/**
 * SVG, PDF and polyglots through HTTP. Content is judged by its bytes: SVG and PDF are refused
 * with 415 whatever the Content-Type or file name claims, so no vector renderer, XML entity or
 * network fetch is ever reached (a local HTTP server stands where their references point, and
 * must see no request); a file that is a real image with something appended is handled as the
 * image it is.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { CIFAR_DIR, photo, resnet20App } from '../helpers.js';
import { assertCatalogError, listen, multipartBody, send, type Answer } from './hostile-support.js';

interface Prediction {
  label: string;
  index: number;
  score: number;
}

/** A server that records every request made to it: the place SVG and XML references point. */
async function canary() {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'Content-Type': 'image/png' }).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { base, hits, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function svgs(base: string): Array<[string, string]> {
  return [
    [
      'SVG with an xlink:href image',
      `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="32" height="32"><image xlink:href="${base}/xlink.png" width="32" height="32"/></svg>`,
    ],
    ['SVG with an href image', `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><image href="${base}/href.png" width="32" height="32"/></svg>`],
    [
      'SVG with an external entity',
      `<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY ext SYSTEM "${base}/entity">]>\n<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><text>&ext;</text></svg>`,
    ],
    ['SVG with an external DTD', `<?xml version="1.0"?>\n<!DOCTYPE svg SYSTEM "${base}/dtd"><svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"/>`],
    [
      'SVG with a CSS import and a use',
      `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><style>@import url(${base}/css);</style><use href="${base}/use.svg#x"/></svg>`,
    ],
    ['SVG with an XInclude', `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="${base}/xinclude"/></svg>`],
    [
      'SVG reading a local file',
      `<!DOCTYPE svg [<!ENTITY f SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><text>&f;</text><image href="file:///etc/hostname"/></svg>`,
    ],
    ['SVG behind a byte-order mark and blank lines', `\uFEFF\n\n   <svg xmlns="http://www.w3.org/2000/svg"><image href="${base}/bom.png"/></svg>`],
    ['HTML with an image', `<!doctype html><html><body><img src="${base}/html.png"></body></html>`],
  ];
}

const MINI_PDF =
  '%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';

describe('SVG, PDF and polyglots', () => {
  it('refuses SVG and PDF with 415 in every form, whatever the Content-Type or file name, and fetches nothing', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const target = await canary();
    t.after(() => target.close());
    const jpeg = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));

    const refused: Array<[string, Buffer]> = [
      ...svgs(target.base).map(([what, text]): [string, Buffer] => [what, Buffer.from(text)]),
      ['gzipped SVG (svgz)', gzipSync(Buffer.from(svgs(target.base)[0]![1]))],
      ['PDF', Buffer.from(MINI_PDF)],
      // A PDF whose only image is a JPEG stream: still a PDF.
      [
        'PDF holding a JPEG',
        Buffer.concat([
          Buffer.from(`%PDF-1.4\n1 0 obj << /Type /XObject /Subtype /Image /Filter /DCTDecode /Length ${jpeg.length} >>\nstream\n`),
          jpeg,
          Buffer.from('\nendstream endobj\n%%EOF\n'),
        ]),
      ],
      // PDF readers accept the header anywhere in the first KiB.
      ['PDF after 200 bytes of junk', Buffer.concat([Buffer.alloc(200, 0x20), Buffer.from(MINI_PDF)])],
    ];
    const forms: Array<[string, (bytes: Buffer) => Promise<Answer>]> = [
      ['raw as image/svg+xml', (bytes) => send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'image/svg+xml' }, body: bytes })],
      ['raw claiming image/png', (bytes) => send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'image/png' }, body: bytes })],
      [
        'multipart named cat.jpg',
        (bytes) =>
          send(port, {
            method: 'POST',
            path: '/v1/predict',
            headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' },
            body: multipartBody([{ bytes, filename: 'cat.jpg', type: 'image/jpeg' }]),
          }),
      ],
      [
        'v1 base64',
        (bytes) =>
          send(port, {
            method: 'POST',
            path: '/v1/predict',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ instances: [{ b64: bytes.toString('base64') }] }),
          }),
      ],
      [
        'v2 BYTES',
        (bytes) =>
          send(port, {
            method: 'POST',
            path: '/v2/models/resnet20/infer',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [bytes.toString('base64')] }] }),
          }),
      ],
    ];
    for (const [what, bytes] of refused) {
      for (const [form, post] of forms) {
        assertCatalogError(await post(bytes), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, `${what} via ${form}`);
      }
    }
    // Images whose magic numbers start a polyglot but whose body is SVG or PDF: broken images.
    for (const [what, bytes] of [
      ['JPEG magic, then a PDF', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from(MINI_PDF)])],
      ['GIF header, then an SVG', Buffer.concat([Buffer.from('GIF89a'), Buffer.from(svgs(target.base)[0]![1])])],
    ] as const) {
      assertCatalogError(await forms[1]![1](bytes), { status: 400, code: 'INVALID_IMAGE' }, what);
    }
    assert.deepEqual(target.hits, [], 'the server fetched a reference');
  });

  it('handles a real image with SVG or PDF appended as the image it is', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const target = await canary();
    t.after(() => target.close());
    const predict = async (bytes: Buffer, type: string) => {
      const answer = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict?top_k=10', headers: { 'Content-Type': type }, body: bytes });
      assert.equal(answer.status, 200, answer.text);
      return (JSON.parse(answer.text) as { predictions: Array<Prediction & { top_k: Prediction[] }> }).predictions[0]!;
    };
    const chelsea = await photo('chelsea.png');
    const svg = Buffer.from(svgs(target.base)[2]![1]);
    const alone = await predict(chelsea, 'image/png');
    assert.equal(alone.label, 'cat');
    // PNG decoders stop at IEND; whatever follows is never parsed.
    const pngThenSvg = await predict(Buffer.concat([chelsea, svg]), 'image/svg+xml');
    assert.deepEqual(pngThenSvg.top_k, alone.top_k);

    const jpeg = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    const jpegAlone = await predict(jpeg, 'image/jpeg');
    const jpegThenPdf = await predict(Buffer.concat([jpeg, Buffer.from(MINI_PDF)]), 'application/octet-stream');
    assert.deepEqual(jpegThenPdf.top_k, jpegAlone.top_k);
    assert.deepEqual(target.hits, [], 'the server fetched a reference');
  });
});

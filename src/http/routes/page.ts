/**
 * `GET /` for people and machines alike: a browser (whose `Accept` ranks text/html above
 * application/json) gets the page, every other client KServe v1's server liveness
 * `{"status":"alive"}` (its Python client's is_server_live asks `GET /` with `*\/*`). The
 * page's stylesheet and script are under `GET /ui/{file}`.
 *
 * The page's files are read once, when the routes are registered, from one folder (dist/web:
 * index.html and page.css copied from web/, page.js compiled from web/page.ts), and only the
 * files named in PAGE_FILES: a request names a key of that table, never a path, so nothing
 * outside it can be reached however the name is encoded. When the page was not built, `GET /`
 * answers JSON to everyone and `/ui/*` is 404 (a warning says so at startup).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../../errors.js';
import { POLLED_ROUTE } from '../access-log.js';

/** Where the build puts the page: dist/web, beside this module's dist/src. */
const BUILT_PAGE = new URL('../../../web/', import.meta.url);

/** The page at `/`, then the files it links to, served at `/ui/<name>`. */
const PAGE_FILES = {
  index: { name: 'index.html', type: 'text/html; charset=utf-8' },
  assets: [
    { name: 'page.css', type: 'text/css; charset=utf-8' },
    { name: 'page.js', type: 'text/javascript; charset=utf-8' },
  ],
} as const;

/**
 * The page's own files and nothing else: no inline script or style (page.js sets the bars'
 * widths through the CSSOM, which CSP allows), images from this server or from the page's own
 * blob: URLs (previews of the images chosen), fetches to this origin only, no framing, no form
 * posting anywhere, no `<base>`.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface PageFile {
  readonly body: Buffer;
  readonly etag: string;
  readonly headers: Readonly<Record<string, string>>;
}

interface Page {
  readonly index: PageFile;
  /** By the name that follows `/ui/`. */
  readonly assets: ReadonlyMap<string, PageFile>;
}

const LIVE = Object.freeze({ status: 'alive' });

/**
 * Whether `accept` ranks text/html above application/json. A tie keeps JSON, the API's answer,
 * so `*\/*`, no `Accept` at all and `application/json, text/html` all get JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const ranges = accept.split(',').map(parseMediaRange);
  return quality(ranges, 'text', 'html') > quality(ranges, 'application', 'json');
}

interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
}

function parseMediaRange(part: string): MediaRange {
  const [range = '', ...params] = part.split(';');
  const [type = '', subtype = ''] = range.trim().toLowerCase().split('/');
  let q = 1;
  for (const param of params) {
    const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(param);
    if (m) q = Math.min(1, Number(m[1]) || 0);
  }
  return { type, subtype, q };
}

/** RFC 9110 §12.5.1: the most specific range that matches a type gives its quality. */
function quality(ranges: readonly MediaRange[], type: string, subtype: string): number {
  let specificity = -1;
  let q = 0;
  for (const r of ranges) {
    const s = r.type === type ? (r.subtype === subtype ? 2 : r.subtype === '*' ? 1 : -1) : r.type === '*' && r.subtype === '*' ? 0 : -1;
    if (s > specificity) [specificity, q] = [s, r.q];
  }
  return q;
}

function pageFile(body: Buffer, type: string, extra: Record<string, string> = {}): PageFile {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return {
    body,
    etag,
    headers: {
      'Content-Type': type,
      ETag: etag,
      // Revalidated on every use: the names carry no version, and a revalidation costs one 304.
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      ...extra,
    },
  };
}

/** The built page, or `undefined` (and a warning) when a file of it is missing. */
async function loadPage(folder: URL, log: FastifyBaseLogger): Promise<Page | undefined> {
  const read = async (name: string) => readFile(new URL(name, folder));
  try {
    const index = pageFile(await read(PAGE_FILES.index.name), PAGE_FILES.index.type, {
      'Content-Security-Policy': PAGE_CSP,
      'Referrer-Policy': 'no-referrer',
    });
    const assets = new Map<string, PageFile>();
    for (const a of PAGE_FILES.assets) assets.set(a.name, pageFile(await read(a.name), a.type));
    return { index, assets };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    log.warn({ folder: folder.pathname, missing: (err as NodeJS.ErrnoException).path }, 'The page is not built: GET / answers JSON only');
    return undefined;
  }
}

/** `If-None-Match` holds the file's tag (weak or strong) or `*`. */
function isFresh(request: FastifyRequest, file: PageFile): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === file.etag;
  });
}

function sendFile(request: FastifyRequest, reply: FastifyReply, file: PageFile) {
  void reply.headers(file.headers);
  return isFresh(request, file) ? reply.code(304).send() : reply.send(file.body);
}

export interface PageOptions {
  /** Folder holding the built page. @default dist/web */
  readonly folder?: URL;
}

export function pageRoutes(options: PageOptions = {}) {
  return async (app: FastifyInstance) => {
    const page = await loadPage(options.folder ?? BUILT_PAGE, app.log);

    app.get('/', POLLED_ROUTE, async (request, reply) => {
      void reply.header('Vary', 'Accept');
      if (page === undefined || !prefersHtml(request.headers.accept)) return LIVE;
      return sendFile(request, reply, page.index);
    });

    app.get<{ Params: { file: string } }>('/ui/:file', async (request, reply) => {
      const file = page?.assets.get(request.params.file);
      if (file === undefined) throw errors.NOT_FOUND('No such file of the page');
      return sendFile(request, reply, file);
    });
  };
}

/**
 * The HTTP API's contract for people and tools: `GET /openapi.yaml` (openapi.yaml as written,
 * comments and all), `GET /openapi.json` (the same document as JSON) and `/docs`, Swagger UI
 * rendering it (@fastify/swagger in static mode + @fastify/swagger-ui; the only importers of
 * either). Everything is served by this server, offline; "Try it out" calls this server
 * (openapi.yaml's server URL is relative). Open like `/` and the probes: the contract is no
 * secret, and the calls made from the page carry the key given in its Authorize dialog.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import { findProjectRoot } from '../../system/project-root.js';

export const OPENAPI_FILE = 'openapi.yaml';

/**
 * Swagger UI loads only its own files from this server and calls only this server; it sets
 * element styles from script (CSSOM, which style-src does not govern), so no 'unsafe-inline'.
 * The one exception is a <style> element its React tree renders, allowed by its content's hash
 * alone (not by 'unsafe-inline'); a Swagger UI upgrade that changes it shows as a CSP violation
 * in the browser test (test/integration/page-browser.test.ts).
 */
const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The contract, read once: its text as written and the parsed document. */
export function loadOpenApi(root = findProjectRoot()): { text: string; document: Record<string, unknown> } {
  const text = readFileSync(join(root, OPENAPI_FILE), 'utf8');
  return { text, document: parse(text) as Record<string, unknown> };
}

export function docsRoutes(openapi = loadOpenApi()) {
  const json = JSON.stringify(openapi.document);
  return async function register(app: FastifyInstance): Promise<void> {
    // Revalidated on every use (no-cache + the ETag Fastify's static files and these get), so a
    // new release's contract is never read stale.
    app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml; charset=utf-8').header('cache-control', 'no-cache').send(openapi.text));
    app.get('/openapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').header('cache-control', 'no-cache').send(json));

    await app.register(swagger, { mode: 'static', specification: { document: openapi.document as never } });
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: DOCS_CSP,
      uiConfig: {
        // No call to validator.swagger.io (offline, and the page's CSP forbids it).
        validatorUrl: null,
        deepLinking: true,
        defaultModelsExpandDepth: 0,
        displayRequestDuration: true,
        tryItOutEnabled: false,
      },
    });
  };
}

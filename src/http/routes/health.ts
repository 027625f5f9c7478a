/**
 * Probes: liveness answers whenever the event loop turns (inference runs on workers, so it
 * stays fast under load); readiness follows the rule of serving/readiness.ts.
 */
import type { FastifyInstance } from 'fastify';
import { isServerReady, notReadyError } from '../../serving/readiness.js';
import { POLLED_ROUTE } from '../access-log.js';
import type { RouteContext } from '../context.js';

export function healthRoutes(ctx: RouteContext) {
  const ready = () => isServerReady(ctx.registry, ctx.lifecycle);
  const notReady = () => {
    const e = notReadyError(ctx.registry, ctx.lifecycle);
    return { error: e.message, code: e.code };
  };
  return async (app: FastifyInstance) => {
    app.get('/v2/health/live', POLLED_ROUTE, async () => ({ live: true }));
    // KServe v1's server liveness, GET /, is in page.ts: the same URL serves the page to browsers.
    app.get('/v2/health/ready', POLLED_ROUTE, async (_request, reply) => (ready() ? { ready: true } : reply.code(503).send({ ready: false, ...notReady() })));
    app.get('/livez', POLLED_ROUTE, async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok\n'));
    app.get('/readyz', POLLED_ROUTE, async (_request, reply) =>
      ready() ? reply.type('text/plain; charset=utf-8').send('ok\n') : reply.code(503).type('text/plain; charset=utf-8').send(`${notReady().error}\n`),
    );
  };
}

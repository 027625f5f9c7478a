/**
 * Triton's statistics extension: `GET /v2/models/stats` (every served version of every model),
 * `GET /v2/models/{name}/stats` (every served version of it) and
 * `GET /v2/models/{name}/versions/{version}/stats`, answered
 * `{"model_stats": [...]}` as serving/statistics.ts tallies them (its header says what each
 * field measures here). Behind the API key like the other model routes.
 *
 * `/v2/models/stats` is a static path, so the router prefers it to `/v2/models/{name}`: a model
 * called `stats` has no v2 metadata route (as in Triton, whose URL scheme has the same overlap).
 * https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_statistics.md
 */
import type { FastifyInstance } from 'fastify';
import type { ModelView } from '../../serving/model.js';
import type { InferenceStatistics } from '../../serving/statistics.js';
import { guarded, type RouteGuard } from '../auth.js';
import type { RouteContext } from '../context.js';
import { versionsAt, type ModelParams } from './model-metadata.js';

export function statisticsRoutes(ctx: RouteContext, guard: RouteGuard | undefined, statistics: Pick<InferenceStatistics, 'snapshot'>) {
  const hooks = guarded(guard);
  const statsOf = (models: readonly ModelView[]) => ({ model_stats: statistics.snapshot(models) });

  return async (app: FastifyInstance) => {
    app.get('/v2/models/stats', hooks, async () => statsOf(ctx.registry.list()));
    for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
      const template = `${prefix.replace(/:(\w+)/g, '{$1}')}/stats`;
      app.get<{ Params: ModelParams }>(`${prefix}/stats`, { ...hooks, config: { routeTemplate: template } }, async (request) =>
        statsOf(versionsAt(ctx, request.params)),
      );
    }
  };
}

/**
 * `GET /metrics`: Prometheus text, or OpenMetrics when the scraper's `Accept` asks for it.
 *
 * The series name every model, its version and its file's sha256 (`model_info`), so with API
 * keys set the main port asks for one here as on the model routes (Prometheus sends it with
 * `authorization: {credentials_file: ...}` in its scrape config); the route is then rate-limited
 * like them, or it would be a free place to guess keys. The `METRICS_PORT` server takes no
 * `guard`: a port kept off the ingress, for scrapers inside the cluster.
 */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics.js';
import { POLLED_ROUTE } from '../access-log.js';
import { guarded, type RouteGuard } from '../auth.js';

export function metricsRoutes(metrics: Metrics, guard?: RouteGuard) {
  const options = guard === undefined ? POLLED_ROUTE : { config: { polled: true }, ...guarded(guard) };
  return async (app: FastifyInstance) => {
    app.get('/metrics', options, async (request, reply) => {
      const { contentType, body } = await metrics.render(request.headers.accept);
      return reply.type(contentType).send(body);
    });
  };
}

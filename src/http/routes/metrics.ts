/** `GET /metrics`: Prometheus text, or OpenMetrics when the scraper's `Accept` asks for it. */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics.js';
import { POLLED_ROUTE } from '../access-log.js';

export function metricsRoutes(metrics: Metrics) {
  return async (app: FastifyInstance) => {
    app.get('/metrics', POLLED_ROUTE, async (request, reply) => {
      const { contentType, body } = await metrics.render(request.headers.accept);
      return reply.type(contentType).send(body);
    });
  };
}

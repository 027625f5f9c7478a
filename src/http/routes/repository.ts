/**
 * Triton's model repository extension over HTTP: `POST /v2/repository/index`,
 * `POST /v2/repository/models/{name}/load` and `.../unload`, answered in Triton's shapes (the
 * index a JSON array; load and unload an empty 200 once the change is done). Allowed only with
 * `MODEL_CONTROL_MODE=explicit` (else MODEL_CONTROL_DISABLED), behind the API key.
 * https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_model_repository.md
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import { parseIndexRequest, parseLoadRequest, parseUnloadRequest } from '../../protocol/repository-request.js';
import type { ModelControl } from '../../serving/model-control.js';
import { guarded, type RouteGuard } from '../auth.js';
import type { RouteContext } from '../context.js';

interface NameParams {
  readonly name: string;
}

export function repositoryRoutes(ctx: RouteContext, guard: RouteGuard | undefined, control: ModelControl | undefined) {
  const allowed = async () => {
    if (ctx.config.modelControlMode !== 'explicit' || control === undefined) {
      throw errors.MODEL_CONTROL_DISABLED(`The repository API needs MODEL_CONTROL_MODE=explicit; this server runs with ${ctx.config.modelControlMode}`);
    }
  };
  const hooks = guarded(guard, allowed);
  return async (app: FastifyInstance) => {
    app.post('/v2/repository/index', hooks, async (request) => control!.index(parseIndexRequest(request.body)));
    app.post<{ Params: NameParams }>('/v2/repository/models/:name/load', hooks, async (request, reply) => {
      const { override } = parseLoadRequest(request.body);
      await control!.load(request.params.name, override);
      return reply.code(200).send();
    });
    app.post<{ Params: NameParams }>('/v2/repository/models/:name/unload', hooks, async (request, reply) => {
      parseUnloadRequest(request.body);
      await control!.unload(request.params.name);
      return reply.code(200).send();
    });
  };
}

/**
 * KServe v1 / TF Serving style routes: `POST /v1/models/{name}:predict`, `POST /v1/predict`
 * (default model) and `GET /v1/models/{name}`, which use a model's highest served version, and,
 * as TF Serving has them, `POST /v1/models/{name}/versions/{version}:predict` and
 * `GET /v1/models/{name}/versions/{version}` for a given one. Answers name the version that
 * answered (`model_version`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../../errors.js';
import type { ModelView, ServedModel } from '../../serving/model.js';
import { isServerReady } from '../../serving/readiness.js';
import { installRawImageParsers, RAW_IMAGE_BODY_TEXT } from '../accepted-bodies.js';
import { guarded, type RouteGuard } from '../auth.js';
import type { LoadShedder } from '../load-shedding.js';
import type { RouteContext } from '../context.js';
import { readImages, readTopK, requestControl } from '../request-inputs.js';
import { setServerTiming } from '../server-timing.js';
import { servedVersionsOf, v1Metadata } from './model-metadata.js';

/** What the predict routes take as a body, for their 415 answers. */
const ACCEPTED_BODIES = `${RAW_IMAGE_BODY_TEXT}, multipart/form-data with image files, or application/json {"instances": [{"b64": "<base64 image>"}]}`;

/** Splits `resnet50:predict` into its model name and verb (the router cannot, see below). */
export function parseModelTarget(target: string): { name: string; verb: string | undefined } {
  const colon = target.lastIndexOf(':');
  return colon < 0 ? { name: target, verb: undefined } : { name: target.slice(0, colon), verb: target.slice(colon + 1) };
}

export function v1Routes(ctx: RouteContext, guard: RouteGuard | undefined, shedLoad: LoadShedder) {
  const limits = ctx.config;
  const hooks = guarded(guard);
  const shed = (pick: (request: FastifyRequest) => ModelView | undefined) => guarded(guard, shedLoad(pick));

  /**
   * `pick` looks the model version up: once before the body is read (an unknown model or a bad
   * top_k is refused first) and again after, since a multipart body is read here and a swap
   * (model-control.ts) may retire the version picked before it has arrived.
   */
  const predict = async (pick: () => ServedModel, request: FastifyRequest, reply: FastifyReply) => {
    const control = requestControl(request, reply, limits);
    readTopK(request.query, pick().output.classes);
    const images = await readImages(request, limits);
    const model = pick();
    const topK = readTopK(request.query, model.output.classes);
    const result = await ctx.service.classify(model, images, topK, control);
    setServerTiming(reply, result.timings);
    request.inferenceLog = { model: model.name, version: model.version, images: images.length, batchSize: result.timings.batchSize, timings: result.timings };
    return { model_name: model.name, model_version: model.version, predictions: result.predictions };
  };

  return async (app: FastifyInstance) => {
    installRawImageParsers(app, limits.uploadMaxBytes);

    app.post('/v1/predict', { ...shed(() => ctx.registry.getDefault()), config: { acceptedBodies: ACCEPTED_BODIES, rawImageBody: true } }, (request, reply) =>
      predict(() => ctx.registry.getDefault(), request, reply),
    );

    // find-my-way cannot match a parameter followed by a literal ":predict" (a colon starts a
    // parameter), so the whole last segment is one parameter and is split here.
    const predictTarget = (name: string | undefined, target: string, version?: string) => {
      const parsed = parseModelTarget(target);
      return parsed.verb === 'predict' ? ctx.registry.get(name ?? parsed.name, version ?? undefined) : undefined;
    };
    const notPredict = (template: string, verb: string | undefined) =>
      errors.NOT_FOUND(`No route POST ${template}${verb === undefined ? '' : ':' + verb.slice(0, 32)}; use ${template}:predict`);

    app.post<{ Params: { target: string } }>(
      '/v1/models/:target',
      {
        ...shed((request) => predictTarget(undefined, (request.params as { target: string }).target)),
        config: { routeTemplate: '/v1/models/{name}:predict', acceptedBodies: ACCEPTED_BODIES, rawImageBody: true },
      },
      (request, reply) => {
        const { name, verb } = parseModelTarget(request.params.target);
        if (verb !== 'predict') throw notPredict('/v1/models/{name}', verb);
        return predict(() => ctx.registry.get(name), request, reply);
      },
    );
    type VersionParams = { name: string; target: string };
    app.post<{ Params: VersionParams }>(
      '/v1/models/:name/versions/:target',
      {
        ...shed((request) => {
          const { name, target } = request.params as VersionParams;
          const version = parseModelTarget(target);
          return version.verb === 'predict' ? ctx.registry.get(name, version.name) : undefined;
        }),
        config: { routeTemplate: '/v1/models/{name}/versions/{version}:predict', acceptedBodies: ACCEPTED_BODIES, rawImageBody: true },
      },
      (request, reply) => {
        const { name: version, verb } = parseModelTarget(request.params.target);
        if (verb !== 'predict') throw notPredict('/v1/models/{name}/versions/{version}', verb);
        return predict(() => ctx.registry.get(request.params.name, version), request, reply);
      },
    );

    // KServe v1's model list: the names of the models served.
    app.get('/v1/models', hooks, async () => ({ models: ctx.registry.names() }));

    const metadata = (name: string, version?: string) => {
      const model = ctx.registry.get(name, version);
      return v1Metadata(model, servedVersionsOf(ctx, model), isServerReady(ctx.registry, ctx.lifecycle));
    };
    app.get<{ Params: { target: string } }>('/v1/models/:target', { ...hooks, config: { routeTemplate: '/v1/models/{name}' } }, async (request) =>
      metadata(request.params.target),
    );
    app.get<{ Params: { name: string; version: string } }>(
      '/v1/models/:name/versions/:version',
      { ...hooks, config: { routeTemplate: '/v1/models/{name}/versions/{version}' } },
      async (request) => metadata(request.params.name, request.params.version),
    );
  };
}

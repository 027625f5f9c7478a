/**
 * KServe v1 / TF Serving style routes: `POST /v1/models/{name}:predict`, `POST /v1/predict`
 * (default model) and `GET /v1/models/{name}`.
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
import { v1Metadata } from './model-metadata.js';

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

  const predict = async (model: ServedModel, request: FastifyRequest, reply: FastifyReply) => {
    const control = requestControl(request, reply, limits);
    const topK = readTopK(request.query, model.output.classes);
    const images = await readImages(request, limits);
    const result = await ctx.service.classify(model, images, topK, control);
    setServerTiming(reply, result.timings);
    request.inferenceLog = { model: model.name, images: images.length, batchSize: result.timings.batchSize, timings: result.timings };
    return { model_name: model.name, model_version: model.version, predictions: result.predictions };
  };

  return async (app: FastifyInstance) => {
    installRawImageParsers(app, limits.uploadMaxBytes);

    app.post('/v1/predict', { ...shed(() => ctx.registry.getDefault()), config: { acceptedBodies: ACCEPTED_BODIES } }, (request, reply) =>
      predict(ctx.registry.getDefault(), request, reply),
    );

    // find-my-way cannot match a parameter followed by a literal ":predict" (a colon starts a
    // parameter), so the whole last segment is one parameter and is split here.
    const predictTarget = (request: FastifyRequest) => {
      const { name, verb } = parseModelTarget((request.params as { target: string }).target);
      return verb === 'predict' ? ctx.registry.get(name) : undefined;
    };
    app.post<{ Params: { target: string } }>('/v1/models/:target', { ...shed(predictTarget), config: { routeTemplate: '/v1/models/{name}:predict', acceptedBodies: ACCEPTED_BODIES } }, (request, reply) => {
      const { name, verb } = parseModelTarget(request.params.target);
      if (verb !== 'predict') throw errors.NOT_FOUND(`No route POST /v1/models/{name}${verb === undefined ? '' : ':' + verb.slice(0, 32)}; use /v1/models/{name}:predict`);
      return predict(ctx.registry.get(name), request, reply);
    });

    // KServe v1's model list: the names of the models served.
    app.get('/v1/models', hooks, async () => ({ models: ctx.registry.list().map((m) => m.name) }));

    app.get<{ Params: { target: string } }>('/v1/models/:target', { ...hooks, config: { routeTemplate: '/v1/models/{name}' } }, async (request) => {
      const model = ctx.registry.get(request.params.target);
      return v1Metadata(model, isServerReady(ctx.registry, ctx.lifecycle));
    });
  };
}

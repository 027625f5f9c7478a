/**
 * Open Inference Protocol (KServe v2) REST routes, with Triton's binary tensor and
 * classification extensions. This edge holds framing and status mapping only: the body is
 * decompressed and decoded into a validated request (protocol/v2-request.ts), run
 * (protocol/v2-infer.ts) and encoded (protocol/v2-response.ts).
 * https://github.com/kserve/kserve/blob/master/docs/predict-api/v2/required_api.md
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { runInfer } from '../../protocol/v2-infer.js';
import { decodeInferRequest, parseHeaderLength, type DecodeLimits } from '../../protocol/v2-request.js';
import { encodeInferResponse } from '../../protocol/v2-response.js';
import { serverMetadata } from '../../protocol/server-metadata.js';
import { isServerReady } from '../../serving/readiness.js';
import { unsupportedContentType } from '../accepted-bodies.js';
import { guarded, type RouteGuard } from '../auth.js';
import type { RouteContext } from '../context.js';
import { decodeBody, encodeBody, responseEncoding } from '../content-encoding.js';
import { defaultJsonBodyLimits } from '../../protocol/json-body.js';
import type { LoadShedder } from '../load-shedding.js';
import { requestControl } from '../request-inputs.js';
import { setServerTiming } from '../server-timing.js';
import { modelAt, servedVersionsOf, v2Metadata, type ModelParams } from './model-metadata.js';

/** What the infer route takes as a body, for its 415 answers. */
const ACCEPTED_BODIES =
  'an inference request as application/json, application/octet-stream (JSON header then binary tensors, with Inference-Header-Content-Length) ' +
  'or no Content-Type; images go in BYTES inputs, or as raw bodies to POST /v1/models/{name}:predict';

export function v2Routes(ctx: RouteContext, guard: RouteGuard | undefined, shedLoad: LoadShedder) {
  const hooks = guarded(guard);
  const { config } = ctx;
  const limits: DecodeLimits = {
    // Every value takes at least two bytes of a body (a digit and a comma; binary FP32 four),
    // so no shape claiming more can be backed by data: refused before anything is allocated.
    maxElements: Math.ceil(config.jsonBodyMaxBytes / 2),
    maxImages: config.maxImagesPerRequest,
    maxImageBytes: config.uploadMaxBytes,
    json: defaultJsonBodyLimits(config.jsonBodyMaxBytes),
  };

  const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    modelAt(ctx, request.params);
    const control = requestControl(request, reply, config);
    const body = await decodeBody(request.body as Buffer, request.headers['content-encoding'] as string | undefined, config.jsonBodyMaxBytes);
    const decoded = decodeInferRequest(body, parseHeaderLength(request.headers['inference-header-content-length']), limits);
    // Looked up again once the body is decompressed: a swap meanwhile may have retired the
    // version found before (model-control.ts); this is the one now served.
    const model = modelAt(ctx, request.params);
    const response = await runInfer(ctx.service, model, decoded, control);
    setServerTiming(reply, response.timings);
    request.inferenceLog = {
      model: model.name,
      version: model.version,
      images: response.outputs[0]?.shape[0] ?? 0,
      batchSize: response.timings.batchSize,
      timings: response.timings,
    };
    const { header, tail } = encodeInferResponse(response);
    let payload = tail.length === 0 ? header : Buffer.concat([header, ...tail]);
    if (tail.length > 0) void reply.header('Inference-Header-Content-Length', String(header.length));
    const encoding = responseEncoding(request.headers['accept-encoding']);
    if (encoding !== undefined) {
      payload = await encodeBody(payload, encoding);
      void reply.header('Content-Encoding', encoding).header('Vary', 'Accept-Encoding');
    }
    return reply.type(tail.length === 0 ? 'application/json' : 'application/octet-stream').send(payload);
  };

  return async (app: FastifyInstance) => {
    // This plugin's own parsers: an inference body is bytes until the route has decoded its
    // coding and framing, whatever the client called it (tritonclient sends no Content-Type,
    // its aio client application/octet-stream, for JSON and binary bodies alike).
    app.removeAllContentTypeParsers();
    const asBytes = { parseAs: 'buffer' as const, bodyLimit: config.jsonBodyMaxBytes };
    app.addContentTypeParser(['application/json', 'application/octet-stream'], asBytes, (_request, body, done) => done(null, body));
    app.addContentTypeParser('*', asBytes, (request, body, done) => {
      if (request.headers['content-type'] === undefined) done(null, body);
      else done(unsupportedContentType(request));
    });

    app.get('/v2', hooks, async () => serverMetadata(ctx.version, config.modelControlMode));

    for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
      const template = prefix.replace(/:(\w+)/g, '{$1}');
      app.get<{ Params: ModelParams }>(prefix, { ...hooks, config: { routeTemplate: template } }, async (request) => {
        const model = modelAt(ctx, request.params);
        return v2Metadata(model, servedVersionsOf(ctx, model));
      });
      app.get<{ Params: ModelParams }>(`${prefix}/ready`, { ...hooks, config: { routeTemplate: `${template}/ready` } }, async (request, reply) => {
        const model = modelAt(ctx, request.params);
        const isReady = isServerReady(ctx.registry, ctx.lifecycle);
        return reply.code(isReady ? 200 : 503).send({ name: model.name, ready: isReady });
      });
      const shed = guarded(
        guard,
        shedLoad((request) => modelAt(ctx, request.params as ModelParams)),
      );
      app.post<{ Params: ModelParams }>(`${prefix}/infer`, { ...shed, config: { routeTemplate: `${template}/infer`, acceptedBodies: ACCEPTED_BODIES } }, infer);
    }
  };
}

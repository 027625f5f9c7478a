/**
 * Open Inference Protocol (KServe v2) REST routes. JSON shapes follow the protocol:
 * https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import { guarded, type RouteGuard } from '../auth.js';
import type { LoadShedder } from '../load-shedding.js';
import type { RouteContext } from '../context.js';
import { decodeBase64Images, requestControl } from '../request-inputs.js';
import { setServerTiming } from '../server-timing.js';
import { v2Metadata } from './model-metadata.js';

interface V2Input {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

interface V2Request {
  id?: unknown;
  inputs?: unknown;
}

/**
 * Visits the leaves of nested arrays in row-major order without recursion: JSON nesting is
 * bounded only by the body size, so a recursive walk would overflow the stack on hostile
 * input. Nesting deeper than `maxDepth` (the tensor's rank) is refused.
 */
function forEachLeaf(data: unknown, maxDepth: number, visit: (leaf: unknown) => void): void {
  if (!Array.isArray(data)) {
    visit(data);
    return;
  }
  const arrays: unknown[][] = [data];
  const positions: number[] = [0];
  while (arrays.length > 0) {
    const depth = arrays.length - 1;
    const array = arrays[depth]!;
    const i = positions[depth]!;
    if (i >= array.length) {
      arrays.pop();
      positions.pop();
      continue;
    }
    positions[depth] = i + 1;
    const v = array[i];
    if (Array.isArray(v)) {
      if (arrays.length >= maxDepth) throw errors.INVALID_TENSOR(`Tensor data is nested deeper than its shape's ${maxDepth} dimensions`);
      arrays.push(v);
      positions.push(0);
    } else {
      visit(v);
    }
  }
}

/**
 * Flattens nested or flat tensor data (row-major), checking every element is a number that
 * stays finite as FP32 (JSON's 1e39 is a finite double but infinity as a float).
 */
export function flattenNumbers(data: unknown, expected: number, maxDepth: number): Float32Array {
  const out = new Float32Array(expected);
  let n = 0;
  forEachLeaf(data, maxDepth, (v) => {
    if (typeof v !== 'number' || !Number.isFinite(Math.fround(v))) throw errors.INVALID_TENSOR('Tensor data must hold only numbers within FP32 range');
    if (n >= expected) throw errors.INVALID_TENSOR(`Tensor data holds more than the ${expected} values its shape says`);
    out[n++] = v;
  });
  if (n !== expected) throw errors.INVALID_TENSOR(`Tensor data holds ${n} values; its shape says ${expected}`);
  return out;
}

/** The elements of nested or flat BYTES data, refusing more than `expected` early. */
function flattenElements(data: unknown, expected: number, maxDepth: number): unknown[] {
  const out: unknown[] = [];
  forEachLeaf(data, maxDepth, (v) => {
    if (out.length >= expected) throw errors.INVALID_TENSOR(`BYTES data holds more than the ${expected} elements its shape says`);
    out.push(v);
  });
  if (out.length !== expected) throw errors.INVALID_TENSOR(`BYTES data holds ${out.length} elements; its shape says ${expected}`);
  return out;
}

/**
 * A client's value, quoted for a message: strings cut to `max` characters, anything else by its
 * type. Never `String(value)`: `{"toString": 1}` makes that throw.
 */
export function quoteValue(value: unknown, max = 64): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, max));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (value === undefined) return '(none)';
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function parseShape(shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw errors.INVALID_TENSOR('`shape` must be a non-empty array of non-negative integers');
  }
  return shape as number[];
}

export function v2Routes(ctx: RouteContext, guard: RouteGuard | undefined, shedLoad: LoadShedder) {
  const hooks = guarded(guard);
  const limits = ctx.config;

  const ready = () => ctx.registry.ready && !ctx.lifecycle.draining;

  return async (app: FastifyInstance) => {
    app.get('/v2', hooks, async () => ({ name: 'resnet-serve', version: ctx.version, extensions: [] as string[] }));

    app.get<{ Params: { name: string } }>('/v2/models/:name', hooks, async (request) => v2Metadata(ctx.registry.get(request.params.name)));
    app.get<{ Params: { name: string; version: string } }>('/v2/models/:name/versions/:version', hooks, async (request) => {
      const model = ctx.registry.get(request.params.name);
      if (request.params.version !== model.version) throw errors.MODEL_NOT_FOUND(`Model ${model.name} has no version ${JSON.stringify(request.params.version.slice(0, 64))}`);
      return v2Metadata(model);
    });

    app.get<{ Params: { name: string } }>('/v2/models/:name/ready', hooks, async (request, reply) => {
      const model = ctx.registry.get(request.params.name);
      const isReady = ready();
      return reply.code(isReady ? 200 : 503).send({ name: model.name, ready: isReady });
    });


    const shed = guarded(guard, shedLoad((request) => ctx.registry.get((request.params as { name: string }).name)));
    app.post<{ Params: { name: string } }>('/v2/models/:name/infer', { ...shed, config: { routeTemplate: '/v2/models/{name}/infer' } }, async (request, reply) => {
      const model = ctx.registry.get(request.params.name);
      const body = request.body as V2Request | undefined;
      if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray(body.inputs)) {
        throw errors.INVALID_REQUEST('Expected an inference request {"inputs": [{"name", "shape", "datatype", "data"}]}');
      }
      if (body.id !== undefined && typeof body.id !== 'string') throw errors.INVALID_REQUEST('`id` must be a string');
      if (body.inputs.length !== 1) throw errors.INVALID_TENSOR(`Model ${model.name} takes exactly one input, got ${body.inputs.length}`);
      const input = body.inputs[0] as V2Input;
      if (typeof input !== 'object' || input === null) throw errors.INVALID_TENSOR('inputs[0] must be an object');
      const shape = parseShape(input.shape);
      const control = requestControl(request, reply, limits);

      let result;
      if (input.datatype === 'BYTES') {
        // Each element is one base64-encoded image (JPEG, PNG, ...), decoded and preprocessed
        // exactly as v1 predict does.
        const count = shape.reduce((a, b) => a * b, 1);
        if (count > limits.maxImagesPerRequest) throw errors.TOO_MANY_IMAGES(`A request may carry at most ${limits.maxImagesPerRequest} images, got ${count}`);
        const elements = flattenElements(input.data, count, shape.length);
        const images = decodeBase64Images(elements, (i) => `inputs[0].data[${i}]`, limits);
        result = await ctx.service.inferImages(model, images, control);
      } else if (input.datatype === 'FP32') {
        if (input.name !== model.input.name) {
          throw errors.INVALID_TENSOR(`Model ${model.name} has no input ${quoteValue(input.name)}; its input is ${JSON.stringify(model.input.name)}`);
        }
        const itemShape = model.input.shape.slice(1);
        if (shape.length !== model.input.shape.length || shape[0]! < 1 || shape.slice(1).some((d, i) => d !== itemShape[i])) {
          throw errors.INVALID_TENSOR(`Input shape [${shape.join(', ')}] does not match the model's [-1, ${itemShape.join(', ')}]`);
        }
        const count = shape[0]!;
        if (count > limits.maxImagesPerRequest) throw errors.TOO_MANY_IMAGES(`A request may carry at most ${limits.maxImagesPerRequest} items, got ${count}`);
        const data = flattenNumbers(input.data, count * model.input.itemSize, shape.length);
        result = await ctx.service.inferTensor(model, data, count, control);
      } else {
        throw errors.INVALID_TENSOR(`Unsupported datatype ${quoteValue(input.datatype, 16)}: send FP32 tensors or BYTES (base64 images)`);
      }
      // JSON has no NaN or infinity: an input large enough to overflow the network (possible
      // only with raw FP32 tensors) would otherwise be answered with nulls.
      if (!result.data.every(Number.isFinite)) {
        throw errors.INVALID_TENSOR(`The model's output for this input is not finite; its values are out of the range model ${model.name} works in`);
      }
      setServerTiming(reply, result.timings);
      request.inferenceLog = { model: model.name, images: result.shape[0], batchSize: result.timings.batchSize, timings: result.timings };
      return {
        model_name: model.name,
        model_version: model.version,
        ...(body.id !== undefined ? { id: body.id } : {}),
        outputs: [{ name: model.output.name, datatype: 'FP32', shape: result.shape, data: Array.from(result.data) }],
      };
    });
  };
}

/** Model metadata as the v1 and v2 routes render it, and how a route finds its model. */
import type { TensorInfo } from '../../inference/onnx-binding.js';
import type { ModelView, ServedModel } from '../../serving/model.js';
import type { RouteContext } from '../context.js';

/** Path parameters of a model route: its name, and the version when the path names one. */
export interface ModelParams {
  name: string;
  version?: string;
}

/**
 * The model a route names, at the version it names, or its highest served version when it
 * names none (an empty version, as gRPC's default `model_version`, names none).
 */
export function modelAt(ctx: Pick<RouteContext, 'registry'>, params: ModelParams): ServedModel {
  return ctx.registry.get(params.name, params.version === '' ? undefined : params.version);
}

/**
 * The versions a statistics request names: the one it names, or, as Triton answers, every
 * version served when it names none.
 */
export function versionsAt(ctx: Pick<RouteContext, 'registry'>, params: ModelParams): readonly ServedModel[] {
  return params.version === undefined || params.version === '' ? ctx.registry.versions(params.name) : [modelAt(ctx, params)];
}

/** The versions listed beside a model's metadata: every served version, highest first. */
export const servedVersionsOf = (ctx: Pick<RouteContext, 'registry'>, model: ModelView): string[] => ctx.registry.versions(model.name).map((m) => m.version);

const DATATYPES: Record<string, string> = {
  float32: 'FP32',
  float16: 'FP16',
  float64: 'FP64',
  int8: 'INT8',
  uint8: 'UINT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  bool: 'BOOL',
  string: 'BYTES',
};

/** The Open Inference Protocol's datatype name for an onnxruntime element type. */
export function v2Datatype(type: string): string {
  return DATATYPES[type] ?? type.toUpperCase();
}

/** Graph dimensions as the v2 protocol writes them: -1 for a dynamic one. */
export function v2Shape(info: TensorInfo): number[] {
  return info.shape.map((d) => (typeof d === 'number' ? d : -1));
}

/** `model` (the version that answers the route) and `versions`, every version of it served. */
export function v1Metadata(model: ModelView, versions: readonly string[], ready: boolean) {
  return {
    name: model.name,
    version: model.version,
    versions: [...versions],
    ready,
    platform: 'onnxruntime_onnx',
    execution_provider: model.executionProvider,
    sha256: model.sha256,
    trained: model.trained ?? null,
    description: model.description ?? null,
    inputs: model.graphInputs.map((i) => ({ name: i.name, datatype: v2Datatype(i.type), shape: v2Shape(i) })),
    outputs: model.graphOutputs.map((o, n) => ({
      name: o.name,
      datatype: v2Datatype(o.type),
      shape: n === 0 ? [...model.output.shape] : v2Shape(o),
    })),
    preprocess: model.input.preprocess,
    output_kind: model.outputKind,
    labels: model.labels?.length ?? 0,
    classes: model.output.classes,
    max_batch_size: model.maxBatchSize,
    workers: model.workers,
  };
}

/** The Open Inference Protocol's model metadata of `model`; `versions` lists every version served. */
export function v2Metadata(model: ModelView, versions: readonly string[]) {
  const meta = v1Metadata(model, versions, true);
  return {
    name: model.name,
    versions: meta.versions,
    platform: meta.platform,
    inputs: meta.inputs,
    outputs: meta.outputs,
    // The protocol's parameters hold strings, numbers and booleans only: an unknown
    // `trained` is left out rather than null.
    parameters: {
      execution_provider: model.executionProvider,
      sha256: model.sha256,
      max_batch_size: model.maxBatchSize,
      ...(model.trained !== undefined ? { trained: model.trained } : {}),
    },
  };
}

/**
 * Runs a validated v2 inference request on the data plane and builds its answer, for every
 * edge (HTTP today, gRPC next): BYTES inputs are encoded images, decoded and preprocessed like
 * every other image input; FP32 inputs are preprocessed tensors. Requested outputs are
 * checked against the model's; an output asked for with `classification: N` comes back as
 * Triton's classification extension has it: BYTES `[batch, N]` of `"<value>:<index>[:<label>]"`,
 * highest first, the value being the output's own (not a probability).
 */
import { errors } from '../errors.js';
import type { RequestControl, StageTimings, InferenceService } from '../serving/inference-service.js';
import type { ServedModel } from '../serving/model.js';
import type { InferRequest } from './v2-request.js';

export interface Fp32Output {
  readonly name: string;
  readonly datatype: 'FP32';
  readonly shape: readonly number[];
  readonly data: Float32Array;
  /** Answer in binary (the binary tensor extension) rather than JSON. */
  readonly binary: boolean;
}

export interface BytesOutput {
  readonly name: string;
  readonly datatype: 'BYTES';
  readonly shape: readonly number[];
  readonly elements: readonly string[];
  readonly binary: boolean;
}

export type InferOutput = Fp32Output | BytesOutput;

export interface InferResponse {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id: string | undefined;
  readonly outputs: readonly InferOutput[];
  readonly timings: StageTimings;
}

/**
 * The top `count` classes of each row, as Triton formats them: the value with six decimals
 * (C++'s std::to_string of a float), the index, and the label when the model has labels.
 */
export function classificationStrings(rows: Float32Array, classes: number, count: number, labels: readonly string[] | undefined): string[] {
  const n = Math.min(count, classes);
  const out: string[] = [];
  const order = Array.from({ length: classes }, (_, i) => i);
  for (let r = 0; r < rows.length / classes; r++) {
    const row = rows.subarray(r * classes, (r + 1) * classes);
    // Stable: equal values keep index order, as Triton's does.
    const top = [...order].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, n);
    for (const i of top) out.push(`${row[i]!.toFixed(6)}:${i}${labels?.[i] !== undefined ? `:${labels[i]}` : ''}`);
  }
  return out;
}

export async function runInfer(service: InferenceService, model: ServedModel, request: InferRequest, control: RequestControl): Promise<InferResponse> {
  if (request.inputs.length !== 1) throw errors.INVALID_TENSOR(`Model ${model.name} takes exactly one input, got ${request.inputs.length}`);
  const requested = request.outputs ?? [{ name: model.output.name, binary: undefined, classification: undefined }];
  for (const o of requested) {
    if (o.name !== model.output.name)
      throw errors.INVALID_REQUEST(
        `Model ${model.name} has no output ${JSON.stringify(o.name.slice(0, 64))}; its output is ${JSON.stringify(model.output.name)}`,
      );
  }
  const input = request.inputs[0]!;
  let result;
  if (input.datatype === 'BYTES') {
    result = await service.inferImages(model, input.elements, control);
  } else {
    if (input.name !== model.input.name) {
      throw errors.INVALID_TENSOR(
        `Model ${model.name} has no input ${JSON.stringify(input.name.slice(0, 64))}; its input is ${JSON.stringify(model.input.name)}`,
      );
    }
    const itemShape = model.input.shape.slice(1);
    const { shape } = input;
    if (shape.length !== model.input.shape.length || shape[0]! < 1 || shape.slice(1).some((d, i) => d !== itemShape[i])) {
      throw errors.INVALID_TENSOR(`Input shape [${shape.join(', ')}] does not match the model's [-1, ${itemShape.join(', ')}]`);
    }
    result = await service.inferTensor(model, input.data, shape[0]!, control);
  }
  const [batch, classes] = result.shape;
  const outputs = requested.map((o): InferOutput => {
    const binary = o.binary ?? request.binaryOutput;
    if (o.classification !== undefined) {
      const count = Math.min(o.classification, classes);
      return { name: o.name, datatype: 'BYTES', shape: [batch, count], elements: classificationStrings(result.data, classes, count, model.labels), binary };
    }
    // JSON has no NaN or infinity: an input large enough to overflow the network (possible
    // only with raw FP32 tensors) would otherwise be answered with nulls.
    if (!binary && !result.data.every(Number.isFinite)) {
      throw errors.INVALID_TENSOR(`The model's output for this input is not finite; its values are out of the range model ${model.name} works in`);
    }
    return { name: o.name, datatype: 'FP32', shape: [batch, classes], data: result.data, binary };
  });
  return { modelName: model.name, modelVersion: model.version, id: request.id, outputs, timings: result.timings };
}

/**
 * The one module that imports the ONNX protobuf code (`onnx-proto`: protobufjs static code
 * generated from onnx.proto v1.10). It converts between the plain `OnnxModel` description and
 * ONNX bytes; nothing else in the project sees protobuf types.
 */
import { endianness } from 'node:os';
import onnxProto from 'onnx-proto';
import type { Attribute, Dim, ElementType, GraphNode, Initializer, OnnxModel, ValueInfo } from './onnx-graph.js';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

// Raw tensor data in ONNX is little-endian; typed arrays use the host's byte order.
const littleEndianHost = endianness() === 'LE';

/** ONNX IR version that goes with an opset of the default domain (onnx/docs/Versioning.md). */
function irVersionFor(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 17) return 8;
  return 9;
}

type LongLike = number | { toNumber(): number };

function toNumber(value: LongLike | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

function dataTypeOf(type: ElementType): number {
  return type === 'float32' ? DataType.FLOAT : DataType.INT64;
}

function elementTypeOf(dataType: number | null | undefined, what: string): ElementType {
  if (dataType === DataType.FLOAT) return 'float32';
  if (dataType === DataType.INT64) return 'int64';
  throw new Error(`${what}: element type ${String(dataType)} is not supported (only float32 and int64)`);
}

function littleEndianBytes(data: Float32Array | BigInt64Array): Uint8Array {
  if (littleEndianHost) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return out;
}

function encodeValueInfo(info: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: dataTypeOf(info.elementType),
        shape: { dim: info.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function encodeAttribute(name: string, attribute: Attribute): onnxProto.onnx.IAttributeProto {
  switch (attribute.kind) {
    case 'int':
      return { name, type: AttributeType.INT, i: attribute.value };
    case 'ints':
      return { name, type: AttributeType.INTS, ints: [...attribute.value] };
    case 'float':
      return { name, type: AttributeType.FLOAT, f: attribute.value };
    case 'string':
      return { name, type: AttributeType.STRING, s: Buffer.from(attribute.value, 'utf8') };
  }
}

function encodeNode(node: GraphNode): onnxProto.onnx.INodeProto {
  if (node.unsupportedAttributes?.length) {
    throw new Error(`node ${node.name} cannot be encoded: its attributes ${node.unsupportedAttributes.join(', ')} were not decoded`);
  }
  return {
    name: node.name,
    opType: node.opType,
    input: [...node.inputs],
    output: [...node.outputs],
    attribute: node.attributes.map(([name, a]) => encodeAttribute(name, a)),
  };
}

function encodeInitializer(init: Initializer): onnxProto.onnx.ITensorProto {
  return {
    name: init.name,
    dims: [...init.dims],
    dataType: dataTypeOf(init.elementType),
    rawData: littleEndianBytes(init.data),
  };
}

/** Serialises a model to ONNX protobuf bytes. The same model always gives the same bytes. */
export function encodeModel(model: OnnxModel): Uint8Array {
  const { graph } = model;
  const message: onnxProto.onnx.IModelProto = {
    irVersion: irVersionFor(model.opsetVersion),
    opsetImport: [{ domain: '', version: model.opsetVersion }],
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    docString: model.docString,
    metadataProps: model.metadata.map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes.map(encodeNode),
      initializer: graph.initializers.map(encodeInitializer),
      input: graph.inputs.map(encodeValueInfo),
      output: graph.outputs.map(encodeValueInfo),
    },
  };
  return onnx.ModelProto.encode(message).finish();
}

function decodeValueInfo(info: onnxProto.onnx.IValueInfoProto): ValueInfo {
  const name = info.name ?? '';
  const tensorType = info.type?.tensorType;
  if (!tensorType) throw new Error(`graph value ${name} is not a tensor`);
  const shape: Dim[] = (tensorType.shape?.dim ?? []).map((d) =>
    d.dimParam ? d.dimParam : d.dimValue !== null && d.dimValue !== undefined ? toNumber(d.dimValue) : '?',
  );
  return { name, elementType: elementTypeOf(tensorType.elemType, `graph value ${name}`), shape };
}

function decodeAttribute(a: onnxProto.onnx.IAttributeProto): Attribute | undefined {
  switch (a.type) {
    case AttributeType.INT:
      return { kind: 'int', value: toNumber(a.i) };
    case AttributeType.INTS:
      return { kind: 'ints', value: (a.ints ?? []).map(toNumber) };
    case AttributeType.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case AttributeType.STRING:
      return { kind: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    default:
      // Tensor- and graph-valued attributes are outside the subset this reader describes.
      return undefined;
  }
}

function decodeNode(n: onnxProto.onnx.INodeProto): GraphNode {
  const attributes: Array<readonly [string, Attribute]> = [];
  const unsupported: string[] = [];
  for (const a of n.attribute ?? []) {
    const value = decodeAttribute(a);
    if (value) attributes.push([a.name ?? '', value]);
    else unsupported.push(a.name ?? '');
  }
  const node = { name: n.name ?? '', opType: n.opType ?? '', inputs: n.input ?? [], outputs: n.output ?? [], attributes };
  return unsupported.length > 0 ? { ...node, unsupportedAttributes: unsupported } : node;
}

function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

function decodeInitializer(t: onnxProto.onnx.ITensorProto): Initializer {
  const name = t.name ?? '';
  const dims = (t.dims ?? []).map(toNumber);
  const elementType = elementTypeOf(t.dataType, `initializer ${name}`);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new Error(`initializer ${name} keeps its data in an external file, which is not supported`);
  }
  const raw = t.rawData && t.rawData.byteLength > 0 ? t.rawData : undefined;
  if (elementType === 'float32') {
    let data: Float32Array;
    if (raw) {
      data = new Float32Array(alignedCopy(raw));
      if (!littleEndianHost) {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        data = data.map((_, i) => view.getFloat32(i * 4, true));
      }
    } else {
      data = Float32Array.from(t.floatData ?? []);
    }
    return { name, elementType, dims, data };
  }
  let data: BigInt64Array;
  if (raw) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    data = new BigInt64Array(raw.byteLength / 8).map((_, i) => view.getBigInt64(i * 8, true));
  } else {
    data = BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(toNumber(v))));
  }
  return { name, elementType, dims, data };
}

/**
 * Reads ONNX bytes into the plain description. Graph inputs that are also initializers
 * (older exporters list weights as inputs) are left out of `inputs`. A graph in the subset
 * this project writes decodes and encodes back to the same bytes.
 */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph;
  if (!g) throw new Error('the ONNX model has no graph');
  const initializers = (g.initializer ?? []).map(decodeInitializer);
  const initializerNames = new Set(initializers.map((i) => i.name));
  const defaultOpset = (m.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return {
    opsetVersion: toNumber(defaultOpset?.version),
    producerName: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    docString: m.docString ?? '',
    metadata: (m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''] as const),
    graph: {
      name: g.name ?? '',
      inputs: (g.input ?? []).filter((i) => !initializerNames.has(i.name ?? '')).map(decodeValueInfo),
      outputs: (g.output ?? []).map(decodeValueInfo),
      initializers,
      nodes: (g.node ?? []).map(decodeNode),
    },
  };
}

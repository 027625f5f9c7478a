/**
 * Collects nodes and initializers into an `OnnxGraph`, one operator at a time. Each helper
 * returns the name of the tensor it produces, which is the node's own name unless another is
 * given, so a tensor can be found by the layer that made it (e.g. `layer2.0.out`).
 */
import type { Attribute, GraphNode, Initializer, OnnxGraph, ValueInfo } from './onnx-graph.js';
import { elementCount } from './onnx-graph.js';

/** Largest int64, which ONNX `Slice` reads as "to the end of the axis". */
const INT64_MAX = 9223372036854775807n;

export interface ConvSpec {
  /** Weight, `[outChannels, inChannels, kernel, kernel]`, row-major. */
  readonly weight: Float32Array;
  /** One value per output channel. */
  readonly bias: Float32Array;
  readonly outChannels: number;
  readonly inChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
}

export class GraphBuilder {
  private readonly nodes: GraphNode[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];

  constructor(private readonly name: string) {}

  input(info: ValueInfo): string {
    this.claim(info.name);
    this.inputs.push(info);
    return info.name;
  }

  /** Declares a graph output; a node must produce a tensor of that name. */
  output(info: ValueInfo): void {
    this.outputs.push(info);
  }

  floatInitializer(name: string, dims: readonly number[], data: Float32Array): string {
    if (data.length !== elementCount(dims)) {
      throw new Error(`initializer ${name}: ${data.length} values do not fill dims [${dims.join(', ')}]`);
    }
    this.claim(name);
    this.initializers.push({ name, elementType: 'float32', dims: [...dims], data });
    return name;
  }

  int64Initializer(name: string, values: readonly bigint[]): string {
    this.claim(name);
    this.initializers.push({ name, elementType: 'int64', dims: [values.length], data: BigInt64Array.from(values) });
    return name;
  }

  /** Adds one node; its output tensor is named `output`, which defaults to the node's name. */
  node(opType: string, name: string, inputs: readonly string[], attributes: GraphNode['attributes'] = [], output = name): string {
    this.claim(name);
    if (output !== name) this.claim(output);
    this.nodes.push({ name, opType, inputs: [...inputs], outputs: [output], attributes });
    return output;
  }

  /** Convolution with bias (batch norm already folded in); parameters named `<name>.weight` / `.bias`. */
  conv(name: string, x: string, spec: ConvSpec): string {
    const { outChannels, inChannels, kernel, stride, pad } = spec;
    if (spec.bias.length !== outChannels) throw new Error(`conv ${name}: bias has ${spec.bias.length} values, expected ${outChannels}`);
    const weight = this.floatInitializer(`${name}.weight`, [outChannels, inChannels, kernel, kernel], spec.weight);
    const bias = this.floatInitializer(`${name}.bias`, [outChannels], spec.bias);
    return this.node(
      'Conv',
      name,
      [x, weight, bias],
      [
        ['kernel_shape', ints([kernel, kernel])],
        ['pads', ints([pad, pad, pad, pad])],
        ['strides', ints([stride, stride])],
      ],
    );
  }

  relu(name: string, x: string): string {
    return this.node('Relu', name, [x]);
  }

  add(name: string, a: string, b: string): string {
    return this.node('Add', name, [a, b]);
  }

  maxPool(name: string, x: string, kernel: number, stride: number, pad: number): string {
    return this.node(
      'MaxPool',
      name,
      [x],
      [
        ['kernel_shape', ints([kernel, kernel])],
        ['pads', ints([pad, pad, pad, pad])],
        ['strides', ints([stride, stride])],
      ],
    );
  }

  globalAveragePool(name: string, x: string): string {
    return this.node('GlobalAveragePool', name, [x]);
  }

  flatten(name: string, x: string): string {
    return this.node('Flatten', name, [x], [['axis', int(1)]]);
  }

  /** `y = x · Wᵀ + b` with `W` stored `[outFeatures, inFeatures]`, as PyTorch's Linear does. */
  linear(name: string, x: string, weight: Float32Array, bias: Float32Array, inFeatures: number, outFeatures: number, output = name): string {
    const w = this.floatInitializer(`${name}.weight`, [outFeatures, inFeatures], weight);
    const b = this.floatInitializer(`${name}.bias`, [outFeatures], bias);
    return this.node(
      'Gemm',
      name,
      [x, w, b],
      [
        ['alpha', float(1)],
        ['beta', float(1)],
        ['transB', int(1)],
      ],
      output,
    );
  }

  /** Keeps every `step`-th row and column of an NCHW tensor (`x[:, :, ::step, ::step]`). */
  subsample(name: string, x: string, step: number): string {
    const starts = this.int64Initializer(`${name}.starts`, [0n, 0n]);
    const ends = this.int64Initializer(`${name}.ends`, [INT64_MAX, INT64_MAX]);
    const axes = this.int64Initializer(`${name}.axes`, [2n, 3n]);
    const steps = this.int64Initializer(`${name}.steps`, [BigInt(step), BigInt(step)]);
    return this.node('Slice', name, [x, starts, ends, axes, steps]);
  }

  /** Adds `before` zero channels in front of an NCHW tensor's channels and `after` behind them. */
  padChannels(name: string, x: string, before: number, after: number): string {
    const pads = this.int64Initializer(`${name}.pads`, [0n, BigInt(before), 0n, 0n, 0n, BigInt(after), 0n, 0n]);
    return this.node('Pad', name, [x, pads], [['mode', { kind: 'string', value: 'constant' }]]);
  }

  build(): OnnxGraph {
    return {
      name: this.name,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      initializers: [...this.initializers],
      nodes: [...this.nodes],
    };
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`graph name ${name} is used twice`);
    this.names.add(name);
  }
}

function int(value: number): Attribute {
  return { kind: 'int', value };
}

function ints(value: readonly number[]): Attribute {
  return { kind: 'ints', value };
}

function float(value: number): Attribute {
  return { kind: 'float', value };
}

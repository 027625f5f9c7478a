/**
 * A plain, protobuf-free description of an ONNX model: the subset of ONNX the model tools
 * write and read (dense float32/int64 tensors, int/ints/float/string attributes, tensor value
 * infos). `onnx-proto.ts` turns it into bytes and back; everything else works on these types.
 */

export type ElementType = 'float32' | 'int64';

/** A dimension: a fixed size, or a symbolic name such as `batch`. */
export type Dim = number | string;

export interface ValueInfo {
  readonly name: string;
  readonly elementType: ElementType;
  readonly shape: readonly Dim[];
}

export type Attribute =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string };

export interface GraphNode {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Written in the order given, so a graph encodes to the same bytes every time. */
  readonly attributes: ReadonlyArray<readonly [string, Attribute]>;
  /**
   * Attributes a decoded node had that this description cannot hold (tensor- or graph-valued,
   * e.g. `Constant`'s `value`); such a node can be inspected but not encoded again.
   */
  readonly unsupportedAttributes?: readonly string[];
}

export type Initializer =
  | { readonly name: string; readonly elementType: 'float32'; readonly dims: readonly number[]; readonly data: Float32Array }
  | { readonly name: string; readonly elementType: 'int64'; readonly dims: readonly number[]; readonly data: BigInt64Array };

export interface OnnxGraph {
  readonly name: string;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly initializers: readonly Initializer[];
  /** In topological order. */
  readonly nodes: readonly GraphNode[];
}

export interface OnnxModel {
  readonly graph: OnnxGraph;
  /** Version of the default (`ai.onnx`) operator set. */
  readonly opsetVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString: string;
  /** ONNX `metadata_props`, in the order given. */
  readonly metadata: ReadonlyArray<readonly [string, string]>;
}

/** Number of elements of a tensor with these dimensions. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

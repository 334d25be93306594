/**
 * TypeScript shapes of decoded ONNX messages (see codec.ts for how values are represented).
 * Enum values come from `onnx-proto`; field names are camelCase as in `onnx-proto`.
 * Every message may also carry `$unknown` (non-enumerable): fields newer than our schema, verbatim.
 */
import { onnx } from 'onnx-proto';

export const DataType = onnx.TensorProto.DataType;
export const AttributeType = onnx.AttributeProto.AttributeType;
export const DataLocation = onnx.TensorProto.DataLocation;

export type Int64 = number | bigint;

export interface StringStringEntry {
  key?: string;
  value?: string;
}

export interface TensorProto {
  dims: Int64[];
  dataType?: number;
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  floatData: Float32Array | number[];
  int32Data: Int32Array | number[];
  int64Data: BigInt64Array | Int64[];
  doubleData: Float64Array | number[];
  uint64Data: BigUint64Array | Int64[];
  stringData: Uint8Array[];
  externalData: StringStringEntry[];
  dataLocation?: number;
  metadataProps: StringStringEntry[];
  [extra: string]: unknown;
}

export interface AttributeProto {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  [extra: string]: unknown;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute: AttributeProto[];
  docString?: string;
  [extra: string]: unknown;
}

export interface Dimension {
  dimValue?: Int64;
  dimParam?: string;
  denotation?: string;
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: { dim: Dimension[] } };
  [extra: string]: unknown;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  docString?: string;
  [extra: string]: unknown;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  [extra: string]: unknown;
}

export interface OperatorSetId {
  domain?: string;
  version?: Int64;
}

export interface ModelProto {
  irVersion?: Int64;
  opsetImport: OperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  graph?: GraphProto;
  metadataProps: StringStringEntry[];
  [extra: string]: unknown;
}

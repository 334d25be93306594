/**
 * Tensor data access: element sizes, validated byte sizes, float32 views without needless copies,
 * and constructors for new initializers.
 */
import { DataType, type Int64, type TensorProto } from './types.js';
import { BortError, quoteName } from '../errors.js';

/** Bytes per element in raw_data for each data type (0: not a fixed-size type). */
const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.UINT16]: 2, [DataType.INT16]: 2,
  [DataType.INT32]: 4, [DataType.INT64]: 8, [DataType.BOOL]: 1, [DataType.FLOAT16]: 2, [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4, [DataType.UINT64]: 8, [DataType.COMPLEX64]: 8, [DataType.COMPLEX128]: 16, [DataType.BFLOAT16]: 2,
  17: 1, 18: 1, 19: 1, 20: 1,
};

/** ONNX data type names as messages show them (TensorProto.DataType 1..23). */
const TYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128', 16: 'bfloat16',
  17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4', 23: 'float4e2m1',
};

/** 4-bit types: two values per byte. */
const FOUR_BIT = new Set([21, 22, 23]);

/** A data type's name ('float32', 'int64'...), or 'type N' for codes ONNX does not define. */
export function typeName(dataType: number | undefined): string {
  return TYPE_NAMES[dataType ?? 0] ?? `type ${dataType ?? 0}`;
}

const damaged = 'the model file is damaged or not an ONNX model';

export function toNumber(v: Int64 | undefined, what: string): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new BortError(`${what} ${String(v)} is out of range`, damaged);
  return n;
}

export function tensorDims(t: TensorProto): number[] {
  return Array.from(t.dims, (d) => {
    const n = toNumber(d, `tensor ${quoteName(t.name)} dimension`);
    if (n < 0) throw new BortError(`tensor ${quoteName(t.name)} has a negative dimension ${n}`, damaged);
    return n;
  });
}

/** Element count; refuses shapes whose product passes 2^53 (no file holds that many values). */
export function tensorNumel(t: TensorProto): number {
  const dims = tensorDims(t);
  let n = 1;
  for (const d of dims) n *= d;
  if (!Number.isSafeInteger(n)) {
    throw new BortError(`tensor ${quoteName(t.name)} of shape [${dims.join(', ')}] has more elements than any file can hold`, damaged);
  }
  return n;
}

/** Bytes one value of this data type takes (a 4-bit type counts 1/2); refuses types without a fixed size. */
export function elementBytes(dataType: number): number {
  if (FOUR_BIT.has(dataType)) return 0.5;
  const size = ELEMENT_BYTES[dataType];
  if (!size) throw new BortError(`a weight of ${typeName(dataType)} has no fixed size`, damaged);
  return size;
}

/**
 * Bytes the tensor's values take in raw_data (or in an external data file), from its dims and data
 * type alone; refuses types without a fixed size (string) and codes ONNX does not define.
 */
export function tensorByteSize(t: TensorProto): number {
  const numel = tensorNumel(t);
  const dt = t.dataType ?? 0;
  if (FOUR_BIT.has(dt)) return Math.ceil(numel / 2);
  const size = ELEMENT_BYTES[dt];
  if (!size) throw new BortError(`tensor ${quoteName(t.name)} has raw data of ${typeName(dt)}, which has no fixed size`, damaged);
  const bytes = numel * size;
  if (!Number.isSafeInteger(bytes)) throw new BortError(`tensor ${quoteName(t.name)} is larger than any file can hold`, damaged);
  return bytes;
}

/** Number of values held in the typed field that carries this tensor's data when raw_data is absent. */
function typedFieldLength(t: TensorProto): number {
  switch (t.dataType) {
    case DataType.FLOAT: case DataType.COMPLEX64: return t.floatData.length;
    case DataType.DOUBLE: case DataType.COMPLEX128: return t.doubleData.length;
    case DataType.INT64: return t.int64Data.length;
    case DataType.UINT32: case DataType.UINT64: return t.uint64Data.length;
    case DataType.STRING: return t.stringData.length;
    default: return t.int32Data.length;
  }
}

/**
 * Checks that the data a tensor carries matches its dims and type, before anything reads it: a data
 * type ONNX defines, dims that are whole, non-negative and of a sane product, and exactly as many bytes
 * (raw_data) or values (typed fields) as the shape needs. External tensors must already have been
 * resolved (io.ts does that).
 */
export function validateTensor(t: TensorProto): void {
  const dt = t.dataType ?? 0;
  if (!TYPE_NAMES[dt]) {
    throw new BortError(dt === 0 ? `tensor ${quoteName(t.name)} has no data type` : `tensor ${quoteName(t.name)} has data type ${dt}, which ONNX does not define`, damaged);
  }
  const numel = tensorNumel(t);
  if (t.rawData && t.rawData.byteLength > 0) {
    const expected = tensorByteSize(t);
    if (t.rawData.byteLength !== expected) throw sizeError(t, expected, t.rawData.byteLength);
    return;
  }
  if (FOUR_BIT.has(dt)) {
    // two values per int32_data entry or one: either way, some data must be there
    if (numel > 0 && t.int32Data.length === 0) throw sizeError(t, numel, 0, 'values');
    return;
  }
  const n = typedFieldLength(t);
  const complex = dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128;
  const expected = complex ? numel * 2 : numel;
  if (n !== expected) throw sizeError(t, expected, n, 'values');
}

function sizeError(t: TensorProto, expected: number, got: number, unit = 'bytes'): BortError {
  return new BortError(
    `tensor ${quoteName(t.name)} of shape [${tensorDims(t).join(', ')}] should hold ${expected} ${unit} of data but holds ${got}`,
    'the model file is damaged or was truncated; export it again',
  );
}

/**
 * The tensor's values as float32. Returns a view into the file buffer when raw_data is 4-byte aligned,
 * a copy otherwise; never modify the result in place.
 */
export function floatData(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) {
    throw new BortError(`tensor ${quoteName(t.name)} holds ${typeName(t.dataType)} values where float32 is expected`, 'only float32 models are supported');
  }
  const raw = t.rawData;
  if (raw && raw.byteLength > 0) {
    if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const out = new Float32Array(raw.byteLength / 4);
    new Uint8Array(out.buffer).set(raw);
    return out;
  }
  return t.floatData instanceof Float32Array ? t.floatData : Float32Array.from(t.floatData);
}

/** The first value of `data` that is not a finite number (NaN, ±Infinity), or undefined when all are. */
export function firstNonFinite(data: Float32Array): { index: number; value: number } | undefined {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return { index: i, value: data[i] };
  return undefined;
}

/** Integer tensor values (int64 / int32 / uint8...) as plain numbers (bigint for unsafe int64 values). */
export function intValues(t: TensorProto): Int64[] {
  const raw = t.rawData;
  const dt = t.dataType;
  if (raw && raw.byteLength > 0) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: Int64[] = [];
    if (dt === DataType.INT64) {
      for (let i = 0; i < raw.byteLength; i += 8) {
        const v = dv.getBigInt64(i, true);
        const n = Number(v);
        out.push(Number.isSafeInteger(n) ? n : v);
      }
    } else if (dt === DataType.INT32) {
      for (let i = 0; i < raw.byteLength; i += 4) out.push(dv.getInt32(i, true));
    } else if (dt === DataType.FLOAT) {
      for (let i = 0; i < raw.byteLength; i += 4) out.push(dv.getFloat32(i, true));
    } else if (dt === DataType.DOUBLE) {
      for (let i = 0; i < raw.byteLength; i += 8) out.push(dv.getFloat64(i, true));
    } else {
      throw new BortError(`tensor ${quoteName(t.name)} holds ${typeName(dt)} values where integers are expected`, 'the model uses a data type bort-compress does not read here');
    }
    return out;
  }
  if (dt === DataType.INT64) return Array.from(t.int64Data as ArrayLike<Int64>, (v) => {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : BigInt(v);
  });
  if (dt === DataType.FLOAT) return Array.from(t.floatData);
  if (dt === DataType.DOUBLE) return Array.from(t.doubleData);
  return Array.from(t.int32Data);
}

function emptyTensor(name: string, dims: number[], dataType: number): TensorProto {
  return {
    name, dims, dataType, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [],
    stringData: [], externalData: [], metadataProps: [],
  };
}

export function makeFloatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  const t = emptyTensor(name, dims, DataType.FLOAT);
  t.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return t;
}

export function makeInt64Tensor(name: string, dims: number[], values: ArrayLike<number | bigint>): TensorProto {
  const t = emptyTensor(name, dims, DataType.INT64);
  const arr = BigInt64Array.from(values as ArrayLike<number | bigint>, (v) => BigInt(v));
  t.rawData = new Uint8Array(arr.buffer);
  return t;
}

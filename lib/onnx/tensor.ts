/**
 * Tensor data access: element sizes, validated byte sizes, float32 views without needless copies,
 * and constructors for new initializers.
 */
import { DataType, type Int64, type TensorProto } from './types.js';
import { BortError } from '../errors.js';

/** Bytes per element in raw_data for each data type (0: not a fixed-size type). */
const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.UINT16]: 2, [DataType.INT16]: 2,
  [DataType.INT32]: 4, [DataType.INT64]: 8, [DataType.BOOL]: 1, [DataType.FLOAT16]: 2, [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4, [DataType.UINT64]: 8, [DataType.COMPLEX64]: 8, [DataType.COMPLEX128]: 16, [DataType.BFLOAT16]: 2,
  17: 1, 18: 1, 19: 1, 20: 1,
};

export function toNumber(v: Int64 | undefined, what: string): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new BortError(`${what} ${String(v)} is out of range`, 'the model file is damaged or not an ONNX model');
  return n;
}

export function tensorDims(t: TensorProto): number[] {
  return t.dims.map((d) => {
    const n = toNumber(d, `tensor '${t.name}' dimension`);
    if (n < 0) throw new BortError(`tensor '${t.name}' has a negative dimension ${n}`, 'the model file is damaged');
    return n;
  });
}

export function tensorNumel(t: TensorProto): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
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
 * Checks that the data a tensor carries matches its dims and type, before anything reads it.
 * External tensors must already have been resolved (io.ts does that).
 */
export function validateTensor(t: TensorProto): void {
  const numel = tensorNumel(t);
  const dt = t.dataType ?? 0;
  if (t.rawData && t.rawData.byteLength > 0) {
    const size = ELEMENT_BYTES[dt];
    if (!size) {
      if (dt === 21 || dt === 22 || dt === 23) {
        if (t.rawData.byteLength !== Math.ceil(numel / 2)) throw sizeError(t, Math.ceil(numel / 2), t.rawData.byteLength);
        return;
      }
      throw new BortError(`tensor '${t.name}' has raw data of unsupported type ${dt}`, 'the model file is damaged');
    }
    if (t.rawData.byteLength !== numel * size) throw sizeError(t, numel * size, t.rawData.byteLength);
    return;
  }
  const n = typedFieldLength(t);
  const complex = dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128;
  const expected = complex ? numel * 2 : numel;
  if (dt === DataType.FLOAT16 || dt === DataType.BFLOAT16 || dt === DataType.BOOL || dt === DataType.INT8 ||
      dt === DataType.UINT8 || dt === DataType.INT16 || dt === DataType.UINT16 || dt === DataType.INT32 ||
      dt === DataType.FLOAT || dt === DataType.DOUBLE || dt === DataType.INT64 || dt === DataType.UINT32 ||
      dt === DataType.UINT64 || dt === DataType.STRING || complex) {
    if (n !== expected) throw sizeError(t, expected, n, 'values');
  }
}

function sizeError(t: TensorProto, expected: number, got: number, unit = 'bytes'): BortError {
  return new BortError(
    `tensor '${t.name}' of shape [${tensorDims(t).join(', ')}] should hold ${expected} ${unit} of data but holds ${got}`,
    'the model file is damaged or was truncated; export it again',
  );
}

/**
 * The tensor's values as float32. Returns a view into the file buffer when raw_data is 4-byte aligned,
 * a copy otherwise; never modify the result in place.
 */
export function floatData(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new BortError(`tensor '${t.name}' is not float32 (type ${t.dataType})`, 'only float32 models are supported');
  const raw = t.rawData;
  if (raw && raw.byteLength > 0) {
    if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const out = new Float32Array(raw.byteLength / 4);
    new Uint8Array(out.buffer).set(raw);
    return out;
  }
  return t.floatData instanceof Float32Array ? t.floatData : Float32Array.from(t.floatData);
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
      throw new BortError(`tensor '${t.name}' has unsupported integer type ${dt}`, 'the model uses a data type bort-compress does not read here');
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

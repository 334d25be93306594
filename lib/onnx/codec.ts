/**
 * A reflection-driven protobuf codec for ONNX messages that loses nothing and copies little.
 *
 * - Decoding walks the wire format with protobufjs' Reader, guided by the schema in schema.ts.
 *   `bytes` fields (raw_data above all) are views into the input buffer, not copies.
 * - Packed numeric arrays become typed arrays (float_data → Float32Array, int64_data → BigInt64Array...).
 * - int64 scalars become `number` when they are safe integers, `bigint` otherwise (INT64_MAX in a Slice).
 * - Fields the schema does not know are kept, tag and payload, as raw bytes in `$unknown` and written
 *   back verbatim, so a model from a newer ONNX round-trips intact.
 * - Encoding computes every message size first, then streams bytes to a Sink: large tensors go straight
 *   from their views to the file, never through one big in-memory buffer.
 */
import * as protobuf from 'protobufjs';
import Long from 'long';
import { onnxRoot } from './schema.js';

// protobufjs returns 64-bit integers as Long when the 'long' package is configured.
protobuf.util.Long = Long as unknown as protobuf.Constructor<Long>;
protobuf.configure();

type Kind =
  | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool' | 'enum'
  | 'float' | 'double' | 'string' | 'bytes' | 'message';

interface FieldInfo {
  id: number;
  name: string;
  kind: Kind;
  repeated: boolean;
  packed: boolean;
  message?: MessageInfo;
}

export interface MessageInfo {
  name: string;
  byId: Map<number, FieldInfo>;
  fields: FieldInfo[];
}

/** Where a decoded message keeps the fields its schema does not know: tag + payload, verbatim. */
export const UNKNOWN = '$unknown';

export type Msg = Record<string, unknown>;

const infos = new Map<string, MessageInfo>();

function kindOf(field: protobuf.Field): Kind {
  if (field.resolvedType instanceof protobuf.Type) return 'message';
  if (field.resolvedType instanceof protobuf.Enum) return 'enum';
  switch (field.type) {
    case 'int32': case 'uint32': case 'int64': case 'uint64': case 'bool':
    case 'float': case 'double': case 'string': case 'bytes':
      return field.type;
    default:
      throw new Error(`onnx schema: unsupported field type ${field.type} for ${field.fullName}`);
  }
}

/** The codec's view of one schema message, e.g. `messageInfo('ModelProto')`. */
export function messageInfo(name: string): MessageInfo {
  const cached = infos.get(name);
  if (cached) return cached;
  const type = onnxRoot().lookupType(`onnx.${name}`);
  const info: MessageInfo = { name, byId: new Map(), fields: [] };
  infos.set(name, info);
  for (const field of type.fieldsArray) {
    field.resolve();
    const kind = kindOf(field);
    const fi: FieldInfo = {
      id: field.id,
      name: field.name,
      kind,
      repeated: field.repeated,
      packed: field.repeated && field.packed && kind !== 'string' && kind !== 'bytes' && kind !== 'message',
    };
    if (kind === 'message') {
      const t = field.resolvedType as protobuf.Type;
      fi.message = messageInfo(t.fullName.replace(/^\.onnx\./, ''));
    }
    info.byId.set(fi.id, fi);
    info.fields.push(fi);
  }
  return info;
}

// ---------------------------------------------------------------- decoding

function longToValue(v: Long | number): number | bigint {
  if (typeof v === 'number') return v;
  const n = v.toNumber();
  if (Number.isSafeInteger(n)) return n;
  return BigInt(v.toString());
}

function readScalar(r: protobuf.Reader, kind: Kind): unknown {
  switch (kind) {
    case 'int32': return r.int32();
    case 'uint32': return r.uint32();
    case 'enum': return r.int32();
    case 'int64': return longToValue(r.int64() as Long);
    case 'uint64': return longToValue(r.uint64() as Long);
    case 'bool': return r.bool();
    case 'float': return r.float();
    case 'double': return r.double();
    case 'string': return r.string();
    case 'bytes': return r.bytes();
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

const WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LDELIM = 2, WIRE_FIXED32 = 5;

function wireTypeOf(kind: Kind): number {
  switch (kind) {
    case 'float': return WIRE_FIXED32;
    case 'double': return WIRE_FIXED64;
    case 'string': case 'bytes': case 'message': return WIRE_LDELIM;
    default: return WIRE_VARINT;
  }
}

/** Copies little-endian bytes into a fresh, aligned typed array. */
function copyTyped<T extends Float32Array | Float64Array>(bytes: Uint8Array, Ctor: { new(n: number): T; BYTES_PER_ELEMENT: number }): T {
  const n = Math.floor(bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
  const out = new Ctor(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * Ctor.BYTES_PER_ELEMENT));
  return out;
}

/** Packed numeric payload as a typed array (floats) or plain array (varints). */
function readPacked(r: protobuf.Reader, f: FieldInfo, end: number): unknown[] | Float32Array | Float64Array {
  if (f.kind === 'float') return copyTyped(r.buf.subarray(r.pos, (r.pos = end)), Float32Array);
  if (f.kind === 'double') return copyTyped(r.buf.subarray(r.pos, (r.pos = end)), Float64Array);
  const out: unknown[] = [];
  while (r.pos < end) out.push(readScalar(r, f.kind));
  return out;
}

function appendRepeated(msg: Msg, f: FieldInfo, values: ArrayLike<unknown>): void {
  const prev = msg[f.name] as ArrayLike<unknown> | undefined;
  if (!prev || prev.length === 0) {
    msg[f.name] = values;
    return;
  }
  const merged = Array.from(prev);
  for (let i = 0; i < values.length; i++) merged.push(values[i]);
  msg[f.name] = merged;
}

/** Final representation of repeated numeric fields: typed arrays where it is natural. */
function finishRepeated(msg: Msg, f: FieldInfo): void {
  const v = msg[f.name] as unknown[] | undefined;
  if (!v || !Array.isArray(v)) {
    if (v === undefined && f.repeated) msg[f.name] = [];
    return;
  }
  if (f.kind === 'float' && f.packed) msg[f.name] = Float32Array.from(v as number[]);
  else if (f.kind === 'double' && f.packed) msg[f.name] = Float64Array.from(v as number[]);
  else if (f.kind === 'int32' && f.packed) msg[f.name] = Int32Array.from(v as number[]);
  else if (f.kind === 'int64' && f.packed) msg[f.name] = BigInt64Array.from(v as (number | bigint)[], (x) => BigInt(x));
  else if (f.kind === 'uint64' && f.packed) msg[f.name] = BigUint64Array.from(v as (number | bigint)[], (x) => BigInt(x));
}

export function decodeMessage(info: MessageInfo, r: protobuf.Reader, end: number): Msg {
  const msg: Msg = {};
  let unknown: Uint8Array[] | undefined;
  while (r.pos < end) {
    const start = r.pos;
    const tag = r.uint32();
    const id = tag >>> 3;
    const wire = tag & 7;
    const f = info.byId.get(id);
    if (!f || (wire !== wireTypeOf(f.kind) && !(f.repeated && wire === WIRE_LDELIM))) {
      r.skipType(wire);
      (unknown ??= []).push(r.buf.subarray(start, r.pos));
      continue;
    }
    if (f.kind === 'message') {
      const len = r.uint32();
      const sub = decodeMessage(f.message!, r, r.pos + len);
      if (f.repeated) ((msg[f.name] as Msg[] | undefined) ?? (msg[f.name] = [] as Msg[]) as Msg[]).push(sub);
      else msg[f.name] = sub;
    } else if (f.repeated) {
      if (wire === WIRE_LDELIM && f.kind !== 'string' && f.kind !== 'bytes') {
        const len = r.uint32();
        appendRepeated(msg, f, readPacked(r, f, r.pos + len));
      } else {
        ((msg[f.name] as unknown[] | undefined) ?? (msg[f.name] = [] as unknown[]) as unknown[]).push(readScalar(r, f.kind));
      }
    } else {
      msg[f.name] = readScalar(r, f.kind);
    }
  }
  if (r.pos !== end) throw new Error(`malformed protobuf: ${info.name} overruns its length`);
  for (const f of info.fields) if (f.repeated) finishRepeated(msg, f);
  if (unknown) Object.defineProperty(msg, UNKNOWN, { value: unknown, enumerable: false, writable: true, configurable: true });
  return msg;
}

/** Decodes a whole buffer as message `name` (e.g. 'ModelProto'). Bytes fields are views into `buf`. */
export function decode(name: string, buf: Uint8Array): Msg {
  const r = protobuf.Reader.create(buf);
  return decodeMessage(messageInfo(name), r, buf.length);
}

// ---------------------------------------------------------------- encoding

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function int64Bytes(v: unknown): Uint8Array {
  // two's complement 64-bit varint (always 10 bytes for negatives)
  let x = BigInt.asUintN(64, typeof v === 'bigint' ? v : Long.isLong(v) ? BigInt((v as Long).toString()) : BigInt(v as number));
  const out: number[] = [];
  while (x >= 128n) {
    out.push(Number(x & 127n) | 128);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}

function scalarSize(kind: Kind, v: unknown): number {
  switch (kind) {
    case 'float': return 4;
    case 'double': return 8;
    case 'bool': return 1;
    case 'uint32': return varintSize(v as number);
    case 'int32': case 'enum': return (v as number) < 0 ? 10 : varintSize(v as number);
    case 'int64': case 'uint64':
      if (typeof v === 'number' && v >= 0) return varintSize(v);
      return int64Bytes(v).length;
    case 'string': {
      const n = Buffer.byteLength(v as string, 'utf8');
      return varintSize(n) + n;
    }
    case 'bytes': {
      const n = (v as Uint8Array).byteLength;
      return varintSize(n) + n;
    }
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

type Sizes = Map<object, number>;

function packedPayloadSize(f: FieldInfo, arr: ArrayLike<unknown>): number {
  if (f.kind === 'float') return arr.length * 4;
  if (f.kind === 'double') return arr.length * 8;
  let n = 0;
  for (let i = 0; i < arr.length; i++) n += scalarSize(f.kind, arr[i]);
  return n;
}

function fieldPresent(f: FieldInfo, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (f.repeated) return (v as ArrayLike<unknown>).length > 0;
  return true;
}

function messageSize(info: MessageInfo, msg: Msg, sizes: Sizes): number {
  let total = 0;
  for (const f of info.fields) {
    const v = msg[f.name];
    if (!fieldPresent(f, v)) continue;
    const tagLen = varintSize(f.id * 8);
    if (f.kind === 'message') {
      const items = f.repeated ? (v as Msg[]) : [v as Msg];
      for (const item of items) {
        const s = messageSize(f.message!, item, sizes);
        total += tagLen + varintSize(s) + s;
      }
    } else if (f.repeated) {
      const arr = v as ArrayLike<unknown>;
      if (f.packed) {
        const p = packedPayloadSize(f, arr);
        total += tagLen + varintSize(p) + p;
      } else {
        for (let i = 0; i < arr.length; i++) total += tagLen + scalarSize(f.kind, arr[i]);
      }
    } else {
      total += tagLen + scalarSize(f.kind, v);
    }
  }
  const unknown = msg[UNKNOWN] as Uint8Array[] | undefined;
  if (unknown) for (const u of unknown) total += u.byteLength;
  sizes.set(msg, total);
  return total;
}

/** Receives encoded bytes in order. */
export interface Sink {
  write(bytes: Uint8Array): void;
}

/** Buffers small writes; passes large byte runs straight through. */
class Emitter {
  private buf = Buffer.allocUnsafe(1 << 16);
  private pos = 0;
  private readonly scratch = new DataView(new ArrayBuffer(8));
  constructor(private readonly sink: Sink) {}

  flush(): void {
    if (this.pos > 0) {
      this.sink.write(this.buf.subarray(0, this.pos));
      this.buf = Buffer.allocUnsafe(1 << 16);
      this.pos = 0;
    }
  }
  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.flush();
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }
  varint(v: number): void {
    this.room(10);
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  bytes(b: Uint8Array): void {
    if (b.byteLength > 4096) {
      this.flush();
      this.sink.write(b);
      return;
    }
    this.room(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }
  float(v: number): void {
    this.scratch.setFloat32(0, v, true);
    this.bytes(new Uint8Array(this.scratch.buffer, 0, 4));
  }
  double(v: number): void {
    this.scratch.setFloat64(0, v, true);
    this.bytes(new Uint8Array(this.scratch.buffer, 0, 8));
  }
  scalar(kind: Kind, v: unknown): void {
    switch (kind) {
      case 'float': return this.float(v as number);
      case 'double': return this.double(v as number);
      case 'bool': return this.byte(v ? 1 : 0);
      case 'uint32': return this.varint(v as number);
      case 'int32': case 'enum':
        if ((v as number) < 0) return this.bytes(int64Bytes(v as number));
        return this.varint(v as number);
      case 'int64': case 'uint64':
        if (typeof v === 'number' && v >= 0) return this.varint(v);
        return this.bytes(int64Bytes(v));
      case 'string': {
        const b = Buffer.from(v as string, 'utf8');
        this.varint(b.byteLength);
        return this.bytes(b);
      }
      case 'bytes': {
        const b = v as Uint8Array;
        this.varint(b.byteLength);
        return this.bytes(b);
      }
      default: throw new Error(`unexpected scalar kind ${kind}`);
    }
  }
}

function littleEndianBytes(arr: ArrayLike<unknown>, kind: Kind): Uint8Array {
  if (kind === 'float') {
    const t = arr instanceof Float32Array ? arr : Float32Array.from(arr as ArrayLike<number>);
    return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
  }
  const t = arr instanceof Float64Array ? arr : Float64Array.from(arr as ArrayLike<number>);
  return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
}

function writeMessage(info: MessageInfo, msg: Msg, out: Emitter, sizes: Sizes): void {
  for (const f of info.fields) {
    const v = msg[f.name];
    if (!fieldPresent(f, v)) continue;
    if (f.kind === 'message') {
      const items = f.repeated ? (v as Msg[]) : [v as Msg];
      for (const item of items) {
        out.varint(f.id * 8 + WIRE_LDELIM);
        out.varint(sizes.get(item)!);
        writeMessage(f.message!, item, out, sizes);
      }
    } else if (f.repeated) {
      const arr = v as ArrayLike<unknown>;
      if (f.packed) {
        out.varint(f.id * 8 + WIRE_LDELIM);
        out.varint(packedPayloadSize(f, arr));
        if (f.kind === 'float' || f.kind === 'double') out.bytes(littleEndianBytes(arr, f.kind));
        else for (let i = 0; i < arr.length; i++) out.scalar(f.kind, arr[i]);
      } else {
        for (let i = 0; i < arr.length; i++) {
          out.varint(f.id * 8 + wireTypeOf(f.kind));
          out.scalar(f.kind, arr[i]);
        }
      }
    } else {
      out.varint(f.id * 8 + wireTypeOf(f.kind));
      out.scalar(f.kind, v);
    }
  }
  const unknown = msg[UNKNOWN] as Uint8Array[] | undefined;
  if (unknown) for (const u of unknown) out.bytes(u);
}

/** Size in bytes of the encoding of `msg` as message `name`. */
export function encodedSize(name: string, msg: Msg): number {
  return messageSize(messageInfo(name), msg, new Map());
}

/** Streams the encoding of `msg` to `sink`. */
export function encodeTo(name: string, msg: Msg, sink: Sink): number {
  const info = messageInfo(name);
  const sizes: Sizes = new Map();
  const total = messageSize(info, msg, sizes);
  const out = new Emitter(sink);
  writeMessage(info, msg, out, sizes);
  out.flush();
  return total;
}

/** Encodes into one buffer (small messages, tests). */
export function encode(name: string, msg: Msg): Buffer {
  const chunks: Buffer[] = [];
  encodeTo(name, msg, { write: (b) => chunks.push(Buffer.from(b)) });
  return Buffer.concat(chunks);
}

/**
 * A reflection-driven protobuf codec for ONNX messages that loses nothing and copies little.
 *
 * - Decoding walks the wire format strictly (wire.ts), guided by the schema in schema.ts, within limits
 *   that keep a hostile file from exhausting memory (DECODE_LIMITS). `bytes` fields (raw_data above
 *   all) are views into the input buffer, not copies.
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
import { WireError, WireReader, WIRE_FIXED32, WIRE_FIXED64, WIRE_LDELIM, WIRE_VARINT, toInt32, toInt64, toUint32 } from './wire.js';

export { WireError } from './wire.js';

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
  /** How many of `fields` are repeated (each becomes an array in a decoded message). */
  repeatedCount: number;
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
  const info: MessageInfo = { name, byId: new Map(), fields: [], repeatedCount: 0 };
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
    if (fi.repeated) info.repeatedCount++;
  }
  return info;
}

// ---------------------------------------------------------------- decoding

/**
 * Limits that keep a hostile file from exhausting the heap: each decoded message counts as one value
 * plus one per repeated field (each gets an array), each element of a non-packed repeated field and each
 * unknown field as one. A BERT-large export decodes to about 50,000 values, a 100,000-node graph to
 * under a million; the limit (about 200 MB of heap) stops a file of empty messages long before the heap
 * runs out. Packed numbers become typed arrays, outside the JS heap, and are not counted.
 */
export const DECODE_LIMITS = {
  /** JS values (objects, array elements) one decode may create. */
  values: 5_000_000,
  /**
   * Fields unknown to the schema kept for round-tripping (newer ONNX versions add a few, not millions);
   * each is a view into the file buffer, so their bytes cost nothing beyond the file.
   */
  unknownFields: 100_000,
  /** Messages nested in messages (protobuf's own default limit). */
  depth: 100,
};

interface DecodeContext {
  values: number;
  unknown: number;
  depth: number;
}

function spend(ctx: DecodeContext, n: number): void {
  ctx.values += n;
  if (ctx.values > DECODE_LIMITS.values) {
    throw new WireError(`the file decodes to more than ${DECODE_LIMITS.values} values, far beyond any real model`);
  }
}

function readScalar(r: WireReader, kind: Kind): unknown {
  switch (kind) {
    case 'int32': case 'enum': return toInt32(r.varint64());
    case 'uint32': return toUint32(r.varint64());
    case 'int64': return toInt64(r.varint64());
    case 'uint64': return r.varint64();
    case 'bool': return r.varint() !== 0;
    case 'float': return r.float();
    case 'double': return r.double();
    case 'string': return r.string(r.length());
    case 'bytes': return r.bytes(r.length());
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

function wireTypeOf(kind: Kind): number {
  switch (kind) {
    case 'float': return WIRE_FIXED32;
    case 'double': return WIRE_FIXED64;
    case 'string': case 'bytes': case 'message': return WIRE_LDELIM;
    default: return WIRE_VARINT;
  }
}

/** The schema's name for a field (float_data), for messages; the decoded object uses floatData. */
function protoName(f: FieldInfo): string {
  return f.name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Copies little-endian bytes into a fresh, aligned typed array; the byte count must be whole values. */
function copyTyped<T extends Float32Array | Float64Array>(bytes: Uint8Array, Ctor: { new(n: number): T; BYTES_PER_ELEMENT: number }, field: string): T {
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new WireError(`packed ${field} of ${bytes.byteLength} bytes is not a whole number of ${size}-byte values`);
  }
  const out = new Ctor(bytes.byteLength / size);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** How many varints a packed run holds: one per byte without the continuation bit. */
function countVarints(buf: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) if (buf[i] < 128) n++;
  return n;
}

type PackedValues = unknown[] | Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array;

/**
 * A packed numeric payload: floats and doubles as typed arrays; varints of fields the schema declares
 * packed (int32_data, int64_data, uint64_data) straight into typed arrays; other varints as plain arrays.
 */
function readPacked(r: WireReader, f: FieldInfo, len: number, ctx: DecodeContext): PackedValues {
  const end = r.pos + len;
  if (f.kind === 'float') return copyTyped(r.bytes(len), Float32Array, protoName(f));
  if (f.kind === 'double') return copyTyped(r.bytes(len), Float64Array, protoName(f));
  const saved = r.limit;
  r.limit = end;
  try {
    if (len > 0 && r.buf[end - 1] >= 128) throw new WireError(`packed ${protoName(f)} ends inside a number`);
    if (f.packed && (f.kind === 'int32' || f.kind === 'int64' || f.kind === 'uint64')) {
      const n = countVarints(r.buf, r.pos, end);
      if (f.kind === 'int32') {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = toInt32(r.varint64());
        return out;
      }
      const out = f.kind === 'int64' ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        const v = r.varint64();
        out[i] = f.kind === 'int64' ? BigInt.asIntN(64, BigInt(v)) : BigInt(v);
      }
      return out;
    }
    const out: unknown[] = [];
    spend(ctx, countVarints(r.buf, r.pos, end));
    while (r.pos < end) out.push(readScalar(r, f.kind));
    return out;
  } finally {
    r.limit = saved;
  }
}

function concatValues(prev: ArrayLike<unknown>, next: ArrayLike<unknown>): ArrayLike<unknown> {
  if (prev.length === 0) return next;
  if (next.length === 0) return prev;
  if (ArrayBuffer.isView(prev) && ArrayBuffer.isView(next) && prev.constructor === next.constructor) {
    const Ctor = prev.constructor as { new(n: number): { set(a: ArrayLike<unknown>, o?: number): void } & ArrayLike<unknown> };
    const out = new Ctor(prev.length + next.length);
    out.set(prev);
    out.set(next, prev.length);
    return out;
  }
  const merged = Array.from(prev);
  for (let i = 0; i < next.length; i++) merged.push(next[i]);
  return merged;
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

/**
 * Protobuf's merge: a singular message field that appears twice is merged (repeated fields appended,
 * scalars overwritten), as every protobuf parser does; so a file concatenated with itself decodes to a
 * model with every node, initializer and input twice, which the model checks then refuse.
 */
function mergeInto(info: MessageInfo, target: Msg, source: Msg): void {
  for (const f of info.fields) {
    const v = source[f.name];
    if (v === undefined) continue;
    const prev = target[f.name];
    if (f.repeated) target[f.name] = prev === undefined ? v : concatValues(prev as ArrayLike<unknown>, v as ArrayLike<unknown>);
    else if (f.kind === 'message' && prev !== undefined) mergeInto(f.message!, prev as Msg, v as Msg);
    else target[f.name] = v;
  }
  const u = source[UNKNOWN] as Uint8Array[] | undefined;
  if (u) {
    const mine = target[UNKNOWN] as Uint8Array[] | undefined;
    Object.defineProperty(target, UNKNOWN, { value: mine ? mine.concat(u) : u, enumerable: false, writable: true, configurable: true });
  }
}

function decodeMessage(info: MessageInfo, r: WireReader, end: number, ctx: DecodeContext): Msg {
  if (++ctx.depth > DECODE_LIMITS.depth) throw new WireError(`messages are nested more than ${DECODE_LIMITS.depth} deep`);
  const saved = r.limit;
  r.limit = end;
  const msg: Msg = {};
  spend(ctx, 1 + info.repeatedCount);
  let unknown: Uint8Array[] | undefined;
  while (r.pos < end) {
    const start = r.pos;
    const tag = r.tag();
    const id = Math.floor(tag / 8);
    const wire = tag & 7;
    const f = info.byId.get(id);
    if (!f || (wire !== wireTypeOf(f.kind) && !(f.repeated && wire === WIRE_LDELIM))) {
      r.skip(wire);
      if (++ctx.unknown > DECODE_LIMITS.unknownFields) {
        throw new WireError(`more than ${DECODE_LIMITS.unknownFields} fields are unknown to ONNX (field ${id} of ${info.name} at byte ${start})`);
      }
      spend(ctx, 1);
      (unknown ??= []).push(r.buf.subarray(start, r.pos));
      continue;
    }
    if (f.kind === 'message') {
      const len = r.length();
      const sub = decodeMessage(f.message!, r, r.pos + len, ctx);
      if (f.repeated) ((msg[f.name] as Msg[] | undefined) ?? (msg[f.name] = [] as Msg[]) as Msg[]).push(sub);
      else if (msg[f.name] !== undefined) mergeInto(f.message!, msg[f.name] as Msg, sub);
      else msg[f.name] = sub;
    } else if (f.repeated) {
      if (wire === WIRE_LDELIM && f.kind !== 'string' && f.kind !== 'bytes') {
        const len = r.length();
        const values = readPacked(r, f, len, ctx);
        const prev = msg[f.name] as ArrayLike<unknown> | undefined;
        msg[f.name] = prev === undefined ? values : concatValues(prev, values);
      } else {
        spend(ctx, 1);
        let list = msg[f.name] as unknown[] | undefined;
        if (list !== undefined && !Array.isArray(list)) msg[f.name] = list = Array.from(list as ArrayLike<unknown>);
        (list ?? (msg[f.name] = [] as unknown[]) as unknown[]).push(readScalar(r, f.kind));
      }
    } else {
      msg[f.name] = readScalar(r, f.kind);
    }
  }
  if (r.pos !== end) throw new WireError(`${info.name} overruns its length`);
  r.limit = saved;
  ctx.depth--;
  for (const f of info.fields) if (f.repeated) finishRepeated(msg, f);
  if (unknown) Object.defineProperty(msg, UNKNOWN, { value: unknown, enumerable: false, writable: true, configurable: true });
  return msg;
}

/**
 * Decodes a whole buffer as message `name` (e.g. 'ModelProto'). Bytes fields are views into `buf`.
 * Throws a WireError when the bytes break the wire format or the limits in DECODE_LIMITS.
 */
export function decode(name: string, buf: Uint8Array): Msg {
  const r = new WireReader(buf);
  return decodeMessage(messageInfo(name), r, buf.byteLength, { values: 0, unknown: 0, depth: 0 });
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

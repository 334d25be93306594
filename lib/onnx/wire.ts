/**
 * The protobuf wire format, read strictly, for files nobody vouches for.
 *
 * Every varint is decoded to its full 64-bit value (a length of 2^32 + 10 is not cut to 10), every
 * length must fit inside the message that holds it, tags must carry a field number above 0 and a wire
 * type protobuf defines. What breaks a rule is a WireError naming the rule; codec.ts adds what it was
 * reading and io.ts turns that into a BortError.
 */

/** The file breaks the protobuf wire format (or a limit this reader sets). */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

export const WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LDELIM = 2, WIRE_GROUP_START = 3, WIRE_GROUP_END = 4, WIRE_FIXED32 = 5;

const TWO_32 = 2 ** 32;

/** A cursor over a buffer, never reading past `limit` (the end of the message being read). */
export class WireReader {
  pos = 0;
  limit: number;
  private readonly view: DataView;
  private readonly text: Buffer;

  constructor(readonly buf: Uint8Array) {
    this.limit = buf.byteLength;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number, what: string): void {
    if (n > this.limit - this.pos) {
      throw new WireError(`${what} at byte ${this.pos} runs past the end of its message (${this.limit - this.pos} bytes left)`);
    }
  }

  /**
   * An unsigned varint as a float: exact below 2^53, which covers every length and tag; larger values
   * are only ever compared, or re-read exactly by `varint64`.
   */
  varint(): number {
    if (this.pos < this.limit && this.buf[this.pos] < 128) return this.buf[this.pos++];
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.limit) throw new WireError(`a number at byte ${this.pos} is cut off by the end of its message`);
      const b = this.buf[this.pos++];
      result += (b & 127) * mul;
      if (b < 128) {
        if (i === 9 && b > 1) throw new WireError(`a number at byte ${this.pos - 10} does not fit 64 bits`);
        return result;
      }
      mul *= 128;
    }
    throw new WireError(`a number at byte ${this.pos - 10} is longer than protobuf's 10 bytes`);
  }

  /** An unsigned 64-bit varint, exactly: a number when safe, a bigint otherwise. */
  varint64(): number | bigint {
    const start = this.pos;
    const approx = this.varint();
    if (this.pos - start <= 7) return approx; // at most 49 bits: exact
    let x = 0n;
    for (let i = this.pos - 1; i >= start; i--) x = (x << 7n) | BigInt(this.buf[i] & 127);
    x = BigInt.asUintN(64, x);
    return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  }

  /**
   * A tag (field number × 8 + wire type), checked: field number 1 .. 2^29-1, wire type 0, 1, 2 or 5
   * (groups, 3 and 4, are refused: ONNX never uses them).
   */
  tag(): number {
    const at = this.pos;
    const t = this.varint();
    if (t >= TWO_32) throw new WireError(`a field tag at byte ${at} is out of range`);
    const wire = t & 7;
    if (t < 8) throw new WireError(`byte ${at} starts a field numbered 0, which protobuf never writes`);
    if (wire === WIRE_GROUP_START || wire === WIRE_GROUP_END) {
      throw new WireError(`field ${Math.floor(t / 8)} at byte ${at} is a protobuf group, which ONNX never uses`);
    }
    if (wire > WIRE_FIXED32) {
      throw new WireError(`field ${Math.floor(t / 8)} at byte ${at} has wire type ${wire}, which protobuf does not define`);
    }
    return t;
  }

  /** A length prefix, checked against what is left of the current message. */
  length(): number {
    const at = this.pos;
    const n = this.varint();
    if (n > this.limit - this.pos) {
      throw new WireError(`a length of ${n} bytes at byte ${at} runs past the end of its message (${this.limit - this.pos} bytes left)`);
    }
    return n;
  }

  /** `n` bytes as a view into the buffer (no copy). */
  bytes(n: number): Uint8Array {
    this.need(n, `a field of ${n} bytes`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** UTF-8 text (short ASCII names, the common case, without a decoder call). */
  string(n: number): string {
    this.need(n, `a field of ${n} bytes`);
    const start = this.pos;
    const end = start + n;
    this.pos = end;
    if (n <= 64) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = this.buf[i];
        if (c >= 128) return this.text.toString('utf8', start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.text.toString('utf8', start, end);
  }

  float(): number {
    this.need(4, 'a 4-byte value');
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8, 'an 8-byte value');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Skips one field's payload; returns nothing (the caller keeps the bytes it spanned). */
  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT: this.varint(); return;
      case WIRE_FIXED64: this.need(8, 'an 8-byte value'); this.pos += 8; return;
      case WIRE_FIXED32: this.need(4, 'a 4-byte value'); this.pos += 4; return;
      case WIRE_LDELIM: {
        const n = this.length();
        this.pos += n;
        return;
      }
      default: throw new WireError(`wire type ${wire} cannot be skipped`);
    }
  }
}

/** A 64-bit two's-complement value read as unsigned (number or bigint), as a signed int64. */
export function toInt64(v: number | bigint): number | bigint {
  if (typeof v === 'number') return v; // below 2^53: positive as written
  const s = BigInt.asIntN(64, v);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
}

/** The low 32 bits, signed (how protobuf reads an int32 or enum varint). */
export function toInt32(v: number | bigint): number {
  if (typeof v === 'number' && v < 2 ** 31) return v;
  return Number(BigInt.asIntN(32, BigInt(v)));
}

/** The low 32 bits, unsigned. */
export function toUint32(v: number | bigint): number {
  if (typeof v === 'number' && v < TWO_32) return v;
  return Number(BigInt.asUintN(32, BigInt(v)));
}

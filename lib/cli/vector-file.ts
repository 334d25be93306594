/**
 * Vectors written as they come, to a temporary file renamed into place only when all are written: raw
 * little-endian float32 rows (.f32) or a NumPy .npy file ([count, dims] float32, header fixed at 128
 * bytes and filled in at the end, when the count is known).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BortError, quoteName } from '../errors.js';

const NPY_HEADER = 128;

export class VectorFile {
  private fd: number;
  private readonly tmp: string;
  private readonly npy: boolean;
  private pos: number;
  count = 0;

  constructor(readonly file: string, readonly dims: number) {
    this.npy = /\.npy$/i.test(file);
    if (!this.npy && !/\.f32$/i.test(file)) throw new BortError(`-o ${quoteName(file)}: unknown file type`, 'name the output .f32 (raw float32 rows) or .npy');
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    try {
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (e) {
      throw new BortError(`cannot write ${quoteName(file)}: ${(e as Error).message}`, 'choose a writable output path');
    }
    this.pos = this.npy ? NPY_HEADER : 0;
  }

  append(v: Float32Array): void {
    if (v.length !== this.dims) throw new RangeError(`vector of ${v.length} values, expected ${this.dims}`);
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    fs.writeSync(this.fd, b, 0, b.length, this.pos);
    this.pos += b.length;
    this.count++;
  }

  finish(): void {
    if (this.npy) {
      let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${this.count}, ${this.dims}), }`;
      dict = dict.padEnd(NPY_HEADER - 10 - 1, ' ') + '\n';
      const head = Buffer.alloc(NPY_HEADER);
      head.write('\x93NUMPY', 0, 'latin1');
      head[6] = 1;
      head[7] = 0;
      head.writeUInt16LE(dict.length, 8);
      head.write(dict, 10, 'latin1');
      fs.writeSync(this.fd, head, 0, NPY_HEADER, 0);
    }
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.file);
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {}
    fs.rmSync(this.tmp, { force: true });
  }
}

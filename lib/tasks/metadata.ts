/**
 * A model's metadata_props (ModelProto field 14) read without parsing the graph: the top-level fields
 * of the file are walked and skipped by their lengths, so this costs a few small reads even for a
 * multi-gigabyte model. Used for classifier labels (`id2label`, `labels`).
 */
import * as fs from 'node:fs';
import { BortError, quoteName } from '../errors.js';

export function readMetadataProps(file: string): Record<string, string> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const one = Buffer.alloc(1);
    let pos = 0;
    const varint = (): number => {
      let v = 0, mul = 1;
      for (let i = 0; i < 10; i++) {
        if (pos >= size || fs.readSync(fd, one, 0, 1, pos) !== 1) throw new Error('truncated');
        pos++;
        v += (one[0] & 0x7f) * mul;
        if (!(one[0] & 0x80)) return v;
        mul *= 128;
      }
      throw new Error('bad varint');
    };
    const out: Record<string, string> = {};
    while (pos < size) {
      const tag = varint();
      const field = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) varint();
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const len = varint();
        if (field === 14 && len < 1 << 24) {
          const buf = Buffer.alloc(len);
          fs.readSync(fd, buf, 0, len, pos);
          const entry = stringEntry(buf);
          if (entry) out[entry[0]] = entry[1];
        }
        pos += len;
      } else throw new Error(`wire type ${wire}`);
    }
    return out;
  } catch (e) {
    throw new BortError(`cannot read the metadata of ${quoteName(file)}: ${(e as Error).message}`, 'check that the file is a complete .onnx model');
  } finally {
    fs.closeSync(fd);
  }
}

function stringEntry(b: Buffer): [string, string] | undefined {
  let p = 0;
  let key = '', value = '';
  while (p < b.length) {
    const tag = b[p++];
    if ((tag & 7) !== 2) return undefined;
    let len = 0, mul = 1;
    for (;;) {
      const x = b[p++];
      len += (x & 0x7f) * mul;
      if (!(x & 0x80)) break;
      mul *= 128;
    }
    const s = b.toString('utf8', p, p + len);
    p += len;
    if (tag >> 3 === 1) key = s;
    else if (tag >> 3 === 2) value = s;
  }
  return [key, value];
}

/** Label names from `id2label` (a JSON object id → name) or `labels` (a JSON list or comma-separated). */
export function labelsFromMetadata(meta: Record<string, string>): string[] | undefined {
  if (meta.id2label) {
    try {
      const m = JSON.parse(meta.id2label) as Record<string, string>;
      const ids = Object.keys(m).map(Number).sort((a, b) => a - b);
      if (ids.every((id, i) => id === i)) return ids.map((i) => String(m[i]));
    } catch {}
  }
  if (meta.labels) {
    try {
      const l = JSON.parse(meta.labels);
      if (Array.isArray(l)) return l.map(String);
    } catch {}
    return meta.labels.split(',').map((s) => s.trim());
  }
  return undefined;
}

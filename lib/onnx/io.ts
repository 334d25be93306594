/**
 * Loading and saving ONNX model files, with external data, treating every file as untrusted.
 *
 * Loading reads the file once into one buffer (files above 2 GiB are read in chunks, since
 * fs.readFile refuses them) and decodes it with tensors as views into that buffer. External data
 * (`data_location = EXTERNAL`) is resolved into the same kind of views; its `location` must stay inside
 * the model's folder, and offsets and lengths must fit the file.
 *
 * Saving streams the encoding to a temporary file beside the target and renames it into place, so a
 * failure never leaves a half-written model. Large tensors go to an external data file when asked, or
 * when the model would not fit protobuf's 2 GB limit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decode, encodeTo, encodedSize, type Msg } from './codec.js';
import { DataLocation, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './types.js';
import { validateTensor } from './tensor.js';
import { BortError } from '../errors.js';

/** protobuf cannot address messages of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Tensors at least this large go to the external data file when one is written. */
const EXTERNAL_THRESHOLD = 1024;
const EXTERNAL_ALIGN = 64;

export interface LoadedModel {
  model: ModelProto;
  /** Absolute path of the .onnx file. */
  path: string;
  /** Size in bytes of the .onnx file plus any external data files it used. */
  fileBytes: number;
  /** Whether any tensor came from an external data file. */
  externalData: boolean;
}

/** Reads a whole file; works above 2 GiB where fs.readFile does not. */
export function readWholeFile(file: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw fileError(file, e);
  }
  try {
    const stat = fs.fstatSync(fd);
    const size = stat.size;
    if (stat.isDirectory()) throw new BortError(`${file} is a directory`, 'give the path of an .onnx file');
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = fs.readSync(fd, buf, done, Math.min(size - done, 1 << 30), done);
      if (n === 0) throw new BortError(`${file} shrank while being read`, 'make sure no other process is writing it');
      done += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function fileError(file: string, e: unknown): BortError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new BortError(`cannot read ${file}: no such file`, 'check the path');
  if (code === 'EACCES') return new BortError(`cannot read ${file}: permission denied`, 'check the file permissions');
  if (code === 'EISDIR') return new BortError(`${file} is a directory`, 'give the path of an .onnx file');
  return new BortError(`cannot read ${file}: ${(e as Error).message}`, 'check the path');
}

/** Every tensor in a graph, its nodes' attributes and subgraphs, with a callback. */
export function forEachTensor(graph: GraphProto, fn: (t: TensorProto) => void): void {
  for (const t of graph.initializer ?? []) fn(t);
  for (const node of graph.node ?? []) forEachNodeTensor(node, fn);
}

function forEachNodeTensor(node: NodeProto, fn: (t: TensorProto) => void): void {
  for (const a of node.attribute ?? []) {
    if (a.t) fn(a.t);
    for (const t of a.tensors ?? []) fn(t);
    if (a.g) forEachTensor(a.g, fn);
    for (const g of a.graphs ?? []) forEachTensor(g, fn);
  }
}

function externalEntries(t: TensorProto): Map<string, string> {
  return new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
}

/** Resolves `location` against the model folder, refusing anything that leaves it. */
function safeLocation(dir: string, location: string, tensor: string): string {
  const bad = (why: string) =>
    new BortError(`tensor '${tensor}' points to external data '${location}' ${why}`,
      'external data must be a relative path inside the model\'s folder; this file may be malicious');
  if (!location) throw bad('with an empty location');
  if (location.includes('\0')) throw bad('containing a NUL byte');
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) throw bad('by an absolute path');
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) throw bad('outside the model folder');
  const full = path.resolve(dir, location);
  const rel = path.relative(dir, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw bad('outside the model folder');
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    throw new BortError(`external data file '${location}' for tensor '${tensor}' is missing`, `copy it next to the model in ${dir}`);
  }
  const realDir = fs.realpathSync(dir);
  const realRel = path.relative(realDir, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) throw bad('through a link that leaves the model folder');
  return real;
}

function parseOffset(s: string | undefined, what: string, tensor: string): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s)) throw new BortError(`tensor '${tensor}' has external data ${what} '${s}'`, 'the model file is damaged');
  return Number(s);
}

/** Reads bytes [offset, offset + length) of an open file into a fresh buffer. */
function readRange(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, Math.min(length - done, 1 << 30), offset + done);
    if (n === 0) throw new Error('unexpected end of file');
    done += n;
  }
  return buf;
}

/**
 * Replaces every external tensor's location by its bytes, read range by range (never a whole data
 * file at once, so data files above 2 GiB work and memory holds only what the model uses).
 */
function resolveExternal(model: ModelProto, dir: string): { bytes: number; used: boolean } {
  const files = new Map<string, { fd: number; size: number }>();
  let bytes = 0;
  let used = false;
  const visit = (t: TensorProto) => {
    if (t.dataLocation !== DataLocation.EXTERNAL) return;
    used = true;
    const e = externalEntries(t);
    const name = t.name ?? '?';
    const file = safeLocation(dir, e.get('location') ?? '', name);
    let f = files.get(file);
    if (!f) {
      const fd = fs.openSync(file, 'r');
      f = { fd, size: fs.fstatSync(fd).size };
      files.set(file, f);
    }
    const offset = parseOffset(e.get('offset'), 'offset', name) ?? 0;
    const length = parseOffset(e.get('length'), 'length', name) ?? f.size - offset;
    if (offset > f.size || offset + length > f.size) {
      throw new BortError(
        `tensor '${name}' reads bytes ${offset}..${offset + length} of '${e.get('location')}', which has only ${f.size}`,
        'the external data file is truncated or does not belong to this model');
    }
    t.rawData = readRange(f.fd, offset, length);
    bytes += length;
    delete t.dataLocation;
    t.externalData = [];
  };
  try {
    if (model.graph) forEachTensor(model.graph, visit);
  } finally {
    for (const f of files.values()) fs.closeSync(f.fd);
  }
  return { bytes, used };
}

/** Decodes model bytes; `source` names them in errors. */
export function parseModel(buf: Uint8Array, source: string): ModelProto {
  let model: ModelProto;
  try {
    model = decode('ModelProto', buf) as unknown as ModelProto;
  } catch (e) {
    throw new BortError(`${source} is not a valid ONNX model (${(e as Error).message})`,
      'check that the file is a complete .onnx export and was not truncated');
  }
  const graph = model.graph;
  if (!graph || !graph.node || graph.node.length === 0 || model.irVersion === undefined) {
    throw new BortError(`${source} is not an ONNX model (no graph found)`, 'give the path of an .onnx file exported from a BERT model');
  }
  return model;
}

export function loadModel(file: string): LoadedModel {
  const abs = path.resolve(file);
  const buf = readWholeFile(abs);
  const model = parseModel(buf, file);
  const ext = resolveExternal(model, path.dirname(abs));
  forEachTensor(model.graph!, validateTensor);
  return { model, path: abs, fileBytes: buf.byteLength + ext.bytes, externalData: ext.used };
}

export interface SaveOptions {
  /** true: always write external data; false: never (fails above 2 GB); undefined: only when needed. */
  externalData?: boolean;
  /** Size above which external data is written when `externalData` is undefined (tests lower it). */
  protobufLimit?: number;
}

export interface SaveResult {
  path: string;
  /** Bytes of the .onnx file. */
  bytes: number;
  /** Path and bytes of the external data file, if one was written. */
  dataPath?: string;
  dataBytes?: number;
}

class FdSink {
  written = 0;
  constructor(private readonly fd: number) {}
  write(b: Uint8Array): void {
    let off = 0;
    while (off < b.byteLength) {
      off += fs.writeSync(this.fd, b, off, b.byteLength - off);
    }
    this.written += b.byteLength;
  }
}

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`);
}

function openForWrite(file: string, target: string): number {
  try {
    return fs.openSync(file, 'w');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const dir = path.dirname(target);
    if (code === 'ENOENT') throw new BortError(`cannot write ${target}: folder ${dir} does not exist`, 'create the folder or choose another output path');
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new BortError(`cannot write ${target}: permission denied`, 'choose an output path you can write to');
    if (code === 'EISDIR') throw new BortError(`cannot write ${target}: it is a directory`, 'give a file name for the output, e.g. -o out/model.onnx');
    throw new BortError(`cannot write ${target}: ${(e as Error).message}`, 'choose another output path');
  }
}

/** Copies of the initializers, with large ones moved to an external data layout. */
function externalize(graph: GraphProto, dataName: string): { graph: GraphProto; pieces: Uint8Array[]; dataBytes: number } {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  const initializer = graph.initializer.map((t) => {
    const raw = t.rawData;
    if (!raw || raw.byteLength < EXTERNAL_THRESHOLD) return t;
    const pad = (EXTERNAL_ALIGN - (offset % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
    if (pad) pieces.push(new Uint8Array(pad));
    offset += pad;
    pieces.push(raw);
    const copy: TensorProto = { ...t, rawData: undefined, dataLocation: DataLocation.EXTERNAL, externalData: [
      { key: 'location', value: dataName },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.byteLength) },
    ] };
    copyUnknown(t, copy);
    offset += raw.byteLength;
    return copy;
  });
  const g: GraphProto = { ...graph, initializer };
  copyUnknown(graph, g);
  return { graph: g, pieces, dataBytes: offset };
}

function copyUnknown(from: object, to: object): void {
  const u = (from as Record<string, unknown>)['$unknown'];
  if (u) Object.defineProperty(to, '$unknown', { value: u, enumerable: false, writable: true, configurable: true });
}

/** Writes `model` to `file` atomically (temporary file + rename), with external data if needed. */
export function saveModel(model: ModelProto, file: string, opts: SaveOptions = {}): SaveResult {
  const target = path.resolve(file);
  let toWrite = model;
  let pieces: Uint8Array[] | undefined;
  let dataBytes = 0;
  const dataName = `${path.basename(target)}.data`;
  let wantExternal = opts.externalData === true;
  const limit = opts.protobufLimit ?? PROTOBUF_LIMIT;
  const inlineSize = opts.externalData === true ? undefined : encodedSize('ModelProto', model as unknown as Msg);
  if (opts.externalData === undefined && inlineSize! > limit) wantExternal = true;
  if (wantExternal) {
    const ext = externalize(model.graph!, dataName);
    toWrite = { ...model, graph: ext.graph };
    copyUnknown(model, toWrite);
    pieces = ext.pieces;
    dataBytes = ext.dataBytes;
  }
  const size = wantExternal ? encodedSize('ModelProto', toWrite as unknown as Msg) : inlineSize!;
  if (size > limit) {
    throw new BortError(`the model would be ${size} bytes, above protobuf's 2 GB limit`, 'save it with external data (--external-data)');
  }
  const tmpModel = tempName(target);
  const tmpData = pieces ? tempName(path.join(path.dirname(target), dataName)) : undefined;
  const cleanup = () => {
    for (const f of [tmpModel, tmpData]) if (f) fs.rmSync(f, { force: true });
  };
  try {
    if (pieces && tmpData) {
      const fd = openForWrite(tmpData, target);
      try {
        const sink = new FdSink(fd);
        for (const p of pieces) sink.write(p);
      } finally {
        fs.closeSync(fd);
      }
    }
    const fd = openForWrite(tmpModel, target);
    try {
      encodeTo('ModelProto', toWrite as unknown as Msg, new FdSink(fd));
    } finally {
      fs.closeSync(fd);
    }
    if (pieces && tmpData) fs.renameSync(tmpData, path.join(path.dirname(target), dataName));
    fs.renameSync(tmpModel, target);
  } catch (e) {
    cleanup();
    if (e instanceof BortError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new BortError(`cannot write ${target}: the disk is full`, 'free some space or choose another output path');
    throw new BortError(`cannot write ${target}: ${(e as Error).message}`, 'choose another output path');
  }
  return pieces
    ? { path: target, bytes: size, dataPath: path.join(path.dirname(target), dataName), dataBytes }
    : { path: target, bytes: size };
}

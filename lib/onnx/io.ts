/**
 * Loading and saving ONNX model files, with external data, treating every file as untrusted.
 *
 * Loading opens the model only when it is a regular file (never a FIFO, a directory or a device),
 * refuses files above protobuf's 2 GiB limit, reads it once into one buffer and decodes it strictly
 * (codec.ts) with tensors as views into that buffer. The decoded model is checked (validate.ts: IR
 * version, opsets, one definition per name) before any tensor is read. External data
 * (`data_location = EXTERNAL`) is resolved into buffers of its own: its `location` must stay inside
 * the model's folder and name a regular file, and each tensor's size is computed from its dims and type
 * and checked against the declared length, the offset and the file size before a byte is read.
 * Nothing is read lazily: once `loadModel` returns, the files may be replaced.
 *
 * Saving refuses outputs that would lose data (files.ts: the input and its external data, device
 * nodes, read-only files), streams the encoding to a temporary file beside the target and renames it
 * into place, so a failure never leaves a half-written model. Large tensors go to an external data
 * file when asked, or when the model would not fit protobuf's 2 GB limit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decode, encodeTo, encodedSize, type Msg } from './codec.js';
import { DataLocation, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './types.js';
import { tensorByteSize, typeName, validateTensor } from './tensor.js';
import { checkModel } from './validate.js';
import {
  checkOutputPath, openRegularFile, readRange, removeQuietly, tempPathBeside, writeError,
  type FileIdentity,
} from './files.js';
import { BortError, quoteName } from '../errors.js';

export type { FileIdentity } from './files.js';

/** protobuf cannot address messages of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Tensors at least this large go to the external data file when one is written. */
const EXTERNAL_THRESHOLD = 1024;
const EXTERNAL_ALIGN = 64;
/** One tensor must fit one buffer (and the engine's 32-bit element counts): below 4 GiB. */
export const MAX_TENSOR_BYTES = 2 ** 32 - 1;

export interface LoadedModel {
  model: ModelProto;
  /** Absolute path of the .onnx file. */
  path: string;
  /** Size in bytes of the .onnx file plus any external data files it used. */
  fileBytes: number;
  /** Whether any tensor came from an external data file. */
  externalData: boolean;
  /** The files read (the model, then its external data files): outputs must not replace them. */
  sources: FileIdentity[];
}

function fileError(file: string, e: unknown): BortError {
  if (e instanceof BortError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new BortError(`cannot read ${file}: no such file`, 'check the path');
  if (code === 'EACCES' || code === 'EPERM') return new BortError(`cannot read ${file}: permission denied`, 'check the file permissions');
  if (code === 'ELOOP') return new BortError(`cannot read ${file}: its symbolic links form a loop`, 'check the path');
  if (code === 'ENAMETOOLONG') return new BortError(`cannot read ${file}: the path is too long`, 'check the path');
  return new BortError(`cannot read ${file}: ${(e as Error).message}`, 'check the path');
}

/**
 * Reads a whole model file: only a regular file, and only up to protobuf's 2 GiB limit (no valid
 * .onnx file is larger; big models keep their weights in external data files).
 */
export function readWholeFile(file: string): Buffer {
  const r = readModelFile(file);
  return r.buf;
}

function readModelFile(file: string): { buf: Buffer; id: FileIdentity } {
  let f;
  try {
    f = openRegularFile(file, (kind) => new BortError(`cannot read ${file}: it is not a regular file (${kind})`, 'give the path of an .onnx file'));
  } catch (e) {
    throw fileError(file, e);
  }
  try {
    if (f.size > PROTOBUF_LIMIT) {
      throw new BortError(`${file} is ${f.size} bytes, more than protobuf's 2 GiB limit for one .onnx file, so it is not a valid ONNX model`,
        'give the .onnx file itself: large models keep their weights in an external data file beside it');
    }
    const buf = readRange(f.fd, 0, f.size, file);
    return { buf, id: { path: fs.realpathSync(file), dev: f.dev, ino: f.ino, role: 'the input model' } };
  } finally {
    fs.closeSync(f.fd);
  }
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

const EXTERNAL_KEYS = new Set(['location', 'offset', 'length', 'checksum']);

/** The external_data entries of a tensor: each known key at most once, `location` required. */
function externalEntries(t: TensorProto): Map<string, string> {
  const entries = new Map<string, string>();
  for (const e of t.externalData ?? []) {
    const key = e.key ?? '';
    if (!EXTERNAL_KEYS.has(key)) {
      throw new BortError(`tensor ${quoteName(t.name)} has external data key ${quoteName(key)}; ONNX defines location, offset, length and checksum`, 'the model file is damaged or was written by an unknown tool');
    }
    if (entries.has(key)) {
      throw new BortError(`tensor ${quoteName(t.name)} has two external data ${quoteName(key)} entries`, 'the model file is damaged or may be malicious');
    }
    entries.set(key, e.value ?? '');
  }
  if (!entries.has('location')) {
    throw new BortError(`tensor ${quoteName(t.name)} has external data without a location`, 'the model file is damaged');
  }
  return entries;
}

/** Resolves `location` against the model folder, refusing anything that leaves it. */
function safeLocation(dir: string, location: string, tensor: string | undefined): string {
  const bad = (why: string) =>
    new BortError(`tensor ${quoteName(tensor)} points to external data ${quoteName(location)} ${why}`,
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
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new BortError(`external data file ${quoteName(location)} for tensor ${quoteName(tensor)} is missing`, `copy it next to the model in ${dir}`);
    }
    throw new BortError(`cannot read external data file ${quoteName(location)} for tensor ${quoteName(tensor)}: ${(e as Error).message}`, 'check the files beside the model');
  }
  const realDir = fs.realpathSync(dir);
  const realRel = path.relative(realDir, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) throw bad('through a link that leaves the model folder');
  return real;
}

function parseOffset(s: string | undefined, what: string, tensor: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n)) {
    throw new BortError(`tensor ${quoteName(tensor)} has external data ${what} ${quoteName(s)}`, 'the model file is damaged');
  }
  return n;
}

interface DataFile {
  fd: number;
  size: number;
  /** Bytes the tensors take from it: more than its size means their ranges overlap. */
  read: number;
  location: string;
}

/**
 * Replaces every external tensor's location by its bytes, read range by range (never a whole data
 * file at once, so data files above 2 GiB work and memory holds only what the model uses). Every
 * tensor is checked before any is read: the bytes its dims and type need must equal the declared length
 * (when given), fit the file after the offset and stay below MAX_TENSOR_BYTES; all tensors together may
 * not take more of a file than it holds (overlapping ranges would let a small model make us read one
 * range a thousand times), nor more bytes than the machine has memory.
 */
function resolveExternal(model: ModelProto, dir: string): { bytes: number; used: boolean; sources: FileIdentity[] } {
  const files = new Map<string, DataFile>();
  const sources: FileIdentity[] = [];
  const reads: { t: TensorProto; f: DataFile; offset: number; length: number }[] = [];
  let bytes = 0;
  // first every check, for every tensor, then the reads: a bad last tensor costs no reading
  const plan = (t: TensorProto) => {
    if (t.dataLocation !== DataLocation.EXTERNAL) return;
    const name = t.name;
    const e = externalEntries(t);
    const location = e.get('location')!;
    if (t.dataType === 8) {
      throw new BortError(`tensor ${quoteName(name)} holds strings in external data, which ONNX does not allow`, 'the model file is damaged');
    }
    // sizes first, from the tensor's own dims and type, before any file is opened
    const length = tensorByteSize(t);
    const offset = parseOffset(e.get('offset'), 'offset', name) ?? 0;
    const declared = parseOffset(e.get('length'), 'length', name);
    if (declared !== undefined && declared !== length) {
      throw new BortError(
        `tensor ${quoteName(name)} declares ${declared} bytes of external data, but its shape [${t.dims.join(', ')}] of ${typeName(t.dataType)} needs ${length}`,
        'the model file is damaged or does not belong to this data file');
    }
    if (length > MAX_TENSOR_BYTES) {
      throw new BortError(`tensor ${quoteName(name)} holds ${length} bytes; tensors of 4 GiB or more are not supported`, 'bort-compress reads BERT models whose largest weight is below 4 GiB');
    }
    const file = safeLocation(dir, location, name);
    let f = files.get(file);
    if (!f) {
      let opened;
      try {
        opened = openRegularFile(file, (kind) => new BortError(
          `external data ${quoteName(location)} of tensor ${quoteName(name)} is not a regular file (${kind})`,
          'external data must be a file beside the model; this file may be damaged or malicious'));
      } catch (err) {
        if (err instanceof BortError) throw err;
        throw new BortError(`cannot read external data file ${quoteName(location)} for tensor ${quoteName(name)}: ${(err as Error).message}`, 'check the files beside the model');
      }
      f = { fd: opened.fd, size: opened.size, read: 0, location };
      files.set(file, f);
      sources.push({ path: file, dev: opened.dev, ino: opened.ino, role: "the input's external data file" });
    }
    if (offset > f.size || length > f.size - offset) {
      throw new BortError(
        `tensor ${quoteName(name)} reads bytes ${offset}..${offset + length} of ${quoteName(location)}, which has only ${f.size}`,
        'the external data file is truncated or does not belong to this model');
    }
    if (f.read + length > f.size) {
      throw new BortError(
        `the tensors stored in ${quoteName(location)} read more bytes (${f.read + length}) than it holds (${f.size}): their ranges overlap`,
        'the model file is damaged or may be malicious');
    }
    f.read += length;
    bytes += length;
    reads.push({ t, f, offset, length });
  };
  try {
    if (model.graph) forEachTensor(model.graph, plan);
    if (bytes > os.totalmem()) {
      throw new BortError(`the model's external data holds ${bytes} bytes, more than this machine's memory (${os.totalmem()} bytes)`,
        'use a machine with more memory; bort-compress holds all weights in memory');
    }
    for (const { t, f, offset, length } of reads) {
      t.rawData = readRange(f.fd, offset, length, f.location);
      delete t.dataLocation;
      t.externalData = [];
    }
  } finally {
    for (const f of files.values()) fs.closeSync(f.fd);
  }
  return { bytes, used: reads.length > 0, sources };
}

/** Decodes model bytes and checks them as a model (validate.ts); `source` names them in errors. */
export function parseModel(buf: Uint8Array, source: string): ModelProto {
  let model: ModelProto;
  try {
    model = decode('ModelProto', buf) as unknown as ModelProto;
  } catch (e) {
    if (e instanceof RangeError && /allocation failed|Invalid typed array length|Invalid array length/i.test(e.message)) {
      throw new BortError(`${source} is not a valid ONNX model (it declares more data than fits in memory)`, 'the model file is damaged or not an ONNX model');
    }
    throw new BortError(`${source} is not a valid ONNX model (${(e as Error).message})`,
      'check that the file is a complete .onnx export and was not truncated');
  }
  const graph = model.graph;
  if (!graph || !graph.node || graph.node.length === 0) {
    throw new BortError(`${source} is not an ONNX model (no graph found)`, 'give the path of an .onnx file exported from a BERT model');
  }
  checkModel(model, source);
  return model;
}

export function loadModel(file: string): LoadedModel {
  const abs = path.resolve(file);
  const { buf, id } = readModelFile(file);
  const model = parseModel(buf, file);
  const ext = resolveExternal(model, path.dirname(abs));
  forEachTensor(model.graph!, validateTensor);
  return { model, path: abs, fileBytes: buf.byteLength + ext.bytes, externalData: ext.used, sources: [id, ...ext.sources] };
}

export interface SaveOptions {
  /** true: always write external data; false: never (fails above 2 GB); undefined: only when needed. */
  externalData?: boolean;
  /** Size above which external data is written when `externalData` is undefined (tests lower it). */
  protobufLimit?: number;
  /** Files the outputs must not replace (LoadedModel.sources: the input model and its external data). */
  protect?: readonly FileIdentity[];
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

/** The external data file written beside `output`: its name plus `.data`, as the user would write it. */
export function dataPathFor(output: string): string {
  return path.join(path.dirname(output), `${path.basename(output)}.data`);
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

/**
 * Writes `model` to `file` atomically (temporary file + rename), with external data if needed. Refuses,
 * before writing anything, outputs that would lose data (see checkOutputPath in files.ts): a path that
 * names a folder, a non-regular file, a read-only file, or any file in `opts.protect`. On any failure
 * the temporary files are removed and nothing at the target changes.
 */
export function saveModel(model: ModelProto, file: string, opts: SaveOptions = {}): SaveResult {
  checkOutputPath(file, opts.protect);
  const target = path.resolve(file);
  let toWrite = model;
  let pieces: Uint8Array[] | undefined;
  let dataBytes = 0;
  const dataGiven = dataPathFor(file);
  const dataTarget = path.resolve(dataGiven);
  let wantExternal = opts.externalData === true;
  const limit = opts.protobufLimit ?? PROTOBUF_LIMIT;
  const inlineSize = opts.externalData === true ? undefined : encodedSize('ModelProto', model as unknown as Msg);
  if (opts.externalData === undefined && inlineSize! > limit) wantExternal = true;
  if (wantExternal) {
    checkOutputPath(dataGiven, opts.protect);
    const ext = externalize(model.graph!, path.basename(dataTarget));
    toWrite = { ...model, graph: ext.graph };
    copyUnknown(model, toWrite);
    pieces = ext.pieces;
    dataBytes = ext.dataBytes;
  }
  const size = wantExternal ? encodedSize('ModelProto', toWrite as unknown as Msg) : inlineSize!;
  if (size > limit) {
    throw new BortError(`the model would be ${size} bytes, above protobuf's 2 GB limit`, 'save it with external data (--external-data)');
  }
  const tmpModel = tempPathBeside(target);
  const tmpData = pieces ? tempPathBeside(dataTarget) : undefined;
  let writing = file;
  try {
    if (pieces && tmpData) {
      writing = dataGiven;
      const fd = fs.openSync(tmpData, 'wx');
      try {
        const sink = new FdSink(fd);
        for (const p of pieces) sink.write(p);
      } finally {
        fs.closeSync(fd);
      }
    }
    writing = file;
    const fd = fs.openSync(tmpModel, 'wx');
    try {
      encodeTo('ModelProto', toWrite as unknown as Msg, new FdSink(fd));
    } finally {
      fs.closeSync(fd);
    }
    if (pieces && tmpData) {
      writing = dataGiven;
      fs.renameSync(tmpData, dataTarget);
    }
    writing = file;
    fs.renameSync(tmpModel, target);
  } catch (e) {
    removeQuietly(tmpModel);
    removeQuietly(tmpData);
    throw writeError(e, writing);
  }
  return pieces
    ? { path: target, bytes: size, dataPath: dataTarget, dataBytes }
    : { path: target, bytes: size };
}

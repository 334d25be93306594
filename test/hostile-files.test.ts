/**
 * A corpus of hostile model files: damaged, malformed, oversized, concatenated, with external data that
 * points anywhere. Each goes through `inspect` and `compress` (library) and some through the CLI.
 * None may hang (FIFO cases carry a watchdog that would unblock a blocked open, so a regression fails
 * instead of hanging), none may throw anything but a one-line BortError, none may write an output or
 * change a file it read.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decode, encode } from '../lib/onnx/codec.js';
import { DataLocation, type ModelProto, type TensorProto } from '../lib/onnx/types.js';
import { inspect } from '../lib/inspect.js';
import { compress } from '../lib/compress.js';
import { BortError } from '../lib/errors.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');
const OP14_BYTES = fs.readFileSync(OP14);
const POOLER_W = 'bert.pooler.dense.weight'; // [64, 64] float32: 16,384 bytes
const GiB = 2 ** 30;

// ------------------------------------------------------------------ building hostile bytes

function varint(n: number | bigint): number[] {
  let x = BigInt(n);
  const out: number[] = [];
  while (x >= 128n) {
    out.push(Number(x & 127n) | 128);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

/** One protobuf field: tag, then the length for wire type 2, then the payload. */
function field(id: number, wire: number, payload: ArrayLike<number> | Uint8Array): Buffer {
  const body = Buffer.from(payload as Uint8Array);
  return Buffer.concat([Buffer.from(varint(id * 8 + wire)), wire === 2 ? Buffer.from(varint(body.length)) : Buffer.alloc(0), body]);
}

/** The model with fields appended to its graph: protobuf merges a second `graph` field into the first. */
function appendToGraph(...graphFields: Buffer[]): Buffer {
  return Buffer.concat([OP14_BYTES, field(7, 2, Buffer.concat(graphFields))]);
}

/** An initializer message, written by hand so that it can be wrong in ways the encoder would not allow. */
function tensorBytes(name: string, ...fields: Buffer[]): Buffer {
  return field(5, 2, Buffer.concat([...fields, field(8, 2, Buffer.from(name))]));
}

function op14(): ModelProto {
  return decode('ModelProto', OP14_BYTES) as unknown as ModelProto;
}

function mutated(fn: (m: ModelProto) => void): Buffer {
  const m = op14();
  fn(m);
  return encode('ModelProto', m as never);
}

function initializer(m: ModelProto, name: string): TensorProto {
  return m.graph!.initializer.find((t) => t.name === name)!;
}

function write(dir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** A sparse file of `size` bytes (costs no disk). */
function sparse(file: string, size: number): string {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return file;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function mkfifo(file: string): string {
  const r = spawnSync('mkfifo', [file]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
  return file;
}

/**
 * The pooler weight moved to an external file: `entries` are the external_data entries, `data`
 * writes what sits at the location (the real bytes by default), `patch` alters the tensor.
 */
function external(dir: string, opts: {
  entries?: (n: number) => { key: string; value: string }[];
  data?: (dir: string, bytes: Buffer) => void;
  patch?: (t: TensorProto, m: ModelProto) => void;
  modelDir?: string;
} = {}): string {
  const m = op14();
  const t = initializer(m, POOLER_W);
  const bytes = Buffer.from(t.rawData!);
  if (opts.data) opts.data(dir, bytes);
  else fs.writeFileSync(path.join(dir, 'weights.bin'), bytes);
  t.rawData = undefined;
  t.dataLocation = DataLocation.EXTERNAL;
  t.externalData = opts.entries ? opts.entries(bytes.length) : [
    { key: 'location', value: 'weights.bin' }, { key: 'offset', value: '0' }, { key: 'length', value: String(bytes.length) },
  ];
  opts.patch?.(t, m);
  return write(opts.modelDir ?? dir, 'model.onnx', encode('ModelProto', m as never));
}

const loc = (v: string) => ({ key: 'location', value: v });

// ------------------------------------------------------------------ the corpus

interface Case {
  name: string;
  /** Writes the hostile file(s) in `dir`; returns the model path. */
  make: (dir: string) => string;
  /** The message every refusal must match; null: the file may load (bit flips in weights). */
  message: RegExp | null;
  /** A FIFO the code must never open for reading (a watchdog would unblock a blocked open). */
  fifo?: string;
}

const NOT_ONNX = /is not (a valid |an )ONNX model/;

const cases: Case[] = [
  // ---- file level
  { name: 'empty file', make: (d) => write(d, 'm.onnx', Buffer.alloc(0)), message: /m\.onnx is not an ONNX model \(no graph found\)/ },
  { name: 'random bytes', make: (d) => { const r = seeded(7); return write(d, 'm.onnx', Buffer.from(Array.from({ length: 4096 }, () => Math.floor(r() * 256)))); }, message: NOT_ONNX },
  ...[1, 10, 5000, 400_000, OP14_BYTES.length - 1].map((n): Case => ({
    name: `truncated to ${n} bytes`, make: (d) => write(d, 'm.onnx', OP14_BYTES.subarray(0, n)), message: NOT_ONNX,
  })),
  ...[[1, 1], [2, 4], [3, 16], [4, 64], [5, 512]].map(([seed, flips]): Case => ({
    name: `${flips} bit flips (seed ${seed})`,
    make: (d) => {
      const b = Buffer.from(OP14_BYTES);
      const r = seeded(seed);
      for (let i = 0; i < flips; i++) b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
      return write(d, 'm.onnx', b);
    },
    message: null,
  })),
  { name: '1 MiB of zero bytes', make: (d) => write(d, 'm.onnx', Buffer.alloc(1 << 20)), message: /field numbered 0, which protobuf never writes/ },
  { name: '256 MiB of zero bytes (refused at byte 0, not decoded into the heap)', make: (d) => sparse(path.join(d, 'm.onnx'), 256 << 20), message: /byte 0 starts a field numbered 0/ },
  { name: 'the file concatenated with itself (protobuf merges it into duplicates)', make: (d) => write(d, 'm.onnx', Buffer.concat([OP14_BYTES, OP14_BYTES])), message: /initializer '[^']+' is defined twice in the graph: .*concatenated/ },
  { name: 'a length field of 2^32 + 3 (not cut to 3)', make: (d) => write(d, 'm.onnx', appendToGraph(Buffer.from([0x12, ...varint(2 ** 32 + 3), 0x61, 0x62, 0x63]))), message: /a length of 4294967299 bytes at byte \d+ runs past the end of its message \(3 bytes left\)/ },
  { name: 'a number longer than 10 bytes', make: (d) => write(d, 'm.onnx', Buffer.from([0x08, ...Array(10).fill(0xff), 0x01])), message: /longer than protobuf's 10 bytes/ },
  { name: 'a number cut off by the end of the file', make: (d) => write(d, 'm.onnx', Buffer.concat([OP14_BYTES, Buffer.from([0x08, 0x80])])), message: /cut off by the end of its message/ },
  { name: 'a protobuf group', make: (d) => write(d, 'm.onnx', Buffer.concat([Buffer.from([0x0b]), OP14_BYTES])), message: /field 1 at byte 0 is a protobuf group/ },
  { name: 'wire type 7', make: (d) => write(d, 'm.onnx', Buffer.from([0x0f, 0x00])), message: /wire type 7, which protobuf does not define/ },
  { name: '100,001 unknown fields', make: (d) => write(d, 'm.onnx', Buffer.concat([OP14_BYTES, Buffer.alloc(200_002, Buffer.from([0x78, 0x00]))])), message: /more than 100000 fields are unknown to ONNX/ },
  { name: '3 million empty nodes (the heap would run out)', make: (d) => write(d, 'm.onnx', appendToGraph(Buffer.alloc(6_000_000, Buffer.from([0x0a, 0x00])))), message: /decodes to more than 5000000 values/ },
  {
    name: 'subgraphs nested 150 deep', message: /messages are nested more than 100 deep/,
    make: (d) => {
      let g = field(2, 2, Buffer.from('leaf'));
      for (let i = 0; i < 150; i++) g = field(1, 2, field(5, 2, Buffer.concat([field(1, 2, Buffer.from('then_branch')), field(6, 2, g)])));
      return write(d, 'm.onnx', Buffer.concat([field(1, 0, [7]), field(7, 2, g)]));
    },
  },
  { name: 'a directory as the model', make: (d) => { fs.mkdirSync(path.join(d, 'm.onnx')); return path.join(d, 'm.onnx'); }, message: /m\.onnx: it is not a regular file \(a directory\)/ },
  { name: 'a FIFO as the model', make: (d) => mkfifo(path.join(d, 'm.onnx')), fifo: 'm.onnx', message: /m\.onnx: it is not a regular file \(a FIFO\)/ },
  { name: 'a model of 3 GiB (sparse)', make: (d) => sparse(path.join(d, 'm.onnx'), 3 * GiB), message: /m\.onnx is 3221225472 bytes, more than protobuf's 2 GiB limit/ },
  { name: 'a model of 5 GiB (sparse; Node would say "size out of range")', make: (d) => sparse(path.join(d, 'm.onnx'), 5 * GiB), message: /m\.onnx is 5368709120 bytes, more than protobuf's 2 GiB limit/ },

  // ---- model level
  { name: 'IR version 99', make: (d) => write(d, 'm.onnx', mutated((m) => { m.irVersion = 99; })), message: /has IR version 99; bort-compress reads IR versions 3 to 13/ },
  { name: 'no IR version', make: (d) => write(d, 'm.onnx', mutated((m) => { delete m.irVersion; })), message: /has no IR version; bort-compress reads IR versions 3 to 13/ },
  { name: 'no opset import', make: (d) => write(d, 'm.onnx', mutated((m) => { m.opsetImport = []; })), message: /imports no ai\.onnx opset; bort-compress reads opsets 7 to 26/ },
  { name: 'opset 99', make: (d) => write(d, 'm.onnx', mutated((m) => { m.opsetImport = [{ domain: '', version: 99 }]; })), message: /uses ai\.onnx opset 99; bort-compress reads opsets 7 to 26/ },
  { name: 'opset 6', make: (d) => write(d, 'm.onnx', mutated((m) => { m.opsetImport = [{ domain: 'ai.onnx', version: 6 }]; })), message: /uses ai\.onnx opset 6; bort-compress reads opsets 7 to 26/ },
  { name: 'the ai.onnx opset imported twice with different versions', make: (d) => write(d, 'm.onnx', mutated((m) => { m.opsetImport = [{ version: 14 }, { domain: 'ai.onnx', version: 17 }]; })), message: /imports opset 'ai\.onnx' twice, as versions 14 and 17/ },
  { name: 'a duplicated initializer', make: (d) => write(d, 'm.onnx', mutated((m) => { m.graph!.initializer.push(initializer(m, POOLER_W)); })), message: /initializer 'bert\.pooler\.dense\.weight' is defined twice/ },
  { name: 'a duplicated graph input', make: (d) => write(d, 'm.onnx', mutated((m) => { m.graph!.input.push(m.graph!.input[0]); })), message: /input 'input_ids' is declared twice/ },
  {
    name: 'two nodes writing one tensor', message: /tensor '[^']+' is written by two nodes/,
    make: (d) => write(d, 'm.onnx', mutated((m) => {
      const mm = m.graph!.node.filter((n) => n.opType === 'MatMul');
      mm[1].output = [...mm[0].output];
    })),
  },
  {
    name: 'a node writing a graph input', message: /tensor 'attention_mask' is both an input and the output of node/,
    make: (d) => write(d, 'm.onnx', mutated((m) => { m.graph!.node.find((n) => n.opType === 'MatMul')!.output = ['attention_mask']; })),
  },
  {
    name: 'a duplicated name full of terminal escapes (quoted, escaped, cut)', message: /initializer 'evil\\x0a\\x1b\[2J.*…\(\d+ more\)….*' is defined twice/,
    make: (d) => write(d, 'm.onnx', mutated((m) => {
      const name = `evil\n\x1b[2J${'x'.repeat(500)}`;
      m.graph!.initializer.push({ ...initializer(m, POOLER_W), name }, { ...initializer(m, POOLER_W), name });
    })),
  },
  { name: 'no data type', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dataType = 0; })), message: /tensor 'bert\.pooler\.dense\.weight' has no data type/ },
  { name: 'data type 99', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dataType = 99; })), message: /has data type 99, which ONNX does not define/ },
  { name: 'raw_data shorter than the dims say', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dims = [64, 65]; })), message: /tensor 'bert\.pooler\.dense\.weight' of shape \[64, 65\] should hold 16640 bytes of data but holds 16384/ },
  { name: 'float_data with too few values', make: (d) => write(d, 'm.onnx', mutated((m) => { const t = initializer(m, POOLER_W); t.rawData = undefined; t.floatData = new Float32Array(100); })), message: /should hold 4096 values of data but holds 100/ },
  { name: 'a negative dimension', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dims = [-64, -64]; })), message: /has a negative dimension -64/ },
  { name: 'dims whose product passes 2^53', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dims = [2 ** 40, 2 ** 40]; })), message: /of shape \[1099511627776, 1099511627776\] has more elements than any file can hold/ },
  { name: 'a dimension beyond 2^53', make: (d) => write(d, 'm.onnx', mutated((m) => { initializer(m, POOLER_W).dims = [2n ** 62n]; })), message: /dimension 4611686018427387904 is out of range/ },
  { name: 'ragged packed float_data (15 bytes)', make: (d) => write(d, 'm.onnx', appendToGraph(tensorBytes('ragged', field(1, 0, [4]), field(2, 0, [1]), field(4, 2, Buffer.alloc(15))))), message: /packed float_data of 15 bytes is not a whole number of 4-byte values/ },
  { name: 'ragged packed double_data (12 bytes)', make: (d) => write(d, 'm.onnx', appendToGraph(tensorBytes('ragged', field(1, 0, [2]), field(2, 0, [11]), field(10, 2, Buffer.alloc(12))))), message: /packed double_data of 12 bytes is not a whole number of 8-byte values/ },
  { name: 'packed int64_data ending inside a number', make: (d) => write(d, 'm.onnx', appendToGraph(tensorBytes('cut', field(1, 0, [2]), field(2, 0, [7]), field(7, 2, [0x01, 0x80])))), message: /packed int64_data ends inside a number/ },

  // ---- external data
  { name: 'external data: an absolute path', make: (d) => external(d, { entries: () => [loc('/etc/passwd')] }), message: /points to external data '\/etc\/passwd' by an absolute path/ },
  {
    name: 'external data: a path with ..', message: /points to external data '\.\.\/weights\.bin' outside the model folder/,
    make: (d) => { fs.mkdirSync(path.join(d, 'sub')); return external(d, { entries: () => [loc('../weights.bin')], modelDir: path.join(d, 'sub') }); },
  },
  {
    name: 'external data: a symlink leaving the folder', message: /points to external data 'link\.bin' through a link that leaves the model folder/,
    make: (d) => {
      const outside = tmpDir();
      fs.writeFileSync(path.join(outside, 'secret.bin'), Buffer.alloc(16384));
      fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(d, 'link.bin'));
      return external(d, { entries: () => [loc('link.bin')] });
    },
  },
  { name: 'external data: a NUL byte in the location', make: (d) => external(d, { entries: () => [loc('weights.bin\0.txt')] }), message: /containing a NUL byte/ },
  { name: 'external data: a FIFO', make: (d) => external(d, { data: (dir) => mkfifo(path.join(dir, 'weights.bin')) }), fifo: 'weights.bin', message: /external data 'weights\.bin' of tensor 'bert\.pooler\.dense\.weight' is not a regular file \(a FIFO\)/ },
  { name: 'external data: a directory (not a raw EISDIR)', make: (d) => external(d, { data: (dir) => fs.mkdirSync(path.join(dir, 'weights.bin')) }), message: /external data 'weights\.bin' of tensor 'bert\.pooler\.dense\.weight' is not a regular file \(a directory\)/ },
  { name: 'external data: a missing file', make: (d) => external(d, { data: () => {} }), message: /external data file 'weights\.bin' for tensor 'bert\.pooler\.dense\.weight' is missing/ },
  { name: 'external data: offset past the end', make: (d) => external(d, { entries: (n) => [loc('weights.bin'), { key: 'offset', value: '100000' }, { key: 'length', value: String(n) }] }), message: /reads bytes 100000\.\.116384 of 'weights\.bin', which has only 16384/ },
  { name: 'external data: length past the end (truncated data file)', make: (d) => external(d, { data: (dir, b) => fs.writeFileSync(path.join(dir, 'weights.bin'), b.subarray(0, 10000)) }), message: /reads bytes 0\.\.16384 of 'weights\.bin', which has only 10000/ },
  { name: 'external data: two location keys', make: (d) => external(d, { entries: () => [loc('weights.bin'), loc('weights.bin')] }), message: /has two external data 'location' entries/ },
  { name: 'external data: an unknown key', make: (d) => external(d, { entries: () => [loc('weights.bin'), { key: 'compression', value: 'zip' }] }), message: /has external data key 'compression'; ONNX defines location, offset, length and checksum/ },
  { name: 'external data: no location', make: (d) => external(d, { entries: () => [{ key: 'offset', value: '0' }] }), message: /has external data without a location/ },
  { name: 'external data: a hexadecimal offset', make: (d) => external(d, { entries: () => [loc('weights.bin'), { key: 'offset', value: '0x10' }] }), message: /has external data offset '0x10'/ },
  { name: 'external data: an offset beyond 2^53', make: (d) => external(d, { entries: () => [loc('weights.bin'), { key: 'offset', value: '99999999999999999999' }] }), message: /has external data offset '99999999999999999999'/ },
  {
    name: 'external data: a 3 GB length declared for 16 KB of weights (sparse 3 GB file; refused before reading)',
    make: (d) => external(d, { entries: () => [loc('weights.bin'), { key: 'length', value: '3000000000' }], data: (dir) => sparse(path.join(dir, 'weights.bin'), 3_000_000_000) }),
    message: /declares 3000000000 bytes of external data, but its shape \[64, 64\] of float32 needs 16384/,
  },
  {
    name: 'external data: dims declaring 3 GB in a 16 KB data file',
    make: (d) => external(d, { entries: () => [loc('weights.bin')], patch: (t) => { t.dims = [750_000_000]; } }),
    message: /reads bytes 0\.\.3000000000 of 'weights\.bin', which has only 16384/,
  },
  {
    name: 'external data: a 5 GiB tensor (sparse; Node would say "size out of range")',
    make: (d) => external(d, { entries: () => [loc('weights.bin'), { key: 'length', value: String(5 * GiB) }], patch: (t) => { t.dims = [5 * GiB / 4]; }, data: (dir) => sparse(path.join(dir, 'weights.bin'), 5 * GiB + 4096) }),
    message: /holds 5368709120 bytes; tensors of 4 GiB or more are not supported/,
  },
  {
    name: 'external data: more weights than this machine has memory (sparse files; refused before reading)',
    message: /the model's external data holds \d+ bytes, more than this machine's memory/,
    make: (d) => external(d, {
      patch: (_t, m) => {
        const size = 2 ** 32 - 4; // the largest tensor allowed
        const count = Math.ceil(os.totalmem() / size) + 1;
        for (let i = 0; i < count; i++) {
          sparse(path.join(d, `big${i}.bin`), size);
          m.graph!.initializer.push({
            name: `big${i}`, dims: [size / 4], dataType: 1, dataLocation: DataLocation.EXTERNAL, externalData: [loc(`big${i}.bin`)],
            floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [], stringData: [], metadataProps: [],
          });
        }
      },
    }),
  },
  {
    name: 'external data: two tensors reading one range (overlap)', message: /the tensors stored in 'weights\.bin' read more bytes \(32768\) than it holds \(16384\): their ranges overlap/,
    make: (d) => external(d, {
      patch: (t, m) => {
        const other = m.graph!.initializer.find((x) => x !== t && x.dims.length === 2 && Number(x.dims[0]) === 64 && Number(x.dims[1]) === 64)!;
        other.rawData = undefined;
        other.dataLocation = DataLocation.EXTERNAL;
        other.externalData = t.externalData;
      },
    }),
  },
];

// ------------------------------------------------------------------ running them

/** Every regular file under `dir` with a fingerprint (a hash for small files, size and mtime for big sparse ones). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        out[path.relative(dir, p)] = st.size > 64 << 20 ? `${st.size}@${st.mtimeMs}` : crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      } else out[path.relative(dir, p)] = st.isFIFO() ? 'fifo' : 'other';
    }
  };
  walk(dir);
  return out;
}

/**
 * Opens the FIFO for writing after a delay: if the code under test blocked opening it for reading,
 * this unblocks it (it then reads an empty file and the message check fails instead of the suite hanging).
 */
function watchdog(fifo: string): ChildProcess {
  return spawn('sh', ['-c', 'sleep 8; exec 3>"$1"', 'sh', fifo], { stdio: 'ignore' });
}

const watchdogs: ChildProcess[] = [];
afterAll(() => {
  for (const w of watchdogs) w.kill('SIGKILL');
});

function outcome(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectRefusal(e: unknown, c: Case): void {
  if (c.message === null) {
    if (e !== undefined) expect(e).toBeInstanceOf(BortError);
    return;
  }
  expect(e).toBeInstanceOf(BortError);
  const msg = (e as Error).message;
  expect(msg).toMatch(c.message);
  expect(msg).not.toMatch(/[\n\r\x1b\0]/);
}

describe('hostile files through inspect and compress: a one-line BortError, nothing written, nothing changed', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const dir = tmpDir('bort-hostile-');
      const file = c.make(dir);
      const before = snapshot(dir);
      const dog = c.fifo ? watchdog(path.join(dir, c.fifo)) : undefined;
      if (dog) watchdogs.push(dog);
      try {
        expectRefusal(outcome(() => inspect(file)), c);
        const out = path.join(dir, 'out.onnx');
        let err: unknown;
        try {
          await compress(file, { arch: '1,2,32,64', output: out });
        } catch (e) {
          err = e;
        }
        expectRefusal(err, c);
        const after = snapshot(dir);
        if (err === undefined) {
          expect(after['out.onnx']).toBeDefined();
          delete after['out.onnx'];
        }
        expect(after).toEqual(before);
      } finally {
        dog?.kill('SIGKILL');
      }
    }, 60_000);
  }

  it('the corpus has more than 50 cases, each with a message except the bit flips', () => {
    expect(cases.length).toBeGreaterThan(50);
    expect(cases.filter((c) => c.message === null).map((c) => c.name).every((n) => /bit flips/.test(n))).toBe(true);
  });
});

describe('hostile files through the CLI: exit code 1, one line, no output, no hang', () => {
  function cli(args: string[]) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, signal: r.signal, stderr: r.stderr, stdout: r.stdout };
  }
  const names = [
    'a FIFO as the model', 'external data: a FIFO', 'external data: a directory (not a raw EISDIR)',
    'the file concatenated with itself (protobuf merges it into duplicates)', 'opset 99',
    '256 MiB of zero bytes (refused at byte 0, not decoded into the heap)',
    'a model of 5 GiB (sparse; Node would say "size out of range")',
    'external data: a 5 GiB tensor (sparse; Node would say "size out of range")',
    'a duplicated name full of terminal escapes (quoted, escaped, cut)',
  ];
  for (const name of names) {
    const c = cases.find((x) => x.name === name)!;
    it(name, () => {
      const dir = tmpDir('bort-hostile-cli-');
      const file = c.make(dir);
      const before = snapshot(dir);
      for (const args of [['inspect', file], [file, '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx')]]) {
        const r = cli(args);
        expect(r.signal).toBeNull();
        expect(r.code).toBe(1);
        const lines = r.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^bort-compress: error: /);
        expect(lines[0]).toMatch(c.message!);
        expect(r.stderr).not.toMatch(/\x1b|internal error|\n\s+at /);
      }
      expect(snapshot(dir)).toEqual(before);
    }, 120_000);
  }
});

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { onnx } from 'onnx-proto';
import { decode, encode, UNKNOWN } from '../lib/onnx/codec.js';
import { loadModel, saveModel, parseModel } from '../lib/onnx/io.js';
import { floatData } from '../lib/onnx/tensor.js';
import { DataLocation, type ModelProto } from '../lib/onnx/types.js';
import { BortError } from '../lib/errors.js';
import { FIXTURES, fixture, maxAbsDiff, referenceOutput, runOrt, tmpDir } from './helpers.js';

const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');

function asObject(buf: Uint8Array) {
  return onnx.ModelProto.toObject(onnx.ModelProto.decode(buf), { longs: String, bytes: String, defaults: false });
}

describe('ONNX codec', () => {
  it('round-trips every fixture to the same message (checked with onnx-proto)', () => {
    for (const f of fs.readdirSync(FIXTURES).filter((n) => n.endsWith('.onnx'))) {
      const buf = fs.readFileSync(path.join(FIXTURES, f));
      const back = encode('ModelProto', decode('ModelProto', buf));
      expect(back.byteLength).toBe(buf.byteLength);
      expect(asObject(back)).toEqual(asObject(buf));
    }
  });

  it('keeps raw_data as views into the file buffer (no copies)', () => {
    const buf = fs.readFileSync(OP14);
    const m = decode('ModelProto', buf) as unknown as ModelProto;
    const t = m.graph!.initializer.find((i) => i.name === 'bert.embeddings.word_embeddings.weight')!;
    expect(t.rawData!.buffer).toBe(buf.buffer);
  });

  it('keeps fields newer than IR 8 that onnx-proto drops, and fields nobody knows', () => {
    const m = loadModel(OP14).model;
    const node = m.graph!.node[3];
    // NodeProto.metadata_props (field 9) arrived after IR 8
    node.metadataProps = [{ key: 'origin', value: 'exporter-42' }];
    // an unknown field 99 (length-delimited "hello") on the graph
    Object.defineProperty(m.graph!, UNKNOWN, { value: [Uint8Array.from([0x9a, 0x06, 5, 104, 101, 108, 108, 111])], enumerable: false });
    const dir = tmpDir();
    saveModel(m, path.join(dir, 'a.onnx'));
    const reloaded = loadModel(path.join(dir, 'a.onnx')).model;
    expect(reloaded.graph!.node[3].metadataProps).toEqual([{ key: 'origin', value: 'exporter-42' }]);
    const unknown = reloaded.graph![UNKNOWN] as Uint8Array[];
    expect(unknown.map((u) => Array.from(u))).toEqual([[0x9a, 0x06, 5, 104, 101, 108, 108, 111]]);
    // the old static decoder loses the node metadata: this is what the test guards against
    const legacy = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, 'a.onnx')));
    expect(JSON.stringify(onnx.NodeProto.toObject(legacy.graph!.node[3]))).not.toContain('exporter-42');
    // and saving again keeps both
    saveModel(reloaded, path.join(dir, 'b.onnx'));
    expect(fs.readFileSync(path.join(dir, 'b.onnx')).equals(fs.readFileSync(path.join(dir, 'a.onnx')))).toBe(true);
  });

  it('preserves int64 values beyond 2^53 (Slice ends of INT64_MAX)', () => {
    const m = loadModel(OP14).model;
    m.graph!.node[0].attribute.push({ name: 'big', type: 2, i: 9223372036854775807n, floats: [], ints: [-9223372036854775807n, 3], strings: [], tensors: [], graphs: [] });
    const back = decode('ModelProto', encode('ModelProto', m as never)) as unknown as ModelProto;
    const a = back.graph!.node[0].attribute.find((x) => x.name === 'big')!;
    expect(a.i).toBe(9223372036854775807n);
    expect(a.ints).toEqual([-9223372036854775807n, 3]);
  });
});

describe('external data', () => {
  it('reads the external-data fixture as the same model as bert-tiny-op14', () => {
    const ext = loadModel(path.join(FIXTURES, 'bert-tiny-extdata', 'model.onnx'));
    const inline = loadModel(OP14);
    expect(ext.externalData).toBe(true);
    for (const t of inline.model.graph!.initializer) {
      const u = ext.model.graph!.initializer.find((x) => x.name === t.name)!;
      expect(u.dataLocation ?? DataLocation.DEFAULT).toBe(DataLocation.DEFAULT);
      if (t.dataType === 1) expect(maxAbsDiff(floatData(u), floatData(t))).toBe(0);
    }
  });

  it('writes external data on request, and onnxruntime runs it', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'ext.onnx');
    const r = saveModel(loadModel(OP14).model, out, { externalData: true });
    expect(r.dataPath).toBe(path.join(dir, 'ext.onnx.data'));
    expect(fs.statSync(out).size).toBeLessThan(100_000);
    const spec = fixture('bert-tiny-op14');
    const res = await runOrt(out, spec.inputs);
    expect(maxAbsDiff(res.last_hidden_state.data, referenceOutput('bert-tiny-op14', 'last_hidden_state'))).toBeLessThanOrEqual(spec.tolerance.abs);
    // and we read back what we wrote
    const back = loadModel(out);
    expect(back.externalData).toBe(true);
  });

  function withLocation(location: string, dir: string, patch?: (m: ModelProto) => void): string {
    const m = loadModel(OP14).model;
    const t = m.graph!.initializer.find((x) => x.name === 'bert.pooler.dense.weight')!;
    const bytes = t.rawData!;
    fs.writeFileSync(path.join(dir, 'weights.bin'), bytes);
    t.rawData = undefined;
    t.dataLocation = DataLocation.EXTERNAL;
    t.externalData = [{ key: 'location', value: location }, { key: 'offset', value: '0' }, { key: 'length', value: String(bytes.byteLength) }];
    patch?.(m);
    const file = path.join(dir, 'evil.onnx');
    fs.writeFileSync(file, encode('ModelProto', m as never));
    return file;
  }

  it('refuses locations outside the model folder', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'sub'));
    for (const loc of ['../weights.bin', '/etc/passwd', 'sub/../../weights.bin', '..\\weights.bin', 'C:\\weights.bin']) {
      const file = withLocation(loc, dir);
      const moved = path.join(dir, 'sub', 'evil.onnx');
      fs.renameSync(file, moved);
      expect(() => loadModel(moved)).toThrow(/external data .*(outside the model folder|absolute path)/);
    }
  });

  it('refuses a symlink that leaves the model folder', () => {
    const outside = tmpDir();
    fs.writeFileSync(path.join(outside, 'secret.bin'), Buffer.alloc(64 * 64 * 4));
    const dir = tmpDir();
    fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(dir, 'link.bin'));
    const file = withLocation('link.bin', dir);
    expect(() => loadModel(file)).toThrow(/through a link that leaves the model folder/);
  });

  it('refuses offsets and lengths beyond the data file', () => {
    const dir = tmpDir();
    const file = withLocation('weights.bin', dir, (m) => {
      const t = m.graph!.initializer.find((x) => x.name === 'bert.pooler.dense.weight')!;
      t.externalData[1].value = '100';
    });
    expect(() => loadModel(file)).toThrow(/reads bytes 100\.\.16484 of 'weights.bin', which has only 16384/);
  });

  it('refuses a tensor whose data does not match its dims', () => {
    const dir = tmpDir();
    const m = loadModel(OP14).model;
    const t = m.graph!.initializer.find((x) => x.name === 'bert.pooler.dense.bias')!;
    t.dims = [65];
    const file = path.join(dir, 'bad.onnx');
    fs.writeFileSync(file, encode('ModelProto', m as never));
    expect(() => loadModel(file)).toThrow(/tensor 'bert.pooler.dense.bias' of shape \[65\] should hold 260 bytes of data but holds 256/);
  });

  it('names a missing external data file', () => {
    const dir = tmpDir();
    const file = withLocation('weights.bin', dir);
    fs.rmSync(path.join(dir, 'weights.bin'));
    expect(() => loadModel(file)).toThrow(/external data file 'weights.bin' .* is missing/);
  });
});

describe('bad files', () => {
  it('a file that is not ONNX', () => {
    expect(() => parseModel(Buffer.from('this is plainly not a protobuf model at all'), 'x.onnx')).toThrow(BortError);
  });
  it('a truncated model', () => {
    const buf = fs.readFileSync(OP14);
    expect(() => parseModel(buf.subarray(0, buf.length - 1000), 'cut.onnx')).toThrow(/cut.onnx is not a valid ONNX model/);
  });
});

describe('large files', () => {
  it('reads a tensor that sits beyond 2 GiB in an external data file', () => {
    const dir = tmpDir();
    const m = loadModel(OP14).model;
    const t = m.graph!.initializer.find((x) => x.name === 'bert.pooler.dense.bias')!;
    const bytes = Buffer.from(t.rawData!);
    const offset = 2 ** 31 + 4096 * 3;
    const data = path.join(dir, 'big.data');
    const fd = fs.openSync(data, 'w');
    fs.ftruncateSync(fd, offset + bytes.byteLength + 100); // sparse: costs no disk
    fs.writeSync(fd, bytes, 0, bytes.byteLength, offset);
    fs.closeSync(fd);
    t.rawData = undefined;
    t.dataLocation = DataLocation.EXTERNAL;
    t.externalData = [{ key: 'location', value: 'big.data' }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(bytes.byteLength) }];
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, encode('ModelProto', m as never));
    const back = loadModel(file).model.graph!.initializer.find((x) => x.name === 'bert.pooler.dense.bias')!;
    expect(Buffer.from(back.rawData!).equals(bytes)).toBe(true);
  });

  it('switches to external data by itself when the model would pass the protobuf limit', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'auto.onnx');
    const r = saveModel(loadModel(OP14).model, out, { protobufLimit: 500_000 });
    expect(r.dataPath).toBeDefined();
    expect(fs.statSync(out).size).toBeLessThan(500_000);
    const spec = fixture('bert-tiny-op14');
    const res = await runOrt(out, spec.inputs);
    expect(maxAbsDiff(res.pooler_output.data, referenceOutput('bert-tiny-op14', 'pooler_output'))).toBeLessThanOrEqual(spec.tolerance.abs);
  });

  it('refuses to write an inline model above the limit when external data is turned off', () => {
    const dir = tmpDir();
    expect(() => saveModel(loadModel(OP14).model, path.join(dir, 'x.onnx'), { externalData: false, protobufLimit: 500_000 })).toThrow(/above protobuf's 2 GB limit: save it with external data/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

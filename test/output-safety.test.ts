/**
 * Outputs never destroy what the user has: not the input model, not its external data (however the
 * path is spelled: links, `..`, the `.data` name an --external-data output would take), not a device
 * node, not a FIFO, not a read-only file; `-o dir/` is refused rather than written as a file `dir`;
 * long output names work (short temporary names), and a failure's clean-up never hides its cause.
 * Each refusal: exit code 1 (CLI), the message, and every input byte unchanged.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { describe, expect, it } from 'vitest';
import { compress } from '../lib/compress.js';
import { loadModel, saveModel } from '../lib/onnx/io.js';
import { BortError } from '../lib/errors.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');
const EXT = path.join(FIXTURES, 'bert-tiny-extdata');
const ARCH = '1,2,32,64';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function hash(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every entry of `dir`: regular files with their hash, anything else with its kind. */
function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir)) {
    const st = fs.lstatSync(path.join(dir, name));
    out[name] = st.isFile() ? `${hash(path.join(dir, name))} ${(st.mode & 0o777).toString(8)}`
      : st.isSymbolicLink() ? `link to ${fs.readlinkSync(path.join(dir, name))}`
        : st.isDirectory() ? 'dir' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : 'other';
  }
  return out;
}

function refused(r: ReturnType<typeof cli>, message: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bort-compress: error: /);
  expect(lines[0]).toMatch(message);
}

/** The external-data fixture copied into a fresh folder: model.onnx + model.onnx.data. */
function externalInput(name = 'model.onnx'): { dir: string; model: string; data: string } {
  const dir = tmpDir('bort-out-');
  fs.copyFileSync(path.join(EXT, 'model.onnx'), path.join(dir, name));
  fs.copyFileSync(path.join(EXT, 'model.onnx.data'), path.join(dir, 'model.onnx.data'));
  return { dir, model: path.join(dir, name), data: path.join(dir, 'model.onnx.data') };
}

function inlineInput(): { dir: string; model: string } {
  const dir = tmpDir('bort-out-');
  fs.copyFileSync(OP14, path.join(dir, 'model.onnx'));
  return { dir, model: path.join(dir, 'model.onnx') };
}

describe('outputs that would replace the input are refused, and the input stays byte for byte', () => {
  it('-o onto the input\'s external data file', () => {
    const { dir, model, data } = externalInput();
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', data), /cannot write .*model\.onnx\.data: it is the input's external data file .*: choose a different output path/);
    expect(listing(dir)).toEqual(before);
  });

  it('--external-data -o model.onnx beside an input whose data file is model.onnx.data', () => {
    const { dir, model } = externalInput('orig.onnx');
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '--external-data', '-o', path.join(dir, 'model.onnx')),
      /cannot write .*model\.onnx\.data: it is the input's external data file/);
    expect(listing(dir)).toEqual(before); // model.onnx was not written either
  });

  it('an output that switches to external data by itself (above the size limit) onto the input\'s data file', () => {
    const { dir, model } = externalInput('orig.onnx');
    const before = listing(dir);
    const loaded = loadModel(model);
    expect(() => saveModel(loaded.model, path.join(dir, 'model.onnx'), { protobufLimit: 100_000, protect: loaded.sources }))
      .toThrow(/cannot write .*model\.onnx\.data: it is the input's external data file/);
    expect(listing(dir)).toEqual(before);
  });

  it('-o equal to the input, inline and with external data', () => {
    const a = inlineInput();
    const beforeA = listing(a.dir);
    refused(cli(a.model, '--arch', ARCH, '-o', a.model), /cannot write .*model\.onnx: it is the input model/);
    expect(listing(a.dir)).toEqual(beforeA);
    const b = externalInput();
    const beforeB = listing(b.dir);
    refused(cli(b.model, '--arch', ARCH, '-o', b.model), /it is the input model/);
    refused(cli(b.model, '--arch', ARCH, '--external-data', '-o', b.model), /it is the input model/);
    expect(listing(b.dir)).toEqual(beforeB);
  });

  it('the input reached by another path: `..`, a symbolic link, a hard link (compared by device and inode)', () => {
    const { dir, model, data } = externalInput();
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync(model, path.join(dir, 'sym.onnx'));
    fs.linkSync(model, path.join(dir, 'hard.onnx'));
    fs.linkSync(data, path.join(dir, 'hard.data'));
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'sub', '..', 'model.onnx')), /it is the input model/);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'sym.onnx')), /it is the input model/);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'hard.onnx')), /it is the input model/);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'hard.data')), /it is the input's external data file/);
    expect(listing(dir)).toEqual(before);
    expect(listing(path.join(dir, 'sub'))).toEqual({});
  });

  it('the library call refuses the same, with the same BortError', async () => {
    const { dir, model, data } = externalInput();
    const before = listing(dir);
    await expect(compress(model, { arch: ARCH, output: data })).rejects.toThrow(BortError);
    await expect(compress(model, { arch: ARCH, output: data })).rejects.toThrow(/it is the input's external data file/);
    expect(listing(dir)).toEqual(before);
  });

  it('a new output beside the input, with external data, is written and leaves the input as it was (control)', async () => {
    const { dir, model } = externalInput();
    const before = listing(dir);
    const s = await compress(model, { arch: ARCH, output: path.join(dir, 'small.onnx'), externalData: true });
    expect(s.dataFile).toBe(path.join(dir, 'small.onnx.data'));
    const after = listing(dir);
    for (const k of Object.keys(before)) expect(after[k]).toBe(before[k]);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), 'small.onnx', 'small.onnx.data'].sort());
    expect(loadModel(path.join(dir, 'small.onnx')).externalData).toBe(true);
  });
});

describe('outputs that are not regular writable files are refused', () => {
  it('a character device: -o /dev/null (or a device node made for the test) is not replaced', () => {
    const { dir, model } = inlineInput();
    let device = path.join(dir, 'null');
    if (spawnSync('mknod', [device, 'c', '1', '3']).status !== 0) device = '/dev/null'; // not root: the real one is safe
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', device), /cannot write .*null: it is not a regular file \(a character device\): give the path of a file/);
    expect(fs.statSync(device).isCharacterDevice()).toBe(true);
    expect(listing(dir)).toEqual(before);
  });

  it('a FIFO is not replaced (and never opened)', () => {
    const { dir, model } = inlineInput();
    expect(spawnSync('mkfifo', [path.join(dir, 'pipe.onnx')]).status).toBe(0);
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'pipe.onnx')), /pipe\.onnx: it is not a regular file \(a FIFO\)/);
    expect(listing(dir)).toEqual(before);
  });

  it('an existing directory is not replaced', () => {
    const { dir, model } = inlineInput();
    fs.mkdirSync(path.join(dir, 'out.onnx'));
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'out.onnx')), /out\.onnx: it is not a regular file \(a directory\)/);
    expect(listing(dir)).toEqual(before);
  });

  it('a read-only file is not replaced (even by root)', () => {
    const { dir, model } = inlineInput();
    const ro = path.join(dir, 'keep.onnx');
    fs.writeFileSync(ro, 'my precious model');
    fs.chmodSync(ro, 0o444);
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', ro), /cannot write .*keep\.onnx: it is read-only: choose another output path, or make the file writable/);
    expect(listing(dir)).toEqual(before);
    expect(fs.readFileSync(ro, 'utf8')).toBe('my precious model');
  });

  // root may write anything, so the permission check is seen as another user
  const canDropRoot = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');
  it.runIf(canDropRoot)('a file this user may not write is not replaced (run as nobody)', () => {
    const { dir, model } = inlineInput();
    fs.chmodSync(dir, 0o777);
    fs.chmodSync(model, 0o644);
    const theirs = path.join(dir, 'theirs.onnx');
    fs.writeFileSync(theirs, 'not yours');
    fs.chmodSync(theirs, 0o644);
    const before = listing(dir);
    const r = spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, model, '--arch', ARCH, '-o', theirs],
      { encoding: 'utf8', timeout: 60_000 });
    refused({ code: r.status, stdout: r.stdout, stderr: r.stderr }, /cannot write .*theirs\.onnx: permission denied \(you cannot write this file\): choose another output path/);
    expect(listing(dir)).toEqual(before);
  });

  it('a writable older output is replaced (control)', async () => {
    const { dir, model } = inlineInput();
    const old = path.join(dir, 'out.onnx');
    fs.writeFileSync(old, 'an old output');
    await compress(model, { arch: ARCH, output: old });
    expect(loadModel(old).model.graph!.node.length).toBeGreaterThan(10);
    expect(fs.readdirSync(dir).sort()).toEqual(['model.onnx', 'out.onnx']);
  });
});

describe('output names', () => {
  it('-o newdir/ (a trailing slash, folder missing) is refused, not written as a file newdir', () => {
    const { dir, model } = inlineInput();
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'newdir') + '/'), /cannot write .*newdir\/: the path ends with a slash, so it names a folder: give a file name, e\.g\. .*newdir\/model\.onnx/);
    expect(listing(dir)).toEqual(before);
    fs.mkdirSync(path.join(dir, 'existing'));
    refused(cli(model, '--arch', ARCH, '-o', path.join(dir, 'existing') + '/'), /ends with a slash/);
    expect(fs.readdirSync(path.join(dir, 'existing'))).toEqual([]);
  });

  it('a 250-character output name works (the temporary name is short)', async () => {
    const { dir, model } = inlineInput();
    const name = `${'n'.repeat(245)}.onnx`;
    expect(name).toHaveLength(250);
    const s = await compress(model, { arch: ARCH, output: path.join(dir, name) });
    expect(s.output).toBe(path.join(dir, name));
    expect(fs.readdirSync(dir).sort()).toEqual([name, 'model.onnx'].sort());
    expect(loadModel(path.join(dir, name)).model.graph!.node.length).toBeGreaterThan(10);
  });

  it('a name whose external data file would pass 255 bytes is refused before writing, with the reason', () => {
    const { dir, model } = inlineInput();
    const name = `${'n'.repeat(247)}.onnx`; // 252 bytes; + '.data' = 257
    const before = listing(dir);
    refused(cli(model, '--arch', ARCH, '--external-data', '-o', path.join(dir, name)), /\.onnx\.data: its file name is 257 bytes long, more than the 255 file systems allow: choose a shorter output name/);
    expect(listing(dir)).toEqual(before);
  });

  it('a failing write reports its own error even when the clean-up fails too, and leaves no temporary file', () => {
    const { dir } = inlineInput();
    const m = loadModel(path.join(dir, 'model.onnx')).model;
    const before = listing(dir);
    // make rename fail (as on a full disk) and the clean-up fail too, through the real fs module
    const cjsFs = createRequire(__filename)('node:fs') as typeof fs;
    const { renameSync, rmSync } = cjsFs;
    const temps: string[] = [];
    cjsFs.renameSync = () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, rename'), { code: 'ENOSPC' });
    };
    cjsFs.rmSync = (p: fs.PathLike) => {
      temps.push(String(p));
      throw Object.assign(new Error('EBUSY: resource busy, rm'), { code: 'EBUSY' });
    };
    syncBuiltinESMExports();
    try {
      expect(() => saveModel(m, path.join(dir, 'out.onnx'))).toThrow(/cannot write .*out\.onnx: the disk is full: free some space/);
    } finally {
      cjsFs.renameSync = renameSync;
      cjsFs.rmSync = rmSync;
      syncBuiltinESMExports();
    }
    expect(temps.length).toBeGreaterThan(0);
    for (const t of temps) {
      expect(path.basename(t)).toMatch(/^\.bort-[0-9a-f]{12}\.tmp$/);
      fs.rmSync(t, { force: true });
    }
    expect(listing(dir)).toEqual(before);
  });
});

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveModel } from '../lib/onnx/io.js';
import { GraphBuilder, modelOf, tensorInfo, DataType } from '../lib/synth/builder.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectCleanFailure(r: ReturnType<typeof cli>, message: RegExp, dir: string): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bort-compress: error: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  // nothing half-written: only what the test put there
  expect(fs.readdirSync(dir).filter((f) => f.startsWith('.') || f.endsWith('.tmp') || f === 'out.onnx')).toEqual([]);
}

describe('CLI: bad input gets one clear line, a non-zero exit and no output file', () => {
  it('a file that is not ONNX', () => {
    const dir = tmpDir();
    const bad = path.join(dir, 'notes.onnx');
    fs.writeFileSync(bad, 'These are my notes, not a model.\n');
    expectCleanFailure(cli(bad, '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx')), /notes\.onnx is not (a valid )?(an )?ONNX model.*: /, dir);
  });

  it('a truncated model', () => {
    const dir = tmpDir();
    const cut = path.join(dir, 'cut.onnx');
    fs.writeFileSync(cut, fs.readFileSync(OP14).subarray(0, 400_000));
    expectCleanFailure(cli(cut, '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx')), /cut\.onnx is not a valid ONNX model .*truncated/, dir);
  });

  it('a graph that is not BERT-like', () => {
    const dir = tmpDir();
    const g = new GraphBuilder(14);
    g.node('Relu', ['x'], {}, 'y');
    const file = path.join(dir, 'relu.onnx');
    saveModel(modelOf(g.graph('g', [tensorInfo('x', DataType.FLOAT, [1, 4])], [tensorInfo('y', DataType.FLOAT, [1, 4])]), 14, 't'), file);
    expectCleanFailure(cli(file, '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx')), /does not look like a BERT model/, dir);
  });

  it('a malformed --arch', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(OP14, '--arch', '4,8,1024', '-o', path.join(dir, 'out.onnx')), /--arch '4,8,1024' is malformed: write it as D,A,H,I/, dir);
    expectCleanFailure(cli(OP14, '--arch', 'four,8,1024,768', '-o', path.join(dir, 'out.onnx')), /malformed/, dir);
  });

  it('H not divisible by A', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(OP14, '--arch', '2,3,64,100', '-o', path.join(dir, 'out.onnx')), /hidden size 64 is not divisible by 3 heads: choose H divisible by A/, dir);
  });

  it('an --arch larger than the source', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(OP14, '--arch', '3,8,128,512', '-o', path.join(dir, 'out.onnx')),
      /asks for more than the source \(2,4,64,256\) has: 3 layers \(source has 2\), 8 heads \(source has 4\), hidden 128 \(source has 64\), intermediate 512 \(source has 256\)/, dir);
  });

  it('a missing --arch', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(OP14, '-o', path.join(dir, 'out.onnx')), /missing --arch D,A,H,I/, dir);
  });

  it('an input that does not exist', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(path.join(dir, 'nope.onnx'), '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx')), /cannot read .*nope\.onnx: no such file: check the path/, dir);
  });

  it('an output folder that does not exist', () => {
    const dir = tmpDir();
    const r = cli(OP14, '--arch', '1,2,32,64', '-o', path.join(dir, 'missing', 'out.onnx'));
    expectCleanFailure(r, /cannot write .*out\.onnx: folder .*missing does not exist: create the folder/, dir);
  });

  it('an output path that is a directory', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'out.onnx'));
    const r = cli(OP14, '--arch', '1,2,32,64', '-o', path.join(dir, 'out.onnx'));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^bort-compress: error: cannot write .*out\.onnx/);
    expect(fs.statSync(path.join(dir, 'out.onnx')).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['out.onnx']);
    expect(fs.readdirSync(path.join(dir, 'out.onnx'))).toEqual([]);
  });

  it('an unknown strategy and an unknown option', () => {
    const dir = tmpDir();
    expectCleanFailure(cli(OP14, '--arch', '1,2,32,64', '--strategy', 'random', '-o', path.join(dir, 'out.onnx')), /--strategy 'random' is unknown/, dir);
    expectCleanFailure(cli(OP14, '--arch', '1,2,32,64', '--frobnicate', '-o', path.join(dir, 'out.onnx')), /Unknown option '--frobnicate'/, dir);
  });
});

describe('CLI commands', () => {
  it('compress prints a summary, and --json the same object the library returns', () => {
    const dir = tmpDir();
    const out = path.join(dir, 'small.onnx');
    const r = cli(OP14, '--arch', '1,2,32,64', '-o', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/arch {4}2,4,64,256 → 1,2,32,64/);
    expect(r.stdout).toMatch(/params {2}201,152 → /);
    const j = JSON.parse(cli(OP14, '--arch', '1,2,32,64', '-o', out, '--json', '--strategy', 'first').stdout);
    expect(j.target.arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
    expect(j.strategy).toBe('first');
    expect(j.plan.layers).toEqual([0]);
  });

  it('inspect --json reports arch, vocab and params', () => {
    const j = JSON.parse(cli('inspect', OP14, '--json').stdout);
    expect(j.arch).toEqual({ layers: 2, heads: 4, hidden: 64, intermediate: 256 });
    expect(j.vocab).toBe(1000);
    // embeddings (1000+512+2)·64 + LN, 2 layers, pooler: counted independently here
    const H = 64, I = 256;
    expect(j.params).toBe((1000 + 512 + 2) * H + 2 * H + 2 * (4 * (H * H + H) + 4 * H + 2 * H * I + I + H) + H * H + H);
  });

  it('synth writes a model that inspect reads back, with external data on request', () => {
    const dir = tmpDir();
    const out = path.join(dir, 'm.onnx');
    const r = cli('synth', '--arch', '2,4,64,128', '--vocab', '500', '--head', 'mlm', '-o', out, '--external-data');
    expect(r.code).toBe(0);
    expect(fs.existsSync(out + '.data')).toBe(true);
    const j = JSON.parse(cli('inspect', out, '--json').stdout);
    expect(j.arch).toEqual({ layers: 2, heads: 4, hidden: 64, intermediate: 128 });
    expect(j.heads.mlm).toBe(true);
    expect(j.externalData).toBe(true);
  });

  it('--help for every command', () => {
    expect(cli('--help').stdout).toMatch(/Usage:/);
    for (const c of ['inspect', 'synth', 'demo']) expect(cli(c, '--help').stdout).toMatch(new RegExp(`bort-compress ${c}`));
    expect(cli(OP14, '--help').stdout).toMatch(/--strategy/);
  });

  it('demo runs the whole path', () => {
    const r = cli('demo');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/arch {4}6,12,768,3072 → 3,8,512,768/);
    expect(r.stdout).toMatch(/arch {8}3,8,512,768/);
    expect(r.stdout).toMatch(/student +3,8,512,768 +median [\d.]+ ms/);
    expect(r.stdout).toMatch(/random weights[\s\S]*\$ bort-compress fill-mask [\s\S]*teacher 4,4,128,512 +\S+ \d\.\d{3}[\s\S]*top-1 agreement student\/teacher: \d of 4/);
  });
});

// The package as users get it: `npm pack`, then `npm install <tarball>` into an empty project with every
// C/C++ compiler, make and cmake hidden from PATH, then the CLI through npx and the library through
// require(). The prebuilt N-API binary in the tarball has to carry the native engine.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const PREBUILD = `prebuilds/linux-${os.arch()}/bort-compress.napi.glibc.node`;
const HIDDEN = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'gmake', 'cmake', 'ninja'];
const hasCross = onPath('aarch64-linux-gnu-g++', process.env.PATH ?? '');

let work = '';
let tarball = '';
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };
let bin = '';

function onPath(cmd: string, PATH: string): string | null {
  for (const dir of PATH.split(path.delimiter)) {
    if (!dir) continue;
    const f = path.join(dir, cmd);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {}
  }
  return null;
}

/** The environment without npm's lifecycle variables and compiler settings. */
function baseEnv(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^npm_/i.test(k) || /^(CC|CXX|CPP|LD|LINK|AR|MAKE|MAKEFLAGS|CFLAGS|CXXFLAGS|LDFLAGS)$/.test(k)) continue;
    e[k] = v;
  }
  return e;
}

/** PATH = one folder of links to the tools an install needs; no compiler, make or cmake. */
function userEnv(): Record<string, string> {
  const e: Record<string, string> = { HOME: os.homedir(), PATH: bin, ONNXRUNTIME_NODE_INSTALL: 'skip', LANG: 'C.UTF-8' };
  if (process.env.TMPDIR) e.TMPDIR = process.env.TMPDIR;
  return e;
}

function sh(cmd: string, args: string[], cwd: string, env: Record<string, string>, timeout = 300_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

function must(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function emptyProject(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }) + '\n');
  return dir;
}

function npmInstall(project: string, tgz: string, extra: string[] = []): SpawnSyncReturns<string> {
  // --prefer-offline: the dependencies usually sit in the npm cache already (npm ci filled it)
  const args = ['install', tgz, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', '--loglevel=info', ...extra];
  return sh(path.join(bin, 'npm'), args, project, userEnv());
}

function npx(project: string, args: string[]): SpawnSyncReturns<string> {
  return sh(path.join(bin, 'npx'), ['--no-install', 'bort-compress', ...args], project, userEnv(), 180_000);
}

// A script run inside the user's project: the library from node_modules, the Encoder on the native engine.
const LIBRARY_CHECK = String.raw`
const fs = require('fs');
const path = require('path');
const bort = require('bort-compress');
const pkgDir = path.dirname(require.resolve('bort-compress/package.json'));
const gypBuild = require(require.resolve('node-gyp-build', { paths: [pkgDir] }));
(async () => {
  const [fixtures, small] = process.argv.slice(2);
  const result = { main: path.relative(process.cwd(), require.resolve('bort-compress')), addon: path.relative(pkgDir, gypBuild.path(pkgDir)) };
  // a PyTorch-exported fixture against its PyTorch reference outputs
  const spec = JSON.parse(fs.readFileSync(path.join(fixtures, 'bert-tiny-op14.json'), 'utf8'));
  const enc = await bort.Encoder.load(path.join(fixtures, 'bert-tiny-op14.onnx'), { threads: 2 });
  result.isa = enc.isa;
  const inputs = {};
  for (const [name, t] of Object.entries(spec.inputs)) inputs[name] = { data: BigInt64Array.from(t.data.map((v) => BigInt(v))), dims: t.shape };
  const out = await enc.run(inputs);
  result.fixture = {};
  for (const [name, o] of Object.entries(spec.outputs)) {
    const b = fs.readFileSync(path.join(fixtures, o.file));
    const ref = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    // per-position outputs: real positions against the reference, padded ones (mask 0) must be 0 (skipped)
    const mask = spec.inputs.attention_mask.data;
    const width = o.shape.length === 3 ? o.shape[2] : 0;
    let worst = 0;
    for (let i = 0; i < ref.length; i++) {
      if (width && mask[Math.floor(i / width)] === 0) { if (out[name].data[i] !== 0) worst = Infinity; continue; }
      worst = Math.max(worst, Math.abs(out[name].data[i] - ref[i]) || (Number.isNaN(out[name].data[i]) ? Infinity : 0));
    }
    result.fixture[name] = { dims: out[name].dims, expected: o.shape, maxAbsError: worst, tolerance: spec.tolerance.abs };
  }
  enc.close();
  // the model this project compressed with npx
  const enc2 = await bort.Encoder.load(small, { threads: 1 });
  const o2 = await enc2.run({ input_ids: { data: BigInt64Array.from([1n, 2n, 3n, 4n]), dims: [1, 4] } });
  result.small = Object.fromEntries(Object.entries(o2).map(([k, v]) => [k, { dims: v.dims, finite: v.data.every(Number.isFinite) }]));
  enc2.close();
  process.stdout.write(JSON.stringify(result));
})().catch((e) => {
  process.stderr.write(String(e && e.stack || e));
  process.exit(1);
});
`;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'bort-pkg-'));
  // prebuilds for this machine (and linux-arm64 when the cross compiler is here), rebuilt only when stale
  must(sh(process.execPath, [path.join(ROOT, 'native', 'cross', 'prebuild.js'), '--if-stale'], ROOT, baseEnv(), 600_000), 'prebuild');
  // dist/ is fresh (pretest ran tsc); --ignore-scripts keeps pack from rewriting it under the other test files
  const out = must(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT, baseEnv()), 'npm pack');
  packed = JSON.parse(out.slice(out.indexOf('[')))[0];
  tarball = path.join(work, packed.filename);
  console.log(`package-install: ${packed.filename}: ${(packed.size / 1024).toFixed(1)} kB packed, ${(packed.unpackedSize / 1024).toFixed(1)} kB unpacked, ${packed.files.length} files`);

  bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  const fullPath = process.env.PATH ?? '';
  for (const tool of ['node', 'npm', 'npx', 'sh', 'bash', 'env', 'python3']) {
    const f = tool === 'python3' ? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : null) : tool === 'node' ? process.execPath : onPath(tool, fullPath);
    if (f) fs.symlinkSync(f, path.join(bin, tool));
  }
}, 900_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('npm package', () => {
  it('has dist, prebuilds, native sources, binding.gyp and README, and no tests, fixtures or build trees', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', PREBUILD, 'native/src/addon.cpp', 'native/src/kernels_neon.cpp']) {
      expect(files, f).toContain(f);
    }
    if (hasCross) expect(files).toContain('prebuilds/linux-arm64/bort-compress.napi.glibc.node');
    const forbidden = files.filter((f) =>
      /^(test|lib|bench|build|build-native|node_modules|\.ci|\.tmp)\//.test(f) || /^native\/(test|cross|build[^/]*)\//.test(f) || /fixtures|\.map$|\.tgz$/.test(f),
    );
    expect(forbidden).toEqual([]);
    expect(packed.size).toBeLessThan(2 << 20);
  });

  it('the install PATH has no compiler, make or cmake', () => {
    for (const t of HIDDEN) expect(onPath(t, bin), t).toBeNull();
    expect(onPath('npm', bin)).not.toBeNull();
  });

  describe('installed into an empty project without a toolchain', () => {
    let project = '';
    let install: SpawnSyncReturns<string>;
    beforeAll(() => {
      project = emptyProject('user-project');
      install = npmInstall(project, tarball);
    }, 300_000);

    it('installs from the prebuild: its install script runs and compiles nothing', () => {
      must(install, 'npm install of the tarball');
      const log = install.stdout + install.stderr;
      // npm 11 runs dependencies' install scripts that no allowScripts policy covers, with a warning
      const ran = /run bort-compress@[^ ]+ install .*node-gyp-build/.test(log);
      console.log(`package-install: the package's install script (node-gyp-build) ${ran ? 'ran' : 'did not run'} during npm install`);
      if (ran) expect(log).toMatch(/run bort-compress@[^ ]+ install \{ code: 0/);
      const pkg = path.join(project, 'node_modules', 'bort-compress');
      expect(fs.existsSync(path.join(pkg, PREBUILD))).toBe(true);
      expect(fs.existsSync(path.join(pkg, 'build'))).toBe(false);
    });

    it('npx bort-compress demo', () => {
      const r = npx(project, ['demo']);
      must(r, 'npx bort-compress demo');
      expect(r.stdout).toContain('bort-compress demo: synthesise a BERT');
      expect(r.stdout).toMatch(/arch\s+6,12,768,3072 → 3,8,512,768/);
      expect(r.stdout).toContain('are removed now');
    });

    it('npx bort-compress synth, compress, inspect', () => {
      const r1 = npx(project, ['synth', '--arch', '2,4,64,128', '--vocab', '500', '-o', 'tiny.onnx']);
      must(r1, 'npx bort-compress synth');
      expect(fs.statSync(path.join(project, 'tiny.onnx')).size).toBeGreaterThan(100_000);
      const r2 = npx(project, ['tiny.onnx', '--arch', '1,2,32,64', '-o', 'small.onnx']);
      must(r2, 'npx bort-compress compress');
      expect(r2.stdout).toMatch(/arch\s+2,4,64,128 → 1,2,32,64/);
      const r3 = npx(project, ['inspect', 'small.onnx', '--json']);
      expect(JSON.parse(must(r3, 'npx bort-compress inspect')).arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
    });

    it('library: Encoder.load + run on the prebuilt engine reproduce the PyTorch reference', () => {
      fs.writeFileSync(path.join(project, 'check.cjs'), LIBRARY_CHECK);
      const small = path.join(project, 'small.onnx');
      expect(fs.existsSync(small)).toBe(true);
      for (const isa of [undefined, 'scalar']) {
        const env = userEnv();
        if (isa) env.BORT_ISA = isa;
        const r = sh(path.join(bin, 'node'), ['check.cjs', FIXTURES, small], project, env, 120_000);
        const res = JSON.parse(must(r, `library check${isa ? ` (BORT_ISA=${isa})` : ''}`));
        expect(res.main).toBe(path.join('node_modules', 'bort-compress', 'dist', 'index.js'));
        expect(res.addon).toBe(PREBUILD);
        if (isa) expect(res.isa).toBe(isa);
        for (const o of Object.values(res.fixture) as { dims: number[]; expected: number[]; maxAbsError: number; tolerance: number }[]) {
          expect(o.dims).toEqual(o.expected);
          expect(o.maxAbsError).toBeLessThanOrEqual(o.tolerance);
        }
        expect(res.small.last_hidden_state).toEqual({ dims: [1, 4, 32], finite: true });
      }
    });
  });

  it('works with install scripts skipped (an allowScripts policy that denies it): the prebuild loads at run time', () => {
    const project = emptyProject('no-scripts');
    must(npmInstall(project, tarball, ['--ignore-scripts']), 'npm install --ignore-scripts');
    const r = sh(path.join(bin, 'node'), ['-e', "require('bort-compress').Encoder; const p=require.resolve('bort-compress/package.json'); const g=require(require.resolve('node-gyp-build',{paths:[p]})); process.stdout.write(g(require('path').dirname(p)).isa())"], project, userEnv());
    expect(must(r, 'load after --ignore-scripts')).toMatch(/^(avx512|avx2|neon|scalar)$/);
  }, 300_000);

  it('without a matching prebuild, the install fails and names the missing build tool', () => {
    const unpack = path.join(work, 'unpacked');
    fs.mkdirSync(unpack);
    execFileSync('tar', ['xzf', tarball, '-C', unpack]);
    fs.rmSync(path.join(unpack, 'package', 'prebuilds'), { recursive: true, force: true });
    const bare = path.join(work, 'no-prebuilds.tgz');
    execFileSync('tar', ['czf', bare, '-C', unpack, 'package']);
    const r = npmInstall(emptyProject('no-prebuild'), bare);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/not found: (make|cc|c\+\+|g\+\+)|Could not find any Python/);
  }, 300_000);
});

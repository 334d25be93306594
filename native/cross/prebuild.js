#!/usr/bin/env node
// Builds the N-API addon for each target and puts it where node-gyp-build looks first in an
// installed package: prebuilds/<platform>-<arch>/bort-compress.napi.glibc.node.
//
//   node native/cross/prebuild.js                 host arch, plus linux-arm64 when aarch64-linux-gnu-g++ is on PATH
//   node native/cross/prebuild.js --arch arm64    only these (comma separated: x64,arm64); a missing tool is an error
//   node native/cross/prebuild.js --if-stale      skip a target whose prebuild is newer than binding.gyp and native/src
//
// Each target builds with node-gyp in a scratch copy of binding.gyp + native/src, so the repository's
// own build/ (which node-gyp-build prefers when present) is never touched. N-API: one binary per
// platform/arch serves every supported Node version. Headers: npm_config_nodedir when set, else the
// running Node's own include/node, else node-gyp's download.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const NAME = 'bort-compress.napi.glibc.node';
const ELF_MACHINE = { x64: 62, arm64: 183 };
const CROSS = {
  arm64: { prefix: 'aarch64-linux-gnu-', package: 'g++-aarch64-linux-gnu' },
  x64: { prefix: 'x86_64-linux-gnu-', package: 'g++-x86-64-linux-gnu' },
};

function fail(msg) {
  process.stderr.write(`prebuild: ${msg}\n`);
  process.exit(1);
}

function onPath(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

function args() {
  const a = process.argv.slice(2);
  const o = { arch: null, ifStale: false };
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--arch') o.arch = (a[++i] || '').split(',').filter(Boolean);
    else if (a[i] === '--if-stale') o.ifStale = true;
    else fail(`unknown argument '${a[i]}' (use --arch x64,arm64 and/or --if-stale)`);
  }
  return o;
}

function nodeGyp() {
  // npm sets npm_config_node_gyp for its scripts; otherwise use the node-gyp bundled with npm.
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const npmDir = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  if (npmDir.status === 0) candidates.push(path.join(npmDir.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (c && fs.existsSync(c)) return [process.execPath, c];
  if (onPath('node-gyp')) return ['node-gyp'];
  fail('node-gyp not found (it ships with npm; run this through `npm run build:prebuilds`)');
}

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function newestSource() {
  let t = fs.statSync(path.join(ROOT, 'binding.gyp')).mtimeMs;
  for (const f of fs.readdirSync(path.join(ROOT, 'native', 'src'))) t = Math.max(t, fs.statSync(path.join(ROOT, 'native', 'src', f)).mtimeMs);
  return t;
}

// Highest glibc / libstdc++ symbol versions the binary needs (from its version-needed strings).
function requirements(file) {
  const s = fs.readFileSync(file).toString('latin1');
  const newer = (a, b) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
    return false;
  };
  const max = (re) => {
    let best = null;
    for (const m of s.matchAll(re)) {
      const v = m[1].split('.').map(Number);
      if (!best || newer(v, best)) best = v;
    }
    return best ? best.join('.') : null;
  };
  return { glibc: max(/GLIBC_(2\.[0-9]+(?:\.[0-9]+)?)\0/g), glibcxx: max(/GLIBCXX_(3\.4\.[0-9]+)\0/g) };
}

function build(arch, gyp, nodedir) {
  const host = os.arch();
  const env = { ...process.env };
  let strip = 'strip';
  if (arch !== host) {
    const c = CROSS[arch];
    if (!c) fail(`no cross toolchain known for ${arch}`);
    if (!onPath(`${c.prefix}g++`)) fail(`${c.prefix}g++ is not on PATH (Debian/Ubuntu: apt-get install ${c.package})`);
    Object.assign(env, { CC: `${c.prefix}gcc`, CXX: `${c.prefix}g++`, LINK: `${c.prefix}g++`, AR: `${c.prefix}ar` });
    strip = `${c.prefix}strip`;
  }
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `bort-prebuild-${arch}-`));
  try {
    fs.copyFileSync(path.join(ROOT, 'binding.gyp'), path.join(stage, 'binding.gyp'));
    fs.cpSync(path.join(ROOT, 'native', 'src'), path.join(stage, 'native', 'src'), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(stage, 'node_modules'));
    const cmd = [...gyp, 'rebuild', '--release', '-j', String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)), `--arch=${arch}`];
    if (nodedir) cmd.push(`--nodedir=${nodedir}`);
    process.stdout.write(`prebuild: linux-${arch}: ${cmd.slice(gyp.length - 1).join(' ')}\n`);
    const r = spawnSync(cmd[0], cmd.slice(1), { cwd: stage, env, encoding: 'utf8' });
    if (r.status !== 0) {
      process.stderr.write(r.stdout.split('\n').slice(-30).join('\n') + r.stderr);
      fail(`node-gyp failed for linux-${arch} (exit ${r.status})`);
    }
    const built = path.join(stage, 'build', 'Release', 'bort_native.node');
    const machine = fs.readFileSync(built).readUInt16LE(18);
    if (machine !== ELF_MACHINE[arch]) fail(`linux-${arch}: built an ELF for machine ${machine}, expected ${ELF_MACHINE[arch]}`);
    if (onPath(strip)) spawnSync(strip, ['--strip-unneeded', built], { stdio: 'inherit' });
    const outDir = path.join(ROOT, 'prebuilds', `linux-${arch}`);
    fs.mkdirSync(outDir, { recursive: true });
    const out = path.join(outDir, NAME);
    fs.copyFileSync(built, `${out}.tmp`);
    fs.renameSync(`${out}.tmp`, out);
    if (arch === host) {
      // the host binary must load and report a kernel table
      const t = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(out)}).isa())`], { encoding: 'utf8' });
      if (t.status !== 0) fail(`linux-${arch}: the new prebuild does not load: ${t.stderr}`);
      process.stdout.write(`prebuild: linux-${arch}: loads, kernels ${t.stdout}\n`);
    }
    const req = requirements(out);
    process.stdout.write(
      `prebuild: wrote ${path.relative(ROOT, out)} (${(fs.statSync(out).size / 1024).toFixed(0)} KiB; needs glibc >= ${req.glibc}, libstdc++ GLIBCXX_${req.glibcxx})\n`,
    );
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function main() {
  if (process.platform !== 'linux') fail(`prebuilds are produced on linux only (this is ${process.platform}); build from source with npm run build:native`);
  const o = args();
  const host = os.arch();
  let targets = o.arch;
  if (!targets) {
    targets = [host];
    if (host !== 'arm64') {
      if (onPath('aarch64-linux-gnu-g++')) targets.push('arm64');
      else process.stdout.write('prebuild: aarch64-linux-gnu-g++ not on PATH: no linux-arm64 prebuild (apt-get install g++-aarch64-linux-gnu)\n');
    }
  }
  for (const a of targets) if (!ELF_MACHINE[a]) fail(`unsupported arch '${a}' (x64 or arm64)`);
  const newest = newestSource();
  const todo = targets.filter((a) => {
    const f = path.join(ROOT, 'prebuilds', `linux-${a}`, NAME);
    const fresh = o.ifStale && fs.existsSync(f) && fs.statSync(f).mtimeMs > newest;
    if (fresh) process.stdout.write(`prebuild: linux-${a}: up to date\n`);
    return !fresh;
  });
  if (!todo.length) return;
  const gyp = nodeGyp();
  const nodedir = nodeDir();
  for (const a of todo) build(a, gyp, nodedir);
}

main();

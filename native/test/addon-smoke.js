#!/usr/bin/env node
// Smoke test of the bort_native addon against a naive JS reference of the same math.
//   node --expose-gc native/test/addon-smoke.js   (after `npx cmake-js compile` or `npx node-gyp rebuild`;
//   --expose-gc adds the resident-memory check)
// Prints "N passed, M failed" and exits non-zero on any failure.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const addon = require('node-gyp-build')(ROOT);

let passed = 0, failed = 0;
function ok(cond, msg) {
  if (cond) passed++;
  else { failed++; console.error(`FAIL: ${msg}`); }
}

// ---------------------------------------------------------------- random model
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function makeModel(cfg, seed) {
  const r = rng(seed);
  const w = {};
  const H = cfg.hidden, W = cfg.heads * cfg.headSize, I = cfg.intermediate, V = cfg.vocab;
  const rnd = (name, n, s) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * s; w[name] = a; };
  const gam = (name, n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = 0.8 + 0.4 * r(); w[name] = a; };
  rnd('word_emb', V * H, 1); rnd('pos_emb', cfg.maxPositions * H, 0.5);
  if (cfg.typeVocab) rnd('type_emb', cfg.typeVocab * H, 0.5);
  gam('emb_ln_g', H); rnd('emb_ln_b', H, 0.1);
  for (let l = 0; l < cfg.layers; l++) {
    for (const n of ['q', 'k', 'v']) { rnd(`${n}_w.${l}`, H * W, 1 / Math.sqrt(H)); rnd(`${n}_b.${l}`, W, 0.1); }
    rnd(`o_w.${l}`, W * H, 1 / Math.sqrt(W)); rnd(`o_b.${l}`, H, 0.1);
    gam(`ln1_g.${l}`, H); rnd(`ln1_b.${l}`, H, 0.1);
    rnd(`ffn_in_w.${l}`, H * I, 1 / Math.sqrt(H)); rnd(`ffn_in_b.${l}`, I, 0.1);
    rnd(`ffn_out_w.${l}`, I * H, 1 / Math.sqrt(I)); rnd(`ffn_out_b.${l}`, H, 0.1);
    gam(`ln2_g.${l}`, H); rnd(`ln2_b.${l}`, H, 0.1);
  }
  if (cfg.pooler) { rnd('pooler_w', H * H, 1 / Math.sqrt(H)); rnd('pooler_b', H, 0.1); }
  if (cfg.mlm) {
    rnd('mlm_w', H * H, 1 / Math.sqrt(H)); rnd('mlm_b', H, 0.1); gam('mlm_ln_g', H); rnd('mlm_ln_b', H, 0.1);
    rnd('decoder_w', H * V, 1 / Math.sqrt(H)); rnd('decoder_b', V, 0.1);
  }
  if (cfg.classifier) { rnd('cls_w', H * cfg.classifier.labels, 1 / Math.sqrt(H)); rnd('cls_b', cfg.classifier.labels, 0.1); }
  return w;
}

// ---------------------------------------------------------------- reference (float64)
function erf(x) {
  // series / continued fraction to ~1e-15, plenty for a 1e-4 comparison
  const ax = Math.abs(x);
  let y;
  if (ax < 2.5) {
    let term = ax, sum = ax;
    for (let n = 1; n < 80; n++) { term *= -ax * ax / n; sum += term / (2 * n + 1); }
    y = 2 / Math.sqrt(Math.PI) * sum;
  } else {
    let f = 0;
    for (let n = 60; n >= 1; n--) f = (n / 2) / (ax + f);
    y = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -y : y;
}
const gelu = (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));

function linear(x, M, K, w, b, N) {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = b[j];
    for (let k = 0; k < K; k++) s += x[i * K + k] * w[k * N + j];
    y[i * N + j] = s;
  }
  return y;
}
function layerNorm(x, M, N, g, b, eps) {
  for (let i = 0; i < M; i++) {
    let mean = 0, v = 0;
    for (let j = 0; j < N; j++) mean += x[i * N + j];
    mean /= N;
    for (let j = 0; j < N; j++) v += (x[i * N + j] - mean) ** 2;
    v /= N;
    const r = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < N; j++) x[i * N + j] = (x[i * N + j] - mean) * r * g[j] + b[j];
  }
}

function reference(cfg, w, { ids, mask, types, batch: B, seq: S }) {
  const H = cfg.hidden, d = cfg.headSize, W = cfg.heads * d, M = B * S;
  let x = new Float64Array(M * H);
  for (let r = 0; r < M; r++) for (let j = 0; j < H; j++) {
    let v = w.word_emb[ids[r] * H + j] + w.pos_emb[(r % S) * H + j];
    if (cfg.typeVocab) v += w.type_emb[(types ? types[r] : 0) * H + j];
    x[r * H + j] = v;
  }
  layerNorm(x, M, H, w.emb_ln_g, w.emb_ln_b, cfg.embLnEps);
  const f32 = Math.fround;
  for (let l = 0; l < cfg.layers; l++) {
    const q = linear(x, M, H, w[`q_w.${l}`], w[`q_b.${l}`], W);
    const k = linear(x, M, H, w[`k_w.${l}`], w[`k_b.${l}`], W);
    const v = linear(x, M, H, w[`v_w.${l}`], w[`v_b.${l}`], W);
    const ctx = new Float64Array(M * W);
    for (let b = 0; b < B; b++) for (let h = 0; h < cfg.heads; h++) for (let i = 0; i < S; i++) {
      const sc = new Float64Array(S);
      let mx = -Infinity;
      for (let j = 0; j < S; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[(b * S + i) * W + h * d + e] * k[(b * S + j) * W + h * d + e];
        const m = mask ? mask[b * S + j] : 1;
        sc[j] = dot * cfg.scoreScale + f32(f32(1 - m) * f32(cfg.maskValue));
        mx = Math.max(mx, sc[j]);
      }
      let sum = 0;
      for (let j = 0; j < S; j++) sum += (sc[j] = Math.exp(sc[j] - mx));
      for (let e = 0; e < d; e++) {
        let acc = 0;
        for (let j = 0; j < S; j++) acc += sc[j] / sum * v[(b * S + j) * W + h * d + e];
        ctx[(b * S + i) * W + h * d + e] = acc;
      }
    }
    const a = linear(ctx, M, W, w[`o_w.${l}`], w[`o_b.${l}`], H);
    for (let i = 0; i < a.length; i++) a[i] += x[i];
    layerNorm(a, M, H, w[`ln1_g.${l}`], w[`ln1_b.${l}`], cfg.lnEps[2 * l]);
    x = a;
    const f = linear(x, M, H, w[`ffn_in_w.${l}`], w[`ffn_in_b.${l}`], cfg.intermediate);
    for (let i = 0; i < f.length; i++) f[i] = gelu(f[i]);
    const o = linear(f, M, cfg.intermediate, w[`ffn_out_w.${l}`], w[`ffn_out_b.${l}`], H);
    for (let i = 0; i < o.length; i++) o[i] += x[i];
    layerNorm(o, M, H, w[`ln2_g.${l}`], w[`ln2_b.${l}`], cfg.lnEps[2 * l + 1]);
    x = o;
  }
  const out = { hidden: x };
  if (cfg.pooler) {
    const cls = new Float64Array(B * H);
    for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) cls[b * H + j] = x[b * S * H + j];
    out.pooled = linear(cls, B, H, w.pooler_w, w.pooler_b, H).map(Math.tanh);
    if (cfg.classifier) out.cls = linear(out.pooled, B, H, w.cls_w, w.cls_b, cfg.classifier.labels);
  }
  if (cfg.mlm) {
    const t = linear(x, M, H, w.mlm_w, w.mlm_b, H).map(gelu);
    layerNorm(t, M, H, w.mlm_ln_g, w.mlm_ln_b, cfg.mlm.lnEps);
    out.mlm = linear(t, M, H, w.decoder_w, w.decoder_b, cfg.vocab);
  }
  return out;
}

function maxDiff(a, b) {
  if (!a || !b || a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); if (!(d <= m)) m = d; }
  return m;
}

// Per-position outputs ([B*S rows]): real positions against the reference; padded positions (mask 0)
// must be exactly 0 (the engine skips padding). Infinity when a padded position is not 0.
function maxDiffReal(got, ref, mask) {
  if (!mask) return maxDiff(got, ref);
  if (!got || !ref || got.length !== ref.length) return Infinity;
  const width = got.length / mask.length;
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    if (mask[Math.floor(i / width)] === 0) { if (got[i] !== 0) return Infinity; continue; }
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= m)) m = d;
  }
  return m;
}

function inputsFor(cfg, B, S, seed, { withMask = true, withTypes = true } = {}) {
  const r = rng(seed);
  const n = B * S;
  const ids = new Int32Array(n), mask = new Int32Array(n), types = new Int32Array(n);
  for (let i = 0; i < n; i++) { ids[i] = Math.floor(r() * cfg.vocab); types[i] = cfg.typeVocab ? Math.floor(r() * cfg.typeVocab) : 0; }
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) mask[b * S + s] = s < S - b ? 1 : 0;
  return { ids, mask: withMask ? mask : null, types: withTypes && cfg.typeVocab ? types : null, batch: B, seq: S };
}

const baseCfg = {
  layers: 2, heads: 3, headSize: 8, hidden: 20, intermediate: 36, vocab: 41, maxPositions: 48, typeVocab: 2,
  scoreScale: 1 / Math.sqrt(8), maskValue: -10000, embLnEps: 1e-12, lnEps: [1e-12, 1e-5, 1e-12, 1e-12],
  pooler: true, mlm: { lnEps: 1e-12 }, classifier: { labels: 3 }, threads: 2,
};

async function compareCase(name, cfg, B, S, opts, seed) {
  const w = makeModel(cfg, seed);
  const enc = addon.createEncoder(cfg, w);
  const inp = inputsFor(cfg, B, S, seed + 7, opts);
  const got = await enc.run(inp);
  const ref = reference(cfg, w, inp);
  for (const k of ['hidden', 'pooled', 'mlm', 'cls']) {
    if (!ref[k]) { ok(got[k] === undefined, `${name}: unexpected output ${k}`); continue; }
    ok(got[k] instanceof Float32Array, `${name}: ${k} is not a Float32Array`);
    const e = k === 'hidden' || k === 'mlm' ? maxDiffReal(got[k], ref[k], inp.mask) : maxDiff(got[k], ref[k]);
    ok(e < 1e-4, `${name}: ${k} max error ${e}`);
  }
  enc.close();
}

async function expectReject(p, Type, re, what) {
  try {
    await p;
    ok(false, `${what}: resolved, expected ${Type.name}`);
  } catch (e) {
    ok(e instanceof Type, `${what}: got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    if (re) ok(re.test(String(e.message)), `${what}: message '${e.message}' does not match ${re}`);
  }
}

// child mode: BORT_ISA-forced numeric check
async function child() {
  await compareCase(`BORT_ISA=${process.env.BORT_ISA}`, baseCfg, 2, 11, {}, 5);
  ok(addon.isa() === process.env.BORT_ISA, `isa() = ${addon.isa()} under BORT_ISA=${process.env.BORT_ISA}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

async function main() {
  const isa = addon.isa();
  ok(['avx512', 'avx2', 'neon', 'scalar'].includes(isa), `isa() = ${isa}`);
  console.log(`isa: ${isa}; available: ${addon.isas().join(', ')}`);

  // numerics against the reference
  await compareCase('mask -1e4', baseCfg, 3, 9, {}, 1);
  await compareCase('mask float lowest', { ...baseCfg, maskValue: -3.4028234663852886e38 }, 2, 33, {}, 2);
  await compareCase('mask null, types null', baseCfg, 2, 6, { withMask: false, withTypes: false }, 3);
  await compareCase('no type table, W != H, hidden only',
    { ...baseCfg, typeVocab: 0, pooler: false, mlm: null, classifier: null, heads: 4, headSize: 16, hidden: 48, layers: 1, lnEps: [1e-12, 1e-12], threads: 1 },
    2, 20, {}, 4);
  await compareCase('pooler without heads', { ...baseCfg, mlm: null, classifier: null, threads: 3 }, 4, 5, {}, 6);

  // every other ISA this CPU has, forced through BORT_ISA in a child process
  for (const other of addon.isas()) {
    if (other === isa) continue;
    const r = spawnSync(process.execPath, [__filename, '--child'], { env: { ...process.env, BORT_ISA: other }, encoding: 'utf8' });
    const m = /(\d+) passed, (\d+) failed/.exec(r.stdout || '');
    ok(r.status === 0 && m && m[2] === '0', `BORT_ISA=${other} child: ${r.status} ${r.stdout} ${r.stderr}`);
  }
  {
    const r = spawnSync(process.execPath, ['-e', `require('node-gyp-build')(${JSON.stringify(ROOT)}).isa()`],
      { env: { ...process.env, BORT_ISA: 'bogus' }, encoding: 'utf8' });
    ok(r.status !== 0 && /BORT_ISA/.test(r.stderr), 'BORT_ISA=bogus must make isa() throw');
  }

  // validation: RangeError / TypeError naming the problem, never an out-of-bounds read
  const w = makeModel(baseCfg, 9);
  const enc = addon.createEncoder(baseCfg, w);
  const good = inputsFor(baseCfg, 2, 4, 10);
  const badIds = Int32Array.from(good.ids); badIds[5] = baseCfg.vocab;
  await expectReject(enc.run({ ...good, ids: badIds }), RangeError, /ids\[5\]/, 'id == vocab');
  const negIds = Int32Array.from(good.ids); negIds[0] = -1;
  await expectReject(enc.run({ ...good, ids: negIds }), RangeError, /ids\[0\]/, 'negative id');
  const badTypes = Int32Array.from(good.types); badTypes[3] = 2;
  await expectReject(enc.run({ ...good, types: badTypes }), RangeError, /types\[3\]/, 'type == typeVocab');
  await expectReject(enc.run({ ...good, ids: good.ids.subarray(1) }), TypeError, /ids/, 'short ids');
  await expectReject(enc.run({ ...good, mask: new Int32Array(3) }), TypeError, /mask/, 'short mask');
  await expectReject(enc.run({ ...good, ids: Float32Array.from(good.ids) }), TypeError, /Int32Array/, 'ids not Int32Array');
  const longSeq = inputsFor(baseCfg, 1, baseCfg.maxPositions + 1, 11);
  await expectReject(enc.run(longSeq), RangeError, /positions/, 'seq > maxPositions');
  await expectReject(enc.run({ ...good, batch: 0 }), TypeError, /batch/, 'batch 0');

  // overlapping calls give the same answers as sequential ones
  const inputs = [1, 2, 3, 4, 5, 6].map((b) => inputsFor(baseCfg, b, 3 + b, 20 + b));
  const seqRes = [];
  for (const i of inputs) seqRes.push(await enc.run(i));
  const parRes = await Promise.all(inputs.map((i) => enc.run(i)));
  ok(parRes.every((r, i) => maxDiff(r.hidden, seqRes[i].hidden) === 0 && maxDiff(r.mlm, seqRes[i].mlm) === 0),
    'overlapping runs differ from sequential runs');
  enc.setThreads(1);
  ok(enc.threads === 1, 'setThreads(1)');
  const one = await enc.run(inputs[2]);
  ok(maxDiff(one.hidden, seqRes[2].hidden) < 1e-5, 'result changed with 1 thread');

  // close: later runs reject with an Error
  const pending = enc.run(good);
  enc.close();
  try { await pending; ok(true, ''); } catch (e) { ok(e instanceof Error, `run in flight at close: ${e}`); }
  await expectReject(enc.run(good), Error, /closed/, 'run after close');

  // configuration errors name the weight
  const partial = { ...w };
  delete partial['ffn_out_w.1'];
  try { addon.createEncoder(baseCfg, partial); ok(false, 'missing weight accepted'); } catch (e) { ok(e instanceof TypeError && /ffn_out_w\.1/.test(e.message), `missing weight: ${e.message}`); }
  try { addon.createEncoder(baseCfg, { ...w, 'q_w.0': new Float32Array(3) }); ok(false, 'short weight accepted'); } catch (e) { ok(e instanceof TypeError && /q_w\.0/.test(e.message), `short weight: ${e.message}`); }

  // packed weights stay within 1.15x of the fp32 parameters
  {
    const big = { ...baseCfg, hidden: 256, heads: 4, headSize: 64, intermediate: 1024, vocab: 1000, maxPositions: 128, layers: 2, lnEps: [1e-12, 1e-12, 1e-12, 1e-12], mlm: null, classifier: null };
    const bw = makeModel(big, 12);
    let bytes = 0;
    for (const k of Object.keys(bw)) bytes += bw[k].byteLength;
    const e = addon.createEncoder(big, bw);
    ok(e.packedBytes <= 1.15 * bytes, `packed ${e.packedBytes} bytes for ${bytes} parameter bytes`);
    e.close();
  }

  // resident memory after load: packed weights only (JS arrays dropped and collected)
  if (global.gc) {
    const big = { ...baseCfg, hidden: 512, heads: 8, headSize: 64, intermediate: 2048, vocab: 8000, maxPositions: 512, layers: 6,
      lnEps: new Array(12).fill(1e-12), mlm: null, classifier: null };
    const settle = async () => { for (let i = 0; i < 3; i++) { global.gc(); await new Promise((r) => setTimeout(r, 30)); } };
    await settle();
    const rss0 = process.memoryUsage().rss;
    let bw = makeModel(big, 15);
    let bytes = 0;
    for (const k of Object.keys(bw)) bytes += bw[k].byteLength;
    const e = addon.createEncoder(big, bw);
    bw = null;
    await settle();
    const grew = process.memoryUsage().rss - rss0;
    ok(grew <= 1.15 * bytes, `RSS grew ${(grew / 2 ** 20).toFixed(1)} MiB after loading ${(bytes / 2 ** 20).toFixed(1)} MiB of parameters`);
    console.log(`memory: RSS grew ${(grew / bytes).toFixed(3)}x the fp32 parameter bytes after load`);
    e.close();
  } else {
    console.log('memory: run with node --expose-gc to check resident memory after load');
  }

  // the event loop keeps turning during a long run
  {
    const big = { ...baseCfg, hidden: 512, heads: 8, headSize: 64, intermediate: 2048, vocab: 2000, maxPositions: 256, layers: 4, lnEps: new Array(8).fill(1e-12), mlm: null, classifier: null, threads: 2 };
    const e = addon.createEncoder(big, makeModel(big, 13));
    const inp = inputsFor(big, 8, 256, 14);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = process.hrtime.bigint();
    await e.run(inp);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    clearInterval(timer);
    ok(ticks >= 3, `event loop ticked ${ticks} times during a ${ms.toFixed(1)} ms run`);
    console.log(`event loop: ${ticks} timer ticks during a ${ms.toFixed(1)} ms run`);
    // overlapping runs hold at most one libuv thread: file system work still completes promptly
    const small = inputsFor(big, 2, 256, 16);
    const runsP = Promise.all([1, 2, 3, 4, 5, 6].map(() => e.run(small)));
    const f0 = process.hrtime.bigint();
    await Promise.all([1, 2, 3, 4].map(() => fs.promises.readFile(__filename)));
    const fsMs = Number(process.hrtime.bigint() - f0) / 1e6;
    const r0 = process.hrtime.bigint();
    await runsP;
    const allMs = Number(process.hrtime.bigint() - r0) / 1e6 + fsMs;
    ok(fsMs < allMs / 2, `4 readFile calls took ${fsMs.toFixed(1)} ms while 6 runs took ${allMs.toFixed(1)} ms`);
    console.log(`libuv pool: 4 readFile calls took ${fsMs.toFixed(1)} ms during 6 overlapping runs (${allMs.toFixed(1)} ms)`);
    e.close();
  }

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

(process.argv[2] === '--child' ? child() : main()).catch((e) => {
  console.error(e);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});

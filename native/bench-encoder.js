#!/usr/bin/env node
// Latency and GFLOP/s of the native encoder on random weights, for the reference shapes.
//   node native/bench-encoder.js [--threads 2] [--runs 10] [--model bort|base|large|all] [--shape 1x128,8x128,1x32]
// FLOPs: 2*T*(4*H*W + 2*H*I) + 4*B*S*S*W per layer, plus the pooler (multiply-add = 2).
'use strict';
const path = require('node:path');
const addon = require('node-gyp-build')(path.resolve(__dirname, '..'));

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const threads = Number(opt('threads', 2));
const runs = Number(opt('runs', 10));
const which = opt('model', 'all');
const shapes = opt('shape', '1x128,8x128,1x32').split(',').map((s) => s.split('x').map(Number));

const MODELS = {
  bort: { layers: 4, heads: 8, hidden: 1024, intermediate: 768 },
  base: { layers: 12, heads: 12, hidden: 768, intermediate: 3072 },
  large: { layers: 24, heads: 16, hidden: 1024, intermediate: 4096 },
};

function makeWeights(c) {
  const w = {};
  let s = 12345;
  const fill = (n, scale) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; a[i] = ((s >>> 8) / 16777216 - 0.5) * scale; }
    return a;
  };
  const H = c.hidden, W = c.heads * c.headSize, I = c.intermediate;
  w.word_emb = fill(c.vocab * H, 0.1); w.pos_emb = fill(c.maxPositions * H, 0.1); w.type_emb = fill(2 * H, 0.1);
  w.emb_ln_g = fill(H, 0.1).map((x) => 1 + x); w.emb_ln_b = fill(H, 0.1);
  for (let l = 0; l < c.layers; l++) {
    for (const n of ['q', 'k', 'v']) { w[`${n}_w.${l}`] = fill(H * W, 0.06); w[`${n}_b.${l}`] = fill(W, 0.1); }
    w[`o_w.${l}`] = fill(W * H, 0.06); w[`o_b.${l}`] = fill(H, 0.1);
    w[`ln1_g.${l}`] = fill(H, 0.1).map((x) => 1 + x); w[`ln1_b.${l}`] = fill(H, 0.1);
    w[`ffn_in_w.${l}`] = fill(H * I, 0.06); w[`ffn_in_b.${l}`] = fill(I, 0.1);
    w[`ffn_out_w.${l}`] = fill(I * H, 0.03); w[`ffn_out_b.${l}`] = fill(H, 0.1);
    w[`ln2_g.${l}`] = fill(H, 0.1).map((x) => 1 + x); w[`ln2_b.${l}`] = fill(H, 0.1);
  }
  w.pooler_w = fill(H * H, 0.06); w.pooler_b = fill(H, 0.1);
  return w;
}

function flops(c, B, S) {
  const T = B * S, H = c.hidden, W = c.heads * c.headSize, I = c.intermediate;
  const perLayer = 2 * T * (3 * H * W + W * H + 2 * H * I) + 4 * B * S * S * W;
  return c.layers * perLayer + 2 * B * H * H;
}

async function main() {
  console.log(`isa ${addon.isa()}, threads ${threads}, median of ${runs} runs`);
  for (const name of which === 'all' ? Object.keys(MODELS) : [which]) {
    const m = MODELS[name];
    const c = {
      ...m, headSize: m.hidden / m.heads, vocab: 30522, maxPositions: 512, typeVocab: 2, scoreScale: 1 / Math.sqrt(m.hidden / m.heads),
      maskValue: -10000, embLnEps: 1e-12, lnEps: new Array(2 * m.layers).fill(1e-12), pooler: true, mlm: null, classifier: null, threads,
    };
    const settle = async () => { for (let i = 0; i < 3; i++) { global.gc?.(); await new Promise((r) => setTimeout(r, 30)); } };
    await settle();
    const rss0 = process.memoryUsage().rss;
    let w = makeWeights(c);
    let paramBytes = 0;
    for (const k of Object.keys(w)) paramBytes += w[k].byteLength;
    const t0 = process.hrtime.bigint();
    const enc = addon.createEncoder(c, w);
    const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
    w = null;
    await settle();
    const grew = process.memoryUsage().rss - rss0;
    console.log(`${name}: params ${(paramBytes / 2 ** 20).toFixed(0)} MiB, packed ${(enc.packedBytes / 2 ** 20).toFixed(0)} MiB` +
      ` (${(enc.packedBytes / paramBytes).toFixed(3)}x), createEncoder ${loadMs.toFixed(0)} ms` +
      (global.gc ? `, RSS growth after load with the JS arrays collected: ${(grew / paramBytes).toFixed(3)}x params` : ' (run with --expose-gc for RSS)'));
    for (const [B, S] of shapes) {
      const n = B * S;
      const ids = new Int32Array(n), mask = new Int32Array(n).fill(1), types = new Int32Array(n);
      for (let i = 0; i < n; i++) ids[i] = (i * 7919 + 13) % c.vocab;
      const inp = { ids, mask, types, batch: B, seq: S };
      for (let i = 0; i < 3; i++) await enc.run(inp);
      const times = [];
      for (let i = 0; i < runs; i++) {
        const t = process.hrtime.bigint();
        await enc.run(inp);
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      times.sort((a, b) => a - b);
      const med = times.length % 2 ? times[times.length >> 1] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
      const gf = flops(c, B, S) / med / 1e6;
      console.log(`  ${name} batch ${B} x seq ${S}: median ${med.toFixed(2)} ms (min ${times[0].toFixed(2)}), ${gf.toFixed(1)} GFLOP/s`);
    }
    enc.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

// Runtime cases that need a process of their own (an address-space limit set by the parent through
// `ulimit -v`, or --expose-gc). Spawned by hostile-runtime.test.ts; uses the compiled package (dist/).
// Prints one JSON line describing what happened; exits 0 unless the case itself broke.
//   node runtime-limits-child.cjs threads <model>          Encoder.load with 256 threads, then 2
//   node runtime-limits-child.cjs set-threads <model>      setThreads(256) on a loaded encoder, then run
//   node runtime-limits-child.cjs mlm-output <mlm-model>   a run whose masked-LM output cannot be allocated
//   node runtime-limits-child.cjs compress <model> <out>  compress() (its worker thread) under the limit
//   node --expose-gc runtime-limits-child.cjs gc <model>   encoders dropped without close() during runs
const { Encoder, compress } = require('../dist/index.js');

const [mode, model, output] = process.argv.slice(2);
const ids = (b, s, vocab) => ({ data: Int32Array.from({ length: b * s }, (_, i) => (i * 7 + 3) % vocab), dims: [b, s] });
const failure = (e) => ({ name: e && e.name, message: e && e.message });
const finite = (a) => a.every(Number.isFinite);

async function main() {
  if (mode === 'threads') {
    let first;
    try {
      const enc = await Encoder.load(model, { threads: 256 });
      first = { loaded: enc.threads };
      enc.close();
    } catch (e) {
      first = failure(e);
    }
    const enc = await Encoder.load(model, { threads: 2 });
    const out = await enc.run({ input_ids: ids(1, 6, 1000) });
    enc.close();
    return { first, after: { threads: 2, finite: finite(out.last_hidden_state.data) } };
  }
  if (mode === 'set-threads') {
    const enc = await Encoder.load(model, { threads: 2 });
    enc.setThreads(256);
    let first;
    try {
      await enc.run({ input_ids: ids(1, 6, 1000) });
      first = { ran: true };
    } catch (e) {
      first = failure(e);
    }
    const threads = enc.threads;
    const out = await enc.run({ input_ids: ids(1, 6, 1000) });
    enc.close();
    return { first, after: { threads, finite: finite(out.last_hidden_state.data) } };
  }
  if (mode === 'compress') {
    const r = await compress(model, { output, arch: '1,2,64,32' });
    return { arch: r.target.arch };
  }
  if (mode === 'mlm-output') {
    const enc = await Encoder.load(model, { threads: 1 });
    let first;
    try {
      // 2048 x 512 tokens x 1000 words: a 4 GB masked-LM output, more than the limit allows
      await enc.run({ input_ids: ids(2048, 512, enc.info.vocab) });
      first = { ran: true };
    } catch (e) {
      first = failure(e);
    }
    const out = await enc.run({ input_ids: ids(2, 8, enc.info.vocab) });
    enc.close();
    return { first, after: { finite: finite(out.logits.data) } };
  }
  if (mode === 'gc') {
    // each round: start runs on a fresh encoder, drop every reference to it without close(), collect
    let settled = 0, finiteAll = true;
    for (let round = 0; round < 20; round++) {
      let enc = await Encoder.load(model, { threads: 2 });
      const runs = [enc.run({ input_ids: ids(2, 32, 1000) }), enc.run({ input_ids: ids(1, 16, 1000) })];
      enc = null;
      global.gc();
      for (const r of await Promise.all(runs)) {
        settled++;
        finiteAll = finiteAll && finite(r.last_hidden_state.data);
      }
      global.gc();
    }
    await new Promise((r) => setTimeout(r, 50));
    global.gc();
    return { settled, finite: finiteAll };
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (r) => process.stdout.write(JSON.stringify(r) + '\n'),
  (e) => {
    process.stdout.write(JSON.stringify({ crashed: failure(e) }) + '\n');
    process.exitCode = 3;
  },
);

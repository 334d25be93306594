// Run outputs carved from reused memory (native/src/output_pool.h): runs many times with outputs dropped
// and collected, and checks that an output still held is never written over, that every run's outputs
// equal the first run's on the same input bit for bit, that collected outputs' memory is reused, and that
// the pool's count of live outputs matches what JS still holds. Spawned with --expose-gc by
// output-memory.test.ts; prints one JSON line.
const { Encoder } = require('../dist/index.js');
const { native } = require('../dist/runtime/native.js');

const tick = () => new Promise((r) => setImmediate(r));
async function collect() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await tick();
  }
}
const ids = (b, s, salt) => ({ input_ids: { data: Int32Array.from({ length: b * s }, (_, i) => (i * 31 + salt * 97) % 1000), dims: [b, s] } });
const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

async function main() {
  const [model, batch, seq, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
  const enc = await Encoder.load(model, { threads: 1 });
  const inputs = [0, 1, 2, 3, 4].map((k) => ids(batch, seq, k));
  const held = [];
  const copies = [];
  // one variable for every run result, cleared before collecting: a suspended async frame keeps its locals
  let r = null;
  for (const x of inputs) {
    r = await enc.run(x);
    held.push(r);
    copies.push(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Float32Array.from(v.data)])));
  }
  const outputsPerRun = Object.keys(held[0]).length;
  let mismatches = 0;
  for (let i = 0; i < rounds; i++) {
    const k = i % inputs.length;
    r = await enc.run(inputs[k]);
    for (const [name, v] of Object.entries(r)) if (!same(v.data, copies[k][name])) mismatches++;
    r = null;
    if (i % 10 === 9) await collect();
  }
  r = null;
  await collect();
  const heldIntact = held.every((r, k) => Object.entries(r).every(([name, v]) => same(v.data, copies[k][name])));
  const withHeld = native()._outputPool();
  held.length = 0;
  await collect();
  const afterDrop = native()._outputPool();
  enc.close();
  return { mismatches, heldIntact, outputsPerRun, withHeld, afterDrop };
}
main().then(
  (r) => process.stdout.write(JSON.stringify(r) + '\n'),
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);

// Runs the skip-padding cases on the ISA chosen by BORT_ISA (and with packing on or off by BORT_PACK)
// through the addon, and prints one JSON line: per case the outputs by role, whether the run skipped
// padding, and each row run alone at its own length (no padding at all). Spawned by skip-padding.test.ts.
const fs = require('fs');
const { prepareModel } = require('../dist/runtime/prepare.js');
const { native } = require('../dist/runtime/native.js');

async function main() {
  const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const addon = native();
  const prepared = new Map();
  const results = [];
  for (const c of cases) {
    if (!prepared.has(c.model)) prepared.set(c.model, await prepareModel(c.model));
    const { spec } = prepared.get(c.model);
    const enc = addon.createEncoder({ ...spec.config, threads: 2 }, spec.weights);
    const { batch, seq } = c;
    const r = await enc.run({ ids: Int32Array.from(c.ids), mask: Int32Array.from(c.mask), types: null, batch, seq });
    const outs = {};
    for (const k of ['hidden', 'pooled', 'mlm', 'cls']) if (r[k]) outs[k] = Array.from(r[k]);
    // each row alone, its real tokens only (only for masks whose tokens come first: a hole moves positions)
    const alone = [];
    if (c.prefix) {
      for (let b = 0; b < batch; b++) {
        const len = c.mask.slice(b * seq, (b + 1) * seq).reduce((a, m) => a + m, 0);
        const a = await enc.run({ ids: Int32Array.from(c.ids.slice(b * seq, b * seq + len)), mask: null, types: null, batch: 1, seq: len });
        const row = { skippedPadding: a.skippedPadding };
        for (const k of ['hidden', 'pooled', 'mlm', 'cls']) if (a[k]) row[k] = Array.from(a[k]);
        alone.push(row);
      }
    }
    results.push({ name: c.name, isa: enc.isa, skippedPadding: r.skippedPadding, outs, alone });
    enc.close();
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });

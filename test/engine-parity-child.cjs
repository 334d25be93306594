// Runs every parity check on the ISA chosen by BORT_ISA and prints one JSON line of max differences.
// Spawned by encoder.test.ts once per ISA path the machine supports.
const fs = require('fs');
const path = require('path');
const { Encoder } = require('../dist/index.js');

async function main() {
  const [specFile] = process.argv.slice(2);
  const cases = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  const results = [];
  for (const c of cases) {
    const enc = await Encoder.load(c.model, { threads: 2 });
    const inputs = {};
    for (const [name, v] of Object.entries(c.inputs)) inputs[name] = { data: BigInt64Array.from(v.data, BigInt), dims: v.shape };
    const out = await enc.run(inputs);
    const diffs = {};
    const paddedChecked = {};
    for (const [name, ref] of Object.entries(c.expected)) {
      const b = fs.readFileSync(ref.file);
      const want = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      const got = out[name];
      if (!got) { diffs[name] = 'missing'; continue; }
      if (JSON.stringify(got.dims) !== JSON.stringify(ref.dims)) { diffs[name] = `dims ${got.dims} vs ${ref.dims}`; continue; }
      // per-position outputs ([batch, seq, ...]): real positions against the reference, padded ones
      // (mask 0) must be exactly 0 (the engine skips them; onnxruntime/PyTorch return computed values)
      const maskName = enc.inputRoles.mask;
      const mask = maskName && c.inputs[maskName] ? c.inputs[maskName].data : null;
      const [B, S] = c.inputs[enc.inputRoles.ids].shape;
      const perPosition = ref.dims.length === 3 && ref.dims[0] === B && ref.dims[1] === S;
      const width = perPosition ? ref.dims[2] : 0;
      let m = 0;
      let padded = 0;
      for (let i = 0; i < want.length; i++) {
        if (perPosition && mask && mask[Math.floor(i / width)] === 0) {
          padded++;
          if (got.data[i] !== 0) { m = Infinity; break; }
        } else {
          m = Math.max(m, Math.abs(want[i] - got.data[i]));
        }
      }
      diffs[name] = m === Infinity ? 'a padded position is not 0' : Number.isFinite(m) ? m : 'nan';
      if (padded) paddedChecked[name] = padded;
    }
    results.push({ name: c.name, isa: enc.isa, diffs, paddedChecked });
    enc.close();
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });
void path;

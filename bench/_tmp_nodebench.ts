import { Encoder } from '../lib/runtime/encoder.js';
import { synth } from '../lib/synth/bert.js';
import * as fs from 'node:fs';
const model = '/tmp/base-bench.onnx';
if (!fs.existsSync(model)) synth({ arch: '12,12,768,3072', vocab: 30522, output: model });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
(async () => {
  const enc = await Encoder.load(model, { threads: 2, int8: true });
  const n = 128;
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(1000 + ((i * 7919) % 28000)));
  const feeds: any = { input_ids: { data: ids, dims: [1, n] }, attention_mask: { data: new BigInt64Array(n).fill(1n), dims: [1, n] }, token_type_ids: { data: new BigInt64Array(n), dims: [1, n] } };
  for (let w = 0; w < 5; w++) await enc.run(feeds);
  for (let rep = 0; rep < 8; rep++) {
    const t: number[] = [];
    for (let r = 0; r < 30; r++) { const t0 = performance.now(); await enc.run(feeds); t.push(performance.now() - t0); }
    console.log('node ours int8 median', median(t).toFixed(2), 'min', Math.min(...t).toFixed(2));
  }
  enc.close();
})();

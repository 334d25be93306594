/**
 * Benchmark (never a test): fill-mask on the trained teacher (../shared/teacher: teacher-mlm.onnx,
 * vocab.txt, mlm-eval.json), text in. Each held-out case's ids are written back as text (vocabulary
 * tokens joined by spaces, [MASK] at the masked position), tokenized again by lib/text, and run through
 * the fill-mask pipeline on the native engine in batches of mixed lengths. Reports:
 *   - how many texts tokenize back to exactly the case's ids,
 *   - how often our top-1 equals onnxruntime-node's arg-max on the case's own ids (batch 1, unpadded),
 *   - top-1 accuracy against the label (the teacher's own figure is in mlm-eval.json).
 *
 *   npx tsx bench/fill-mask-teacher.ts [--batch 8] [--limit N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pipeline } from '../lib/tasks/pipeline.js';
import { TextTokenizer } from '../lib/text/tokenizer.js';

const teacher = path.resolve(__dirname, '..', '..', 'shared', 'teacher');
const fallback = '/work/shared/teacher';
const dir = fs.existsSync(teacher) ? teacher : fallback;

interface Case { input_ids: number[]; masked_index: number; label: number }

async function main() {
  const { values } = parseArgs({ options: { batch: { type: 'string' }, limit: { type: 'string' } } });
  const batch = Number(values.batch ?? 8);
  const model = path.join(dir, 'teacher-mlm.onnx');
  const vocabFile = path.join(dir, 'vocab.txt');
  const evalSet = JSON.parse(fs.readFileSync(path.join(dir, 'mlm-eval.json'), 'utf8')) as { cases: Case[]; mask_id: number; teacher_accuracy: number };
  const cases = evalSet.cases.slice(0, values.limit ? Number(values.limit) : undefined);
  const vocab = fs.readFileSync(vocabFile, 'utf8').split('\n');
  const tok = TextTokenizer.fromFile(vocabFile);

  // text from ids, and the round trip through the tokenizer
  const texts: string[] = [];
  const expected: number[][] = [];
  let roundTrip = 0;
  for (const c of cases) {
    const ids = c.input_ids.slice();
    ids[c.masked_index] = evalSet.mask_id;
    const text = ids.slice(1, -1).map((id) => vocab[id]).join(' ');
    texts.push(text);
    expected.push(ids);
    if (JSON.stringify(tok.encode(text).ids) === JSON.stringify(ids)) roundTrip++;
  }

  // onnxruntime on the case ids, one at a time, unpadded
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all' });
  const ortTop: number[] = [];
  const t0 = performance.now();
  for (const ids of expected) {
    const n = ids.length;
    const t = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [1, n]);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) feeds[name] = name.includes('mask') ? t(Array(n).fill(1)) : name.includes('type') ? t(Array(n).fill(0)) : t(ids);
    const out = (await session.run(feeds))[session.outputNames[0]].data as Float32Array;
    const vocabSize = out.length / n;
    const c = cases[ortTop.length];
    let best = 0;
    for (let v = 1; v < vocabSize; v++) if (out[c.masked_index * vocabSize + v] > out[c.masked_index * vocabSize + best]) best = v;
    ortTop.push(best);
  }
  const ortMs = performance.now() - t0;
  await session.release();

  // ours: text in, batches of mixed lengths
  const fill = await pipeline('fill-mask', model, { tokenizer: tok, batch, topK: 1 });
  const t1 = performance.now();
  const results = await fill.run(texts);
  const oursMs = performance.now() - t1;
  await fill.close();

  let agree = 0, agreeRoundTrip = 0, hits = 0, ortHits = 0;
  const disagreements: string[] = [];
  results.forEach((r, i) => {
    const ours = r.predictions[0].id;
    const same = JSON.stringify(tok.encode(texts[i]).ids) === JSON.stringify(expected[i]);
    if (ours === ortTop[i]) {
      agree++;
      if (same) agreeRoundTrip++;
    } else if (disagreements.length < 5) disagreements.push(`case ${i}: ours ${ours} (${vocab[ours]}), ort ${ortTop[i]} (${vocab[ortTop[i]]})${same ? '' : ' [text did not round-trip]'}`);
    if (ours === cases[i].label) hits++;
    if (ortTop[i] === cases[i].label) ortHits++;
  });
  const n = cases.length;
  const pct = (x: number, of = n) => `${((100 * x) / of).toFixed(2)}%`;
  console.log(`fill-mask on the teacher, ${n} held-out cases, batch ${batch}`);
  console.log(`  texts that tokenize back to the case ids: ${roundTrip}/${n} (${pct(roundTrip)})`);
  console.log(`  top-1 equal to onnxruntime's arg-max:     ${agree}/${n} (${pct(agree)}); on round-tripped texts ${agreeRoundTrip}/${roundTrip}`);
  console.log(`  top-1 accuracy vs label: ours ${pct(hits)}, onnxruntime ${pct(ortHits)}, teacher (PyTorch, mlm-eval.json) ${(100 * evalSet.teacher_accuracy).toFixed(2)}%`);
  console.log(`  time: ours ${(oursMs / 1000).toFixed(2)} s (tokenize + batched native runs), onnxruntime ${(ortMs / 1000).toFixed(2)} s (ids, batch 1)`);
  for (const d of disagreements) console.log(`  ${d}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

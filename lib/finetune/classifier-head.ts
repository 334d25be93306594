/**
 * A new sequence-classification head on a BERT graph, in the PyTorch export pattern that lib/bert/heads.ts
 * recognises: the final hidden state's first token (Gather index 0 on axis 1) → pooler Gemm [H, H] →
 * Tanh → classifier Gemm [labels, H] → `logits` [batch, labels]. Every other head (masked-LM, a
 * classifier of another label count, the pooled output) and its weights are dropped. New weights are
 * drawn from N(0, 0.02) by a seeded generator, biases 0 (BERT's initialisation).
 */
import type { BertModel } from '../bert/model.js';
import { BortError } from '../errors.js';
import { makeAttrFloat, makeAttrInt, makeNode } from '../onnx/graph.js';
import { makeFloatTensor, makeInt64Tensor } from '../onnx/tensor.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import { removeDeadCode } from '../rewrite/prune.js';
import { SeededRandom } from '../distill/masked-batches.js';

/** The model's pooler + classifier, when it has one with this many labels (then it is trained as it is). */
export function reusableHead(m: BertModel, labels: number): boolean {
  const c = m.classifiers.filter((x) => x.source === 'pooler');
  return !!m.pooler && c.length === 1 && c[0].linear.outDim === labels && !m.classifiers.some((x) => x.source === 'hidden');
}

function normal(rng: SeededRandom, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box-Muller: two normals from two uniforms in (0, 1]
    const u = 1 - rng.next(), v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Replaces the graph's heads and outputs with a new pooler + classifier of `labels` outputs, in place. */
export function writeClassifierHead(model: ModelProto, m: BertModel, labels: number, seed: number): void {
  const g = model.graph!;
  const last = m.layers[m.layers.length - 1].output;
  if (!g.node.some((n) => n.output.includes(last))) {
    throw new BortError('the final hidden state is not a tensor of the stored graph', 'fine-tune a model exported in the stock pattern (e.g. from PyTorch), or one with a classification head');
  }
  const H = m.arch.hidden;
  const taken = new Set<string>([...g.node.flatMap((n) => [...n.output, n.name ?? '']), ...g.initializer.map((t) => t.name ?? ''), ...g.input.map((i) => i.name ?? '')]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const rng = new SeededRandom(seed);
  const index = fresh('classifier_head.first_token_index');
  const pw = fresh('bert.pooler.dense.weight'), pb = fresh('bert.pooler.dense.bias');
  const cw = fresh('classifier.weight'), cb = fresh('classifier.bias');
  const first = fresh('classifier_head.first_token'), pooledPre = fresh('classifier_head.pooler_dense'), pooled = fresh('pooler_output_tanh');
  // a temporary name for the logits: the dropped masked-LM head may own `logits` until dead code goes
  const out = fresh('classifier_head.logits');
  g.initializer.push(
    makeInt64Tensor(index, [], [0]),
    makeFloatTensor(pw, [H, H], normal(rng, H * H, 0.02)), makeFloatTensor(pb, [H], new Float32Array(H)),
    makeFloatTensor(cw, [labels, H], normal(rng, labels * H, 0.02)), makeFloatTensor(cb, [labels], new Float32Array(labels)),
  );
  const gemm = (a: string, w: string, b: string, y: string, name: string) =>
    makeNode('Gemm', [a, w, b], [y], fresh(name), [makeAttrFloat('alpha', 1), makeAttrFloat('beta', 1), makeAttrInt('transB', 1)]);
  g.node.push(
    makeNode('Gather', [last, index], [first], fresh('/classifier_head/Gather'), [makeAttrInt('axis', 1)]),
    gemm(first, pw, pb, pooledPre, '/bert/pooler/dense/Gemm'),
    makeNode('Tanh', [pooledPre], [pooled], fresh('/bert/pooler/activation/Tanh')),
    gemm(pooled, cw, cb, out, '/classifier/Gemm'),
  );
  const batchDim = g.input.find((i) => i.name === m.inputs.ids)?.type?.tensorType?.shape?.dim?.[0];
  g.output = [{
    name: out,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [batchDim?.dimParam ? { dimParam: batchDim.dimParam } : { dimParam: 'batch_size' }, { dimValue: labels }] } } },
  }];
  removeDeadCode(g);
  // now `logits` is free unless the encoder itself uses the name
  const live = new Set<string>([...g.node.flatMap((n) => n.output), ...g.initializer.map((t) => t.name ?? ''), ...g.input.map((i) => i.name ?? '')]);
  if (!live.has('logits')) {
    for (const n of g.node) n.output = n.output.map((o) => (o === out ? 'logits' : o));
    g.output[0].name = 'logits';
  }
}

/** id2label / label2id in the model's metadata, as transformers writes them and lib/tasks/metadata.ts reads them. */
export function setLabelMetadata(model: ModelProto, labels: string[]): void {
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  labels.forEach((l, i) => {
    id2label[String(i)] = l;
    label2id[l] = i;
  });
  model.metadataProps = [
    ...(model.metadataProps ?? []).filter((p) => p.key !== 'id2label' && p.key !== 'label2id' && p.key !== 'labels'),
    { key: 'id2label', value: JSON.stringify(id2label) },
    { key: 'label2id', value: JSON.stringify(label2id) },
  ];
}

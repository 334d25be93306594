/**
 * Malformed and hostile graphs: what onnxruntime refuses, recognition refuses too, with a BortError
 * naming the tensor (never a TypeError, never a wrong but plausible model); cycles, deep chains and
 * branch explosions end in an error, not a hang (checked through the CLI in a child process with a
 * time limit, since a synchronous hang cannot be interrupted in-process).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspect } from '../lib/index.js';
import { makeNode } from '../lib/onnx/graph.js';
import { DataType, type ModelProto } from '../lib/onnx/types.js';
import { tensorInfo } from '../lib/synth/builder.js';
import {
  base, constantOf, errorOf, expectBortError, feeds, floatConst, indexOf, insertBefore, nodes, producerOf, readerOf, save, setFloats,
} from './graph-edits.js';
import { ROOT, runOrt } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const Q = 'onnx::MatMul_bert.encoder.layer.0.attention.self.query';
const K = 'onnx::MatMul_bert.encoder.layer.0.attention.self.key';

/** Recognition refuses with `re`, and so does onnxruntime (creating or running a session). */
async function bothRefuse(m: ModelProto, re: RegExp): Promise<void> {
  const file = save(m);
  expectBortError(await errorOf(() => inspect(file)), re);
  await expect(runOrt(file, feeds())).rejects.toThrow();
}

/** `bort-compress inspect` on the model ends within 60 s with exit code 1 and one line matching `re`. */
function cliRefuses(m: ModelProto, re: RegExp): void {
  const r = spawnSync(process.execPath, [CLI, 'inspect', save(m)], { encoding: 'utf8', timeout: 60_000 });
  expect(r.signal, 'the CLI was killed: it hung').toBeNull();
  expect(r.status).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(r.stdout).toBe('');
}

function qMatMul(m: ModelProto) {
  return readerOf(m, Q, 'MatMul');
}

describe('malformed graphs onnxruntime refuses are refused, naming the tensor', () => {
  it('a Q bias of 15 values for 16 outputs', async () => {
    const m = base();
    setFloats(constantOf(m, 'bert.encoder.layer.0.attention.self.query.bias'), new Array(15).fill(0.01), [15]);
    await bothRefuse(m, /the bias 'bert\.encoder\.layer\.0\.attention\.self\.query\.bias' added after MatMul .* has shape \[15\] and type 1, not float32 \[16\]/);
  });

  it('two nodes write one tensor (Q computed again with the K weight)', async () => {
    const m = base();
    const q = qMatMul(m);
    m.graph!.node.splice(m.graph!.node.indexOf(q) + 1, 0, makeNode('MatMul', [q.input[0], K], [q.output[0]], 'second_writer'));
    await bothRefuse(m, /tensor '\/MatMul_\d+' is written by two nodes/);
  });

  it('a tensor that is both an initializer and a node output', async () => {
    const m = base();
    const q = qMatMul(m);
    m.graph!.initializer.push({ ...constantOf(m, 'bert.encoder.layer.0.attention.self.query.bias'), name: q.output[0] });
    expectBortError(await errorOf(() => inspect(save(m))), /tensor '\/MatMul_\d+' is both an initializer and the output of node/);
  });

  it('a graph input declared twice', async () => {
    const m = base();
    m.graph!.input.push(tensorInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']));
    await bothRefuse(m, /input 'input_ids' is declared twice/);
  });

  it('a Reshape whose shape is float', async () => {
    const m = base({ headShape: 'constant' });
    const reshape = producerOf(m, producerOf(m, nodes(m, 'MatMul').find((n) => !indexOf(m).isConstant(n.input[1]))!.input[0]).input[0]);
    expect(reshape.opType).toBe('Reshape');
    setFloats(constantOf(m, reshape.input[1]), [0, 0, 2, 8]);
    await bothRefuse(m, /layer 0 attention: Q: Reshape .* has a shape that is not int64 values/);
  });

  it('a word table of shape [0, 16]', async () => {
    const m = base();
    setFloats(constantOf(m, 'bert.embeddings.word_embeddings.weight'), [], [0, 16]);
    await bothRefuse(m, /the embedding table 'bert\.embeddings\.word_embeddings\.weight' has shape \[0, 16\]/);
  });

  it('a missing Q weight', async () => {
    const m = base();
    m.graph!.initializer = m.graph!.initializer.filter((t) => t.name !== Q);
    await bothRefuse(m, /node '\/MatMul_\d+' reads 'onnx::MatMul_bert\.encoder\.layer\.0\.attention\.self\.query', which no node, initializer or graph input defines/);
  });

  it('a Q weight stored as int64', async () => {
    const m = base();
    const t = constantOf(m, Q);
    t.dataType = DataType.INT64;
    t.rawData = new Uint8Array(16 * 16 * 8);
    await bothRefuse(m, /the weight 'onnx::MatMul_bert\.encoder\.layer\.0\.attention\.self\.query' of MatMul .* has data type 7, not float32/);
  });

  it('a Q weight stored as float16', async () => {
    const m = base();
    const t = constantOf(m, Q);
    t.dataType = DataType.FLOAT16;
    t.rawData = new Uint8Array(16 * 16 * 2);
    await bothRefuse(m, /the weight 'onnx::MatMul_bert\.encoder\.layer\.0\.attention\.self\.query' of MatMul .* has data type 10, not float32/);
  });

  it('a feed-forward output weight stored the wrong way round', async () => {
    const m = base();
    const t = constantOf(m, 'onnx::MatMul_bert.encoder.layer.1.output.dense');
    t.dims = [16, 24];
    setFloats(constantOf(m, 'bert.encoder.layer.1.output.dense.bias'), new Array(24).fill(0), [24]);
    await bothRefuse(m, /layer 1 feed-forward output weight 'onnx::MatMul_bert\.encoder\.layer\.1\.output\.dense' maps 16 to 24 values, not 24 to 16/);
  });

  it('a Gemm bias of the wrong length', async () => {
    const m = base();
    setFloats(constantOf(m, 'bert.pooler.dense.bias'), new Array(17).fill(0), [17]);
    await bothRefuse(m, /the bias 'bert\.pooler\.dense\.bias' of Gemm .* has shape \[17\] and type 1, not float32 \[16\]/);
  });

  it('a duplicate input named with a newline and escape codes is quoted, not echoed', async () => {
    const m = base();
    const evil = 'ids\n\u001b[2J';
    m.graph!.input.push(tensorInfo(evil, DataType.INT64, [1, 1]), tensorInfo(evil, DataType.INT64, [1, 1]));
    const e = await errorOf(() => inspect(save(m)));
    expectBortError(e, /input 'ids\\x0a\\x1b\[2J' is declared twice/);
    expect(e.message).not.toContain('\u001b');
  });
});

describe('hostile graphs end in an error, never a hang or a crash', () => {
  it('a cycle of Identity nodes after the pooler', () => {
    const m = base();
    const g = m.graph!;
    // pooler_output → Add(pooler_output, t2) → t1 → Identity → t2 → (back into the Add)
    g.node.push(makeNode('Add', ['pooler_output', 'loop_t2'], ['loop_t1'], 'loop_add'), makeNode('Identity', ['loop_t1'], ['loop_t2'], 'loop_identity'));
    cliRefuses(m, /the graph has a cycle through 'loop_t[12]'/);
  });

  it('an Identity that reads its own output', () => {
    const m = base();
    m.graph!.node.push(makeNode('Identity', ['self_loop'], ['self_loop'], 'selfish'));
    cliRefuses(m, /the graph has a cycle through 'self_loop'/);
  });

  it('Identity nodes that hand the pooled output round in a loop (through two writers)', () => {
    const m = base();
    m.graph!.node.push(makeNode('Identity', ['pooler_output'], ['ring_a'], 'ring0'), makeNode('Identity', ['ring_a'], ['ring_b'], 'ring1'), makeNode('Identity', ['ring_b'], ['ring_a'], 'ring2'));
    cliRefuses(m, /tensor 'ring_a' is written by two nodes|cycle/);
  });

  it('an embedding sum 20,000 Adds deep', () => {
    const m = base();
    const x = nodes(m, 'ReduceMean')[0].input[0];
    const outer = producerOf(m, x);
    const inner = producerOf(m, outer.input[0]);
    const [word, type] = inner.input;
    const pos = outer.input[1];
    // x = word + (((type + pos) + pos) + … + pos), the word lookup one Add away from the LayerNorm
    const g = m.graph!.node;
    const at = g.indexOf(outer);
    const chain = [makeNode('Add', [type, pos], ['deep_0'], 'deep_0')];
    for (let i = 1; i < 20_000; i++) chain.push(makeNode('Add', [`deep_${i - 1}`, pos], [`deep_${i}`], `deep_${i}`));
    chain.push(makeNode('Add', [word, 'deep_19999'], [x], 'deep_sum'));
    g.splice(at, 1, ...chain);
    g.splice(g.indexOf(inner), 1);
    cliRefuses(m, /embeddings: the sum '.*' is not a sum of up to three table lookups/);
  });

  it('a chain of 40 Add(x, x) between the scores and the Softmax (2^40 paths)', () => {
    const m = base();
    const softmax = nodes(m, 'Softmax')[0];
    let t = softmax.input[0];
    for (let i = 0; i < 40; i++) t = insertBefore(m, softmax, 'Add', [t, t]);
    softmax.input[0] = t;
    cliRefuses(m, /layer 0 attention: /);
  });

  it('100,000 Identity nodes after the encoder output', () => {
    const m = base();
    const g = m.graph!;
    let t = 'last_hidden_state';
    for (let i = 0; i < 100_000; i++) {
      const out = `chain_${i}`;
      g.node.push(makeNode('Identity', [t], [out], out));
      t = out;
    }
    g.output.push(tensorInfo(t, DataType.FLOAT, ['b', 's', 16]));
    cliRefuses(m, /graph output 'chain_99999' is not the encoder output or a recognised head/);
  });

  it('a node reading a tensor nothing defines', async () => {
    const m = base();
    const add = readerOf(m, nodes(m, 'Erf')[0].output[0], 'Add');
    add.input[1] = 'nowhere';
    await bothRefuse(m, /reads 'nowhere', which no node, initializer or graph input defines/);
  });

  it('a scores Div by a computed divisor is not taken for a scale', async () => {
    const m = base();
    const softmax = nodes(m, 'Softmax')[0];
    const scaleDiv = producerOf(m, producerOf(m, softmax.input[0]).input[0]);
    expect(scaleDiv.opType).toBe('Div');
    scaleDiv.input = [floatConst(m, 1), scaleDiv.input[0]];
    expectBortError(await errorOf(() => inspect(save(m))), /layer 0 attention: Div .* divides a constant by the scores/);
  });
});

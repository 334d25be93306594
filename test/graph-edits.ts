/**
 * Test helpers that alter a synthetic BERT graph in place (the node pattern of a PyTorch export, see
 * lib/synth/bert.ts): find nodes by op and wiring, replace constants, insert nodes, and compare the
 * native engine with onnxruntime on the result.
 */
import * as path from 'node:path';
import { expect } from 'vitest';
import { Encoder, buildSynthModel, type SynthOptions } from '../lib/index.js';
import { BortError } from '../lib/errors.js';
import { GraphIndex, makeAttrFloat, makeAttrInt, makeAttrInts, makeNode } from '../lib/onnx/graph.js';
import { saveModel } from '../lib/onnx/io.js';
import { makeFloatTensor, makeInt64Tensor } from '../lib/onnx/tensor.js';
import type { AttributeProto, ModelProto, NodeProto, TensorProto } from '../lib/onnx/types.js';
import { maxAbsDiff, maxAbsDiffAtTokens, randomInputs, runOrt, tmpDir } from './helpers.js';

export const VOCAB = 50;
export const NAMES = { ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' };

/**
 * 2 layers, 2 heads of 8, hidden 16, intermediate 24, 50 words, 40 positions; Q and K weights scaled
 * up 15× so that attention is far from uniform and changes to the scores show in the outputs.
 */
export function base(extra: Partial<SynthOptions> = {}): ModelProto {
  const m = buildSynthModel({ arch: '2,2,16,24', vocab: VOCAB, maxPositions: 40, seed: 7, ...extra });
  for (const t of m.graph!.initializer) {
    if (!/attention\.self\.(query|key)$/.test(t.name ?? '')) continue;
    const w = new Float32Array(t.rawData!.slice().buffer);
    setFloats(t, Array.from(w, (v) => v * 15));
  }
  return m;
}

export function indexOf(m: ModelProto): GraphIndex {
  return new GraphIndex(m.graph!);
}

export function nodes(m: ModelProto, op: string): NodeProto[] {
  return m.graph!.node.filter((n) => n.opType === op);
}

/** The only node that reads `tensor` with op `op` (fails the test when there is not exactly one). */
export function readerOf(m: ModelProto, tensor: string, op: string): NodeProto {
  const r = indexOf(m).consumersOf(tensor).filter((n) => n.opType === op);
  expect(r, `${op} reading ${tensor}`).toHaveLength(1);
  return r[0];
}

export function producerOf(m: ModelProto, tensor: string): NodeProto {
  const p = indexOf(m).producer.get(tensor);
  expect(p, `producer of ${tensor}`).toBeDefined();
  return p!;
}

/** The constant tensor (initializer or Constant node value) behind `name`, to change in place. */
export function constantOf(m: ModelProto, name: string): TensorProto {
  const t = indexOf(m).constant(name);
  expect(t, `constant ${name}`).toBeDefined();
  return t!;
}

export function setFloats(t: TensorProto, values: number[], dims?: number[]): void {
  const data = Float32Array.from(values);
  t.dataType = 1;
  t.rawData = new Uint8Array(data.buffer);
  t.floatData = [];
  if (dims) t.dims = dims;
}

export function setInt64s(t: TensorProto, values: number[], dims?: number[]): void {
  t.dataType = 7;
  t.rawData = new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
  t.int64Data = [];
  if (dims) t.dims = dims;
}

let counter = 0;
/** A new float32 initializer (a scalar by default). */
export function floatConst(m: ModelProto, value: number | number[], dims: number[] = []): string {
  const name = `test_f${counter++}`;
  m.graph!.initializer.push(makeFloatTensor(name, dims, Float32Array.from(Array.isArray(value) ? value : [value])));
  return name;
}

/** A new int64 initializer ([] for a scalar). */
export function intConst(m: ModelProto, values: number[], dims: number[] = [values.length]): string {
  const name = `test_i${counter++}`;
  m.graph!.initializer.push(makeInt64Tensor(name, dims, values));
  return name;
}

export function attrs(spec: Record<string, number | number[] | { float: number }>): AttributeProto[] {
  return Object.entries(spec).map(([k, v]) => (Array.isArray(v) ? makeAttrInts(k, v) : typeof v === 'number' ? makeAttrInt(k, v) : makeAttrFloat(k, v.float)));
}

/** Inserts a node right before `before` (so the list stays in data-flow order); returns its output. */
export function insertBefore(m: ModelProto, before: NodeProto, op: string, inputs: string[], spec: Record<string, number | number[] | { float: number }> = {}, output?: string): string {
  const out = output ?? `test_${op}_${counter++}`;
  const g = m.graph!;
  g.node.splice(g.node.indexOf(before), 0, makeNode(op, inputs, [out], out, attrs(spec)));
  return out;
}

export function removeNode(m: ModelProto, n: NodeProto): void {
  const g = m.graph!;
  g.node.splice(g.node.indexOf(n), 1);
}

export function setAttr(n: NodeProto, a: AttributeProto): void {
  n.attribute = [...n.attribute.filter((x) => x.name !== a.name), a];
}

export function save(m: ModelProto, name = 'm.onnx'): string {
  const file = path.join(tmpDir('bort-exact-'), name);
  saveModel(m, file);
  return file;
}

export function feeds(seq = 10, names: Partial<typeof NAMES> = NAMES) {
  return randomInputs(names as typeof NAMES, VOCAB, seq);
}

function encoderInputs(inputs: ReturnType<typeof feeds>) {
  const out: Record<string, { data: BigInt64Array; dims: number[] }> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = { data: BigInt64Array.from(v.data, BigInt), dims: v.shape };
  return out;
}

/** Runs the native engine and onnxruntime on `file`; every output must agree within 1e-4 (per-position outputs at the real positions, zeros at padded ones). Returns onnxruntime's outputs. */
export async function expectEngineMatchesOrt(file: string, seq = 10) {
  const inputs = feeds(seq);
  const ref = await runOrt(file, inputs);
  const enc = await Encoder.load(file, { threads: 1 });
  try {
    const out = await enc.run(encoderInputs(inputs));
    expect(Object.keys(out).sort()).toEqual(Object.keys(ref).sort());
    for (const k of Object.keys(ref)) {
      expect(out[k].dims).toEqual([...ref[k].dims]);
      expect(ref[k].data.every(Number.isFinite)).toBe(true);
      // real positions; padded ones are 0 from the engine (it skips padding)
      expect(maxAbsDiffAtTokens(out[k].data, ref[k].data, ref[k].dims, inputs[NAMES.mask]?.data), k).toBeLessThanOrEqual(1e-4);
    }
  } finally {
    enc.close();
  }
  return ref;
}

/** The largest difference between two models' onnxruntime outputs (to show an edit matters). */
export async function ortDifference(a: string, b: string, seq = 10): Promise<number> {
  const [x, y] = await Promise.all([runOrt(a, feeds(seq)), runOrt(b, feeds(seq))]);
  return Math.max(...Object.keys(x).map((k) => maxAbsDiff(x[k].data, y[k].data)));
}

/** onnxruntime's outputs hold NaN or infinite values. */
export async function ortGivesNonFinite(file: string, seq = 10): Promise<boolean> {
  const r = await runOrt(file, feeds(seq));
  return Object.values(r).some((o) => !o.data.every(Number.isFinite));
}

/** Captures the error `f` throws (or the promise rejects with); fails the test if there is none. */
export async function errorOf(f: () => unknown): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, got none');
}

/** A BortError whose one-line message matches `re`. */
export function expectBortError(e: Error, re: RegExp): void {
  expect(e).toBeInstanceOf(BortError);
  expect(e.message).toMatch(re);
  expect(e.message).not.toMatch(/\n/);
}

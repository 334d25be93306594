/**
 * `Encoder`: runs a BERT-family ONNX model on the native engine.
 *
 * ```ts
 * const enc = await Encoder.load('model.onnx', { threads: 2 });
 * const out = await enc.run({ input_ids: { data: BigInt64Array.from(...), dims: [1, 8] } });
 * out.last_hidden_state.data; // Float32Array
 * enc.close();
 * ```
 * Inputs are keyed by the model's own input names; missing mask means all ones, missing token types
 * all zeros. Work happens off the main thread; calls may overlap.
 */
import * as os from 'node:os';
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import type { Arch } from '../bert/model.js';
import { native, type NativeEncoder } from './native.js';
import { engineSpec, type EngineSpec } from './spec.js';

export interface TensorInput {
  data: BigInt64Array | Int32Array;
  dims: number[];
}

export interface TensorOutput {
  data: Float32Array;
  dims: number[];
}

export interface EncoderOptions {
  /** Worker threads for this encoder (default: the number of CPU cores). */
  threads?: number;
}

function toInt32(name: string, t: TensorInput): Int32Array {
  if (t.data instanceof Int32Array) return t.data;
  const out = new Int32Array(t.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = t.data[i];
    if (v < -2147483648n || v > 2147483647n) throw new RangeError(`${name}[${i}] = ${v} is out of range`);
    out[i] = Number(v);
  }
  return out;
}

function checkRange(name: string, data: Int32Array, limit: number, what: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < 0 || v >= limit) throw new RangeError(`${name}[${i}] = ${v} is outside the ${what} [0, ${limit})`);
  }
}

/**
 * The mask as the engine's formula (1 - mask) · value reads it, for a model whose fused Attention reads
 * its mask another way: 0/1 values only; 'lengths': the first (number of ones) positions of each row.
 */
function maskAsRead(name: string, mask: Int32Array, batch: number, seq: number, reading: 'raw' | 'lengths'): Int32Array {
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] !== 0 && mask[i] !== 1) throw new RangeError(`${name}[${i}] = ${mask[i]}: this model's attention reads masks of 0s and 1s only`);
  }
  if (reading === 'raw') return mask;
  const out = new Int32Array(mask.length);
  for (let b = 0; b < batch; b++) {
    let ones = 0;
    for (let t = 0; t < seq; t++) ones += mask[b * seq + t];
    out.fill(1, b * seq, b * seq + ones);
  }
  return out;
}

export class Encoder {
  private handle: NativeEncoder | undefined;

  private constructor(
    handle: NativeEncoder,
    private readonly spec: Omit<EngineSpec, 'weights'>,
    readonly arch: Arch,
    readonly isa: string,
    readonly threads: number,
  ) {
    this.handle = handle;
  }

  /** Reads and recognises the model, and packs its weights for the engine. */
  static async load(path: string, options: EncoderOptions = {}): Promise<Encoder> {
    const threads = options.threads ?? os.availableParallelism?.() ?? os.cpus().length;
    if (!Number.isInteger(threads) || threads < 1) throw new TypeError(`threads must be a positive integer, got ${threads}`);
    const addon = native();
    const m = recognize(loadModel(path).model);
    const spec = engineSpec(m);
    const handle = addon.createEncoder({ ...spec.config, threads }, spec.weights);
    const { weights: _weights, ...rest } = spec;
    void _weights;
    return new Encoder(handle, rest, m.arch, addon.isa(), threads);
  }

  /** The model's input names, in the roles the engine uses. */
  get inputNames(): string[] {
    const i = this.spec.inputs;
    return [i.ids, i.mask, i.tokenTypes].filter((x): x is string => !!x);
  }

  /** Which input plays which role. */
  get inputRoles(): { ids: string; mask?: string; tokenTypes?: string } {
    return { ...this.spec.inputs };
  }

  /** Vocabulary size and the heads the engine computes. */
  get info(): { vocab: number; maxPositions: number; pooler: boolean; mlm: boolean; classifierLabels?: number } {
    const c = this.spec.config;
    return { vocab: c.vocab, maxPositions: c.maxPositions, pooler: c.pooler, mlm: !!c.mlm, classifierLabels: c.classifier?.labels };
  }

  get outputNames(): string[] {
    return this.spec.outputs.map((o) => o.name);
  }

  async run(inputs: Record<string, TensorInput>): Promise<Record<string, TensorOutput>> {
    if (!this.handle) throw new Error('this Encoder is closed');
    if (!inputs || typeof inputs !== 'object') throw new TypeError(`run() takes an object of inputs keyed by ${this.inputNames.join(', ')}`);
    const names = this.spec.inputs;
    for (const k of Object.keys(inputs)) {
      if (!this.inputNames.includes(k)) throw new TypeError(`unknown input '${k}': this model takes ${this.inputNames.join(', ')}`);
    }
    const ids = inputs[names.ids];
    if (!ids) throw new TypeError(`input '${names.ids}' is required`);
    let batch = 0, seq = 0;
    const prepared: Record<string, Int32Array | null> = {};
    for (const name of this.inputNames) {
      const t = inputs[name];
      if (t === undefined) {
        prepared[name] = null;
        continue;
      }
      if (!t || !(t.data instanceof BigInt64Array || t.data instanceof Int32Array)) {
        throw new TypeError(`input '${name}' must be { data: BigInt64Array | Int32Array, dims: [batch, seq] }, got data of type ${t?.data?.constructor?.name ?? typeof t?.data}`);
      }
      if (!Array.isArray(t.dims) || t.dims.length !== 2 || !t.dims.every((d) => Number.isInteger(d) && d > 0)) {
        throw new TypeError(`input '${name}' must have dims [batch, seq] of positive integers, got ${JSON.stringify(t.dims)}`);
      }
      if (t.dims[0] * t.dims[1] !== t.data.length) {
        throw new TypeError(`input '${name}' has dims [${t.dims.join(', ')}] but ${t.data.length} values`);
      }
      if (name === names.ids) [batch, seq] = t.dims;
      prepared[name] = toInt32(name, t);
    }
    for (const name of this.inputNames) {
      const t = inputs[name];
      if (t && (t.dims[0] !== batch || t.dims[1] !== seq)) {
        throw new TypeError(`input '${name}' has dims [${t.dims.join(', ')}] but '${names.ids}' has [${batch}, ${seq}]`);
      }
    }
    const c = this.spec.config;
    const fixed = this.spec.fixedLength;
    if (fixed !== undefined && seq !== fixed) throw new RangeError(`sequence length ${seq}: this model's inputs declare sequences of exactly ${fixed} tokens`);
    if (seq > c.maxPositions) throw new RangeError(`sequence length ${seq} exceeds the model's ${c.maxPositions} positions`);
    const idData = prepared[names.ids]!;
    checkRange(names.ids, idData, c.vocab, 'vocabulary');
    const types = names.tokenTypes ? prepared[names.tokenTypes] : null;
    if (types) checkRange(names.tokenTypes!, types, c.typeVocab, 'token types');
    let mask = names.mask ? prepared[names.mask] : null;
    if (mask && this.spec.maskReading) mask = maskAsRead(names.mask!, mask, batch, seq, this.spec.maskReading);
    const r = await this.handle.run({ ids: idData, mask, types, batch, seq });
    const out: Record<string, TensorOutput> = {};
    for (const o of this.spec.outputs) {
      const data = r[o.from];
      if (!data) throw new Error(`the engine produced no ${o.from} output`);
      const dims = o.from === 'hidden' ? [batch, seq, c.hidden]
        : o.from === 'pooled' ? [batch, c.hidden]
          : o.from === 'mlm' ? [batch, seq, c.vocab]
            : [batch, c.classifier!.labels];
      out[o.name] = { data, dims };
    }
    return out;
  }

  /** Frees the packed weights; later run() calls fail. */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}

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
 * all zeros (a model exported without a token-type input reads the one row its graph reads). Outputs
 * are keyed by the model's output names: hidden states, pooled output, masked-LM, classifier and
 * per-token classifier logits (question answering's start and end logits as the model splits them).
 * Position ids a model computes from the token ids (RoBERTa) are computed here the same way. Work happens off the main thread (loading: reading and recognising in a worker thread,
 * packing on a libuv thread; runs on the engine's own threads); calls may overlap.
 *
 * Padding is skipped: when the attention mask marks padding (0s after or between a sequence's
 * tokens, position 0 a token), the engine packs the real tokens of the batch and runs attention per
 * sequence, so a padded batch costs what its tokens cost. Real positions equal the padded
 * computation's within 1e-5. Behaviour change from onnxruntime: positions whose mask is 0 come back
 * as zeros in per-position outputs (last_hidden_state, masked-LM logits, per-token and QA logits) — onnxruntime returns
 * computed values there; pooled and classifier outputs are as onnxruntime's. `BORT_PACK=0` turns
 * packing off.
 *
 * Inputs the engine refuses (a TypeError for a wrong type or shape, a RangeError for a value out of
 * range; the promise rejects, nothing is computed):
 * - `data` other than a BigInt64Array or Int32Array; `dims` other than [batch, seq] of integers with
 *   batch >= 0 and seq >= 1, or not matching `data.length`. As onnxruntime: a batch of 0 sequences
 *   gives empty outputs ([0, seq, hidden] …), a sequence of 0 tokens is refused (onnxruntime fails
 *   in the pooler, which gathers token 0).
 * - ids outside [0, vocab), token types outside [0, typeVocab), attention-mask values other than 0
 *   and 1 (the graph's `(1 - mask) · value` would turn a 2 into a bonus of 10000 — onnxruntime
 *   computes it; it is refused here as a caller error), a sequence longer than the model's positions.
 *
 * A model that puts -infinity in place of the scores of padding keys (DistilBERT's Where) gives NaN
 * for every output of a sequence whose mask is all 0, as onnxruntime does; with a finite fill such a
 * sequence attends to every key equally, as onnxruntime does.
 */
import type { Arch } from '../bert/model.js';
import { quoteName } from '../errors.js';
import { native, type NativeEncoder } from './native.js';
import type { EngineOutput, EngineSpec } from './spec.js';
import { positionsFromIds } from './positions.js';
import { prepareModel } from './prepare.js';
import { checkThreads, defaultThreads } from './threads.js';

export interface TensorInput {
  data: BigInt64Array | Int32Array;
  dims: number[];
}

export interface TensorOutput {
  data: Float32Array;
  dims: number[];
}

export interface EncoderOptions {
  /** Threads for this encoder: an integer in [1, 256] (default: the number of CPU cores, at most 256). */
  threads?: number;
  /**
   * true: quantize at load, symmetric per output column as `quantize` does, the layer projections (Q,
   * K, V, O, feed-forward), the pooler and the masked-LM decoder (its own int8 GEMM, not shared with
   * the word table), and run them on the int8 kernels (activations quantized per row at run time);
   * the word- and position-embedding tables become int8 per row, dequantized on gather; attention's
   * products too unless `int8Attention: false`. LayerNorms, softmax, the masked-LM transform,
   * classifiers and token-type rows stay float32. No float32 copy of a quantized weight is kept.
   * Default false.
   *
   * A quantized model (`bort-compress quantize`, or onnxruntime's `quantize_dynamic` with int8
   * weights) runs its int8 linears on the int8 kernels with the file's own weights and scales whatever
   * this says; `int8: true` then also quantizes what the file keeps in float32 (embeddings, heads).
   */
  int8?: boolean;
  /**
   * With int8 layers (`int8: true` or a quantized model): also run attention's two products, Q·Kᵀ and
   * P·V, on the int8 kernels — Q per row, K per key, the probabilities per row (each row's largest is
   * exactly 1, so values under 1/254 of it become 0) and V per head dimension; scores, mask and softmax
   * stay float32. Faster (BENCHMARKS.md, int8), a little further from float32, and further from
   * onnxruntime, which keeps attention float32 in a quantized file. Default: on with `int8: true`
   * (which quantizes everything it can), off for a quantized model loaded without it (which then runs
   * as the file says, as onnxruntime does). `true` on a float32 model without `int8: true` is refused
   * (a TypeError): there are no int8 layers for it to go with.
   */
  int8Attention?: boolean;
}

/** The values a role accepts: [0, limit), with the message for one outside. */
interface Domain {
  limit: number;
  refuse(name: string, i: number, v: number | bigint): RangeError;
}

/** The input as an Int32Array (the caller's own when it is one), every value checked against `d` first. */
function toInt32(name: string, t: TensorInput, d: Domain): Int32Array {
  const data = t.data;
  if (data instanceof Int32Array) {
    for (let i = 0; i < data.length; i++) if (data[i] < 0 || data[i] >= d.limit) throw d.refuse(name, i, data[i]);
    return data;
  }
  const out = new Int32Array(data.length);
  const limit = BigInt(d.limit);
  for (let i = 0; i < out.length; i++) {
    const v = data[i];
    if (v < 0n || v >= limit) throw d.refuse(name, i, v);
    out[i] = Number(v);
  }
  return out;
}

const table = (limit: number, what: string): Domain => ({
  limit,
  refuse: (name, i, v) => new RangeError(`${quoteName(name)}[${i}] = ${v} is outside the ${what} [0, ${limit})`),
});

const MASK: Domain = {
  limit: 2,
  refuse: (name, i, v) => new RangeError(`${quoteName(name)}[${i}] = ${v}: attention-mask values must be 0 (padding) or 1 (token)`),
};

function describeDims(dims: unknown): string {
  try {
    return JSON.stringify(dims, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(dims);
  } catch {
    return String(dims);
  }
}

/**
 * The mask as the engine's formula (1 - mask) · value reads it, for a model whose fused Attention reads
 * its mask another way (values already checked to be 0 or 1): 'lengths': the first (number of ones)
 * positions of each row.
 */
function maskAsRead(mask: Int32Array, batch: number, seq: number, reading: 'raw' | 'lengths'): Int32Array {
  if (reading === 'raw') return mask;
  const out = new Int32Array(mask.length);
  for (let b = 0; b < batch; b++) {
    let ones = 0;
    for (let t = 0; t < seq; t++) ones += mask[b * seq + t];
    out.fill(1, b * seq, b * seq + ones);
  }
  return out;
}

/** Column `k` of rows of `width` values (one logit per token, from the per-token logits). */
function column(data: Float32Array, width: number, k: number): Float32Array {
  const out = new Float32Array(data.length / width);
  for (let i = 0; i < out.length; i++) out[i] = data[i * width + k];
  return out;
}

export class Encoder {
  private handle: NativeEncoder | undefined;
  private threadsAtClose = 0;

  private constructor(
    handle: NativeEncoder,
    private readonly spec: Omit<EngineSpec, 'weights'>,
    readonly arch: Arch,
    readonly isa: string,
  ) {
    this.handle = handle;
  }

  /**
   * Reads and recognises the model (in a worker thread), and packs its weights for the engine (on a
   * libuv thread). Rejects with a RangeError when `threads` is outside [1, 256], with the model's
   * BortError when it cannot be read or run, and with an Error when the threads cannot be started.
   */
  static async load(path: string, options: EncoderOptions = {}): Promise<Encoder> {
    if (typeof path !== 'string' || path === '') throw new TypeError(`Encoder.load(path): path must be a non-empty string, got ${typeof path}`);
    if (options === null || typeof options !== 'object') throw new TypeError(`Encoder.load(path, options): options must be an object, got ${options === null ? 'null' : typeof options}`);
    const threads = options.threads === undefined ? defaultThreads() : checkThreads(options.threads, 'threads');
    if (options.int8 !== undefined && typeof options.int8 !== 'boolean') throw new TypeError(`options.int8 must be a boolean, got ${typeof options.int8}`);
    if (options.int8Attention !== undefined && typeof options.int8Attention !== 'boolean') throw new TypeError(`options.int8Attention must be a boolean, got ${typeof options.int8Attention}`);
    const addon = native();
    const { spec, arch } = await prepareModel(path);
    const { weights, ...rest } = spec;
    if (options.int8Attention === true && options.int8 !== true && !Object.values(weights).some((w) => w instanceof Int8Array)) {
      throw new TypeError('options.int8Attention needs int8 layers: load with { int8: true }, or load a quantized model (`bort-compress quantize`)');
    }
    const handle = await addon.createEncoderAsync({ ...spec.config, threads, int8: options.int8 === true, int8Attention: options.int8Attention ?? options.int8 === true }, weights);
    return new Encoder(handle, rest, arch, addon.isa());
  }

  /** Threads the next run uses (after close(): the count it had). */
  get threads(): number {
    return this.handle ? this.handle.threads : this.threadsAtClose;
  }

  /** Changes the thread count from the next run on (an integer in [1, 256]; RangeError otherwise). */
  setThreads(n: number): void {
    checkThreads(n, 'setThreads(n): n');
    if (!this.handle) throw new Error('this Encoder is closed');
    this.handle.setThreads(n);
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
  get info(): { vocab: number; maxPositions: number; fixedLength?: number; pooler: boolean; mlm: boolean; classifierLabels?: number; tokenLabels?: number } {
    const c = this.spec.config;
    return {
      vocab: c.vocab, maxPositions: this.spec.maxSeq, pooler: c.pooler, mlm: !!c.mlm, classifierLabels: c.classifier?.labels,
      tokenLabels: c.tokenClassifier?.labels,
      // the sequence length every input declares, when the model's inputs fix one (TensorFlow exports)
      ...(this.spec.fixedLength !== undefined ? { fixedLength: this.spec.fixedLength } : {}),
    };
  }

  get outputNames(): string[] {
    return this.spec.outputs.map((o) => o.name);
  }

  /**
   * What each output is, in declared order: the engine output that carries it (hidden states, pooled
   * output, masked-LM logits, sequence-classifier logits, per-token logits) and, for an output split
   * from the per-token logits (a QA head's start and end), its column.
   */
  get outputRoles(): { name: string; from: EngineOutput; column?: number }[] {
    return this.spec.outputs.map((o) => ({ ...o }));
  }

  /** Token types the model embeds (0 when it takes no token_type_ids input). */
  get typeVocab(): number {
    return this.spec.inputs.tokenTypes ? this.spec.config.typeVocab : 0;
  }

  async run(inputs: Record<string, TensorInput>): Promise<Record<string, TensorOutput>> {
    return (await this.runEngine(inputs, false)).outputs;
  }

  /**
   * For distillation: the outputs `run` gives, plus every layer's output (`layers`, dims [layers, batch,
   * seq, hidden]; the last equals the final hidden state) and each layer's attention probabilities
   * averaged over its heads (`attention`, [layers, batch, seq, seq]). Every position is computed (no
   * padding skipped); rows of padding positions are zeros.
   */
  async intermediates(inputs: Record<string, TensorInput>): Promise<{ outputs: Record<string, TensorOutput>; layers: TensorOutput; attention: TensorOutput }> {
    const { outputs, layers, attention, batch, seq } = await this.runEngine(inputs, true);
    const L = this.spec.config.layers;
    return {
      outputs,
      layers: { data: layers ?? new Float32Array(0), dims: [L, batch, seq, this.spec.config.hidden] },
      attention: { data: attention ?? new Float32Array(0), dims: [L, batch, seq, seq] },
    };
  }

  private async runEngine(inputs: Record<string, TensorInput>, intermediates: boolean) {
    if (!this.handle) throw new Error('this Encoder is closed');
    if (!inputs || typeof inputs !== 'object') throw new TypeError(`run() takes an object of inputs keyed by ${this.inputNames.map(quoteName).join(', ')}`);
    const names = this.spec.inputs;
    for (const k of Object.keys(inputs)) {
      if (!this.inputNames.includes(k)) throw new TypeError(`unknown input ${quoteName(k)}: this model takes ${this.inputNames.map(quoteName).join(', ')}`);
    }
    const ids = inputs[names.ids];
    if (ids === undefined) throw new TypeError(`input ${quoteName(names.ids)} is required`);
    const given: [string, TensorInput][] = [];
    for (const name of this.inputNames) {
      const t = inputs[name];
      if (t === undefined) continue;
      if (!t || typeof t !== 'object' || !(t.data instanceof BigInt64Array || t.data instanceof Int32Array)) {
        const what = !t || typeof t !== 'object' ? (t === null ? 'null' : typeof t) : `data of type ${t.data === null ? 'null' : (t.data as object)?.constructor?.name ?? typeof t.data}`;
        throw new TypeError(`input ${quoteName(name)} must be { data: BigInt64Array | Int32Array, dims: [batch, seq] }, got ${what}`);
      }
      const dims: unknown = t.dims;
      if (!Array.isArray(dims) || dims.length !== 2 || !Number.isSafeInteger(dims[0]) || dims[0] < 0 || !Number.isSafeInteger(dims[1]) || dims[1] < 1) {
        throw new TypeError(`input ${quoteName(name)} must have dims [batch, seq] of integers, batch >= 0 and seq >= 1, got ${describeDims(dims)}`);
      }
      if (t.dims[0] * t.dims[1] !== t.data.length) {
        throw new TypeError(`input ${quoteName(name)} has dims [${t.dims.join(', ')}] but ${t.data.length} values`);
      }
      given.push([name, t]);
    }
    const [batch, seq] = ids.dims;
    for (const [name, t] of given) {
      if (t.dims[0] !== batch || t.dims[1] !== seq) {
        throw new TypeError(`input ${quoteName(name)} has dims [${t.dims.join(', ')}] but ${quoteName(names.ids)} has [${batch}, ${seq}]`);
      }
    }
    const c = this.spec.config;
    const fixed = this.spec.fixedLength;
    if (fixed !== undefined && seq !== fixed) throw new RangeError(`sequence length ${seq}: this model's inputs declare sequences of exactly ${fixed} tokens`);
    if (seq > this.spec.maxSeq) throw new RangeError(`sequence length ${seq} exceeds the model's ${this.spec.maxSeq} positions`);
    const convert = (name: string | undefined, d: Domain) => (name && inputs[name] !== undefined ? toInt32(name, inputs[name], d) : null);
    const idData = convert(names.ids, table(c.vocab, 'vocabulary'))!;
    let mask = convert(names.mask, MASK);
    if (mask && this.spec.maskReading) mask = maskAsRead(mask, batch, seq, this.spec.maskReading);
    const types = convert(names.tokenTypes, table(c.typeVocab, 'token types'));
    const from = this.spec.positions?.fromIds;
    const positions = from ? positionsFromIds(idData, batch, seq, from.paddingIdx) : null;
    // a batch of 0 sequences: empty outputs, as onnxruntime answers (the engine itself needs a token)
    const r: Partial<Record<EngineOutput | 'layers' | 'attention', Float32Array>> = batch === 0 ? {} : await this.handle.run({ ids: idData, mask, types, positions, batch, seq, intermediates });
    const out: Record<string, TensorOutput> = {};
    for (const o of this.spec.outputs) {
      const data = batch === 0 ? new Float32Array(0) : r[o.from];
      if (!data) throw new Error(`the engine produced no ${o.from} output`);
      if (o.from === 'tok') {
        const labels = c.tokenClassifier!.labels;
        out[o.name] = o.column === undefined ? { data, dims: [batch, seq, labels] } : { data: column(data, labels, o.column), dims: [batch, seq] };
        continue;
      }
      const dims = o.from === 'hidden' ? [batch, seq, c.hidden]
        : o.from === 'pooled' ? [batch, c.hidden]
          : o.from === 'mlm' ? [batch, seq, c.vocab]
            : [batch, c.classifier!.labels];
      out[o.name] = { data, dims };
    }
    return { outputs: out, layers: r.layers, attention: r.attention, batch, seq };
  }

  /**
   * Calibration (`quantize --calibration`): while on, each run records, for every linear layer it
   * computes, the max |x| of each input row (real tokens only). Call between runs; off by default.
   */
  recordInputMaxima(on: boolean): void {
    if (!this.handle) throw new Error('this Encoder is closed');
    this.handle.recordInputMaxima(on);
  }

  /**
   * The row maxima recorded since the last call, per engine slot: layer l at 4l (Q, K and V: one
   * input), 4l+1 (attention output), 4l+2 (feed-forward input), 4l+3 (feed-forward output); then, after
   * the L layers, the pooler, masked-LM transform, masked-LM decoder, classifier and per-token
   * classifier at 4L … 4L+4. Clears them.
   */
  takeInputMaxima(): Float32Array[] {
    if (!this.handle) throw new Error('this Encoder is closed');
    return this.handle.takeInputMaxima();
  }

  /** Frees the packed weights; later run() calls fail. */
  close(): void {
    if (!this.handle) return;
    this.threadsAtClose = this.handle.threads;
    this.handle.close();
    this.handle = undefined;
  }
}

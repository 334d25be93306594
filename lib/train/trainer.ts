/**
 * `Trainer`: trains a recognised BERT with its masked-LM head on the native engine (forward with saved
 * activations, backward through every layer, global-norm clipping, AdamW with warm-up + linear decay,
 * fp32 weights), one step at a time off the JS thread, and writes the trained weights back into the
 * same BertModel's initializers, so the student keeps its graph, inputs and outputs.
 *
 * The engine sees the weights in its canonical layout (lib/runtime/spec.ts: [in, out] linears, Gemm
 * factors folded in, position rows from the model's first position); `writeInto` undoes exactly that
 * layout for every weight, per initializer.
 */
import { BortError, quoteName } from '../errors.js';
import type { BertModel, Linear } from '../bert/model.js';
import { floatData } from '../onnx/tensor.js';
import { native } from '../runtime/native.js';
import { engineSpec, floatWeights, type EngineSpec } from '../runtime/spec.js';
import { checkThreads, defaultThreads } from '../runtime/threads.js';

/** The engine's name of the learned hidden-state projection (TrainOptions.hiddenTarget). */
const PROJECTION = 'hidden_proj';

export interface TrainOptions {
  /** Peak learning rate (default 5e-4). */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay on matrices and embedding tables (default 0.01). */
  weightDecay?: number;
  /** Global gradient-norm bound; 0 turns clipping off (default 1). */
  clipNorm?: number;
  /** lr rises linearly over these updates ... */
  warmupSteps?: number;
  /** ... then falls linearly to 0 at this update. */
  totalSteps?: number;
  threads?: number;
  /**
   * What is trained on the encoder: 'mlm' (default) its masked-LM head; 'classifier' its
   * sequence-classification head (pooler + classifier on the first token, lib/bert/heads.ts), no MLM
   * head needed (native/src/train/cls_head.h).
   */
  head?: 'mlm' | 'classifier';
  /** Peak learning rate of the classification head (same schedule; default: lr). */
  headLr?: number;
  /**
   * Embeddings and masked-LM head get no gradient and no update for the first this many updates
   * (module replacing keeps the teacher's interface fixed); afterwards their Adam bias correction
   * counts from their first own update. Default 0.
   */
  sharedFrozenUntil?: number;
  /**
   * Frozen predecessor layers (BERT-of-Theseus): this model's encoder layers appended to the stack
   * after the trained ones, run when a batch's `route` names them (dX flows through them, they get no
   * gradient and no update). Its hidden size must equal the trained model's.
   */
  predecessors?: BertModel;
  /**
   * Hidden size of the teacher states a batch's `teacherHidden` holds (intermediate distillation).
   * When it differs from the model's, a learned projection `hidden_proj` [hidden, hiddenTarget] maps
   * the student's layer outputs onto them: initialised to the identity on the first min(hidden,
   * hiddenTarget) dimensions (zeros elsewhere), trained with the matrices, kept in `state()` and
   * readable with `weight('hidden_proj')`, but not part of the model (`weightNames`, `writeInto`).
   */
  hiddenTarget?: number;
}

export interface TrainBatch {
  /** [batch, seq] token ids. */
  ids: Int32Array;
  types?: Int32Array | null;
  mask?: Int32Array | null;
  batch: number;
  seq: number;
  /** Token indices (b * seq + s) where the loss is taken (the masked positions); MLM head only. */
  positions?: Int32Array;
  /** The true token at each position (MLM cross-entropy term). */
  labels?: Int32Array | null;
  /** Teacher logits, positions × vocab (KL term at `temperature`). */
  teacher?: Float32Array | null;
  /** loss = mlmWeight · CE + klWeight · T² · KL(teacher ‖ student) (defaults 0.1, 0.9, T = 2). */
  mlmWeight?: number;
  klWeight?: number;
  temperature?: number;
  /** Classifier head: the true class of each sequence (CE term). */
  classes?: Int32Array | null;
  /** Classifier head: teacher logits, batch × labels (KL term at `temperature`). */
  classTeacher?: Float32Array | null;
  /** Classifier head: loss = ceWeight · CE + klWeight · T² · KL (ceWeight default 1; pass klWeight). */
  ceWeight?: number;
  /**
   * The stack layers this batch runs, in order: 0 … layers−1 the trained layers, layers + j the
   * predecessor layer j; each at most once. Absent: the trained layers in order.
   */
  route?: Int32Array | null;
  /**
   * Intermediate distillation terms (masked-LM head): entry i pairs the output of the layer at route
   * position `match[i]` (0-based, each at most once) with `teacherHidden` [match, batch, seq,
   * hiddenTarget or hidden] (a teacher layer's output; MSE over the real tokens' values, through
   * `hidden_proj` when there is one) and `teacherAttention` [match, batch, seq, seq] (a teacher layer's
   * attention probabilities averaged over its heads; KL(teacher row ‖ student row) of the student's
   * head average, over the real query rows). loss += hiddenWeight · mean MSE + attentionWeight · mean KL.
   */
  match?: Int32Array | null;
  teacherHidden?: Float32Array | null;
  teacherAttention?: Float32Array | null;
  hiddenWeight?: number;
  attentionWeight?: number;
}

export interface StepResult {
  loss: number;
  /** Mean cross-entropy against the labels (unweighted; the class CE for the classifier head). */
  mlm: number;
  /** Mean KL(teacher ‖ student) at the temperature (unweighted). */
  kl: number;
  /** The intermediate terms (unweighted; 0 when the batch has none): mean hidden-state MSE, mean attention-map KL. */
  hidden: number;
  attention: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of this update (0 for `gradients`). */
  lr: number;
  /** Updates done so far. */
  step: number;
}

export interface TrainerState {
  step: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

interface NativeTrainer {
  step(b: TrainBatch): Promise<StepResult>;
  gradients(b: TrainBatch): Promise<StepResult>;
  weightNames(): string[];
  predecessorNames(): string[];
  weight(name: string): Float32Array;
  grad(name: string): Float32Array;
  setWeight(name: string, data: Float32Array): void;
  state(): TrainerState;
  setState(s: TrainerState): void;
  savedBytes(seq: number): { perToken: number; perPosition: number };
  close(): void;
  readonly isa: string;
  readonly steps: number;
}

type TrainerCtor = new (config: Record<string, unknown>, weights: Record<string, Float32Array>, options: Record<string, unknown>) => NativeTrainer;

/** One place a trained engine weight goes: an initializer, and how the engine layout maps onto it. */
interface Target {
  init: string;
  /** 'in_out' copy, 'out_in' transposed [rows=in, cols=out] -> [out, in], 'rows' a row range of a table. */
  kind: 'in_out' | 'out_in' | 'rows';
  factor: number;
  rows: number;
  cols: number;
  rowStart?: number;
}

export class Trainer {
  private closed = false;

  private constructor(
    private readonly model: BertModel,
    private readonly nt: NativeTrainer,
    private readonly targets: Map<string, Target[]>,
    /** Tied decoder: the MLM decoder weight is the word table (written through it). */
    readonly tiedDecoder: boolean,
  ) {}

  /**
   * A trainer over the model's current weights. Needs the masked-LM head; refuses (BortError) what it
   * could not write back exactly: a bias or LayerNorm shift that is not an initializer, a Gemm factor
   * of 0, one initializer playing two trained roles.
   */
  static fromModel(model: BertModel, options: TrainOptions = {}): Trainer {
    const classifier = options.head === 'classifier';
    if (classifier && !(model.pooler && model.classifiers.some((c) => c.source === 'pooler'))) {
      throw new BortError('the model has no sequence-classification head (pooler + classifier) to train', 'add one first (lib/finetune writes it) or fine-tune with bort-compress finetune');
    }
    if (!classifier && !model.mlm) {
      throw new BortError('the model has no masked-LM head to train through', 'distil a model exported with its MLM head (e.g. BertForMaskedLM)');
    }
    const spec = engineSpec(model);
    const targets = writeTargets(model, classifier);
    const mlm = model.mlm;
    const tied = !classifier && !!mlm && mlm.tiedToWordEmbeddings && mlm.decoder.alpha === 1;
    const weights = floatWeights(spec);
    if (tied) delete weights['decoder_w'];
    const threads = options.threads === undefined ? defaultThreads() : checkThreads(options.threads, 'threads');
    const Ctor = (native() as unknown as { NativeTrainer: TrainerCtor }).NativeTrainer;
    const { lr, beta1, beta2, eps, weightDecay, clipNorm, warmupSteps, totalSteps, headLr, sharedFrozenUntil, hiddenTarget } = options;
    const H = spec.config.hidden;
    if (hiddenTarget !== undefined && !(Number.isInteger(hiddenTarget) && hiddenTarget >= 1 && hiddenTarget <= 1 << 20)) {
      throw new RangeError(`hiddenTarget must be an integer in [1, ${1 << 20}], got ${hiddenTarget}`);
    }
    if (hiddenTarget !== undefined && hiddenTarget !== H) {
      const proj = new Float32Array(H * hiddenTarget);
      for (let i = 0; i < Math.min(H, hiddenTarget); i++) proj[i * hiddenTarget + i] = 1;
      weights[PROJECTION] = proj;
    }
    // the engine trains the classifier when the config has one: each mode sees only its own head
    const config = classifier ? { ...spec.config, mlm: null, tokenClassifier: null } : { ...spec.config, classifier: null, tokenClassifier: null };
    const predecessors = options.predecessors ? predecessorLayers(spec.config, options.predecessors, weights) : undefined;
    const nt = new Ctor({ ...config, threads }, weights, {
      lr, beta1, beta2, eps, weightDecay, clipNorm, warmupSteps, totalSteps, tiedDecoder: tied, headLr, sharedFrozenUntil, predecessors, hiddenTarget,
    });
    if (tied) targets.delete('decoder_w');
    return new Trainer(model, nt, targets, tied);
  }

  /** Forward, backward and one AdamW update, on a libuv thread. */
  step(batch: TrainBatch): Promise<StepResult> {
    return this.live().step(batch);
  }

  /** Forward and backward only (the gradients are then readable with `grad`). */
  gradients(batch: TrainBatch): Promise<StepResult> {
    return this.live().gradients(batch);
  }

  /** A trained weight in the engine's layout, by the engine's name (q_w.0, word_emb, ...). */
  weight(name: string): Float32Array {
    return this.live().weight(name);
  }

  grad(name: string): Float32Array {
    return this.live().grad(name);
  }

  /** Replaces a trained weight (engine layout and name, as `weight` returns it). */
  setWeight(name: string, data: Float32Array): void {
    this.live().setWeight(name, data);
  }

  /** The model's weights the engine trains (not the distillation projection `hidden_proj`). */
  weightNames(): string[] {
    return this.live().weightNames().filter((n) => n !== PROJECTION);
  }

  /** The frozen predecessor layers' weights (pred.q_w.0, ...), readable with `weight`. */
  predecessorNames(): string[] {
    return this.live().predecessorNames();
  }

  get steps(): number {
    return this.live().steps;
  }

  get isa(): string {
    return this.live().isa;
  }

  /** Bytes kept from the forward for the backward: per token, and per loss position (MLM head + logits). */
  savedBytes(seq: number): { perToken: number; perPosition: number } {
    return this.live().savedBytes(seq);
  }

  /** Parameters, Adam moments and the update count: everything a resumed run needs besides its data order. */
  state(): TrainerState {
    return this.live().state();
  }

  setState(s: TrainerState): void {
    this.live().setState(s);
  }

  /**
   * Writes the trained weights into the model's initializers (in place: the same BertModel then
   * extracts, rewrites, runs or saves with them). Rows of the position table the engine does not use
   * are left as they were.
   */
  writeInto(): void {
    const nt = this.live();
    const m = this.model;
    const done = new Map<string, Float32Array>();
    const get = (init: string): Float32Array => {
      let d = done.get(init);
      if (!d) {
        d = Float32Array.from(floatData(m.index.weight(init)!.tensor));
        done.set(init, d);
      }
      return d;
    };
    for (const [name, list] of this.targets) {
      const w = nt.weight(name);
      for (const t of list) {
        const out = get(t.init);
        const f = t.factor;
        if (t.kind === 'in_out') {
          for (let i = 0; i < w.length; i++) out[i] = w[i] / f;
        } else if (t.kind === 'out_in') {
          // engine [rows=in, cols=out] -> stored [out, in]
          for (let r = 0; r < t.rows; r++) for (let c = 0; c < t.cols; c++) out[c * t.rows + r] = w[r * t.cols + c] / f;
        } else {
          out.set(w, (t.rowStart ?? 0) * t.cols);
        }
      }
    }
    if (this.tiedDecoder && m.mlm?.tiedCopy) {
      // the decoder holds its own transposed copy of the word table: keep it equal
      const word = get(m.embeddings.word.table);
      const dec = get(m.mlm!.decoder.weight);
      const V = m.vocab, H = m.arch.hidden;
      for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) dec[h * V + v] = word[v * H + h];
    }
    for (const [init, data] of done) {
      const t = m.index.weight(init)!.tensor;
      t.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      t.floatData = [];
      t.externalData = [];
      t.dataLocation = 0;
    }
  }

  /** Frees the native trainer (a step in flight finishes first). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.nt.close();
  }

  private live(): NativeTrainer {
    if (this.closed) throw new Error('this trainer is closed');
    return this.nt;
  }
}

/**
 * The predecessor model's encoder layers as the engine takes them: their shape, and their weights put
 * into `weights` as pred.<name>. Refuses a hidden size other than the trained model's, and attention
 * masking the trained model's engine would compute differently.
 */
function predecessorLayers(s: EngineSpec['config'], pred: BertModel, weights: Record<string, Float32Array>) {
  const H = s.hidden, Hp = pred.arch.hidden;
  if (Hp !== H) {
    throw new BortError(`the teacher's hidden size ${Hp} and the student's ${H} differ: its layers cannot stand in for the student's`,
      `extract the student with the teacher's hidden size (--arch D,A,${Hp},I), or distil with --method kd`);
  }
  const p = engineSpec(pred);
  if (p.config.maskValue !== s.maskValue || p.config.maskSelect !== s.maskSelect) {
    throw new BortError('the teacher masks attention differently from the student', 'extract the student from this teacher, or distil with --method kd');
  }
  for (const [name, data] of Object.entries(floatWeights(p))) if (/\.\d+$/.test(name)) weights[`pred.${name}`] = data;
  return {
    layers: p.config.layers, heads: p.config.heads, headSize: p.config.headSize, intermediate: p.config.intermediate,
    scoreScale: p.config.scoreScale, lnEps: p.config.lnEps,
  };
}

/** Where each engine weight goes back to, checked up front so that training never ends in a refusal. */
function writeTargets(m: BertModel, classifier: boolean): Map<string, Target[]> {
  const out = new Map<string, Target[]>();
  const owner = new Map<string, string>();
  const H = m.arch.hidden;
  const add = (engine: string, t: Target) => {
    const prev = owner.get(t.init);
    if (prev !== undefined && prev !== engine) {
      throw new BortError(`initializer ${quoteName(t.init)} holds two trained weights (${prev} and ${engine})`, 'this weight sharing cannot be trained; untie the weights in the export');
    }
    owner.set(t.init, engine);
    out.set(engine, [...(out.get(engine) ?? []), t]);
  };
  const lin = (key: string, l: Linear, suffix = '') => {
    if (!(l.alpha !== 0 && Number.isFinite(l.alpha))) throw new BortError(`the linear ${quoteName(l.weight)} has Gemm alpha ${l.alpha}`, 'export the model without a zero Gemm factor');
    add(`${key}_w${suffix}`, { init: l.weight, kind: l.layout, factor: l.alpha, rows: l.inDim, cols: l.outDim });
    if (!l.bias) throw new BortError(`the linear ${quoteName(l.weight)} has no bias initializer to train`, 'export the model with its biases');
    if (!(l.beta !== 0 && Number.isFinite(l.beta))) throw new BortError(`the linear ${quoteName(l.weight)} has Gemm beta ${l.beta}`, 'export the model without a zero Gemm factor');
    add(`${key}_b${suffix}`, { init: l.bias, kind: 'in_out', factor: l.beta, rows: 1, cols: l.outDim });
  };
  const ln = (key: string, n: { gamma: string; beta?: string }, suffix = '') => {
    add(`${key}_g${suffix}`, { init: n.gamma, kind: 'in_out', factor: 1, rows: 1, cols: H });
    if (!n.beta) throw new BortError(`the LayerNorm with scale ${quoteName(n.gamma)} has no shift initializer to train`, 'export the model with its LayerNorm biases');
    add(`${key}_b${suffix}`, { init: n.beta, kind: 'in_out', factor: 1, rows: 1, cols: H });
  };
  const e = m.embeddings;
  add('word_emb', { init: e.word.table, kind: 'in_out', factor: 1, rows: m.vocab, cols: H });
  if (e.position && e.positionIds?.kind === 'arange') {
    add('pos_emb', { init: e.position.table, kind: 'rows', factor: 1, rows: e.positionIds.maxSeq, cols: H, rowStart: e.positionIds.start });
  }
  if (e.tokenType) add('type_emb', { init: e.tokenType.table, kind: 'in_out', factor: 1, rows: m.typeVocab, cols: H });
  ln('emb_ln', e.ln);
  m.layers.forEach((l, i) => {
    const s = `.${i}`;
    lin('q', l.attention.q, s);
    lin('k', l.attention.k, s);
    lin('v', l.attention.v, s);
    lin('o', l.attention.o, s);
    ln('ln1', l.ln1, s);
    lin('ffn_in', l.ffn.in, s);
    lin('ffn_out', l.ffn.out, s);
    ln('ln2', l.ln2, s);
  });
  if (classifier) {
    lin('pooler', m.pooler!.dense);
    lin('cls', m.classifiers.find((c) => c.source === 'pooler')!.linear);
    return out;
  }
  const mlm = m.mlm!;
  lin('mlm', mlm.transform);
  ln('mlm_ln', mlm.ln);
  if (mlm.tiedToWordEmbeddings && mlm.decoder.alpha === 1) {
    // trained through the word table; a separate transposed copy is refreshed from it in writeInto
    if (!mlm.decoder.bias) throw new BortError(`the masked-LM decoder has no bias initializer to train`, 'export the model with its biases');
    add('decoder_b', { init: mlm.decoder.bias, kind: 'in_out', factor: mlm.decoder.beta, rows: 1, cols: m.vocab });
    out.set('decoder_w', []);
  } else {
    lin('decoder', mlm.decoder);
  }
  return out;
}

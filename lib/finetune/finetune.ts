/**
 * `finetune()`: sequence-classification fine-tuning on the native training engine. Reads JSON-lines
 * examples (lib/finetune/examples.ts), gives the model a pooler + classifier head (its own when it has
 * one with as many labels, else a new one; lib/finetune/classifier-head.ts), trains encoder and head with
 * AdamW (own peak learning rates, warm-up then linear decay) on shuffled batches padded to their longest
 * row, evaluates dev accuracy after every epoch with the native encoder, stops early after `patience`
 * epochs without a better dev accuracy and keeps the best weights. With a teacher (a fine-tuned
 * classifier with the same labels), the loss adds klWeight · T² · KL(teacher_T ‖ student_T) on its
 * logits, computed per batch by the native encoder. Aborting (the signal) leaves a resumable checkpoint
 * and no model; the model (labels in its metadata) is written only at the end, atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { recognize } from '../bert/recognize.js';
import { BortError, quoteName } from '../errors.js';
import { checkOutputPath } from '../onnx/files.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { Encoder } from '../runtime/encoder.js';
import { native } from '../runtime/native.js';
import { engineSpec } from '../runtime/spec.js';
import { defaultThreads } from '../runtime/threads.js';
import { labelsFromMetadata, readMetadataProps } from '../tasks/metadata.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { Trainer } from '../train/trainer.js';
import { EpochBatches, encodeExamples, padBatch, type ClassBatch, type EncodedExample } from './class-batches.js';
import { readFinetuneCheckpoint, writeFinetuneCheckpoint } from './checkpoint.js';
import { reusableHead, setLabelMetadata, writeClassifierHead } from './classifier-head.js';
import { checkLabels, labelSet, readExamples } from './examples.js';

export interface FinetuneOptions {
  /** The model to fine-tune (an MLM or base BERT, or one with a classification head). */
  model: string;
  /** JSON lines: {"text", "label"} or {"text", "text_pair", "label"}. */
  train: string;
  dev: string;
  output: string;
  /** Only 'cls' (sequence classification) is available. */
  task?: string;
  /** vocab.txt or tokenizer.json (default: the one beside the model). */
  vocab?: string;
  /** A fine-tuned classifier with the same labels: its logits are soft targets (task distillation). */
  teacher?: string;
  epochs?: number;
  batch?: number;
  /** Tokens per sequence at most (longer texts are cut; default 128 or the model's positions). */
  seq?: number;
  /** Peak learning rate of the encoder (default 5e-5) and of the classification head (default 1e-3). */
  lr?: number;
  headLr?: number;
  /** Share of the steps spent warming up (default 0.1). */
  warmup?: number;
  weightDecay?: number;
  clipNorm?: number;
  /** Stop after this many epochs without a better dev accuracy (default 0: never stop early). */
  patience?: number;
  seed?: number;
  threads?: number;
  /** With a teacher: loss = ceWeight · CE + klWeight · T² · KL (defaults 1, 1, T = 2). */
  ceWeight?: number;
  klWeight?: number;
  temperature?: number;
  /** Checkpoint file (default OUTPUT.ckpt), written when aborted. */
  checkpoint?: string;
  resume?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
  onEpoch?: (e: FinetuneEpoch) => void;
}

export interface FinetuneProgress {
  step: number;
  steps: number;
  /** 1-based epoch of this step. */
  epoch: number;
  epochs: number;
  loss: number;
  /** Unweighted cross-entropy and KL (0 without a teacher). */
  ce: number;
  kl: number;
  lr: number;
  examplesPerSecond: number;
  etaSeconds: number;
}

export interface FinetuneEpoch {
  /** 1-based. */
  epoch: number;
  devAccuracy: number;
  bestAccuracy: number;
  bestEpoch: number;
  /** True when this epoch ends the run by early stopping. */
  stopping: boolean;
}

export interface FinetuneSummary {
  /** False when aborted: no model was written, the checkpoint holds the state. */
  finished: boolean;
  output?: string;
  checkpoint?: string;
  /** Label names in id order (sorted by name). */
  labels: string[];
  /** Whether the model's own classification head was trained (else a new one was written). */
  reusedHead: boolean;
  steps: number;
  epochs: number;
  earlyStopped: boolean;
  /** Dev accuracy after each epoch, and the best (the weights written). */
  devHistory: number[];
  devAccuracy?: number;
  bestEpoch?: number;
  trainExamples: number;
  devExamples: number;
  /** Optimizer steps per second of this run's training (teacher logits included, evaluation not). */
  stepsPerSecond: number;
  seconds: number;
}

function posInt(v: number | undefined, dflt: number, what: string, lo = 1, max = 1e9): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < lo || x > max) throw new RangeError(`${what} must be an integer in [${lo}, ${max}], got ${x}`);
  return x;
}

function posNum(v: number | undefined, dflt: number, what: string, lo = 0): number {
  const x = v ?? dflt;
  if (!(Number.isFinite(x) && x >= lo)) throw new RangeError(`${what} must be a finite number >= ${lo}, got ${x}`);
  return x;
}

export async function finetune(o: FinetuneOptions): Promise<FinetuneSummary> {
  const t0 = Date.now();
  const task = o.task ?? 'cls';
  if (task !== 'cls') throw new BortError(`task ${quoteName(task)} is not available`, 'only --task cls (sequence classification) is available so far');
  const epochs = posInt(o.epochs, 3, 'epochs', 1, 10000);
  const batch = posInt(o.batch, 32, 'batch', 1, 4096);
  const patience = posInt(o.patience, 0, 'patience', 0, 10000);
  const seed = posInt(o.seed, 1, 'seed', 0, 4294967295);
  const lr = posNum(o.lr, 5e-5, 'lr');
  const headLr = posNum(o.headLr, 1e-3, 'headLr');
  const warmup = posNum(o.warmup, 0.1, 'warmup');
  if (warmup > 1) throw new RangeError(`warmup is a share of the steps in [0, 1], got ${warmup}`);
  const ceWeight = posNum(o.ceWeight, 1, 'ceWeight'), klWeight = posNum(o.klWeight, 1, 'klWeight');
  const temperature = posNum(o.temperature, 2, 'temperature', 1e-3);
  const checkpoint = o.checkpoint ?? `${o.output}.ckpt`;
  const tok = TextTokenizer.fromFile(o.vocab ?? TextTokenizer.find(o.model));
  const trainEx = readExamples(o.train, 'training');
  const devEx = readExamples(o.dev, 'dev');
  const labels = labelSet(trainEx, o.train);
  checkLabels(devEx, labels, o.dev, o.train);
  const L = labels.length;

  const loaded = loadModel(o.model);
  checkOutputPath(o.output, loaded.sources);
  checkOutputPath(checkpoint, loaded.sources);
  let bert = recognize(loaded.model);
  const positions = bert.embeddings.positionIds?.kind === 'arange' ? bert.embeddings.positionIds.maxSeq : 0;
  const seq = posInt(o.seq, Math.min(128, positions || 128), 'seq', 1, 65536);
  if (seq > positions) throw new BortError(`seq ${seq} is longer than the model's ${positions} positions`, `use --seq ${positions} or less`);
  if (tok.vocabSize > bert.vocab) {
    throw new BortError(`the vocabulary has ${tok.vocabSize} tokens but the model only ${bert.vocab}`, 'pass the vocab.txt or tokenizer.json the model was trained with');
  }
  const reusedHead = reusableHead(bert, L);
  if (!reusedHead) {
    writeClassifierHead(loaded.model, bert, L, seed);
    bert = recognize(loaded.model);
  }
  setLabelMetadata(loaded.model, labels);
  const spec = engineSpec(bert);
  const useTypes = spec.config.typeVocab > 0 && !!bert.inputs.tokenTypes;
  const threads = o.threads ?? defaultThreads();

  const train = encodeExamples(tok, trainEx, labels, seq);
  const dev = encodeExamples(tok, devEx, labels, seq);
  const batches = new EpochBatches(train.length, batch, seed);
  const steps = epochs * batches.batchesPerEpoch;
  const teacher = o.teacher ? await loadTeacher(o.teacher, labels, bert.vocab, threads) : undefined;
  let trainer: Trainer | undefined;
  try {
    trainer = Trainer.fromModel(bert, {
      head: 'classifier', lr, headLr, warmupSteps: Math.round(warmup * steps), totalSteps: steps,
      weightDecay: o.weightDecay, clipNorm: o.clipNorm, threads,
    });
    const tr = trainer;
    const run = {
      model: path.resolve(o.model), train: path.resolve(o.train), trainExamples: train.length, labels: labels.join('\n'),
      params: tr.state().params.length, epochs, batch, seq, seed, lr, headLr, warmup, teacher: o.teacher ? path.resolve(o.teacher) : '',
    };
    let history: number[] = [];
    let bestEpoch = -1, sinceBest = 0;
    let best: Float32Array | undefined;
    if (o.resume) {
      const c = readFinetuneCheckpoint(checkpoint);
      for (const [k, v] of Object.entries(run)) {
        if (c.header.run[k] !== v) throw new BortError(`the checkpoint ${quoteName(checkpoint)} is from another run (${k} differs)`, 'resume with the model, data and options of the run that wrote it, or start without --resume');
      }
      tr.setState(c.state);
      batches.restore(c.header.batches);
      history = [...c.header.history];
      bestEpoch = c.header.bestEpoch;
      sinceBest = c.header.sinceBest;
      best = c.best;
    }
    const toNative = (b: ClassBatch) => ({ ids: b.ids, mask: b.mask, types: useTypes ? b.types : null, batch: b.batch, seq: b.seq });
    const evaluate = async (): Promise<number> => {
      const weights: Record<string, Float32Array | Int8Array> = { ...spec.weights };
      for (const n of tr.weightNames()) weights[n] = tr.weight(n);
      const enc = native().createEncoder({ ...spec.config, threads }, weights);
      try {
        return await accuracy(dev, async (b) => (await enc.run(toNative(b))).cls!, tok.padId, L);
      } finally {
        enc.close();
      }
    };
    const save = () => writeFinetuneCheckpoint(checkpoint, { run, step: tr.steps, batches: batches.state, history, bestEpoch, sinceBest }, tr.state(), best);
    const tStart = Date.now();
    const stepStart = tr.steps;
    let trainMs = 0;
    let earlyStopped = false;
    while (batches.epoch < epochs) {
      if (o.signal?.aborted) {
        save();
        return summary(false);
      }
      const epoch = batches.epoch;
      const { rows, lastOfEpoch } = batches.next();
      const b = padBatch(train, rows, tok.padId);
      const ts = Date.now();
      const classTeacher = teacher ? await teacher.logits(b, useTypes) : null;
      const r = await tr.step({ ...toNative(b), classes: b.classes, classTeacher, ceWeight, klWeight, temperature });
      trainMs += Date.now() - ts;
      const done = tr.steps - stepStart;
      const secs = (Date.now() - tStart) / 1000;
      o.onProgress?.({
        step: r.step, steps, epoch: epoch + 1, epochs, loss: r.loss, ce: r.mlm, kl: r.kl, lr: r.lr,
        examplesPerSecond: (done * batch) / Math.max(trainMs / 1000, 1e-9), etaSeconds: (secs / done) * (steps - tr.steps),
      });
      if (lastOfEpoch) {
        const acc = await evaluate();
        history.push(acc);
        if (bestEpoch < 0 || acc > history[bestEpoch]) {
          bestEpoch = history.length - 1;
          best = tr.state().params;
          sinceBest = 0;
        } else {
          sinceBest++;
        }
        earlyStopped = patience > 0 && sinceBest >= patience && batches.epoch < epochs;
        o.onEpoch?.({ epoch: history.length, devAccuracy: acc, bestAccuracy: history[bestEpoch], bestEpoch: bestEpoch + 1, stopping: earlyStopped });
        if (earlyStopped) break;
      }
    }
    if (best) tr.setState({ ...tr.state(), params: best });
    tr.writeInto();
    saveModel(loaded.model, o.output, { protect: loaded.sources });
    fs.rmSync(checkpoint, { force: true });
    return summary(true);

    function summary(finished: boolean): FinetuneSummary {
      return {
        finished, output: finished ? path.resolve(o.output) : undefined, checkpoint: finished ? undefined : checkpoint, labels, reusedHead,
        steps: tr.steps, epochs: history.length, earlyStopped, devHistory: history,
        devAccuracy: bestEpoch >= 0 ? history[bestEpoch] : undefined, bestEpoch: bestEpoch >= 0 ? bestEpoch + 1 : undefined,
        trainExamples: train.length, devExamples: dev.length,
        stepsPerSecond: (tr.steps - stepStart) / Math.max(trainMs / 1000, 1e-9), seconds: (Date.now() - t0) / 1000,
      };
    }
  } finally {
    trainer?.close();
    teacher?.close();
  }
}

/** Share of `data` whose arg-max logit is its label, run 32 examples at a time. */
export async function accuracy(data: EncodedExample[], run: (b: ClassBatch) => Promise<Float32Array>, padId: number, L: number): Promise<number> {
  let correct = 0;
  for (let i = 0; i < data.length; i += 32) {
    const b = padBatch(data, Array.from({ length: Math.min(32, data.length - i) }, (_, k) => i + k), padId);
    const z = await run(b);
    for (let r = 0; r < b.batch; r++) {
      let arg = 0;
      for (let j = 1; j < L; j++) if (z[r * L + j] > z[r * L + arg]) arg = j;
      if (arg === b.classes[r]) correct++;
    }
  }
  return correct / data.length;
}

/** A fine-tuned classifier with exactly these labels (its metadata), run by the native encoder. */
async function loadTeacher(file: string, labels: string[], vocab: number, threads: number) {
  const theirs = labelsFromMetadata(readMetadataProps(file));
  if (!theirs) throw new BortError(`the teacher ${quoteName(file)} has no label names (id2label) in its metadata`, 'give a classifier written by bort-compress finetune on the same training labels');
  if (theirs.length !== labels.length || theirs.some((l, i) => l !== labels[i])) {
    throw new BortError(`the teacher ${quoteName(file)} has the labels ${theirs.map(quoteName).join(', ')}, the training data ${labels.map(quoteName).join(', ')}`,
      'give a teacher fine-tuned on the same labels (same names, same order)');
  }
  const enc = await Encoder.load(file, { threads });
  const out = enc.outputRoles.find((r) => r.from === 'cls');
  if (!out || enc.info.classifierLabels !== labels.length) {
    enc.close();
    throw new BortError(`the teacher ${quoteName(file)} has no sequence-classification output of ${labels.length} labels`, 'give a classifier written by bort-compress finetune on the same training labels');
  }
  if (enc.info.vocab !== vocab) {
    enc.close();
    throw new BortError(`the teacher has ${enc.info.vocab} words and the model ${vocab}`, 'give a teacher with the same vocabulary');
  }
  const roles = enc.inputRoles;
  return {
    async logits(b: ClassBatch, useTypes: boolean): Promise<Float32Array> {
      const dims = [b.batch, b.seq];
      const inputs: Record<string, { data: Int32Array; dims: number[] }> = { [roles.ids]: { data: b.ids, dims } };
      if (roles.mask) inputs[roles.mask] = { data: b.mask, dims };
      if (roles.tokenTypes) inputs[roles.tokenTypes] = { data: useTypes ? b.types : new Int32Array(b.ids.length), dims };
      return (await enc.run(inputs))[out.name].data;
    },
    close: () => enc.close(),
  };
}

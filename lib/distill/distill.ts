/**
 * `distill()`: knowledge distillation of a student BERT from a teacher with the Bort recipe: masked-LM
 * batches from raw text, teacher logits computed on the fly by the native engine, and the loss
 * mlmWeight · CE(student, true word) + klWeight · T² · KL(teacher_T ‖ student_T) at the masked
 * positions (plus, on request, the intermediate-layer terms of lib/distill/intermediate.ts), trained
 * natively (lib/train). Aborting (the signal) leaves a resumable checkpoint and no
 * model; the model is written only at the end, atomically, as the student's ONNX with trained weights.
 * method 'theseus': BERT-of-Theseus module replacing first (lib/distill/module-replacing.ts), the same
 * loss on the mixed model's output, then the student alone for the last studentOnlySteps updates.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { recognize } from '../bert/recognize.js';
import { BortError, quoteName } from '../errors.js';
import { checkOutputPath } from '../onnx/files.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { Encoder } from '../runtime/encoder.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { Trainer } from '../train/trainer.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { readEvalCases, score, topWords, type EvalScore, type MlmRunner } from './evaluate.js';
import { engineSpec, floatWeights } from '../runtime/spec.js';
import { native } from '../runtime/native.js';
import { MaskedLmBatches, SeededRandom } from './masked-batches.js';
import { gatherLayers, intermediateLoss, type IntermediateLoss } from './intermediate.js';
import { REPLACE_SCHEDULES, RouteSampler, gaussian, layerGroups, replaceRate, type ReplaceSchedule, type ReplacementSchedule } from './module-replacing.js';

export interface DistillOptions {
  teacher: string;
  student: string;
  /** Training text, one paragraph a line. */
  corpus: string;
  /** vocab.txt or tokenizer.json shared by teacher and student. */
  vocab: string;
  output: string;
  steps?: number;
  batch?: number;
  seq?: number;
  lr?: number;
  /** Share of the steps spent warming up (default 0.05). */
  warmup?: number;
  /** Softmax temperature T of the distillation term (default 2). */
  temperature?: number;
  /** Weight of CE(student, true word) (default DEFAULT_MLM_WEIGHT = 0; the Bort paper's recipe used 0.1). */
  mlmWeight?: number;
  /** Weight of T² · KL(teacher_T ‖ student_T) (default DEFAULT_KL_WEIGHT = 1; the Bort recipe used 0.9). */
  klWeight?: number;
  /**
   * Weight of the hidden-state term: MSE between each student layer's output and its teacher layer's
   * (lib/distill/intermediate.ts pairs them; a learned projection when the hidden sizes differ).
   * Default 0 (off).
   */
  hiddenWeight?: number;
  /** Weight of the attention-map term: KL(teacher ‖ student) of paired layers' head-averaged attention rows. Default 0 (off). */
  attentionWeight?: number;
  weightDecay?: number;
  clipNorm?: number;
  maskRate?: number;
  seed?: number;
  threads?: number;
  /** Checkpoint file (default OUTPUT.ckpt); written when aborted, and every `checkpointEvery` steps. */
  checkpoint?: string;
  checkpointEvery?: number;
  /** Continue from the checkpoint. */
  resume?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: DistillProgress) => void;
  /** Held-out cases (an mlm-eval.json): agreement with the teacher at the start and every `evalEvery` steps. */
  evalCases?: string;
  evalEvery?: number;
  onEval?: (s: EvalScore) => void;
  /** 'kd' (default): the student alone throughout; 'theseus': module replacing, then the student alone. */
  method?: 'kd' | 'theseus';
  /** theseus: p of the constant schedule, the starting p of the rising ones; in (0, 1] (default 0.5). */
  replaceRate?: number;
  /** theseus: how p rises to 1 over the replacing phase (default 'curriculum'; module-replacing.ts). */
  schedule?: ReplaceSchedule;
  /** theseus: updates at the end with the student alone (default a quarter of the steps; 0 … steps−1). */
  studentOnlySteps?: number;
  /** theseus: successor layers re-initialised N(0, 0.02²) (biases 0, LayerNorm 1 and 0) instead of the student's. */
  fromScratch?: boolean;
  /** theseus: embeddings and masked-LM head during the replacing phase: 'frozen' (default, as the paper) or 'trained'. */
  shared?: 'frozen' | 'trained';
}

export interface DistillProgress {
  step: number;
  steps: number;
  loss: number;
  mlm: number;
  kl: number;
  /** The intermediate terms (unweighted), when the run has them. */
  hidden?: number;
  attention?: number;
  lr: number;
  tokensPerSecond: number;
  etaSeconds: number;
  /** theseus: the replacement probability of this update (1 once the student runs alone). */
  replaceRate?: number;
}

export interface DistillSummary {
  steps: number;
  /** False when aborted: no model was written, the checkpoint holds the state. */
  finished: boolean;
  output?: string;
  checkpoint?: string;
  seconds: number;
  firstLoss?: number;
  lastLoss?: number;
}

function posInt(v: number | undefined, dflt: number, what: string, max = 1e9): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1 || x > max) throw new RangeError(`${what} must be an integer in [1, ${max}], got ${x}`);
  return x;
}

/** The module-replacing plan of a run, checked (BortError), or undefined for plain distillation. */
function replacingPlan(o: DistillOptions, steps: number): (ReplacementSchedule & { shared: 'frozen' | 'trained' }) | undefined {
  const method = o.method ?? 'kd';
  if (method !== 'kd' && method !== 'theseus') throw new BortError(`unknown distillation method ${quoteName(String(method))}`, 'use --method kd or --method theseus');
  if (method === 'kd') {
    const given = (['replaceRate', 'schedule', 'studentOnlySteps', 'fromScratch', 'shared'] as const).filter((k) => o[k] !== undefined && o[k] !== false);
    if (given.length) throw new BortError(`${given.join(', ')} only apply to module replacing`, 'add --method theseus, or leave the module-replacing options out');
    return undefined;
  }
  const rate = o.replaceRate ?? 0.5;
  if (!(typeof rate === 'number' && rate > 0 && rate <= 1)) throw new BortError(`the replacement rate ${rate} is not a probability above 0`, 'pass --replace-rate p with 0 < p ≤ 1 (e.g. 0.5)');
  const schedule = o.schedule ?? 'curriculum';
  if (!REPLACE_SCHEDULES.includes(schedule)) throw new BortError(`unknown replacement schedule ${quoteName(String(schedule))}`, `use --schedule ${REPLACE_SCHEDULES.join(', ')}`);
  const only = o.studentOnlySteps ?? Math.round(steps / 4);
  if (!Number.isInteger(only) || only < 0 || only >= steps) {
    throw new BortError(`--student-only-steps ${only} leaves no replacing phase in ${steps} steps`, `pass --student-only-steps N with 0 ≤ N < ${steps} (the steps)`);
  }
  const shared = o.shared ?? 'frozen';
  if (shared !== 'frozen' && shared !== 'trained') throw new BortError(`unknown choice ${quoteName(String(shared))} for the embeddings and head`, 'use --shared frozen or --shared trained');
  return { schedule, rate, replacingSteps: steps - only, shared };
}

/**
 * Default loss: pure distillation (no masked-LM term). Measured on ../shared/teacher (BENCHMARKS.md,
 * "Distillation on the trained teacher"): the Bort recipe's 0.1 · MLM + 0.9 · T²·KL reached 73.0 % top-1
 * agreement with the teacher after 1,000 steps and then fell to 49.9 % after 6,000 as the student fitted
 * the true words of the small corpus (accuracy 15.7 %, above the teacher's 9.1 %); T²·KL alone reached
 * 85.9 % after 1,000 steps and 88.6 % after 2,000.
 */
export const DEFAULT_MLM_WEIGHT = 0;
export const DEFAULT_KL_WEIGHT = 1;

/** The loss weights and temperature, checked: finite, weights ≥ 0 and not both 0, temperature > 0. */
function lossWeights(o: DistillOptions): { mlmWeight: number; klWeight: number; temperature: number } {
  const mlmWeight = o.mlmWeight ?? DEFAULT_MLM_WEIGHT, klWeight = o.klWeight ?? DEFAULT_KL_WEIGHT, temperature = o.temperature ?? 2;
  for (const [v, flag] of [[mlmWeight, '--mlm-weight'], [klWeight, '--kl-weight']] as const) {
    if (!(Number.isFinite(v) && v >= 0)) throw new BortError(`${flag} ${v} is not a loss weight`, `pass ${flag} w with w a finite number ≥ 0 (defaults: ${DEFAULT_MLM_WEIGHT} for the masked-LM term, ${DEFAULT_KL_WEIGHT} for the distillation term)`);
  }
  if (mlmWeight === 0 && klWeight === 0) throw new BortError('--mlm-weight and --kl-weight are both 0: there is nothing to train on', 'give at least one of them a weight above 0');
  if (!(Number.isFinite(temperature) && temperature > 0 && temperature <= 100)) {
    throw new BortError(`--temperature ${temperature} is not a softmax temperature`, 'pass --temperature T with 0 < T ≤ 100 (default 2)');
  }
  return { mlmWeight, klWeight, temperature };
}

export async function distill(o: DistillOptions): Promise<DistillSummary> {
  const t0 = Date.now();
  const steps = posInt(o.steps, 1000, 'steps');
  const batch = posInt(o.batch, 32, 'batch', 4096);
  const seq = posInt(o.seq, 64, 'seq', 4096);
  const plan = replacingPlan(o, steps);
  const loss = lossWeights(o);
  const checkpoint = o.checkpoint ?? `${o.output}.ckpt`;
  const tok = TextTokenizer.fromFile(o.vocab);
  let text: string;
  try {
    text = fs.readFileSync(o.corpus, 'utf8');
  } catch (e) {
    throw new BortError(`cannot read the corpus ${quoteName(o.corpus)}: ${(e as Error).message}`, 'give a text file with one paragraph a line');
  }
  const loaded = loadModel(o.student);
  // refused now, not after the training: a folder, a read-only file, the student itself
  checkOutputPath(o.output, loaded.sources);
  checkOutputPath(checkpoint, loaded.sources);
  const student = recognize(loaded.model);
  if (!student.mlm) throw new BortError('the student has no masked-LM head', 'distil a student extracted from a masked-LM teacher');
  if (seq > (student.embeddings.positionIds?.kind === 'arange' ? student.embeddings.positionIds.maxSeq : 0)) {
    throw new BortError(`seq ${seq} is longer than the student's positions`, 'use a shorter --seq');
  }
  if (tok.vocabSize > student.vocab) {
    throw new BortError(`the vocabulary ${quoteName(o.vocab)} has ${tok.vocabSize} tokens but the student only ${student.vocab}`, 'pass the vocab.txt or tokenizer.json of the teacher the student came from');
  }
  const batches = MaskedLmBatches.create(tok, text, { batch, seq, maskRate: o.maskRate ?? 0.15, seed: o.seed ?? 1 });
  // module replacing: the teacher's layers as the frozen predecessors, one group per student layer
  let sampler: RouteSampler | undefined;
  let predecessors: ReturnType<typeof recognize> | undefined;
  if (plan) {
    const t = loadModel(o.teacher);
    predecessors = recognize(t.model);
    if (predecessors.arch.hidden !== student.arch.hidden) {
      throw new BortError(`the teacher's hidden size ${predecessors.arch.hidden} and the student's ${student.arch.hidden} differ: module replacing needs equal hidden sizes`,
        `extract the student with the teacher's hidden size (--arch D,A,${predecessors.arch.hidden},I), or distil with --method kd`);
    }
    sampler = new RouteSampler(layerGroups(predecessors.arch.layers, student.arch.layers), ((o.seed ?? 1) ^ 0x7e5e05) >>> 0);
  }
  const teacher = await Encoder.load(o.teacher, { threads: o.threads });
  let trainer: Trainer;
  let inter: IntermediateLoss | undefined;
  try {
    inter = intermediateLoss(o.hiddenWeight, o.attentionWeight, teacher.arch.layers, student.arch.layers);
    if (inter && plan) {
      throw new BortError('the intermediate-layer terms (--hidden-weight, --attention-weight) apply to plain distillation only',
        'leave them out with --method theseus, or distil with --method kd');
    }
    trainer = Trainer.fromModel(student, {
      lr: o.lr ?? 5e-4, warmupSteps: Math.round((o.warmup ?? 0.05) * steps), totalSteps: steps,
      weightDecay: o.weightDecay, clipNorm: o.clipNorm, threads: o.threads,
      predecessors, sharedFrozenUntil: plan?.shared === 'frozen' ? plan.replacingSteps : 0,
      hiddenTarget: inter && inter.hiddenWeight > 0 ? teacher.arch.hidden : undefined,
    });
  } catch (e) {
    teacher.close();
    throw e;
  }
  predecessors = undefined;  // the trainer holds its own copy of the layers
  if (plan && o.fromScratch) reinitialiseLayers(trainer, ((o.seed ?? 1) ^ 0x5c7a7c4) >>> 0);
  const evalCases = o.evalCases ? readEvalCases(o.evalCases, student.vocab) : undefined;
  const run: Record<string, string | number> = { student: path.resolve(o.student), params: trainer.state().params.length, steps, batch, seq, seed: o.seed ?? 1 };
  // the loss is part of the run's identity (a checkpoint of an earlier version, which did not record it
  // and trained with 0.1 · MLM + 0.9 · T²·KL, is refused by name)
  Object.assign(run, { mlmWeight: loss.mlmWeight, klWeight: loss.klWeight, temperature: loss.temperature });
  // the intermediate terms only when on, so that checkpoints written before they existed still resume
  if (inter) Object.assign(run, { hiddenWeight: inter.hiddenWeight, attentionWeight: inter.attentionWeight, teacherLayers: inter.teacherLayer.join(',') });
  if (plan) {
    Object.assign(run, {
      method: 'theseus', teacher: path.resolve(o.teacher), schedule: plan.schedule, replaceRate: plan.rate,
      replacingSteps: plan.replacingSteps, shared: plan.shared, fromScratch: o.fromScratch ? 1 : 0,
    });
  }
  try {
    const V = student.vocab;
    if (teacher.info.vocab !== V) throw new BortError(`the teacher has ${teacher.info.vocab} words and the student ${V}`, 'distil a student extracted from this teacher');
    let first: number | undefined;
    let last: number | undefined;
    if (o.resume) {
      const c = readCheckpoint(checkpoint);
      for (const k of new Set([...Object.keys(run), ...Object.keys(c.header.run ?? {})])) {
        const v = run[k];
        if (c.header.run[k] !== v) throw new BortError(`the checkpoint ${quoteName(checkpoint)} is from another run (${k} ${c.header.run[k]} vs ${v})`, 'resume with the options of the run that wrote it, or start without --resume');
      }
      trainer.setState(c.state);
      batches.restore(c.header.batches);
      if (sampler) {
        if (typeof c.header.routes !== 'number') throw new BortError(`the checkpoint ${quoteName(checkpoint)} has no module-replacing state`, 'start without --resume');
        sampler.state = c.header.routes;
      }
    }
    // evaluation: the teacher's top words once; the student through an encoder packed from the current weights
    let evaluate: (() => Promise<void>) | undefined;
    if (evalCases && o.onEval) {
      const maskId = tok.mask!.id;
      const teacherRun: MlmRunner = async (ids, b, s) => {
        const r = await teacher.run(teacherInputs(teacher, { ids, mask: new Int32Array(b * s).fill(1), types: new Int32Array(b * s), batch: b, seq: s }));
        return Object.values(r).find((t) => t.dims.length === 3 && t.dims[2] === V)!.data;
      };
      const teacherTop = await topWords(teacherRun, evalCases, maskId, V);
      const spec = engineSpec(student);
      const evalThreads = o.threads ?? teacher.threads;
      evaluate = async () => {
        const weights: Record<string, Float32Array> = floatWeights(spec);
        for (const n of trainer.weightNames()) weights[n] = trainer.weight(n);
        if (trainer.tiedDecoder) {
          const w = weights['word_emb'], H = student.arch.hidden, dec = new Float32Array(H * V);
          for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) dec[h * V + v] = w[v * H + h];
          weights['decoder_w'] = dec;
        }
        const enc = native().createEncoder({ ...spec.config, threads: evalThreads }, weights);
        try {
          const run: MlmRunner = async (ids, b, s) => (await enc.run({ ids, mask: new Int32Array(b * s).fill(1), types: spec.config.typeVocab ? new Int32Array(b * s) : null, batch: b, seq: s })).mlm!;
          o.onEval!(score(trainer.steps, await topWords(run, evalCases, maskId, V), teacherTop, evalCases));
        } finally {
          enc.close();
        }
      };
      await evaluate();
    }
    const evalEvery = o.evalEvery ?? Math.max(1, Math.round(steps / 10));
    const save = () =>
      writeCheckpoint(checkpoint, { run, step: trainer.steps, batches: batches.state, ...(sampler ? { routes: sampler.state } : {}) }, trainer.state());
    const tStart = Date.now();
    const stepStart = trainer.steps;
    while (trainer.steps < steps) {
      if (o.signal?.aborted) {
        save();
        return { steps: trainer.steps, finished: false, checkpoint, seconds: (Date.now() - t0) / 1000, firstLoss: first, lastLoss: last };
      }
      const b = batches.next();
      const mid = inter ? await teacher.intermediates(teacherInputs(teacher, b)) : undefined;
      const out = mid ? mid.outputs : await teacher.run(teacherInputs(teacher, b));
      const logits = Object.values(out).find((t) => t.dims.length === 3 && t.dims[2] === V);
      if (!logits) throw new BortError(`the teacher has no [batch, seq, ${V}] logits output`, 'give a masked-LM teacher with the student\'s vocabulary');
      const tl = new Float32Array(b.positions.length * V);
      b.positions.forEach((p, i) => tl.set(logits.data.subarray(p * V, (p + 1) * V), i * V));
      // module replacing: which groups run their successor this update (the student alone after the phase)
      const p = plan ? replaceRate(plan, trainer.steps + 1) : undefined;
      const route = sampler && trainer.steps < plan!.replacingSteps ? sampler.next(p!).route : null;
      const terms = inter && mid ? {
        match: inter.match, hiddenWeight: inter.hiddenWeight, attentionWeight: inter.attentionWeight,
        teacherHidden: inter.hiddenWeight > 0 ? gatherLayers(mid.layers.data, b.batch * b.seq * teacher.arch.hidden, inter.teacherLayer) : null,
        teacherAttention: inter.attentionWeight > 0 ? gatherLayers(mid.attention.data, b.batch * b.seq * b.seq, inter.teacherLayer) : null,
      } : {};
      const r = await trainer.step({ ...b, teacher: tl, mlmWeight: loss.mlmWeight, klWeight: loss.klWeight, temperature: loss.temperature, route, ...terms });
      first ??= r.loss;
      last = r.loss;
      const done = trainer.steps - stepStart;
      const secs = (Date.now() - tStart) / 1000;
      o.onProgress?.({
        step: r.step, steps, loss: r.loss, mlm: r.mlm, kl: r.kl, lr: r.lr,
        ...(inter ? { hidden: r.hidden, attention: r.attention } : {}),
        tokensPerSecond: (done * batch * seq) / Math.max(secs, 1e-9), etaSeconds: (secs / done) * (steps - trainer.steps),
        ...(p === undefined ? {} : { replaceRate: p }),
      });
      if (o.checkpointEvery && trainer.steps % o.checkpointEvery === 0) save();
      if (evaluate && (trainer.steps % evalEvery === 0 || trainer.steps === steps)) await evaluate();
    }
    trainer.writeInto();
    saveModel(loaded.model, o.output, { protect: loaded.sources });
    return { steps: trainer.steps, finished: true, output: path.resolve(o.output), seconds: (Date.now() - t0) / 1000, firstLoss: first, lastLoss: last };
  } finally {
    trainer.close();
    teacher.close();
  }
}

/** BERT initialisation of the trained layers: matrices N(0, 0.02²), biases 0, LayerNorm scale 1 and shift 0. */
function reinitialiseLayers(trainer: Trainer, seed: number): void {
  const rng = new SeededRandom(seed);
  for (const name of trainer.weightNames()) {
    if (!/\.\d+$/.test(name)) continue;  // embeddings and head stay the student's
    const n = trainer.weight(name).length;
    const kind = name.replace(/\.\d+$/, '');
    const data = kind.endsWith('_w') ? gaussian(rng, n, 0.02) : new Float32Array(n).fill(kind.endsWith('_g') ? 1 : 0);
    trainer.setWeight(name, data);
  }
}

/** The batch under the teacher's own input names, by role. */
function teacherInputs(teacher: Encoder, b: { ids: Int32Array; mask: Int32Array; types: Int32Array; batch: number; seq: number }) {
  const roles = teacher.inputRoles;
  const dims = [b.batch, b.seq];
  const r: Record<string, { data: Int32Array; dims: number[] }> = { [roles.ids]: { data: b.ids, dims } };
  if (roles.mask) r[roles.mask] = { data: b.mask, dims };
  if (roles.tokenTypes) r[roles.tokenTypes] = { data: b.types, dims };
  return r;
}

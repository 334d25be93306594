/**
 * bort-compress: extract a small, fast BERT sub-architecture from a BERT-family ONNX model.
 *
 * ```ts
 * import { compress, inspect, synth } from 'bort-compress';
 * await compress('bert-large.onnx', { arch: '4,8,1024,768', output: 'bort.onnx' });
 * ```
 *
 * Every type an exported function, class or interface uses is exported here too, so that custom
 * scorers and plans can be written against this module alone (test/cli-surface.test.ts checks it).
 */
export { compress, defaultOutput, type CompressOptions, type CompressSummary } from './compress.js';
export { inspect, type InspectSummary } from './inspect.js';
export { quantize, type QuantizeOptions, type QuantizeSummary } from './quantize/quantize.js';
export { calibrate, inputStatistic, readCalibrationText, type Calibration, type CalibrateOptions, type CalibrateProgress } from './quantize/calibrate.js';
export type { WeightPrecision, WeightPrecisionEntry } from './quantize/precision.js';
export { synth, buildSynthModel, type SynthOptions, type SynthSummary } from './synth/bert.js';
export type { Family, SynthHead, TokenTypeForm, PositionForm, FusedForm } from './synth/options.js';
export { BortError } from './errors.js';
export { parseArch, formatArch } from './extract/arch.js';
export { archParameters, type HeadsConfig } from './bert/params.js';
export { recognize } from './bert/recognize.js';
export type {
  Arch, BertModel, Linear, LayerNorm, ShapeSite, ScaleSite, Attention, Ffn, Layer, Embedding, Embeddings, Pooler,
  MaskedLmHead, Classifier, OutputRole, AttentionMask, PositionIds, QuantizedWeight,
} from './bert/model.js';
export type { GraphView, WeightSource, ConstantSource, DimensionSite, MaskReading } from './bert/normalize/view.js';
export { planExtraction, type ExtractionPlan, type LayerPlan, type PlanOptions } from './extract/plan.js';
export { weightScorer, firstScorer, type ImportanceScorer } from './extract/scorer.js';
export { applyPlan, type RewriteStats } from './rewrite/apply.js';
export { loadModel, saveModel, type LoadedModel, type SaveOptions, type SaveResult, type FileIdentity } from './onnx/io.js';
export type { GraphIndex } from './onnx/graph.js';
export type {
  ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto, ValueInfoProto, TypeProto, Dimension, OperatorSetId,
  StringStringEntry, Int64,
} from './onnx/types.js';
export { MAX_THREADS } from './runtime/threads.js';
export type { EngineOutput } from './runtime/spec.js';
export { Encoder, type EncoderOptions, type TensorInput, type TensorOutput } from './runtime/encoder.js';
export { TextTokenizer, type Encoding, type EncodeOptions, type Truncation, type TokenPieces, type TokenizerJson } from './text/tokenizer.js';
export type { VocabOptions } from './text/vocab.js';
export type { Task, Prepared, TaskContext } from './tasks/task.js';
export type { Backend, PaddedBatch, RoleOutputs } from './tasks/backend.js';
export { pipeline, TextPipeline, TASKS, type PipelineOptions, type TaskName, type TaskTypes } from './tasks/pipeline.js';
export type { FillMaskResult, FillMaskPrediction } from './tasks/fill-mask.js';
export type { EmbedResult, Pooling } from './tasks/embed.js';
export type { ClassifyResult } from './tasks/classify.js';
export type { AnswerInput, AnswerResult } from './tasks/answer.js';
export { search, parseShape, DEFAULT_STEPS, type SearchOptions, type SearchProgress, type SearchResult } from './search/search.js';
export type { SearchFile, SearchConfig, CandidateRecord } from './search/search-file.js';
export { parseSpace, completeSpace, defaultSpace, candidatesOf, type SearchSpace, type Dimension as SpaceDimension } from './search/space.js';
export { wCoefficient, type Objectives } from './search/w-coefficient.js';
export { dominates, paretoFlags } from './search/pareto.js';
export { representatives, type Sized } from './search/fptas.js';
export { fitCostModel, type CostModel, type LatencyPoint } from './search/cost-model.js';
export type { Shape } from './search/latency.js';
export { buildCalibration, readCorpus, type CalibrationSet, type CalibrationOptions } from './search/calibration.js';
export { refitModel, refitFile, refitProblem, ridgeSolve, REFIT_SEQUENCES, type RefitOptions, type RefitReport, type RefitFit } from './extract/reconstruct.js';
export { dataScorer, ablateLayers, scorerFromAblation, widthScorer, type DataScorerOptions, type LayerAblation } from './extract/data-scorer.js';
export { gradientImportance, type GradientImportance, type GradientImportanceOptions } from './extract/gradient-importance.js';
export { Trainer, type TrainOptions, type TrainBatch, type StepResult, type TrainerState } from './train/trainer.js';
export { distill, type DistillOptions, type DistillProgress, type DistillSummary } from './distill/distill.js';
export { finetune, type FinetuneOptions, type FinetuneProgress, type FinetuneEpoch, type FinetuneSummary } from './finetune/finetune.js';
export type { Example } from './finetune/examples.js';
export type { EvalScore, EvalCase } from './distill/evaluate.js';
export type { ReplaceSchedule } from './distill/module-replacing.js';

/**
 * bort-compress: extract a small, fast BERT sub-architecture from a BERT-family ONNX model.
 *
 * ```ts
 * import { compress, inspect, synth } from 'bort-compress';
 * await compress('bert-large.onnx', { arch: '4,8,1024,768', output: 'bort.onnx' });
 * ```
 */
export { compress, defaultOutput, type CompressOptions, type CompressSummary } from './compress.js';
export { inspect, type InspectSummary } from './inspect.js';
export { synth, buildSynthModel, type SynthOptions, type SynthSummary } from './synth/bert.js';
export { BortError } from './errors.js';
export { parseArch, formatArch } from './extract/arch.js';
export { archParameters, type HeadsConfig } from './bert/params.js';
export { recognize } from './bert/recognize.js';
export type { Arch, BertModel } from './bert/model.js';
export { planExtraction, type ExtractionPlan, type PlanOptions } from './extract/plan.js';
export { weightScorer, firstScorer, type ImportanceScorer } from './extract/scorer.js';
export { loadModel, saveModel, type LoadedModel, type SaveOptions } from './onnx/io.js';
export { Encoder, type EncoderOptions, type TensorInput, type TensorOutput } from './runtime/encoder.js';
export { TextTokenizer, type Encoding, type EncodeOptions, type Truncation } from './text/tokenizer.js';
export { pipeline, TextPipeline, TASKS, type PipelineOptions, type TaskName, type TaskTypes } from './tasks/pipeline.js';
export type { FillMaskResult, FillMaskPrediction } from './tasks/fill-mask.js';
export type { EmbedResult, Pooling } from './tasks/embed.js';
export type { ClassifyResult } from './tasks/classify.js';
export type { AnswerInput, AnswerResult } from './tasks/answer.js';

/**
 * The recognised structure of a BERT-family graph: one object that extraction, rewriting and the
 * runtime all read, so that none of them walks the graph again. Every role names the graph parts
 * (nodes, tensors, initializers) that play it.
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { ModelProto, NodeProto } from '../onnx/types.js';
import type { GraphView, MaskReading } from './normalize/view.js';

/** An architecture tuple as in the Bort paper: (D, A, H, I). */
export interface Arch {
  layers: number;
  heads: number;
  hidden: number;
  intermediate: number;
}

/**
 * y = alpha·(x·W) + beta·b, however the exporter wrote it (MatMul [+ Add], Gemm, MatMul of a
 * Transpose). alpha and beta are Gemm's attributes (1 for a MatMul); the engine folds them into W and b.
 */
export interface Linear {
  /** The MatMul or Gemm node. */
  node: NodeProto;
  /** Float initializer holding W. */
  weight: string;
  /** 'in_out': stored [in, out] (MatMul); 'out_in': stored [out, in] (Gemm transB=1, Transpose, tied decoder). */
  layout: 'in_out' | 'out_in';
  /** Bias initializer [out], if any (Gemm C or a following Add). */
  bias?: string;
  /** The Add node applying the bias after a MatMul. */
  biasNode?: NodeProto;
  input: string;
  /** Output tensor after the bias. */
  output: string;
  inDim: number;
  outDim: number;
  /** Gemm's alpha: the factor on x·W (1 for MatMul). */
  alpha: number;
  /** Gemm's beta: the factor on the bias (1 for MatMul + Add). */
  beta: number;
}

export interface LayerNorm {
  kind: 'fused' | 'decomposed';
  input: string;
  output: string;
  gamma: string;
  beta?: string;
  /** The constant added to the variance (found in the graph, never assumed; fused: the attribute). */
  epsilon: number;
  nodes: NodeProto[];
}

/** One place in the graph where a constant carries a head count, head size or attention width. */
export interface ShapeSite {
  /** Tensor name of the constant (initializer or Constant output) holding the value. */
  constant: string;
  /** Element index inside that constant. */
  element: number;
  /** The node input that reads the constant: node and input index (re-pointed on patching). */
  node: NodeProto;
  inputIndex: number;
  role: 'heads' | 'headSize' | 'width';
  value: number;
}

/** A scalar constant applied to attention scores (Div or Mul), on Q, K or the scores. */
export interface ScaleSite {
  node: NodeProto;
  inputIndex: number;
  op: 'mul' | 'div';
  value: number;
}

export interface Attention {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  heads: number;
  headSize: number;
  /** Multiplier applied to Q·Kᵀ overall (product of the scale sites). */
  scoreScale: number;
  scaleSites: ScaleSite[];
  shapeSites: ShapeSite[];
  softmax: NodeProto;
  /** Additive attention-mask tensor added to the scores, if any. */
  maskTensor?: string;
  /** What that mask was recognised as (absent when the scores get no mask). */
  mask?: AttentionMask;
}

/**
 * The additive attention mask. `value` and `input` are set when it has the form
 * `(1 - Cast(Unsqueeze(mask))) · value` broadcast as [batch, 1, 1, seq]; otherwise `problem` says
 * what differs (the rewrite keeps such a mask as it is; the native engine refuses it).
 */
export interface AttentionMask {
  tensor: string;
  input?: string;
  value?: number;
  problem?: string;
}

export interface Ffn {
  in: Linear;
  out: Linear;
  activation: 'gelu' | 'gelu_tanh' | 'relu';
}

export interface Layer {
  index: number;
  /** Residual stream tensor entering the layer. */
  input: string;
  attention: Attention;
  attentionResidual: NodeProto;
  ln1: LayerNorm;
  ffn: Ffn;
  ffnResidual: NodeProto;
  ln2: LayerNorm;
  /** Residual stream tensor leaving the layer (= ln2.output). */
  output: string;
}

export interface Embedding {
  gather: NodeProto;
  table: string;
  rows: number;
  /** Graph input indexing this table (word, token type), if it is one. */
  input?: string;
}

/**
 * The position ids the position lookup reads. `arange`: token t reads row start + t, for sequences of
 * up to maxSeq tokens (fewer than the table's rows when the ids are offset or come from a shorter
 * constant). `other`: computed in a way the engine cannot reproduce; `problem` says how.
 */
export type PositionIds = { kind: 'arange'; start: number; maxSeq: number } | { kind: 'other'; problem: string };

export interface Embeddings {
  word: Embedding;
  position?: Embedding;
  /** Set whenever `position` is. */
  positionIds?: PositionIds;
  tokenType?: Embedding;
  ln: LayerNorm;
  output: string;
}

export interface Pooler {
  /** The node that picks the first token (Gather index 0 on the sequence axis, or Slice). */
  select: NodeProto;
  dense: Linear;
  output: string;
}

export interface MaskedLmHead {
  transform: Linear;
  activation: Ffn['activation'];
  ln: LayerNorm;
  decoder: Linear;
  /** True when the decoder weight is the word embedding table (shared or an equal transposed copy). */
  tiedToWordEmbeddings: boolean;
  /** True when that tie is a separate stored copy rather than the same initializer. */
  tiedCopy: boolean;
}

export interface Classifier {
  linear: Linear;
  /** What it reads: the pooled output or the hidden states. */
  source: 'pooler' | 'hidden';
}

export type OutputRole = 'hidden' | 'pooled' | 'mlm' | 'classifier';

export interface BertModel {
  /** The model file as loaded (the rewrite edits this graph). */
  model: ModelProto;
  /** An index of the recogniser's view of the graph, which every role below names parts of. */
  index: GraphIndex;
  /** That view, and where each of its weights and constants is in the file (lib/bert/normalize/). */
  view: GraphView;
  arch: Arch;
  vocab: number;
  maxPositions: number;
  typeVocab: number;
  headSize: number;
  /** Attention width heads·headSize (equals hidden in BERT configs). */
  attentionWidth: number;
  /**
   * Model inputs by role. `fixedLength`: the sequence length every [batch, seq] input declares, when
   * they declare a number (onnxruntime runs the model at that length only).
   */
  inputs: { ids: string; mask?: string; tokenTypes?: string; all: string[]; fixedLength?: number };
  /** Additive value for masked positions: scores += (1 - mask) * maskValue (the same in every layer). */
  maskValue?: number;
  /** Set when the layers add a mask that is not that form (or differs between layers): why. */
  maskProblem?: string;
  /**
   * Set when onnxruntime's fused Attention reads the mask: 'raw' (a key attends where the mask is 1)
   * or 'lengths' (the first as many keys as the row has ones attend). Either is the formula above for
   * masks of 0s and 1s, the only ones the engine then accepts.
   */
  maskReading?: MaskReading;
  embeddings: Embeddings;
  layers: Layer[];
  pooler?: Pooler;
  mlm?: MaskedLmHead;
  classifiers: Classifier[];
  outputs: { name: string; role: OutputRole; source: string }[];
}

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
  /** Set when the layer is int8-quantized (lib/quantize/linear-view.ts): `weight` is then int8 [in, out]. */
  quant?: QuantizedWeight;
}

/**
 * An int8 linear as onnxruntime's dynamic quantization writes it: DynamicQuantizeLinear(x) →
 * MatMulInteger(x_q, W_q, x_zp, W_zp) → Cast(float) → Mul(x_scale · W_scale), then the bias Add; or
 * with a static input scale from calibration (`quantize --calibration`): Clip(x, ±127·s) →
 * QuantizeLinear(s, int8 0) → MatMulInteger → Cast(float) → Mul(s · W_scale, one constant) → bias Add.
 */
export interface QuantizedWeight {
  /**
   * float32 scale initializer: one value (per tensor) or one per output column (per channel). The
   * weight's scale (dynamic), or the input scale times the weight's (static: `inputScale` is set).
   */
  scale: string;
  perChannel: boolean;
  /** int8 zero-point initializer (all zeros: symmetric), if the MatMulInteger names one. */
  zeroPoint?: string;
  /** The DynamicQuantizeLinear (dynamic) or QuantizeLinear (static) node quantizing the input (may be shared by several layers). */
  quantizeInput: NodeProto;
  /** Static: the float32 scalar initializer of the input's scale s (QuantizeLinear's). */
  inputScale?: string;
  /** Static: the Clip before QuantizeLinear (keeps the int8 input in [-127, 127]). */
  clip?: NodeProto;
  /** The nodes of this layer: MatMulInteger, Cast, the scale product Mul, the output Mul. */
  nodes: NodeProto[];
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
 * The attention mask. `kind` 'add': `(1 - Cast(Unsqueeze(mask))) · value` broadcast as
 * [batch, 1, 1, seq] and added to the scores (lib/bert/mask.ts). 'select': the scores of padding keys
 * replaced by `value` (`Where(mask == 0, value, scores)`, DistilBERT; lib/bert/mask-select.ts).
 * `value` and `input` are set when the form is recognised; otherwise `problem` says what differs
 * (the rewrite keeps such a mask as it is; the native engine refuses it).
 */
export interface AttentionMask {
  tensor: string;
  kind: 'add' | 'select';
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
  /**
   * A token-type lookup without an input: the one row every token reads, its indices a constant
   * (ConstantOfShape(Shape(input_ids)), or a registered zero buffer sliced and expanded; lib/bert/token-types.ts).
   */
  constantRow?: number;
  /** For a constant-row lookup cut from a buffer: the longest sequence the buffer covers. */
  maxSeq?: number;
}

/**
 * The position ids the position lookup reads. `arange`: token t reads row start + t, for sequences of
 * up to maxSeq tokens (fewer than the table's rows when the ids are offset or come from a shorter
 * constant). `from-ids`: RoBERTa's `cumsum(ids != paddingIdx) · (ids != paddingIdx) + paddingIdx`
 * (lib/bert/positions-from-ids.ts): a padding token reads row paddingIdx, the k-th other token row
 * paddingIdx + k, so sequences of up to maxSeq = rows - paddingIdx - 1 tokens. `other`: computed in a
 * way the engine cannot reproduce; `problem` says how.
 */
export type PositionIds = { kind: 'arange'; start: number; maxSeq: number }
  | { kind: 'from-ids'; paddingIdx: number; maxSeq: number }
  | { kind: 'other'; problem: string };

export interface Embeddings {
  word: Embedding;
  position?: Embedding;
  /** Set whenever `position` is. */
  positionIds?: PositionIds;
  tokenType?: Embedding;
  ln: LayerNorm;
  output: string;
}

/**
 * First token → dense → activation: BERT's pooler (tanh), RoBERTa's classification dense (tanh),
 * DistilBERT's pre_classifier (ReLU).
 */
export interface Pooler {
  /** The node that picks the first token (Gather index 0 on the sequence axis, or Slice). */
  select: NodeProto;
  dense: Linear;
  activation: 'tanh' | 'relu';
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
  /** What it reads: the pooled output or the hidden states (a per-token classifier). */
  source: 'pooler' | 'hidden';
  /**
   * A per-token classifier whose logits are split along the last axis into one [batch, seq] tensor
   * per label (question answering: start and end logits; lib/bert/split-columns.ts): those tensors.
   */
  columns?: string[];
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
  /**
   * The value for masked positions (the same in every layer): added as scores += (1 - mask) · maskValue
   * when maskKind is 'add', put in place of the scores of padding keys when it is 'select'.
   */
  maskValue?: number;
  maskKind?: AttentionMask['kind'];
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
  /** `column`: for a classifier output that is one column of a split classifier (see Classifier.columns). */
  outputs: { name: string; role: OutputRole; source: string; column?: number }[];
}

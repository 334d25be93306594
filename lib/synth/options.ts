/**
 * What `synth` can write, and the rules that turn a caller's options into one complete, consistent
 * description (defaults per model family; contradictory combinations refused with a BortError rather
 * than silently ignored).
 */
import { parseArch } from '../extract/arch.js';
import type { Arch } from '../bert/model.js';
import { BortError } from '../errors.js';

export type Family = 'bert' | 'roberta' | 'distilbert';
export type SynthHead = 'base' | 'mlm' | 'cls' | 'qa' | 'token-cls';
/**
 * How the token-type embedding is read. input: a token_type_ids graph input; constant-of-shape: no
 * input, row 0 gathered through ConstantOfShape(Shape(input_ids)); zero-buffer: no input, a registered
 * int64 zero buffer [1, P] sliced to the sequence length and expanded to the input's shape (transformers
 * ≥ 4); none: no token-type table at all (same as typeVocab 0).
 */
export type TokenTypeForm = 'input' | 'constant-of-shape' | 'zero-buffer' | 'none';
/**
 * Where position ids come from. buffer: a registered position_ids buffer sliced to the sequence length
 * (BERT, DistilBERT); input: a position_ids graph input; from-ids: computed from input_ids as RoBERTa
 * does (cumsum of ids != padding_idx, times that mask, plus padding_idx).
 */
export type PositionForm = 'buffer' | 'input' | 'from-ids';
/**
 * onnxruntime transformer-optimizer forms. attention: com.microsoft Attention (QKV weight [H, 3H]);
 * qkv-split: Q, K and V as one MatMul [H, 3H] followed by Split; skip-ln: SkipLayerNormalization for
 * residual + LayerNorm (bias folded in); embed-ln: EmbedLayerNormalization; bias-gelu: BiasGelu;
 * fast-gelu: FastGelu (tanh GELU, bias folded in); gelu: com.microsoft Gelu after the bias Add.
 */
export type FusedForm = 'attention' | 'qkv-split' | 'skip-ln' | 'embed-ln' | 'bias-gelu' | 'fast-gelu' | 'gelu';
export const FUSED_FORMS: readonly FusedForm[] = ['attention', 'qkv-split', 'skip-ln', 'embed-ln', 'bias-gelu', 'fast-gelu', 'gelu'];
export const FAMILIES: readonly Family[] = ['bert', 'roberta', 'distilbert'];
export const HEADS: readonly SynthHead[] = ['base', 'mlm', 'cls', 'qa', 'token-cls'];
export const TOKEN_TYPE_FORMS: readonly TokenTypeForm[] = ['input', 'constant-of-shape', 'zero-buffer', 'none'];
export const POSITION_FORMS: readonly PositionForm[] = ['buffer', 'input', 'from-ids'];

export interface SynthOptions {
  arch: Arch | string;
  vocab?: number;
  /** base: hidden states (+ pooler for BERT/RoBERTa); mlm; cls: sequence classification; qa: start/end logits; token-cls: per-token logits. */
  head?: SynthHead;
  output?: string;
  /** ONNX opset 11–17; 17 writes fused LayerNormalization unless `layerNorm` says otherwise. */
  opset?: number;
  /** Longest sequence. RoBERTa's position table has two more rows (padding_idx + 1 offset). */
  maxPositions?: number;
  /** Token-type table size; 0 for a model without token types (default 2; RoBERTa 1; DistilBERT 0). */
  typeVocab?: number;
  labels?: number;
  seed?: number;
  inputNames?: { ids?: string; mask?: string; tokenTypes?: string; positionIds?: string };
  /** Graph output names in order (default last_hidden_state/pooler_output, logits, start_logits/end_logits). */
  outputNames?: string[];
  /** Exporter variants. */
  weights?: 'in_out' | 'transposed';
  headShape?: 'concat' | 'constant';
  scale?: 'div' | 'mul' | 'qk';
  layerNorm?: 'decomposed' | 'fused';
  externalData?: boolean;
  family?: Family;
  tokenTypes?: TokenTypeForm;
  positionIds?: PositionForm;
  /** gelu: erf GELU (default); gelu-tanh: the tanh approximation (transformers' gelu_new). */
  activation?: 'gelu' | 'gelu-tanh';
  fused?: FusedForm | FusedForm[];
  /**
   * float16: converted as onnxruntime's float16 converter does by default with keep_io_types: every float
   * tensor, initializer and constant in FLOAT16 (clamped to ±65504, tiny values to ±5.96e-8), a Cast to
   * float before each float graph output.
   */
  dtype?: 'float32' | 'float16';
  /** float16 only: op types kept in float32 with Casts around them (the converter's op_block_list). */
  fp16KeepFloat?: string[];
}

/** Every option decided. */
export interface ResolvedOptions {
  arch: Arch;
  family: Family;
  vocab: number;
  /** Longest sequence (`maxPositions`). */
  positions: number;
  /** Rows of the position table. */
  positionRows: number;
  /** RoBERTa's padding_idx (the id whose position is padding_idx itself). */
  paddingIdx: number;
  typeVocab: number;
  tokenTypes: TokenTypeForm;
  positionIds: PositionForm;
  head: SynthHead;
  labels: number;
  opset: number;
  seed: number;
  names: { ids: string; mask: string; tokenTypes: string; positionIds: string };
  outputNames?: string[];
  weights: 'in_out' | 'transposed';
  headShape: 'concat' | 'constant';
  /** undefined: the family's own pattern (DistilBERT divides Q). */
  scale?: 'div' | 'mul' | 'qk';
  fusedLayerNorm: boolean;
  activation: 'gelu' | 'gelu-tanh';
  fused: Set<FusedForm>;
  dtype: 'float32' | 'float16';
  fp16KeepFloat: string[];
}

function oneOf<T extends string>(value: T | undefined, allowed: readonly T[], what: string): T | undefined {
  if (value !== undefined && !allowed.includes(value)) {
    throw new BortError(`${what} '${value}' is unknown`, `use one of ${allowed.join(', ')}`);
  }
  return value;
}

/** The ai.onnx opsets synth writes (all within what loadModel and onnxruntime read). */
export const SYNTH_OPSETS = { min: 11, max: 17 } as const;

export function resolveOptions(opts: SynthOptions): ResolvedOptions {
  const arch = typeof opts.arch === 'string' ? parseArch(opts.arch) : opts.arch;
  const family = oneOf(opts.family, FAMILIES, 'family') ?? 'bert';
  const vocab = opts.vocab ?? 30522;
  const positions = opts.maxPositions ?? 512;
  const opset = opts.opset ?? 14;
  if (!Number.isInteger(opset) || opset < SYNTH_OPSETS.min || opset > SYNTH_OPSETS.max) {
    throw new BortError(`opset ${String(opset)} is not supported by synth`, `choose an opset from ${SYNTH_OPSETS.min} to ${SYNTH_OPSETS.max}`);
  }
  if (vocab < 1 || positions < 1) throw new BortError('vocabulary and positions must be at least 1', 'pass --vocab N');
  const fusedLayerNorm = (opts.layerNorm ?? (opset >= 17 ? 'fused' : 'decomposed')) === 'fused';
  if (fusedLayerNorm && opset < 17) throw new BortError('LayerNormalization needs opset 17', 'use --opset 17');
  const head = oneOf(opts.head, HEADS, 'head') ?? 'base';

  // token types
  let tokenTypes = oneOf(opts.tokenTypes, TOKEN_TYPE_FORMS, 'token-type form');
  let typeVocab = opts.typeVocab;
  if (family === 'distilbert') {
    if ((typeVocab ?? 0) > 0 || (tokenTypes !== undefined && tokenTypes !== 'none')) {
      throw new BortError('DistilBERT has no token types', 'leave out --type-vocab and --token-types for --family distilbert');
    }
    typeVocab = 0;
  }
  if (tokenTypes === 'none') {
    if ((typeVocab ?? 0) > 0) throw new BortError(`token-type form 'none' has no table, but type vocabulary ${typeVocab} was asked for`, 'pass either --type-vocab 0 or another --token-types form');
    typeVocab = 0;
  }
  typeVocab ??= family === 'roberta' ? 1 : 2;
  if (typeVocab < 0 || !Number.isInteger(typeVocab)) throw new BortError(`type vocabulary ${typeVocab} is not a whole number`, 'pass --type-vocab N (0 for none)');
  if (typeVocab === 0 && tokenTypes !== undefined && tokenTypes !== 'none') {
    throw new BortError(`token-type form '${tokenTypes}' needs a token-type table, but the type vocabulary is 0`, 'pass --type-vocab 1 or more');
  }
  tokenTypes ??= typeVocab > 0 ? 'input' : 'none';

  // positions
  const positionIds = oneOf(opts.positionIds, POSITION_FORMS, 'position-id form') ?? (family === 'roberta' ? 'from-ids' : 'buffer');
  if (positionIds === 'from-ids' && family !== 'roberta') throw new BortError('position ids computed from input_ids are the RoBERTa form', 'use --family roberta, or --position-ids buffer|input');
  if (positionIds === 'buffer' && family === 'roberta') throw new BortError('RoBERTa computes its position ids from input_ids', 'use --position-ids from-ids or input with --family roberta');
  const paddingIdx = 1;
  const positionRows = family === 'roberta' ? positions + paddingIdx + 1 : positions;

  // fused forms
  const fusedList = opts.fused === undefined ? [] : Array.isArray(opts.fused) ? opts.fused : [opts.fused];
  for (const f of fusedList) oneOf(f, FUSED_FORMS, 'fused form');
  const fused = new Set(fusedList);
  if (fused.has('attention') && fused.has('qkv-split')) throw new BortError("fused forms 'attention' and 'qkv-split' exclude each other", 'choose one of them');
  const geluForms = ['bias-gelu', 'fast-gelu', 'gelu'].filter((f) => fused.has(f as FusedForm));
  if (geluForms.length > 1) throw new BortError(`fused forms ${geluForms.map((f) => `'${f}'`).join(' and ')} exclude each other`, 'choose one GELU form');
  let activation = opts.activation;
  if (activation !== undefined && activation !== 'gelu' && activation !== 'gelu-tanh') throw new BortError(`activation '${activation}' is unknown`, 'use gelu or gelu-tanh');
  if (fused.has('fast-gelu')) {
    if (activation === 'gelu') throw new BortError('FastGelu computes the tanh approximation of GELU, not erf GELU', "use --activation gelu-tanh with --fused fast-gelu");
    activation = 'gelu-tanh';
  }
  if ((fused.has('bias-gelu') || fused.has('gelu')) && activation === 'gelu-tanh') {
    throw new BortError('BiasGelu and Gelu compute erf GELU, not its tanh approximation', "use --fused fast-gelu for tanh GELU");
  }
  activation ??= 'gelu';
  if (fused.has('embed-ln') && tokenTypes !== 'input' && tokenTypes !== 'none') {
    throw new BortError(`EmbedLayerNormalization reads token types from a segment_ids input, not the '${tokenTypes}' form`, "use --token-types input (or none) with --fused embed-ln");
  }
  if (fused.has('attention') && (opts.scale !== undefined || opts.headShape !== undefined)) {
    throw new BortError('fused Attention has no score-scale or head-reshape pattern', 'leave out scale and headShape with --fused attention');
  }
  if (family === 'distilbert' && opts.scale !== undefined) {
    throw new BortError('DistilBERT writes its own score scale (Q divided by sqrt(head size))', 'leave out scale for --family distilbert');
  }

  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') throw new BortError(`dtype '${dtype}' is unknown`, 'use float32 or float16');
  if (opts.fp16KeepFloat?.length && dtype !== 'float16') throw new BortError('ops kept in float32 only apply to a float16 model', 'add --dtype float16');

  return {
    arch, family, vocab, positions, positionRows, paddingIdx, typeVocab, tokenTypes, positionIds, head,
    labels: opts.labels ?? 2,
    opset,
    seed: opts.seed ?? 1234,
    names: {
      ids: opts.inputNames?.ids ?? 'input_ids',
      mask: opts.inputNames?.mask ?? 'attention_mask',
      tokenTypes: opts.inputNames?.tokenTypes ?? 'token_type_ids',
      positionIds: opts.inputNames?.positionIds ?? 'position_ids',
    },
    outputNames: opts.outputNames,
    weights: opts.weights ?? 'in_out',
    headShape: opts.headShape ?? 'concat',
    scale: opts.scale ?? (family === 'distilbert' ? undefined : 'div'),
    fusedLayerNorm,
    activation,
    fused,
    dtype,
    fp16KeepFloat: opts.fp16KeepFloat ?? [],
  };
}

/**
 * The `bort-compress synth` flags for exporter variants (family, token-type and position forms, fused
 * operators, float16, names), parsed into SynthOptions. Kept here so the CLI only spreads them in.
 */
import { BortError, quoteName } from '../errors.js';
import { FAMILIES, FUSED_FORMS, HEADS, POSITION_FORMS, TOKEN_TYPE_FORMS, type FusedForm, type SynthOptions } from './options.js';

export const SYNTH_VARIANT_FLAGS = {
  family: { type: 'string' },
  'token-types': { type: 'string' },
  'no-token-types': { type: 'boolean' },
  'position-ids': { type: 'string' },
  activation: { type: 'string' },
  fused: { type: 'string' },
  dtype: { type: 'string' },
  'fp16-keep-float': { type: 'string' },
  'input-names': { type: 'string' },
  'output-names': { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof SYNTH_VARIANT_FLAGS]?: (typeof SYNTH_VARIANT_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

function pick<T extends string>(v: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new BortError(`--${flag} ${quoteName(v)} is unknown`, `use --${flag} ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`);
  return v as T;
}

/** `--head` for synth. */
export function synthHead(v: string | undefined): NonNullable<SynthOptions['head']> {
  return pick(v, HEADS, 'head') ?? 'base';
}

export function synthVariantOptions(o: FlagValues): Partial<SynthOptions> {
  if (o['no-token-types'] && o['token-types'] !== undefined) throw new BortError('--no-token-types and --token-types both given', 'give one of them');
  const fused = list(o.fused);
  for (const f of fused ?? []) pick(f, FUSED_FORMS, 'fused');
  const inputs = list(o['input-names']);
  if (inputs && (inputs.length < 1 || inputs.length > 4)) throw new BortError(`--input-names takes 1 to 4 names, got ${inputs.length}`, 'pass --input-names IDS,MASK[,TOKEN_TYPES[,POSITION_IDS]]');
  const dtype = o.dtype === undefined ? undefined : pick(o.dtype, ['float32', 'float16'] as const, 'dtype');
  return {
    family: pick(o.family, FAMILIES, 'family'),
    tokenTypes: o['no-token-types'] ? 'constant-of-shape' : pick(o['token-types'], TOKEN_TYPE_FORMS, 'token-types'),
    positionIds: pick(o['position-ids'], POSITION_FORMS, 'position-ids'),
    activation: pick(o.activation, ['gelu', 'gelu-tanh'] as const, 'activation'),
    fused: fused as FusedForm[] | undefined,
    dtype,
    fp16KeepFloat: list(o['fp16-keep-float']),
    inputNames: inputs ? { ids: inputs[0], mask: inputs[1], tokenTypes: inputs[2], positionIds: inputs[3] } : undefined,
    outputNames: list(o['output-names']),
  };
}

export const SYNTH_VARIANT_HELP = `Exporter variants:
  --family F         bert (default), roberta (positions from input_ids, one token type) or distilbert
  --no-token-types   no token_type_ids input: row 0 via ConstantOfShape(Shape(input_ids)) (transformers)
  --token-types M    input, constant-of-shape, zero-buffer (registered int64 zeros, sliced, expanded) or none
  --position-ids M   buffer (BERT), input (a position_ids input) or from-ids (RoBERTa)
  --activation A     gelu (erf, default) or gelu-tanh
  --fused LIST       onnxruntime fused forms, comma-separated: attention, qkv-split, skip-ln, embed-ln,
                     bias-gelu, fast-gelu, gelu
  --dtype float16    converted as onnxruntime's float16 converter does (keep_io_types)
  --fp16-keep-float OPS  op types kept in float32 with Casts around them (e.g. Softmax,LayerNormalization)
  --input-names LIST ids,mask[,token types[,position ids]] (PyTorch 1.3: input_ids,input_mask,segment_ids)
  --output-names LIST  graph output names in order (PyTorch 1.3 QA: start,end)`;

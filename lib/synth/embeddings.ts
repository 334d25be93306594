/**
 * The embedding layer: word + token type + position, then LayerNorm; token types and position ids in
 * each form exporters write (see TokenTypeForm, PositionForm), or onnxruntime's EmbedLayerNormalization.
 */
import { DataType, MS_DOMAIN, type AttrValue } from './builder.js';
import type { SynthContext } from './context.js';
import { layerNorm, LAYER_NORM_EPSILON } from './layer-norm.js';
import type { LayerNormWeights, WeightDraw } from './random.js';
import { dimOf } from './shapes.js';
import { makeInt64Tensor } from '../onnx/tensor.js';

export interface EmbeddingWeights {
  word: Float32Array;
  types?: Float32Array;
  positions: Float32Array;
  norm: LayerNormWeights;
}

/** Drawn in the order the stock model always drew them: word, token types, positions, LayerNorm. */
export function drawEmbeddings(draw: WeightDraw, vocab: number, typeVocab: number, positionRows: number, hidden: number): EmbeddingWeights {
  const word = draw.table(vocab, hidden);
  const types = typeVocab > 0 ? draw.table(typeVocab, hidden) : undefined;
  const positions = draw.table(positionRows, hidden);
  return { word, types, positions, norm: draw.layerNorm(hidden) };
}

export interface EmbeddingOutput {
  hidden: string;
  /** EmbedLayerNormalization's mask_index (int32 [B]) when it was asked to compute one. */
  maskIndex?: string;
}

export function embeddings(ctx: SynthContext, w: EmbeddingWeights, wantMaskIndex: boolean): EmbeddingOutput {
  const { g, o } = ctx;
  const H = o.arch.hidden;
  const prefix = ctx.names.embeddings;
  const ids = o.names.ids;
  const word = g.init(`${prefix}.word_embeddings.weight`, [o.vocab, H], w.word);
  if (o.fused.has('embed-ln')) return embedLayerNorm(ctx, w, word, wantMaskIndex);

  const seqLen = dimOf(g, ids, 1);
  let positions: string;
  if (o.positionIds === 'buffer') {
    const posIds = g.initInt64(`${prefix}.position_ids`, [1, o.positionRows], Array.from({ length: o.positionRows }, (_, i) => i));
    positions = g.node('Slice', [posIds, g.constInt([0]), seqLen, g.constInt([1]), g.constInt([1])]);
  } else if (o.positionIds === 'input') {
    positions = o.names.positionIds;
  } else {
    positions = positionsFromIds(ctx);
  }
  let sum = g.node('Gather', [word, ids]);
  if (w.types) {
    const types = g.init(`${prefix}.token_type_embeddings.weight`, [o.typeVocab, H], w.types);
    sum = g.node('Add', [sum, g.node('Gather', [types, tokenTypeIds(ctx, seqLen)])]);
  }
  const pos = g.init(`${prefix}.position_embeddings.weight`, [o.positionRows, H], w.positions);
  sum = g.node('Add', [sum, g.node('Gather', [pos, positions])]);
  return { hidden: layerNorm(ctx, sum, `${prefix}.LayerNorm`, w.norm) };
}

/** The token-type ids the table is gathered with. */
function tokenTypeIds(ctx: SynthContext, seqLen: string): string {
  const { g, o } = ctx;
  const ids = o.names.ids;
  switch (o.tokenTypes) {
    case 'input':
      return o.names.tokenTypes;
    case 'constant-of-shape':
      // torch.zeros(input_shape, dtype=torch.long)
      return g.node('ConstantOfShape', [g.node('Shape', [ids])], { value: { tensor: makeInt64Tensor('', [1], [0]) } });
    case 'zero-buffer': {
      // self.token_type_ids[:, :seq_length].expand(batch, seq_length)
      const buffer = g.initInt64(`${ctx.names.embeddings}.token_type_ids`, [1, o.positionRows], new Array(o.positionRows).fill(0));
      const sliced = g.node('Slice', [buffer, g.constInt([0]), seqLen, g.constInt([1]), g.constInt([1])]);
      return g.node('Expand', [sliced, g.node('Concat', [dimOf(g, ids, 0), seqLen], { axis: 0 })]);
    }
    default:
      throw new Error(`no token-type ids in form ${o.tokenTypes}`);
  }
}

/**
 * RoBERTa's create_position_ids_from_input_ids: mask = (ids != padding_idx) as int32;
 * (cumsum(mask, 1) · mask) as int64 + padding_idx.
 */
function positionsFromIds(ctx: SynthContext): string {
  const { g, o } = ctx;
  const notPad = g.node('Not', [g.node('Equal', [o.names.ids, g.constInt([o.paddingIdx], true)])]);
  const mask = g.node('Cast', [notPad], { to: DataType.INT32 });
  const cumsum = g.node('Cast', [g.node('CumSum', [mask, g.constInt([1], true)])], { to: DataType.INT32 });
  const incremental = g.node('Mul', [cumsum, mask]);
  return g.node('Add', [g.node('Cast', [incremental], { to: DataType.INT64 }), g.constInt([o.paddingIdx], true)]);
}

/**
 * EmbedLayerNormalization(input_ids, segment_ids, word, position, segment, gamma, beta, mask, position_ids),
 * its integer inputs cast to int32 as onnxruntime's optimizer writes them.
 */
function embedLayerNorm(ctx: SynthContext, w: EmbeddingWeights, word: string, wantMaskIndex: boolean): EmbeddingOutput {
  const { g, o } = ctx;
  const H = o.arch.hidden;
  const prefix = ctx.names.embeddings;
  const int32 = (t: string) => g.node('Cast', [t], { to: DataType.INT32 });
  const types = w.types ? g.init(`${prefix}.token_type_embeddings.weight`, [o.typeVocab, H], w.types) : '';
  const pos = g.init(`${prefix}.position_embeddings.weight`, [o.positionRows, H], w.positions);
  const gamma = g.init(`${prefix}.LayerNorm.weight`, [H], w.norm.gamma);
  const beta = g.init(`${prefix}.LayerNorm.bias`, [H], w.norm.beta);
  const positionIds = o.positionIds === 'buffer' ? '' : int32(o.positionIds === 'input' ? o.names.positionIds : positionsFromIds(ctx));
  const inputs = [
    int32(o.names.ids), w.types ? int32(o.names.tokenTypes) : '', word, pos, types, gamma, beta,
    wantMaskIndex ? int32(o.names.mask) : '', positionIds,
  ];
  while (inputs[inputs.length - 1] === '') inputs.pop();
  // mask_index_type 0: no mask_index output (onnxruntime's shape inference expects one otherwise)
  const attrs: Record<string, AttrValue> = { epsilon: { float: LAYER_NORM_EPSILON } };
  if (!wantMaskIndex) attrs.mask_index_type = 0;
  const outputs = g.nodeOutputs('EmbedLayerNormalization', inputs, attrs, wantMaskIndex ? [undefined, undefined] : [undefined], MS_DOMAIN);
  return { hidden: outputs[0], maskIndex: wantMaskIndex ? outputs[1] : undefined };
}

/**
 * Initializer names per model family, as transformers' modules name their parameters (and so as a
 * PyTorch export names the initializers it keeps by name).
 */
import type { Family } from './options.js';

export interface LayerNames {
  query: string;
  key: string;
  value: string;
  /** Q, K and V as one Linear (the qkv-split form). */
  qkv: string;
  attentionOut: string;
  attentionNorm: string;
  ffnIn: string;
  ffnOut: string;
  outputNorm: string;
}

export interface FamilyNames {
  embeddings: string;
  layer(l: number): LayerNames;
  pooler: string;
  /** Masked-LM head: transform dense, its LayerNorm, the decoder bias. */
  mlm: { dense: string; norm: string; decoderBias: string };
  /** Sequence classification: the first Gemm (pooler / classifier.dense / pre_classifier) and the last. */
  cls: { first: string; last: string };
}

export function familyNames(family: Family): FamilyNames {
  if (family === 'distilbert') {
    return {
      embeddings: 'distilbert.embeddings',
      layer: (l) => {
        const p = `distilbert.transformer.layer.${l}`;
        return {
          query: `${p}.attention.q_lin`, key: `${p}.attention.k_lin`, value: `${p}.attention.v_lin`, qkv: `${p}.attention.qkv_lin`,
          attentionOut: `${p}.attention.out_lin`, attentionNorm: `${p}.sa_layer_norm`,
          ffnIn: `${p}.ffn.lin1`, ffnOut: `${p}.ffn.lin2`, outputNorm: `${p}.output_layer_norm`,
        };
      },
      pooler: '',
      mlm: { dense: 'vocab_transform', norm: 'vocab_layer_norm', decoderBias: 'vocab_projector.bias' },
      cls: { first: 'pre_classifier', last: 'classifier' },
    };
  }
  const root = family;
  return {
    embeddings: `${root}.embeddings`,
    layer: (l) => {
      const p = `${root}.encoder.layer.${l}`;
      return {
        query: `${p}.attention.self.query`, key: `${p}.attention.self.key`, value: `${p}.attention.self.value`, qkv: `${p}.attention.self.qkv`,
        attentionOut: `${p}.attention.output.dense`, attentionNorm: `${p}.attention.output.LayerNorm`,
        ffnIn: `${p}.intermediate.dense`, ffnOut: `${p}.output.dense`, outputNorm: `${p}.output.LayerNorm`,
      };
    },
    pooler: `${root}.pooler.dense`,
    mlm: family === 'roberta'
      ? { dense: 'lm_head.dense', norm: 'lm_head.layer_norm', decoderBias: 'lm_head.bias' }
      : { dense: 'cls.transform_dense', norm: 'cls.transform_ln', decoderBias: 'cls.decoder.bias' },
    cls: family === 'roberta' ? { first: 'classifier.dense', last: 'classifier.out_proj' } : { first: `${root}.pooler.dense`, last: 'classifier' },
  };
}

/**
 * `synth`: a randomly initialised BERT-family encoder at any size, written in the node pattern of a
 * stock PyTorch export (the fixtures' pattern), for demos, tests and benchmarks. Variants reproduce what
 * other exporters and tools write: transposed weights, a single [0,0,A,d] shape constant, the score
 * scale as a Mul or on Q and K, fused LayerNormalization, other input and output names, token types
 * without an input (options.ts), RoBERTa and DistilBERT (family-names.ts, embeddings.ts, attention.ts),
 * task heads (heads.ts), onnxruntime's fused operators, and float16 (fp16.ts). For one seed every
 * variant holds the same weights, so their outputs can be compared.
 */
import { parseArch } from '../extract/arch.js';
import type { Arch } from '../bert/model.js';
import { saveModel, type SaveResult } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import { GraphBuilder, modelOf, tensorInfo, DataType } from './builder.js';
import type { SynthContext } from './context.js';
import { familyNames } from './family-names.js';
import { resolveOptions, type SynthOptions } from './options.js';
import { WeightDraw } from './random.js';
import { drawEmbeddings, embeddings } from './embeddings.js';
import { additiveMask, maskIndex, selfAttention, type AttentionMasks } from './attention.js';
import { linear, linearProduct } from './linear.js';
import { layerNorm, skipLayerNorm } from './layer-norm.js';
import { activate } from './activation.js';
import { drawHead, outputNames, writeHead } from './heads.js';
import { convertToFloat16 } from './fp16.js';

export type { SynthOptions } from './options.js';

export function buildSynthModel(opts: SynthOptions): ModelProto {
  const o = resolveOptions(opts);
  const { layers: D, hidden: H, intermediate: I } = o.arch;
  const g = new GraphBuilder(o.opset);
  const ctx: SynthContext = { g, draw: new WeightDraw(o.seed), o, names: familyNames(o.family) };
  const outputs = outputNames(o);
  const fusedAttention = o.fused.has('attention');

  const masks: AttentionMasks = {};
  if (fusedAttention && !o.fused.has('embed-ln')) masks.index = maskIndex(ctx);
  else if (!fusedAttention && o.family !== 'distilbert') masks.additive = additiveMask(ctx);

  const emb = drawEmbeddings(ctx.draw, o.vocab, o.typeVocab, o.positionRows, H);
  const embedded = embeddings(ctx, emb, fusedAttention && o.fused.has('embed-ln'));
  masks.index ??= embedded.maskIndex;
  let x = embedded.hidden;

  const skipLn = o.fused.has('skip-ln');
  for (let l = 0; l < D; l++) {
    const n = ctx.names.layer(l);
    const draw = ctx.draw;
    const w = { query: draw.linear(H, H), key: draw.linear(H, H), value: draw.linear(H, H) };
    const attnOut = draw.linear(H, H);
    const norm1 = draw.layerNorm(H);
    const ffnIn = draw.linear(H, I);
    const ffnOut = draw.linear(I, H);
    const norm2 = draw.layerNorm(H);
    const lastName = l === D - 1 && o.head === 'base' ? outputs[0] : undefined;

    const context = selfAttention(ctx, x, l, n, w, masks);
    if (skipLn) {
      const a = linearProduct(ctx, context, n.attentionOut, attnOut);
      x = skipLayerNorm(ctx, a.product, x, a.bias, n.attentionNorm, norm1);
    } else {
      x = layerNorm(ctx, g.node('Add', [linear(ctx, context, n.attentionOut, attnOut), x]), n.attentionNorm, norm1);
    }
    const inter = activate(ctx, linearProduct(ctx, x, n.ffnIn, ffnIn));
    if (skipLn) {
      const f = linearProduct(ctx, inter, n.ffnOut, ffnOut);
      x = skipLayerNorm(ctx, f.product, x, f.bias, n.outputNorm, norm2, lastName);
    } else {
      x = layerNorm(ctx, g.node('Add', [linear(ctx, inter, n.ffnOut, ffnOut), x]), n.outputNorm, norm2, lastName);
    }
  }

  const graphOutputs = writeHead(ctx, x, drawHead(ctx.draw, o), emb.word, outputs);
  const ids = (name: string) => tensorInfo(name, DataType.INT64, ['batch_size', 'sequence_length']);
  const inputs = [ids(o.names.ids), ids(o.names.mask)];
  if (o.tokenTypes === 'input') inputs.push(ids(o.names.tokenTypes));
  if (o.positionIds === 'input') inputs.push(ids(o.names.positionIds));
  const graph = g.graph('bort_synth', inputs, graphOutputs);
  if (o.dtype === 'float16') convertToFloat16(graph, o.fp16KeepFloat);
  return modelOf(graph, o.opset, 'bort-compress synth', g.extraOpsets());
}

export interface SynthSummary {
  output: string;
  arch: Arch;
  vocab: number;
  head: string;
  opset: number;
  bytes: number;
  seconds: number;
}

export function synth(opts: SynthOptions & { output: string }): SynthSummary {
  const t0 = process.hrtime.bigint();
  const model = buildSynthModel(opts);
  const saved: SaveResult = saveModel(model, opts.output, { externalData: opts.externalData });
  return {
    output: saved.path,
    arch: typeof opts.arch === 'string' ? parseArch(opts.arch) : opts.arch,
    vocab: opts.vocab ?? 30522,
    head: opts.head ?? 'base',
    opset: opts.opset ?? 14,
    bytes: saved.bytes + (saved.dataBytes ?? 0),
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}

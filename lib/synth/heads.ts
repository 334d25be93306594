/**
 * What sits on the encoder's last hidden state, as transformers' task models export it: BERT's pooler;
 * masked-LM (decoder tied to the word table, stored as a transposed copy); sequence classification from
 * the first token (BERT: pooler → classifier; RoBERTa: classifier.dense → Tanh → out_proj; DistilBERT:
 * pre_classifier → ReLU → classifier); question answering (qa_outputs [H, 2] → Split → Squeeze into
 * start and end logits); token classification (classifier [H, labels] on every token).
 */
import { DataType, tensorInfo } from './builder.js';
import type { SynthContext } from './context.js';
import { activate } from './activation.js';
import { layerNorm } from './layer-norm.js';
import { linear, linearProduct } from './linear.js';
import type { ResolvedOptions } from './options.js';
import { transposed, type LayerNormWeights, type LinearWeights, type WeightDraw } from './random.js';
import type { ValueInfoProto } from '../onnx/types.js';
import { BortError } from '../errors.js';

/** A Gemm's weights, [out, in] (transB = 1). */
interface GemmWeights {
  weight: Float32Array;
  bias: Float32Array;
}

export interface HeadWeights {
  pooler?: GemmWeights;
  mlm?: { dense: LinearWeights; norm: LayerNormWeights; decoderBias: Float32Array };
  cls?: { first: GemmWeights; last: GemmWeights };
  perToken?: LinearWeights;
}

/** Drawn after the encoder, in the order the stock model always drew them. */
export function drawHead(draw: WeightDraw, o: ResolvedOptions): HeadWeights {
  const H = o.arch.hidden;
  const gemm = (rows: number): GemmWeights => ({ weight: draw.table(rows, H), bias: draw.vector(rows) });
  switch (o.head) {
    case 'base':
      return o.family === 'distilbert' ? {} : { pooler: gemm(H) };
    case 'mlm':
      return { mlm: { dense: draw.linear(H, H), norm: draw.layerNorm(H), decoderBias: draw.vector(o.vocab) } };
    case 'cls':
      return { cls: { first: gemm(H), last: gemm(o.labels) } };
    case 'qa':
      return { perToken: draw.linear(H, 2) };
    case 'token-cls':
      return { perToken: draw.linear(H, o.labels) };
  }
}

function defaultOutputNames(o: ResolvedOptions): string[] {
  switch (o.head) {
    case 'base': return o.family === 'distilbert' ? ['last_hidden_state'] : ['last_hidden_state', 'pooler_output'];
    case 'qa': return ['start_logits', 'end_logits'];
    default: return ['logits'];
  }
}

/** The graph's output names: the caller's, or transformers' defaults. */
export function outputNames(o: ResolvedOptions): string[] {
  const dflt = defaultOutputNames(o);
  if (!o.outputNames) return dflt;
  if (o.outputNames.length !== dflt.length || new Set(o.outputNames).size !== dflt.length || o.outputNames.some((n) => !n)) {
    throw new BortError(`the ${o.head} head has ${dflt.length} output${dflt.length > 1 ? 's' : ''} (${dflt.join(', ')}), but ${o.outputNames.length} names were given`,
      `give ${dflt.length} distinct output name${dflt.length > 1 ? 's' : ''}`);
  }
  return o.outputNames;
}

/** Writes the head on `x` (already named outputs[0] for the base head) and returns the graph outputs. */
export function writeHead(ctx: SynthContext, x: string, w: HeadWeights, wordTable: Float32Array, outputs: string[]): ValueInfoProto[] {
  const { g, o } = ctx;
  const { hidden: H } = o.arch;
  const V = o.vocab;
  const L = o.labels;
  const gemm = (input: string, prefix: string, p: GemmWeights, out?: string): string => {
    const wt = g.init(`${prefix}.weight`, [p.bias.length, H], p.weight);
    const b = g.init(`${prefix}.bias`, [p.bias.length], p.bias);
    return g.node('Gemm', [input, wt, b], { transB: 1, alpha: { float: 1 }, beta: { float: 1 } }, out);
  };
  const firstToken = () => g.node('Gather', [x, g.constInt([0], true)], { axis: 1 });
  switch (o.head) {
    case 'base': {
      const infos = [tensorInfo(outputs[0], DataType.FLOAT, ['batch_size', 'sequence_length', H])];
      if (w.pooler) {
        g.node('Tanh', [gemm(firstToken(), ctx.names.pooler, w.pooler)], {}, outputs[1]);
        infos.push(tensorInfo(outputs[1], DataType.FLOAT, ['batch_size', H]));
      }
      return infos;
    }
    case 'mlm': {
      const m = w.mlm!;
      const t = layerNorm(ctx, activate(ctx, linearProduct(ctx, x, ctx.names.mlm.dense, m.dense)), ctx.names.mlm.norm, m.norm);
      // decoder tied to the word table, stored as a transposed copy as PyTorch exports it
      const y = g.node('MatMul', [t, g.init('onnx::MatMul_decoder', [H, V], transposed(wordTable, V, H))]);
      g.node('Add', [g.init(ctx.names.mlm.decoderBias, [V], m.decoderBias), y], {}, outputs[0]);
      return [tensorInfo(outputs[0], DataType.FLOAT, ['batch_size', 'sequence_length', V])];
    }
    case 'cls': {
      const c = w.cls!;
      const first = gemm(firstToken(), ctx.names.cls.first, c.first);
      const act = g.node(o.family === 'distilbert' ? 'Relu' : 'Tanh', [first]);
      gemm(act, ctx.names.cls.last, c.last, outputs[0]);
      return [tensorInfo(outputs[0], DataType.FLOAT, ['batch_size', L])];
    }
    case 'qa': {
      const logits = linear(ctx, x, 'qa_outputs', w.perToken!);
      const [start, end] = g.split(logits, [1, 1], -1);
      g.squeeze(start, [-1], outputs[0]);
      g.squeeze(end, [-1], outputs[1]);
      return outputs.map((n) => tensorInfo(n, DataType.FLOAT, ['batch_size', 'sequence_length']));
    }
    case 'token-cls':
      linear(ctx, x, 'classifier', w.perToken!, outputs[0]);
      return [tensorInfo(outputs[0], DataType.FLOAT, ['batch_size', 'sequence_length', L])];
  }
}
